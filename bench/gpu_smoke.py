"""The full world's rehearsal on one CUDA GPU: every method with ``trainer=gpu`` in bf16, and the vLLM
generation backend when vLLM is installed; prints what passed.

    python bench/gpu_smoke.py --benchmarks ../shared/reference-data     # the benchmarks' files, or
    python bench/gpu_smoke.py                                             # download them (a few items kept)
    python bench/gpu_smoke.py --methods dpo,adpa --families gemma,qwen --root /tmp/smoke

Each check is one ``python run.py world=rehearsal trainer=gpu world.dtype=bfloat16 ...`` (stand-ins
from :mod:`distill_bench.standins`, the stand-in judge on 127.0.0.1); a check passes when the run exits 0
and its results JSON holds the four benchmarks. Without a CUDA device it says so and exits 0 having
run nothing. Exit status 1 when a check failed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("dpo", "dckd", "adpa", "adpa_plus", "pad_lppd", "pad_lvpd")
BENCH_KEYS = ("eval/alpaca_eval2/win_rate", "eval/arena_hard/score", "eval/mt_bench/score", "eval/open_llm/average")


def check(name: str, cmd: list[str], env: dict, results: Path, method: str, family: str, log_dir: Path,
          seed: int = 0) -> dict:
    t0 = time.time()
    log_path = log_dir / f"{name.replace(' ', '_').replace('/', '_')}.log"
    with open(log_path, "w") as fh:
        rc = subprocess.call(cmd, cwd=env["DISTILL_ROOT"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    found = sorted((p for p in results.glob(f"{method}-{family}-s{seed}-*.json") if p.stat().st_mtime >= t0),
                   key=lambda p: p.stat().st_mtime)   # written by this check
    missing = []
    if rc == 0 and found:
        scores = json.loads(found[-1].read_text())["scores"]
        missing = [k for k in BENCH_KEYS if k not in scores]
    ok = rc == 0 and bool(found) and not missing
    why = "" if ok else (f"exit code {rc}" if rc else "no results JSON" if not found else f"missing {missing}")
    return {"check": name, "ok": ok, "seconds": round(time.time() - t0, 1), "why": why, "log": str(log_path)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmarks", help="folder with the benchmarks' files (default: download them)")
    p.add_argument("--root", help="stand-ins, artifacts and results go here (default: a temporary folder)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--families", default="gemma")
    p.add_argument("--no-vllm", action="store_true", help="skip the vLLM check even when vLLM is installed")
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_smoke: no CUDA device on this machine; nothing was run. Run it on a machine with a GPU "
              "(the CPU rehearsal is tests/test_rehearsal.py).")
        return 0
    device = torch.cuda.get_device_name(0)
    if not torch.cuda.is_bf16_supported():
        print(f"gpu_smoke: {device} does not support bf16; nothing was run.")
        return 0

    from distill_bench.standins import build, overrides
    from eval.judges.standin import serve

    root = Path(args.root or tempfile.mkdtemp(prefix="gpu_smoke_")).resolve()
    standins = build(root / "standins", args.benchmarks)
    work = root / "work"
    (work / "smoke_logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DISTILL_ROOT": str(work), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    server = serve(standins / "benchmarks")
    rows = []
    try:
        base = [sys.executable, str(ROOT / "run.py"), *overrides(standins, server.base_url), "trainer=gpu",
                "world.dtype=bfloat16", "logger=csv"]
        for family in args.families.split(","):
            for method in args.methods.split(","):
                rows.append(check(f"{family}/{method} bf16", [*base, f"model={family}", f"method={method}"], env,
                                  work / "results", method, family, work / "smoke_logs"))
                print(("PASS " if rows[-1]["ok"] else "FAIL ") + rows[-1]["check"], rows[-1]["why"], flush=True)
        try:
            import vllm  # noqa: F401

            has_vllm = True
        except ImportError:
            has_vllm = False
        if has_vllm and not args.no_vllm:
            family, method = args.families.split(",")[0], "adpa"
            rows.append(check(f"{family}/{method} bf16 vllm", [*base, f"model={family}", f"method={method}",
                                                               "generation.backend=vllm", "seed=1"],
                              env, work / "results", method, family, work / "smoke_logs", seed=1))
            print(("PASS " if rows[-1]["ok"] else "FAIL ") + rows[-1]["check"], rows[-1]["why"], flush=True)
        else:
            rows.append({"check": "vllm backend", "ok": None, "seconds": 0.0,
                         "why": "vLLM not installed (pip install -e '.[vllm]')" if not has_vllm else "--no-vllm"})
    finally:
        server.stop()

    print(f"\nGPU smoke on {device} (torch {torch.__version__}); stand-in judge requests: {server.calls}")
    print(f"{'check':32} {'result':8} {'seconds':>8}  note")
    for r in rows:
        result = "skipped" if r["ok"] is None else "PASS" if r["ok"] else "FAIL"
        print(f"{r['check']:32} {result:8} {r['seconds']:8.1f}  {r['why'] or ''} {r.get('log', '') if not r['ok'] else ''}")
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
