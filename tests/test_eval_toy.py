"""The benchmarks' toy variants end to end on tiny models: question sets in the benchmarks' own
layouts, answers, the oracle judge, scores, files, the results JSON and W&B keys; a killed
evaluation rerun against a local HTTP judge; the real question sets from local files; the judge
configs."""
from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import TINY, compose_cfg
from distill.artifacts import ArtifactStore
from distill.stages import Pipeline
from toyworld.task import render
from eval.benchmarks import alpaca_eval2 as ae2
from eval.benchmarks import arena_hard as ah
from eval.benchmarks import mt_bench as mt
from eval.benchmarks import toy as toy_sets
from eval.benchmarks.sources import MissingBenchmarkFile, ensure_files
from eval.suite import Suite, Target, artifact_target, check_config, flat_scores, make_judge

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"
SMALL = ["eval=all", "logger=none", "eval.alpaca_eval2.n_toy=12", "eval.arena_hard.n_toy=10",
         "eval.mt_bench.n_toy=8", "eval.arena_hard.n_bootstrap=20", "eval.open_llm.limit=8",
         "eval.open_llm.bootstrap_iters=20"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny trained toy world (teacher and student SFT) shared by the tests of this module."""
    root = tmp_path_factory.mktemp("toy")
    cfg = compose_cfg([*TINY, *SMALL], root)
    store = ArtifactStore(cfg.paths.artifacts)
    pipe = Pipeline(cfg, store)
    student, teacher = pipe.sft("student"), pipe.sft("teacher")
    return {"cfg": cfg, "root": root, "pipe": pipe, "student": student, "teacher": teacher}


def make_suite(world, out: Path, **kw) -> Suite:
    pipe = world["pipe"]
    return Suite(world["cfg"], ArtifactStore(world["cfg"].paths.artifacts), out, task=pipe.task(),
                 reference=lambda: artifact_target("sft_teacher-gemma", world["teacher"]), **kw)


class Perfect:
    """A backend answering every toy question exactly, in the bracketed format."""

    name = "perfect"

    def __init__(self, task):
        self.task = task

    def chat(self, conversations, *, temperature, max_new_tokens, desc=""):
        return [render(toy_sets.true_answers(self.task, [m["content"] for m in c if m["role"] == "user"])[-1], True)
                for c in conversations]

    def count_tokens(self, text):
        return len(text.split())


# ---- question sets -----------------------------------------------------------------------------
def test_toy_question_sets_are_laid_out_like_the_real_ones(world, tmp_path):
    with make_suite(world, tmp_path) as suite:
        reference, _, glm = suite.benchmark("alpaca_eval2").load()
        questions, base, config, _ = suite.benchmark("arena_hard").load()
        mt_questions, refs, prompts, _ = suite.benchmark("mt_bench").load()
    assert len(reference) == 12 and glm is None
    assert {r["generator"] for r in reference} == {"toy_sft_teacher-gemma"} and all(r["dataset"] == "toy" for r in reference)
    assert len(questions) == 10 == len(base) and len({q["question_id"] for q in questions}) == 10
    assert config.baseline_model == "toy_sft_teacher-gemma" and config.regex_pattern == r"\[\[([AB<>=]+)\]\]"
    assert all(q["cluster"] in ("sort", "reverse", "shift") for q in questions)
    assert [q["category"] for q in mt_questions] == list(toy_sets.MT_BENCH_CATEGORIES)
    assert all(q["turns"][1].endswith(": it") for q in mt_questions)
    for q in mt_questions:
        truth = toy_sets.true_answers(world["pipe"].task(), q["turns"])
        assert refs[q["question_id"]]["choices"][0]["turns"] == [render(t, True) for t in truth]
    assert set(mt.PROMPTS.values()) <= set(prompts)


# ---- scores ------------------------------------------------------------------------------------
def test_perfect_answers_get_top_marks_from_the_oracle(world, tmp_path, monkeypatch):
    with make_suite(world, tmp_path / "out") as suite:
        monkeypatch.setattr(suite, "backend", lambda target: Perfect(world["pipe"].task()))
        perfect = Target("perfect", "test/perfect", load=lambda: (None, None))
        res = suite.run(perfect, ["alpaca_eval2", "arena_hard", "mt_bench"])
    mtb = res["mt_bench"].scores
    assert (mtb["score"], mtb["turn1"], mtb["turn2"], mtb["n_dropped"]) == (10.0, 10.0, 10.0, 0)
    assert all(v == 10.0 for k, v in mtb.items() if k.startswith("category/"))
    ae = res["alpaca_eval2"].scores
    assert ae["n_wins_base"] == 0 and ae["n_total"] == 12 and ae["win_rate"] > 50
    arena = res["arena_hard"].scores
    assert arena["losses"] == 0 and arena["score"] > 50 and arena["n_games_dropped"] == 0


def test_toy_benchmarks_end_to_end_on_a_tiny_model(world, tmp_path):
    out = tmp_path / "out"
    with make_suite(world, out) as suite:
        target = artifact_target("sft_student-gemma", world["student"])
        res = suite.run(target)
        calls = suite.judge.calls
    scores = flat_scores(res)
    for key in ("eval/alpaca_eval2/win_rate", "eval/alpaca_eval2/win_rate_stderr", "eval/alpaca_eval2/n_total",
                "eval/arena_hard/score", "eval/arena_hard/score_ci_low", "eval/arena_hard/score_ci_high",
                "eval/arena_hard/ci_low", "eval/arena_hard/ci_high", "eval/arena_hard/n_battles",
                "eval/mt_bench/score", "eval/mt_bench/turn1", "eval/mt_bench/turn2", "eval/mt_bench/n_scored",
                "eval/open_llm/toy_choice", "eval/open_llm/toy_format", "eval/open_llm/toy_answer",
                "eval/open_llm/average"):
        assert key in scores, key
    assert scores["eval/arena_hard/score_ci_low"] <= scores["eval/arena_hard/score"] <= scores["eval/arena_hard/score_ci_high"]
    assert 1 <= scores["eval/mt_bench/score"] <= 10 and scores["eval/mt_bench/n_scored"] == 16
    assert scores["eval/alpaca_eval2/n_total"] == 12 and scores["eval/alpaca_eval2/n_missing"] == 0
    # toy instructions have no GLM tables: at most the minimal LC variant (here the GLM cannot be fitted on
    # 12 rows of equal lengths), never under the LC's name
    assert res["alpaca_eval2"].details["lc_variant"] in (ae2.LC_MINIMAL, None)
    assert "eval/alpaca_eval2/lc_win_rate" not in scores and "eval/alpaca_eval2/lc_win_rate_stderr" not in scores
    assert scores["eval/arena_hard/ci_n_models"] == 1  # one model scored alone: the per-model CI, said so
    # every judge call answered: AlpacaEval (identical outputs are not asked), both Arena games, both MT turns
    n_identical = sum(r["preference"] == 1.5 and r["output"] == r["reference"] for r in res["alpaca_eval2"].table)
    assert calls == (12 - n_identical) + 2 * 10 + 2 * 8
    # files: the answers in the benchmarks' own formats, judgments and scores per benchmark
    d = res["alpaca_eval2"].details
    assert ae2.read_model_outputs(d["answers"])[0]["generator"] == "sft_student-gemma"
    assert len(ah.read_answers(res["arena_hard"].details["answers"])) == 10
    assert len(mt.read_answers(res["mt_bench"].details["answers"])) == 8
    for bench, files in {"alpaca_eval2": ("annotations.json", "scores.json"),
                         "arena_hard": ("judgments.jsonl", "scores.json"),
                         "mt_bench": ("judgments.jsonl", "scores.json"),
                         "open_llm": ("results.json", "scores.json", "samples.jsonl")}.items():
        for f in files:
            assert (out / "sft_student-gemma" / bench / f).is_file(), (bench, f)
    assert len(res["mt_bench"].table) == 16 and len(res["arena_hard"].table) == 10
    # a second evaluation reuses the question sets and the answers
    store = ArtifactStore(world["cfg"].paths.artifacts)
    with Suite(world["cfg"], store, tmp_path / "again", task=world["pipe"].task(),
               reference=lambda: artifact_target("sft_teacher-gemma", world["teacher"])) as suite:
        again = suite.run(artifact_target("sft_student-gemma", world["student"]), ["mt_bench", "arena_hard"])
    assert {s for s, _, reused in store.events if not reused} == set()
    assert again["mt_bench"].scores == res["mt_bench"].scores


# ---- kill and rerun: no judge call twice -------------------------------------------------------
class Interrupted(Exception):
    pass


class InterruptAfter:
    """Passes ``n`` requests to ``judge``, then fails as a killed process would."""

    def __init__(self, judge, n, forms):
        self.judge, self.n, self.forms, self.model = judge, n, forms, judge.model

    def complete(self, messages, **kw):
        if self.n <= 0:
            raise Interrupted("killed")
        self.n -= 1
        return self.judge.complete(messages, **kw)


def test_a_killed_evaluation_rerun_asks_the_judge_nothing_twice(world, tmp_path):
    from eval.judges.fake_server import FakeJudgeServer
    from eval.judges.http import HTTPJudge
    from eval.judges.oracle import OracleJudge

    oracle = OracleJudge(world["pipe"].task())
    cache = tmp_path / "judge_cache" / "oracle.sqlite"
    benches = ["mt_bench", "arena_hard", "alpaca_eval2"]
    with FakeJudgeServer(oracle.answer_body) as server:
        first = HTTPJudge("toy-oracle-v1", base_url=server.base_url, api_key_env=None, cache=str(cache))
        with make_suite(world, tmp_path / "run1", judge=InterruptAfter(first, 20, oracle.forms)) as suite:
            with pytest.raises(Interrupted):
                suite.run(artifact_target("sft_student-gemma", world["student"]), benches)
        assert first.stats.requests == 20 and server.calls == first.stats.api_calls
        second = HTTPJudge("toy-oracle-v1", base_url=server.base_url, api_key_env=None, cache=str(cache),
                           max_concurrency=4)
        with make_suite(world, tmp_path / "run2", judge=second) as suite:
            suite.forms = lambda: oracle.forms
            res = suite.run(artifact_target("sft_student-gemma", world["student"]), benches)
        asked = Counter(json.dumps(r["messages"], sort_keys=True) for r in server.requests)
    assert max(asked.values()) == 1, "a prompt was sent to the judge twice"
    assert server.calls == first.stats.api_calls + second.stats.api_calls
    assert second.stats.cache_hits >= first.stats.api_calls  # everything the killed run paid for was reused
    assert res["mt_bench"].scores["n_scored"] == 16 and res["arena_hard"].scores["n_games_dropped"] == 0


# ---- the pipeline: python run.py eval=all ------------------------------------------------------
def test_run_with_eval_all_records_the_benchmarks(world, tmp_path):
    from omegaconf import open_dict

    from distill.pipeline import run
    from eval.report import columns_for

    cfg = world["cfg"].copy()
    with open_dict(cfg):
        cfg.paths.results = str(tmp_path / "results")
        cfg.paths.output_dir = str(tmp_path / "out")
        cfg.eval.benchmark_references = ["sft_student"]
    metric = run(cfg)
    rec = json.loads(next(Path(cfg.paths.results).glob("dpo-gemma-s0-*.json")).read_text())
    assert metric == rec["scores"]["toy/win_rate"]
    for key in ("eval/alpaca_eval2/win_rate", "eval/arena_hard/score", "eval/mt_bench/score", "eval/mt_bench/turn1",
                "eval/mt_bench/turn2", "eval/open_llm/average", "toy/oracle_reward"):
        assert key in rec["scores"], key
    sft = rec["references"]["student · SFT (π_sft)"]
    assert "eval/mt_bench/score" in sft and "eval/arena_hard/score" not in rec["references"]["teacher · SFT (π_ref)"]
    assert set(rec["benchmarks"]) == {"student", "student · SFT (π_sft)"}
    assert rec["benchmarks"]["student"]["mt_bench"]["judge"] == "toy-oracle-v1"
    keys = [c.key for c in columns_for([rec])]
    for key in ("eval/alpaca_eval2/win_rate", "eval/arena_hard/score", "eval/mt_bench/score", "eval/mt_bench/turn1",
                "eval/open_llm/average", "eval/open_llm/toy_choice"):
        assert key in keys, key  # the report's columns pick the keys up
    assert not any(k.startswith("eval/open_llm/") and "stderr" in k for k in keys)


def test_eval_toy_stays_the_oracle_alone(tmp_path):
    cfg = compose_cfg([], tmp_path)
    assert cfg.eval.get("benchmarks") is None and cfg.optimized_metric == "toy/win_rate"
    assert compose_cfg(["eval=all"], tmp_path).eval.n_prompts == cfg.eval.n_prompts


def test_benchmark_tables_go_to_wandb(world, tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    from eval.suite import BenchmarkResult, log_tables

    logged = []
    monkeypatch.setattr(WandbLogger, "log_table", lambda self, key, columns, data: logged.append((key, columns, data)))
    logger = WandbLogger.__new__(WandbLogger)
    res = {"mt_bench": BenchmarkResult("mt_bench", {"score": 5.0}, {}, [{"question_id": 1, "turn": 1, "score": 5.0}]),
           "open_llm": BenchmarkResult("open_llm", {}, {}, [])}
    log_tables(logger, res, prefix="reference/x/")
    assert logged == [("reference/x/eval/mt_bench/judgments", ["question_id", "turn", "score"], [[1, 1, 5.0]])]
    log_tables(object(), res)  # another logger: nothing
    assert len(logged) == 1


# ---- world=full question sets: local folders, downloads, and what a missing file says ----------
def _full_cfg(tmp_path, *extra):
    return compose_cfg(["eval=all", "world=full", "judge=vllm", f"eval.data_root={tmp_path / 'bench'}",
                        "eval.download=false", *extra], tmp_path)


@pytest.mark.skipif(not (REF / "mt_bench").is_dir(), reason=f"MT-Bench reference data not found at {REF}")
def test_real_question_sets_are_read_from_a_local_folder(tmp_path):
    d = tmp_path / "bench" / "mt_bench"
    (d / "reference_answer").mkdir(parents=True)
    shutil.copyfile(REF / "mt_bench" / "question.jsonl", d / "question.jsonl")
    shutil.copyfile(REF / "mt_bench" / "reference_answer_gpt-4.jsonl", d / "reference_answer" / "gpt-4.jsonl")
    shutil.copyfile(REF / "mt_bench" / "judge_prompts.jsonl", d / "judge_prompts.jsonl")
    cfg = _full_cfg(tmp_path)
    with Suite(cfg, ArtifactStore(tmp_path / "artifacts"), tmp_path / "out") as suite:
        questions, refs, prompts, key = suite.benchmark("mt_bench").load()
        assert len(questions) == 80 and len(refs) == 30 and "single-math-v1" in prompts
        (d / "judge_prompts.jsonl").unlink()
        with pytest.raises(MissingBenchmarkFile) as e:
            suite.benchmark("mt_bench").load()
    msg = str(e.value)
    assert f"judge_prompts.jsonl: put it at {d / 'judge_prompts.jsonl'}" in msg
    assert "https://raw.githubusercontent.com/lm-sys/FastChat" in msg and "download=false" in msg


def test_a_missing_question_set_names_every_file_and_where_it_goes(tmp_path):
    cfg = _full_cfg(tmp_path)
    with Suite(cfg, ArtifactStore(tmp_path / "artifacts"), tmp_path / "out") as suite:
        with pytest.raises(MissingBenchmarkFile) as e:
            suite.benchmark("arena_hard").load()
    msg = str(e.value)
    root = tmp_path / "bench" / "arena_hard_v0.1"
    for rel in ("question.jsonl", "model_answer/gpt-4-0314.jsonl", "judge_config.yaml"):
        assert f"{rel}: put it at {root / rel}" in msg
    assert "3 file(s) missing" in msg and "lmarena/arena-hard-auto" in msg


def test_missing_files_are_downloaded_from_their_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "q.jsonl").write_text('{"question_id": 1}\n')
    handler = partial(SimpleHTTPRequestHandler, directory=str(home))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        d = ensure_files(tmp_path / "data", {"sub/q.jsonl": f"{url}/q.jsonl"}, what="test set")
        assert (d / "sub" / "q.jsonl").read_text() == '{"question_id": 1}\n'
        with pytest.raises(MissingBenchmarkFile, match=r"nope\.jsonl: put it at .*download failed"):
            ensure_files(tmp_path / "data", {"nope.jsonl": f"{url}/nope.jsonl"}, what="test set")
        ensure_files(tmp_path / "data", {"nope.jsonl": f"{url}/nope.jsonl"}, what="test set", required=False)
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- judge configs -----------------------------------------------------------------------------
def test_every_judge_config_instantiates(tmp_path, monkeypatch):
    from eval.judges.base import JudgeError
    from eval.judges.http import HTTPJudge
    from eval.judges.oracle import OracleJudge, ServedOracleJudge

    task = Pipeline(compose_cfg([], tmp_path)).task()
    assert isinstance(make_judge(compose_cfg(["judge=oracle"], tmp_path).judge, task=task), OracleJudge)
    served = make_judge(compose_cfg(["judge=oracle_http"], tmp_path).judge, task=task)
    try:
        assert isinstance(served, ServedOracleJudge) and served.base_url.startswith("http://127.0.0.1:")
        assert Path(served.cache.path) == tmp_path / "judge_cache" / "oracle_http.sqlite"
    finally:
        served.close()
    vllm = make_judge(compose_cfg(["judge=vllm"], tmp_path).judge)
    assert isinstance(vllm, HTTPJudge) and vllm.base_url == "http://localhost:8000/v1"
    cfg = compose_cfg(["judge=openai"], tmp_path)
    assert cfg.judge.api_key_env == "OPENAI_API_KEY" and "api_key" not in cfg.judge
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeError, match="OPENAI_API_KEY"):
        make_judge(cfg.judge)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    judge = make_judge(cfg.judge)
    assert judge.model == "gpt-4-1106-preview" and judge.max_concurrency == 8
    with pytest.raises(ValueError, match="needs the toy task"):
        make_judge(compose_cfg(["judge=oracle"], tmp_path).judge)


def test_reward_model_judge_config_on_a_tiny_saved_classifier(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from toyworld.tokenizer import build_toy_tokenizer
    from eval.judges.reward_model import RewardModelJudge

    task = Pipeline(compose_cfg([], tmp_path)).task()
    tok = build_toy_tokenizer("llama", task.corpus())
    torch.manual_seed(0)
    rm = LlamaForSequenceClassification(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                                    num_hidden_layers=1, num_attention_heads=2,
                                                    num_key_value_heads=1, num_labels=1,
                                                    pad_token_id=tok.pad_token_id))
    rm.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    cfg = compose_cfg(["judge=reward_model", f"judge.model={tmp_path / 'rm'}", "judge.device=cpu",
                       "judge.dtype=float32"], tmp_path)
    judge = make_judge(cfg.judge)
    assert isinstance(judge, RewardModelJudge) and judge.cache is not None
    judge.forms.add_mt_bench(mt.load_judge_prompts(toy_sets.MT_BENCH_JUDGE_PROMPTS))
    q = [{"question_id": 1, "category": "writing", "turns": ["sort : b a", "shift : it"]}]
    rows = mt.judge_answers(judge, mt.load_judge_prompts(toy_sets.MT_BENCH_JUDGE_PROMPTS), q,
                            {1: mt.make_answer_row(1, "m", ["[ a b ]", "[ b c ]"])})
    assert all(1 <= r["score"] <= 10 for r in rows)
    judge.close()


def test_the_evaluation_config_is_checked_before_training(tmp_path):
    check_config(compose_cfg(["eval=all"], tmp_path))
    check_config(compose_cfg(["eval=all", "world=full", "judge=openai"], tmp_path))
    with pytest.raises(ValueError, match="judge=oracle answers from the toy task and needs world=toy"):
        check_config(compose_cfg(["eval=all", "world=full", "judge=oracle"], tmp_path))
    with pytest.raises(ValueError, match=r"unknown \['mmlu'\]"):
        check_config(compose_cfg(["eval=all", "eval.benchmarks=[mmlu]"], tmp_path))
    with pytest.raises(ValueError, match="eval.toy.reference"):
        check_config(compose_cfg(["eval=all", "eval.toy.reference=gpt4"], tmp_path))
