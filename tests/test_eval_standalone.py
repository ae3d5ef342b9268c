"""``python -m eval model=<checkpoint>``: any saved checkpoint through the benchmarks, as a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, TINY, compose_cfg
from eval.__main__ import rewrite_argv


def test_model_and_family_overrides_are_rewritten():
    assert rewrite_argv(["model=artifacts/distill/x/model", "family=llama", "judge=oracle", "+model.x=1"]) == [
        "checkpoint=artifacts/distill/x/model", "model=llama", "judge=oracle", "+model.x=1"]


def test_standalone_config_composes_the_training_config_with_eval_all(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from conftest import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("eval_standalone", overrides=["checkpoint=org/name", "model=llama",
                                                    "eval.benchmarks=[alpaca_eval2,mt_bench]"])
    assert cfg.checkpoint == "org/name" and cfg.model.family == "llama" and cfg.judge.name == "oracle"
    assert list(cfg.eval.benchmarks) == ["alpaca_eval2", "mt_bench"] and cfg.eval.n_prompts == 300


@pytest.mark.slow
def test_python_m_eval_on_a_saved_tiny_checkpoint(tmp_path):
    from distill.artifacts import ArtifactStore
    from distill.stages import Pipeline

    cfg = compose_cfg(TINY, tmp_path)
    student = Pipeline(cfg, ArtifactStore(cfg.paths.artifacts)).sft("student")
    ckpt = student.path / "model"
    env = {**os.environ, "DISTILL_ROOT": str(tmp_path), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "eval", f"model={ckpt}", "eval.benchmarks=[alpaca_eval2,mt_bench]", "logger=csv",
           "eval.alpaca_eval2.n_toy=8", "eval.mt_bench.n_toy=8", *TINY]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list((tmp_path / "results").glob("eval-sft_student-*.json"))
    assert len(results) == 1
    rec = json.loads(results[0].read_text())
    assert rec["method"] == f"sft_student-{student.key[:8]}" and rec["model"] == "gemma"
    assert rec["hparams"] == {"checkpoint": str(ckpt)}
    for key in ("eval/alpaca_eval2/win_rate", "eval/mt_bench/score", "eval/mt_bench/turn1", "eval/mt_bench/turn2"):
        assert key in rec["scores"], key
    assert not any(k.startswith(("eval/arena_hard", "eval/open_llm")) for k in rec["scores"])
    answers = rec["benchmarks"]["student"]["mt_bench"]["answers"]
    assert os.path.isfile(answers) and answers.endswith(f"model_answer/sft_student-{student.key[:8]}.jsonl")
    assert "Benchmarks" in proc.stdout and "MT-Bench" in proc.stdout


def test_standalone_without_a_model_says_how_to_name_one(tmp_path):
    from eval.standalone import run_standalone

    cfg = compose_cfg(["eval=all"], tmp_path)
    with pytest.raises(ValueError, match=r"python -m eval model=<checkpoint folder or hub id>"):
        run_standalone(cfg)


def test_a_checkpoint_that_is_neither_a_folder_nor_a_hub_id(tmp_path):
    from eval.suite import checkpoint_target

    with pytest.raises(FileNotFoundError, match="not a hub id"):
        checkpoint_target(str(tmp_path / "missing"))
    target, info = checkpoint_target("google/gemma-2-2b-it")
    assert target.name == "gemma-2-2b-it" and target.key == "hub/google/gemma-2-2b-it" and "family" not in info
