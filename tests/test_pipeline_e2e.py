"""The pipeline end to end on a shrunken toy world (seconds), and `run.py` as a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TINY
from wandb_files import read_offline_run
from distill.pipeline import run


def test_pipeline_end_to_end_and_reuse(tiny_cfg, tmp_path, capsys):
    cfg = tiny_cfg("logger=none")
    metric = run(cfg)
    assert 0.0 <= metric <= 100.0
    results = list(Path(cfg.paths.results).glob("dpo-gemma-s0-*.json"))
    assert len(results) == 1
    rec = json.loads(results[0].read_text())
    assert rec["scores"]["toy/win_rate_ci_low"] <= rec["scores"]["toy/win_rate"] <= rec["scores"]["toy/win_rate_ci_high"]
    assert set(rec["references"]) == {"teacher · SFT (π_ref)", "teacher · DPO (π_dpo)", "student · SFT (π_sft)"}
    # the SFT student against itself: every comparison a tie
    assert rec["references"]["student · SFT (π_sft)"]["toy/win_rate"] == 50.0
    for stage in ("data", "sft_teacher", "dpo_teacher", "sft_student", "distill", "generate"):
        manifests = list((Path(cfg.paths.artifacts) / stage).glob("*/manifest.json"))
        assert manifests, f"no {stage} artifact"
    out = capsys.readouterr().out
    assert "win rate vs SFT student" in out

    # a second run with another distillation seed reuses the teachers and the SFT student
    from distill.artifacts import ArtifactStore
    from distill.stages import Pipeline
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.seed = 1
    store = ArtifactStore(cfg.paths.artifacts)
    run_pipe = Pipeline(cfg, store)
    run_pipe.distill()
    reused = {s for s, _, r in store.events if r}
    built = {s for s, _, r in store.events if not r}
    assert {"data", "sft_student"} <= reused and built == {"distill"}


def test_run_py_multirun_leaves_wandb_runs_and_results(tmp_path):
    env = {**os.environ, "DISTILL_ROOT": str(tmp_path), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", "method=dpo", "model=gemma,llama", *TINY]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(p.name for p in (tmp_path / "results").glob("*.json"))
    assert any(n.startswith("dpo-gemma-s0") for n in results) and any(n.startswith("dpo-llama-s0") for n in results)
    wandb_runs = [read_offline_run(d) for d in (tmp_path / "logs" / "multiruns").glob("*/*/wandb/offline-run-*")]
    students = sorted(r["name"] for r in wandb_runs if r["job_type"] == "student" and "dpo" in r["tags"])
    assert students == ["dpo-gemma-s0", "dpo-llama-s0"]
    # each family's teachers and SFT student were built by its job, each with a W&B run of its own
    stages = sorted((r["name"], r["job_type"]) for r in wandb_runs if "stage" in r["config"])
    assert stages == sorted((f"{s}-{f}", "student" if s == "sft_student" else "teacher")
                            for s in ("sft_teacher", "dpo_teacher", "sft_student") for f in ("gemma", "llama"))
    assert len({r["group"] for r in wandb_runs}) == 1  # the multirun's name
    assert "Oracle evaluation — 2 runs" in proc.stdout
