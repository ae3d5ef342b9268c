"""world=full rehearsed on the CPU: local stand-ins for the hub's checkpoints and data sets, the
benchmarks' own files (a few items of each, from ../shared/reference-data) and the judge (a local
OpenAI-compatible server reached by the real HTTP judge). One stand-in build and one judge server
serve every test of this module."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SHARED, compose_cfg
from wandb_files import read_offline_run

REFERENCE = SHARED / "reference-data"
METHODS = ("dpo", "dckd", "adpa", "adpa_plus", "pad_lppd", "pad_lvpd")
BENCH_KEYS = ("eval/alpaca_eval2/win_rate", "eval/arena_hard/score", "eval/mt_bench/score", "eval/open_llm/average")
TRAINED = ("sft_teacher", "dpo_teacher", "sft_student", "distill", "teacher_cache", "samples", "pad_scores")

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"needs the benchmarks' files in {REFERENCE}")


@pytest.fixture(scope="session")
def standins(tmp_path_factory):
    from distill_bench.standins import build

    return build(tmp_path_factory.mktemp("standins"), REFERENCE)


@pytest.fixture(scope="session")
def judge_server(standins):
    from eval.judges.standin import serve

    server = serve(standins / "benchmarks")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory):
    """One root (artifacts, results, judge cache) for the end-to-end tests: later tests reuse."""
    return tmp_path_factory.mktemp("rehearsal_root")


def rehearsal(standins, server, root: Path, *overrides: str):
    return compose_cfg(["world=rehearsal", f"rehearsal.root={standins}", f"judge.base_url={server.base_url}",
                        "logger=none", *overrides], root)


def built(root: Path) -> set[str]:
    art = Path(root) / "artifacts"
    return {p.parent.name for p in art.glob("*/*/manifest.json")} if art.is_dir() else set()


# ------------------------------------------------------------------------------------------ stand-ins
def test_standins_look_like_the_hub(standins):
    from datasets import load_dataset
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    markers = {"gemma": ("<start_of_turn>user\n", "<start_of_turn>model\n", "gemma2"),
               "llama": ("<|start_header_id|>user<|end_header_id|>", "<|eot_id|>", "llama"),
               "qwen": ("<|im_start|>user\n", "<|im_end|>", "qwen2"),
               "danube": ("[INST] Hi [/INST]", "</s>", "mistral")}
    for family, (a, b, model_type) in markers.items():
        for role in ("teacher", "student"):
            path = standins / "models" / family / role
            assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= {
                p.name for p in path.iterdir()}
            assert AutoConfig.from_pretrained(path).model_type == model_type
        tok = AutoTokenizer.from_pretrained(path)
        text = tok.apply_chat_template(conv, tokenize=False)
        assert a in text and b in text, (family, text)
        assert tok.decode(tok("Ünïcode, text!", add_special_tokens=False)["input_ids"]) == "Ünïcode, text!"
        assert AutoModelForCausalLM.from_pretrained(path).config.vocab_size == len(tok)
    # generation stops at Gemma's end of turn as well as at its tokenizer's <eos>, as the hub's generation_config says
    from distill.generation import stop_token_ids

    gemma = standins / "models" / "gemma" / "student"
    tok = AutoTokenizer.from_pretrained(gemma)
    stops = stop_token_ids(AutoModelForCausalLM.from_pretrained(gemma), tok)
    assert set(stops) == {tok.convert_tokens_to_ids("<eos>"), tok.convert_tokens_to_ids("<end_of_turn>")}
    ds = load_dataset(str(standins / "data" / "ultrafeedback_binarized"), split="test_prefs")
    assert {"prompt", "prompt_id", "chosen", "rejected", "messages", "score_chosen", "score_rejected"} <= set(ds.column_names)
    assert load_dataset(str(standins / "data" / "deita-10k-v0-sft"), split="train_sft")[0]["messages"][-1]["role"] == "assistant"
    assert set(load_dataset(str(standins / "data" / "dpo-mix-7k"), split="train").column_names) >= {"chosen", "rejected"}
    # the benchmarks' files: the real ones' first items, in eval.data_root's layout
    real = json.loads((REFERENCE / "alpaca_eval/gpt4_1106_preview/model_outputs.json").read_text())
    mine = json.loads((standins / "benchmarks/alpaca_eval/gpt4_1106_preview/model_outputs.json").read_text())
    assert mine == real[:len(mine)] and len(mine) >= 5
    assert (standins / "benchmarks/mt_bench/reference_answer/gpt-4.jsonl").read_text().strip()


def test_build_command_keeps_what_is_built(standins, capsys):
    from distill_bench.standins import main, overrides

    stamp = (standins / "standins.json").stat().st_mtime_ns
    assert main(["build", str(standins)]) == 0
    assert (standins / "standins.json").stat().st_mtime_ns == stamp
    assert "python -m distill_bench.standins rehearse" in capsys.readouterr().out
    assert overrides(standins, "http://127.0.0.1:1/v1") == [
        "world=rehearsal", f"rehearsal.root={standins}", "judge.base_url=http://127.0.0.1:1/v1"]


def test_standin_judge_answers_each_benchmark_in_its_format(standins, judge_server):
    from eval.benchmarks import arena_hard as ah
    from eval.benchmarks import mt_bench as mt
    from eval.judges.http import HTTPJudge
    from eval.judges.standin import StandInJudge

    assert StandInJudge.reward([{"role": "user", "content": "Name two colours of the rainbow"},
                                {"role": "assistant", "content": "Red and the other colours"}]) == pytest.approx(
        0.8 * 2 / 5 + 0.2)   # question words of 3+ letters: name two colours the rainbow; used: the colours
    judge = HTTPJudge("standin-judge-v1", base_url=judge_server.base_url, api_key_env=None, max_retries=0)
    config = ah.load_judge_config(standins / "benchmarks/arena_hard_v0.1/judge_config.yaml")
    q = {"question_id": "q", "turns": [{"content": "Write a poem about the moon"}]}
    msgs = ah.game_messages(config, q, {"choices": [{"turns": [{"content": "The moon is a poem"}]}]},
                            {"choices": [{"turns": [{"content": "no"}]}]})
    verdict, _ = ah.parse_verdict(judge.complete(msgs, temperature=0, max_tokens=64).text)
    assert verdict == "A>>B"
    prompts = mt.load_judge_prompts(standins / "benchmarks/mt_bench/judge_prompts.jsonl")
    question = {"question_id": 1, "category": "writing", "turns": ["Write a poem about the moon", "Shorter"]}
    answer = {"choices": [{"turns": ["A poem about the moon", "Moon"]}]}
    _, msgs = mt.judge_messages(prompts, question, answer, 1)
    assert mt.parse_score(judge.complete(msgs, temperature=0, max_tokens=64).text) == pytest.approx(
        1 + 9 * (0.8 * 4 / 5 + 0.2), abs=0.05)   # question words: write poem about the moon; all but write used


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_every_method_runs_the_full_world_with_the_four_benchmarks(standins, judge_server, shared_root):
    """python run.py -m world=rehearsal method=<all six>: results JSON, W&B offline runs, the
    multirun's benchmark table and report."""
    env = {**os.environ, "DISTILL_ROOT": str(shared_root), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", f"method={','.join(METHODS)}", "world=rehearsal",
           f"rehearsal.root={standins}", f"judge.base_url={judge_server.base_url}"]
    proc = subprocess.run(cmd, cwd=shared_root, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for method in METHODS:
        (path,) = (shared_root / "results").glob(f"{method}-gemma-s0-*.json")
        rec = json.loads(path.read_text())
        assert rec["world"] == "rehearsal" and not any(k.startswith("toy/") for k in rec["scores"])
        for key in BENCH_KEYS:
            assert isinstance(rec["scores"][key], (int, float)), (method, key)
        assert rec["benchmarks"]["student"]["alpaca_eval2"]["judge"] == "standin-judge-v1"
        assert rec["references"]["student · SFT (π_sft)"]["eval/mt_bench/score"] >= 1
    wandb_runs = [read_offline_run(d) for d in (shared_root / "logs" / "multiruns").glob("*/*/wandb/offline-run-*")]
    # one W&B run per distilled student, beside those of the stages that train (here the DPO teacher)
    students = sorted(r["config"]["method.name"] for r in wandb_runs if "stage" not in r["config"])
    assert students == sorted(METHODS)
    assert sorted(r["name"] for r in wandb_runs if "stage" in r["config"]) == ["dpo_teacher-gemma"]
    assert f"Benchmarks — {len(METHODS)} runs" in proc.stdout
    (report,) = (shared_root / "logs" / "multiruns").glob("*/report/report.md")
    text = report.read_text()
    for column in ("AlpacaEval", "Arena-Hard", "MT-Bench", "Open LLM"):
        assert column in text, text[:2000]
    assert judge_server.calls > 0


@pytest.mark.slow
def test_second_run_reuses_every_artifact_and_judge_call(standins, judge_server, shared_root, capsys):
    from distill.pipeline import run

    root = shared_root
    if not list((root / "results").glob("adpa_plus-gemma-s0-*.json")):  # run alone: build first
        run(rehearsal(standins, judge_server, root, "method=adpa_plus"))
    before, calls = built(root), judge_server.calls
    metric = run(rehearsal(standins, judge_server, root, "method=adpa_plus"))
    assert 0.0 <= metric <= 100.0
    assert judge_server.calls == calls, "the second run asked the judge again"
    assert built(root) == before
    out = capsys.readouterr().out
    assert "Benchmarks" in out and "AlpacaEval 2" in out


@pytest.mark.slow
def test_python_m_eval_on_a_local_checkpoint(standins, judge_server, tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from eval.standalone import run_standalone

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("eval_standalone", overrides=[
            f"checkpoint={standins / 'models' / 'qwen' / 'student'}", "model=qwen", "world=rehearsal",
            f"rehearsal.root={standins}", f"judge.base_url={judge_server.base_url}", "logger=wandb"],
            return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir, cfg.paths.output_dir = str(tmp_path), str(tmp_path / "out")
        cfg.paths.artifacts, cfg.paths.results = str(tmp_path / "artifacts"), str(tmp_path / "results")
    value = run_standalone(cfg)
    assert value is not None
    (path,) = (tmp_path / "results").glob("eval-student-*.json")
    rec = json.loads(path.read_text())
    assert rec["model"] == "qwen"
    for key in BENCH_KEYS:
        assert key in rec["scores"]
    assert list((tmp_path / "out" / "wandb").glob("offline-run-*"))


# ------------------------------------------------------------------------------------------ fail before training
def _fails_before_training(cfg, error, *needles):
    from distill.pipeline import run

    with pytest.raises(error) as e:
        run(cfg)
    for n in needles:
        assert n in str(e.value), str(e.value)
    assert not built(cfg.paths.root_dir) & set(TRAINED)
    return str(e.value)


def test_missing_judge_key_fails_before_training(standins, judge_server, tmp_path, monkeypatch):
    from distill.validate import ConfigError

    monkeypatch.delenv("DISTILL_TEST_NO_SUCH_KEY", raising=False)
    cfg = rehearsal(standins, judge_server, tmp_path, "judge.api_key_env=DISTILL_TEST_NO_SUCH_KEY")
    _fails_before_training(cfg, ConfigError, "DISTILL_TEST_NO_SUCH_KEY", "export DISTILL_TEST_NO_SUCH_KEY")
    # the real world's default: OpenAI's key
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = compose_cfg(["world=full", "trainer=cpu", "logger=none"], tmp_path)
    _fails_before_training(cfg, ConfigError, "OPENAI_API_KEY")


def test_missing_benchmark_files_fail_before_training(standins, judge_server, tmp_path):
    from distill.preflight import PreflightError

    empty = tmp_path / "no_benchmarks"
    empty.mkdir()
    cfg = rehearsal(standins, judge_server, tmp_path, f"eval.data_root={empty}")
    msg = _fails_before_training(cfg, PreflightError, "question.jsonl", "judge_prompts.jsonl", "model_outputs.json",
                                 "download=false")
    assert str(empty / "mt_bench" / "question.jsonl") in msg


def test_tokenizer_without_chat_template_fails_before_training(standins, judge_server, tmp_path):
    from distill.preflight import PreflightError

    student = tmp_path / "student"
    shutil.copytree(standins / "models" / "gemma" / "student", student)
    (student / "chat_template.jinja").unlink(missing_ok=True)
    tc = json.loads((student / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (student / "tokenizer_config.json").write_text(json.dumps(tc))
    cfg = rehearsal(standins, judge_server, tmp_path, f"model.student.hub_id={student}")
    _fails_before_training(cfg, PreflightError, f"model.student.hub_id={student}", "no chat template",
                           "model.student.chat_template")
    # the fix the message names works: a named template
    from distill.preflight import tokenizer_problems
    from distill.stages import Pipeline

    cfg = rehearsal(standins, judge_server, tmp_path, f"model.student.hub_id={student}", "+model.chat_template=gemma")
    assert tokenizer_problems(cfg, Pipeline(cfg)) == []


def test_data_set_schema_or_split_mismatch_fails_before_training(standins, judge_server, tmp_path):
    from distill.data import DataError

    deita = standins / "data" / "deita-10k-v0-sft"
    cfg = rehearsal(standins, judge_server, tmp_path, f"data.pairs.path={deita}", "data.pairs.split=train_sft")
    _fails_before_training(cfg, DataError, "data.pairs", "chosen", "data.pairs.schema", "columns")
    cfg = rehearsal(standins, judge_server, tmp_path / "b", "data.sft.split=train_nope")
    _fails_before_training(cfg, DataError, "data.sft.split=train_nope")


def test_a_metric_the_world_does_not_compute_fails_before_training(tmp_path):
    from distill.validate import ConfigError

    os.environ.setdefault("OPENAI_API_KEY", "unused")
    cfg = compose_cfg(["world=full", "trainer=cpu", "logger=none", "optimized_metric=toy/win_rate"], tmp_path)
    _fails_before_training(cfg, ConfigError, "optimized_metric=toy/win_rate", "eval/alpaca_eval2/win_rate")
