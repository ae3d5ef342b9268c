"""A rerun of a finished run answers from its results file (distill/finished.py): it builds nothing,
imports none of torch, Lightning, transformers, wandb or pandas, starts no W&B run, leaves the record as
it was but for its group and prints the same table; a damaged artifact, another config or
``DISTILL_RERUN=full`` sends it the ordinary way."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, compose_cfg

HEAVY = ("torch", "lightning", "transformers", "wandb", "pandas")  # pandas: ~2 s of a ~2 s rerun
# runs run.py as __main__ and writes, at exit, the heavy packages the process imported
WRAPPER = """import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r)))))
sys.argv[0] = "run.py"
runpy.run_path("run.py", run_name="__main__")
""" % (HEAVY,)


def _run(tmp_path: Path, name: str, *overrides: str, modules: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DISTILL_ROOT": str(tmp_path), "WANDB_MODE": "offline", "DISTILL_PROGRESS": "plain"}
    env.pop("DISTILL_RERUN", None)
    args = [f"hydra.run.dir={tmp_path / 'runs' / name}", "experiment=smoke", *overrides]
    cmd = [sys.executable, "-c", WRAPPER, str(modules), *args] if modules else [sys.executable, "run.py", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _table(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("│")]


@pytest.mark.slow
def test_rerun_of_a_finished_run_builds_nothing_and_imports_no_training_machinery(tmp_path, monkeypatch):
    first = _run(tmp_path, "first", "logger=none")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = list((tmp_path / "results").glob("*.json"))
    assert len(results) == 1
    record_bytes = results[0].read_bytes()
    listed = json.loads(record_bytes)["run"]["artifacts"]
    assert {a.split("/")[0] for a in listed} >= {"data", "sft_teacher", "dpo_teacher", "sft_student", "distill",
                                                "generate"}
    assert sum(a.startswith("generate/") for a in listed) == 4  # the student and the three reference models
    artifacts_before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "artifacts").rglob("*"))

    # the rerun, with the default logger (W&B, offline): the result id does not depend on the logger
    modules = tmp_path / "modules.json"
    second = _run(tmp_path, "second", modules=modules)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-3000:]
    assert json.loads(modules.read_text()) == []  # no torch, Lightning, transformers, wandb or pandas
    assert "artifacts built:  none" in out and "finished run:" in out
    assert f"results written to {results[0]}" in out  # the line sweeps.local reads
    assert "wandb: no new run" in out and not list((tmp_path / "runs").rglob("offline-run-*"))
    record = json.loads(record_bytes)
    assert record["run"]["group"] == "first"
    record["run"]["group"] = "second"  # the rerun's group (its folder's name), as for a multirun's table
    assert json.loads(results[0].read_text()) == record  # otherwise untouched
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "artifacts").rglob("*")) == artifacts_before
    assert _table(second.stdout) == _table(first.stdout) and len(_table(first.stdout)) == 4

    # what decides the fast path, in process: the record and every artifact it lists
    from distill.finished import finished_record

    cfg = compose_cfg(["experiment=smoke"], tmp_path)
    assert finished_record(cfg) is not None
    monkeypatch.setenv("DISTILL_RERUN", "full")
    assert finished_record(cfg) is None
    monkeypatch.delenv("DISTILL_RERUN")
    assert finished_record(compose_cfg(["experiment=smoke", "seed=1"], tmp_path)) is None  # another result id
    gen = tmp_path / "artifacts" / next(a for a in listed if a.startswith("generate/")) / "generations.jsonl"
    gen.write_bytes(gen.read_bytes().replace(b"[", b"(", 1))  # same size, another checksum
    assert finished_record(cfg) is None
