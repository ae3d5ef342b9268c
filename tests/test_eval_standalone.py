"""``python -m eval model=<checkpoint>``: any saved checkpoint through the benchmarks, as a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


# ---- model_outputs=<file>: answers given as a file, judged without loading a model
def _outputs_cfg(tmp_path, outputs, *extra):
    from omegaconf import open_dict

    cfg = compose_cfg(["eval=all", "logger=none", "eval.mt_bench.n_toy=6", *TINY, *extra], tmp_path)
    with open_dict(cfg):
        cfg.checkpoint, cfg.model_outputs, cfg.model_outputs_benchmark = None, str(outputs), None
    return cfg


def _toy_mt_bench_questions(cfg):
    from distill.artifacts import ArtifactStore
    from distill.stages import Pipeline
    from eval.suite import Suite

    store = ArtifactStore(cfg.paths.artifacts)
    with Suite(cfg, store, tmp_out := os.path.join(cfg.paths.root_dir, "q"), task=Pipeline(cfg, store).task()) as s:
        return s.benchmark("mt_bench").load()[0]


def test_model_outputs_fastchat_file_is_scored_by_mt_bench_and_others_skipped(tmp_path, caplog):
    from eval.standalone import run_standalone

    path = tmp_path / "my-model.jsonl"
    cfg = _outputs_cfg(tmp_path, path)
    questions = _toy_mt_bench_questions(cfg)
    rows = [{"question_id": q["question_id"], "model_id": "my-model", "answer_id": str(i),
             "choices": [{"index": 0, "turns": [t.split()[0] if t.split() else "a" for t in q["turns"]]}],
             "tstamp": 0.0} for i, q in enumerate(questions)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level("INFO"):
        run_standalone(cfg)
    results = list((tmp_path / "results").glob("eval-my-model-*.json"))
    assert len(results) == 1
    rec = json.loads(results[0].read_text())
    assert rec["method"] == "my-model" and rec["hparams"] == {"model_outputs": str(path)}
    for key in ("eval/mt_bench/score", "eval/mt_bench/turn1", "eval/mt_bench/turn2"):
        assert key in rec["scores"], key
    assert rec["scores"]["eval/mt_bench/n_scored"] == 2 * len(questions)
    assert not any(k.startswith(("eval/alpaca_eval2", "eval/arena_hard", "eval/open_llm")) for k in rec["scores"])
    for skipped in ("alpaca_eval2", "arena_hard", "open_llm"):
        assert any(f"benchmark {skipped} skipped: it needs a checkpoint" in r.getMessage() for r in caplog.records)


def test_model_outputs_that_answer_another_question_set_are_refused_by_name(tmp_path):
    from eval.standalone import run_standalone
    from eval.suite import OutputsMismatch

    path = tmp_path / "other.jsonl"
    cfg = _outputs_cfg(tmp_path, path, "eval.benchmarks=[mt_bench]")
    questions = _toy_mt_bench_questions(cfg)
    rows = [{"question_id": q["question_id"], "model_id": "other", "choices": [{"turns": ["x", "y"]}]}
            for q in questions]
    rows[2]["question_id"] = 99999
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(OutputsMismatch,
                       match=r"other\.jsonl.*line 3: question_id '99999' is not in the question set.*Fix"):
        run_standalone(cfg)


def test_alpaca_eval_outputs_file_checked_against_the_reference_instructions(tmp_path):
    from eval.suite import OutputsMismatch, read_model_outputs_file

    path = tmp_path / "model_outputs.json"
    path.write_text(json.dumps([{"instruction": "a", "output": "1", "generator": "g x"},
                                {"instruction": "b", "output": "2", "generator": "g x"}]))
    outputs = read_model_outputs_file(path)
    assert outputs.kind == "alpaca_eval" and outputs.name == "g_x" and outputs.benchmarks() == ("alpaca_eval2",)
    placed = outputs.place("alpaca_eval2", ["b", "a"], tmp_path / "placed")
    assert json.loads((placed.path / "model_outputs.json").read_text())[1]["output"] == "2"
    with pytest.raises(OutputsMismatch, match=r"model_outputs\.json.*entry 1 \(0-based\).*'b' is not in"):
        outputs.place("alpaca_eval2", ["a", "c"], tmp_path / "p2")
    with pytest.raises(OutputsMismatch, match=r"1 of the 3 questions have no answer.*'c'"):
        outputs.place("alpaca_eval2", ["a", "b", "c"], tmp_path / "p3")
    with pytest.raises(OutputsMismatch, match="cannot be scored by mt_bench"):
        outputs.place("mt_bench", [1], tmp_path / "p4")


def test_without_a_model_or_outputs_both_options_are_named(tmp_path):
    from eval.standalone import run_standalone

    cfg = compose_cfg(["eval=all"], tmp_path)
    with pytest.raises(ValueError, match=r"model=<checkpoint folder or hub id>.*model_outputs=<AlpacaEval"):
        run_standalone(cfg)


@pytest.mark.slow
def test_python_m_eval_scores_an_alpaca_eval_model_outputs_file_under_eval_all(tmp_path):
    """The toy AlpacaEval set's instructions answered in a file: ``model_outputs=... eval=all`` scores it."""
    from distill.artifacts import ArtifactStore
    from distill.stages import Pipeline
    from eval.suite import Suite, artifact_target

    cfg = compose_cfg(["eval=all", *TINY, "eval.alpaca_eval2.n_toy=8"], tmp_path)
    store = ArtifactStore(cfg.paths.artifacts)
    pipe = Pipeline(cfg, store)
    assert cfg.eval.toy.reference == "sft_teacher"  # as eval/standalone.py names and builds it
    ref = lambda: artifact_target(f"sft_teacher-{cfg.model.family}", pipe.sft("teacher"), cfg.world.dtype)  # noqa: E731
    with Suite(cfg, store, tmp_path / "q", task=pipe.task(), reference=ref) as suite:
        reference = suite.benchmark("alpaca_eval2").load()[0]
    path = tmp_path / "model_outputs.json"
    path.write_text(json.dumps([{"instruction": r["instruction"], "output": r["instruction"][::-1],
                                 "generator": "reversed", "dataset": "toy"} for r in reference]))
    env = {**os.environ, "DISTILL_ROOT": str(tmp_path), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "eval", f"model_outputs={path}", "eval=all", "logger=csv",
           "eval.alpaca_eval2.n_toy=8", *TINY]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(next((tmp_path / "results").glob("eval-reversed-*.json")).read_text())
    assert rec["method"] == "reversed" and rec["hparams"] == {"model_outputs": str(path)}
    assert 0.0 <= rec["scores"]["eval/alpaca_eval2/win_rate"] <= 100.0
    assert list(rec["benchmarks"]["student"]) == ["alpaca_eval2"]
    assert "benchmark open_llm skipped: it needs a checkpoint" in proc.stderr + proc.stdout

    wrong = tmp_path / "wrong" / "model_outputs.json"
    wrong.parent.mkdir()
    wrong.write_text(json.dumps([{"instruction": "not a toy instruction", "output": "x", "generator": "w"}]))
    proc = subprocess.run([*cmd[:3], f"model_outputs={wrong}", *cmd[4:]], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "wrong/model_outputs.json does not answer the configured alpaca_eval2 question set: entry 0" in proc.stderr


REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"


@pytest.mark.skipif(not (REF / "arena_hard_v0.1").is_dir() or not (REF / "mt_bench").is_dir(),
                    reason="../shared/reference-data (Arena-Hard v0.1 and MT-Bench files) is absent")
def test_a_fastchat_answer_file_goes_to_the_benchmark_whose_question_ids_it_answers(tmp_path, caplog):
    """The published answer files of Arena-Hard v0.1 and MT-Bench, told apart by their question ids."""
    from types import SimpleNamespace

    from eval.benchmarks import arena_hard as ah
    from eval.benchmarks import mt_bench as mt
    from eval.standalone import _outputs_benchmarks
    from eval.suite import OutputsMismatch, read_model_outputs_file

    questions = {"mt_bench": lambda: mt.load_questions(REF / "mt_bench" / "question.jsonl"),
                 "arena_hard": lambda: ah.load_questions(REF / "arena_hard_v0.1" / "question.jsonl")}
    suite = SimpleNamespace(benchmark=lambda b: SimpleNamespace(
        load=lambda: (questions[b](),), expected=lambda items: [q["question_id"] for q in items[0]]))
    selected = ["alpaca_eval2", "arena_hard", "mt_bench", "open_llm"]
    arena = read_model_outputs_file(REF / "arena_hard_v0.1" / "model_answer" / "gpt-3.5-turbo-0125.jsonl")
    assert arena.kind == "fastchat" and arena.name == "gpt-3.5-turbo-0125"
    with caplog.at_level("INFO"):
        assert _outputs_benchmarks(suite, arena, ["arena_hard", "mt_bench"], selected) == ["arena_hard"]
    assert sum("skipped: it needs a checkpoint" in r.getMessage() for r in caplog.records) == 3
    mtb = read_model_outputs_file(REF / "mt_bench" / "example_model_answer_gpt-4o.jsonl")
    assert _outputs_benchmarks(suite, mtb, ["arena_hard", "mt_bench"], selected) == ["mt_bench"]
    neither = tmp_path / "neither.jsonl"
    neither.write_text(json.dumps({"question_id": "nope", "model_id": "m", "choices": [{"turns": ["x"]}]}) + "\n")
    with pytest.raises(OutputsMismatch, match=r"neither\.jsonl answers none of the configured question sets "
                                              r"\(mt_bench: line 1: question_id 'nope'.*; arena_hard: line 1"):
        _outputs_benchmarks(suite, read_model_outputs_file(neither), ["arena_hard", "mt_bench"], selected)


def test_model_outputs_is_not_rewritten_and_cannot_come_with_a_checkpoint(tmp_path):
    from omegaconf import open_dict

    from eval.standalone import run_standalone

    assert rewrite_argv(["model_outputs=a/model_outputs.json", "model_outputs_benchmark=mt_bench"]) == [
        "model_outputs=a/model_outputs.json", "model_outputs_benchmark=mt_bench"]
    cfg = compose_cfg(["eval=all"], tmp_path)
    with open_dict(cfg):
        cfg.checkpoint, cfg.model_outputs = "org/name", str(tmp_path / "model_outputs.json")
    with pytest.raises(ValueError, match=r"either model=<checkpoint> or model_outputs=<file>, not both"):
        run_standalone(cfg)
