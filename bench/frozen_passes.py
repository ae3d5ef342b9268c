"""The frozen models' passes at the realistic size of ``bench/run.py`` (f): the DPO reference pass
(``distill.stages.add_reference_logps``), PAD's teacher scores (``length_normalised_logps``) and a
teacher cache (``distill.cache.build_topk_cache``, teacher + reference, k = 50), each with the LM
head at response positions only (new) and over every position (old: ``FULL_LOGITS``, the former
path), interleaved repetitions, min/median/max.

    python bench/frozen_passes.py [--reps 5] [--out bench/frozen_passes.md]

Model: the gemma family's architecture, 4 layers, width 256, vocabulary 32,000; 8 rows of 128
prompt + 128 response tokens per call (the reference pass: 4 pairs), one torch thread.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
B = importlib.util.module_from_spec(_spec)  # bench/run.py (configures the allocator before torch allocates)
_spec.loader.exec_module(B)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from distill import data as D  # noqa: E402

PROMPT, RESPONSE, ROWS = 128, 128, 8


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "frozen_passes.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    import distill.methods.base as mbase
    from distill.cache import build_topk_cache
    from distill.stages import add_reference_logps, length_normalised_logps

    t_start, load0 = time.perf_counter(), os.getloadavg()
    fc = B.family_cfg("gemma").model
    model = B.realistic_model(fc, argparse.Namespace(**B.REALISTIC)).eval()
    reference = copy.deepcopy(model)
    rng = np.random.default_rng(0)

    def seq():
        ids = rng.integers(3, 32_000, PROMPT + RESPONSE).tolist()
        return {"input_ids": ids, "labels": [D.IGNORE] * PROMPT + ids[PROMPT:]}

    pairs = [{"seqs": [seq(), seq()]} for _ in range(ROWS // 2)]
    singles = [{"seqs": [seq()]} for _ in range(ROWS)]
    collate = D.Collator(0)
    work = Path(tempfile.mkdtemp(prefix="frozen-passes-"))

    def cache():
        out = work / f"c{time.perf_counter_ns()}"
        out.mkdir()
        build_topk_cache(out, model, singles, collate, k=50, batch_size=ROWS, reference=reference)
        shutil.rmtree(out)

    entries = {"DPO reference pass (4 pairs)": lambda: add_reference_logps(model, [copy.copy(x) for x in pairs],
                                                                          collate, ROWS // 2),
               "PAD teacher scores (8 rows)": lambda: length_normalised_logps(model, singles, collate, ROWS),
               "teacher cache, teacher + reference (8 rows)": cache}
    plan = [(n, mode) for n in entries for mode in ("new", "old")]
    times = {k: [] for k in plan}
    for rep in range(1 + args.reps):
        for key in (plan if rep % 2 == 0 else plan[::-1]):
            mbase.FULL_LOGITS = key[1] == "old"
            t0 = time.perf_counter()
            entries[key[0]]()
            if rep:
                times[key].append(time.perf_counter() - t0)
        print(f"repetition {rep + 1}/{1 + args.reps} done", flush=True)
    mbase.FULL_LOGITS = False
    shutil.rmtree(work, ignore_errors=True)
    info, load1 = B.device_info(), os.getloadavg()

    def mmm(x, fmt=".3f"):
        x = np.sort(np.asarray(x))
        return " / ".join(f"{v:{fmt}}" for v in (x[0], float(np.median(x)), x[-1]))

    lines = ["# Frozen passes: LM head at response positions (new) against every position (old)", "",
             f"Command: `python bench/frozen_passes.py --reps {args.reps}` ({time.perf_counter() - t_start:.0f} s)", "",
             f"- date: {dt.datetime.now():%Y-%m-%d %H:%M}; device: {info['cpu']}, {info['cores']} cores (torch threads "
             f"{torch.get_num_threads()}); load average at the start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
             f"at the end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}",
             f"- model: Gemma-2 architecture, 4 layers, width 256, vocabulary 32,000; {ROWS} rows of {PROMPT} prompt + "
             f"{RESPONSE} response tokens per call; 1 warm-up + {args.reps} repetitions, new and old interleaved", "",
             "| pass | new s (min / median / max) | old s | new / old (per repetition) |", "|---|---|---|---|"]
    for n in entries:
        new, old = np.array(times[(n, "new")]), np.array(times[(n, "old")])
        lines.append(f"| {n} | {mmm(new)} | {mmm(old)} | {mmm(new / old, '.2f')} |")
    md = "\n".join(lines) + "\n"
    Path(args.out).write_text(md)
    print(md)


if __name__ == "__main__":
    main()
