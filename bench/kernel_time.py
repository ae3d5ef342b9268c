"""Kernel (system) time of a training step, each method in a process of its own, as in training.

    python bench/kernel_time.py [--steps 12] [--warmup 3] [--threads 1] [--out FILE]

``bench/run.py`` (f) measures every method, mode and the old code in one process, so one step's
heap follows another's: after GKD's full-logits step, whose working set is several times larger,
the free top of the heap can pass the trim threshold (``distill/allocator.py``) and the next step
faults it back. A training run repeats one method's step. Here each method (and SFT) runs in a fresh
process, started like ``run.py`` with the allocator configured (``DISTILL_MALLOC=default`` keeps
glibc's defaults, to compare): the realistic size of (f) (Gemma-2 architecture, 4 layers, width 256,
vocabulary 32,000, 4 rows of 128 prompt + 128 response tokens), the method's bench module and batch,
fused AdamW, ``--warmup`` untimed steps while the heap grows, then ``--steps`` timed steps. GKD
alternates off-policy and on-policy steps (λ = 0.5: every other step samples its responses from the
student first, as the module does in training). Per method: the kernel's share of the step's CPU
time (sys / (user + sys), getrusage) per step and over all timed steps, minor page faults a step and
the peak RSS before and after the timed steps (flat when the heap holds the working set).
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
B = importlib.util.module_from_spec(_spec)  # bench/run.py configures the allocator before torch allocates
_spec.loader.exec_module(B)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def child(method: str, args) -> dict:
    """``method``'s step alone: per timed step (wall, user, sys, minor faults), peak RSS (MiB)."""
    torch.set_num_threads(args.threads)
    size = argparse.Namespace(**B.REALISTIC)
    model = B.realistic_model(B.family_cfg("gemma").model, size).train()
    opt = B.realistic_optimizer(model)
    batch = B.realistic_batch(method, size)
    module = B.make_module(method, model)
    step_no = {"i": 0}
    if hasattr(module, "on_policy_step"):  # GKD: λ = 0.5, every other step on-policy
        module.on_policy_step = lambda: step_no["i"] % 2 == 1
    rec, rss = [], []
    for i in range(args.warmup + args.steps):
        step_no["i"] = i
        out = B.timed_step(module, batch, opt)
        if i >= args.warmup:
            rec.append(out)
        if i in (args.warmup - 1, args.warmup + args.steps - 1):
            rss.append(B._status_kb("VmHWM") / 1024)
    return {"rec": rec, "rss": rss}


def _mmm(xs, fmt: str) -> str:
    x = np.sort(np.asarray(xs, dtype=float))
    return " / ".join(format(v, fmt) for v in (x[0], np.median(x), x[-1]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=12, help="timed steps per method (after --warmup)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (the heap grows)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--methods", default="", help="comma-separated (default: SFT and every registered method)")
    p.add_argument("--out", default="", help="also write the markdown here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        method, path = args.child.split(":", 1)
        Path(path).write_text(json.dumps(child(method, args)))
        return
    methods = [m for m in args.methods.split(",") if m] or ["sft", *B.REALISTIC_METHODS]
    t_start, load0 = time.perf_counter(), os.getloadavg()
    rows = []
    for m in methods:
        out = Path(f"/tmp/kernel-time-{os.getpid()}-{m}.json")
        cmd = [sys.executable, __file__, "--child", f"{m}:{out}", "--steps", str(args.steps), "--warmup",
               str(args.warmup), "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{m}: the child failed:\n{done.stderr[-3000:]}")
        res = json.loads(out.read_text())
        out.unlink()
        rec = np.array(res["rec"])
        share = rec[:, 2] / (rec[:, 1] + rec[:, 2])
        total = 100 * rec[:, 2].sum() / (rec[:, 1].sum() + rec[:, 2].sum())
        rows.append(f"| {m} | {_mmm(rec[:, 0], '.3f')} | {_mmm(rec[:, 2], '.3f')} | {_mmm(100 * share, '.1f')} | "
                    f"{total:.1f} | "
                    f"{_mmm(rec[:, 3], ',.0f')} | {res['rss'][0]:,.0f} → {res['rss'][-1]:,.0f} |")
        print(rows[-1], flush=True)
    info = B.device_info()
    md = "\n".join([
        "# Kernel time of a training step, one method a process",
        "",
        f"Command: `python bench/kernel_time.py --steps {args.steps} --warmup {args.warmup} --threads "
        f"{args.threads}` ({time.perf_counter() - t_start:.0f} s)",
        "",
        f"- date: {dt.datetime.now():%Y-%m-%d %H:%M}; device: {info['cpu']}, {info['cores']} cores, torch threads "
        f"{args.threads}; allocator: {os.environ.get('DISTILL_MALLOC') or 'configured (distill/allocator.py)'}",
        f"- load average at the start: {load0[0]:.2f}; at the end: {os.getloadavg()[0]:.2f}",
        f"- each method in a fresh process: {args.warmup} untimed steps, then {args.steps} timed; GKD alternates "
        "off-policy and on-policy steps (λ = 0.5); min / median / max over the timed steps",
        "",
        "| method | s/step (wall) | sys s | sys share of CPU time (%) | all timed steps: sys share (%) | minor faults "
        "| peak RSS after warm-up → end (MiB) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]) + "\n"
    print(md)
    if args.out:
        Path(args.out).write_text(md)


if __name__ == "__main__":
    main()
