"""Judging under faults, through the benchmarks' own judging functions, the HTTP judge and the local
fake OpenAI-compatible server.

* A judging process SIGKILLed half-way and run again asks the judge nothing it already answered
  (the scenarios of ``bench/faults.py``, which prints the same figures).
* Faults that outlast the retries are counted as failures: below ``max_failure_share`` the item is
  dropped and counted by the benchmark, above it the benchmark stops and names the count.
"""
from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import ROOT
from eval.benchmarks import mt_bench as mt
from eval.judges.base import JudgeFailureRateError
from eval.judges.fake_server import FakeJudgeServer
from eval.judges.http import HTTPJudge


@pytest.fixture(scope="module")
def faults():
    spec = importlib.util.spec_from_file_location("bench_faults", ROOT / "bench" / "faults.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("bench", ["mt_bench", "arena_hard"])
def test_sigkilled_judging_reruns_without_asking_twice(faults, tmp_path, bench):
    out = faults.scenario_judge_kill(tmp_path, bench, kill_after=5)
    assert out.injected == 1, out.note
    assert out.repeated == 0 and out.lost == 0 and out.recovered == 1, out.note


def _judge(server, **kw) -> HTTPJudge:
    opts = dict(base_url=server.base_url, api_key_env=None, max_concurrency=1, max_retries=1, backoff_base_s=0.01,
                backoff_max_s=0.02, timeout_s=0.5, invalid_retries=1)
    return HTTPJudge("fake-judge", **{**opts, **kw})


def test_faults_that_outlast_the_retries_are_counted(faults):
    """One request times out twice, one gets 429 twice, one never has a verdict: three failures of
    eight, under a 50% limit: the three judgments are kept as errors and dropped, counted."""
    d = faults._mt_bench_data(4)
    with FakeJudgeServer(faults.oracle_verdict, delay_s=2.0) as server:
        judge = _judge(server, max_failure_share=0.5)
        server.inject("delay", 2)
        server.inject("429", 2)
        server.inject("malformed", 2)
        rows = mt.judge_answers(judge, d["prompts"], d["questions"], d["answers"], d["refs"], retry_unparsed=True)
    assert judge.stats.failures == 3 and judge.stats.requests == 8 and judge.stats.invalid_replies == 2
    assert [r["judgment"] for r in rows[:3]] == ["$ERROR$"] * 3
    scores = mt.score_judgments(rows, d["questions"])
    assert scores["n_dropped"] == 3 and scores["n_scored"] == 5


def test_too_many_failures_stop_the_benchmark_naming_the_count(faults):
    d = faults._mt_bench_data(4)
    with FakeJudgeServer(faults.oracle_verdict) as server:
        judge = _judge(server, max_failure_share=0.25)
        server.inject("500", 6)  # three requests, each failing its attempt and its retry
        with pytest.raises(JudgeFailureRateError, match=r"3 of 8 requests failed \(37\.5% > max_failure_share=25\.0%\)"):
            mt.judge_answers(judge, d["prompts"], d["questions"], d["answers"], d["refs"])


@pytest.mark.parametrize("usage", [{"prompt_tokens": "12", "completion_tokens": 3.0},
                                   {"prompt_tokens": "n/a", "completion_tokens": None},
                                   {"prompt_tokens": [1], "completion_tokens": {"x": 1}}, None])
def test_odd_usage_fields_never_fail_a_valid_verdict(usage, monkeypatch):
    from eval.judges.base import make_request
    from eval.judges.fake_server import FakeJudgeServer
    from eval.judges.http import HTTPJudge

    plain = FakeJudgeServer._completion

    def completion(body, text, top_logprobs):
        out = plain(body, text, top_logprobs)
        out["usage"] = usage
        return out

    monkeypatch.setattr(FakeJudgeServer, "_completion", staticmethod(completion))
    with FakeJudgeServer(lambda body: "Rating: [[7]]") as server:
        judge = HTTPJudge("fake", base_url=server.base_url, api_key_env=None, max_retries=0)
        (reply,) = judge.complete_many([make_request([{"role": "user", "content": "rate"}], temperature=0.0, max_tokens=8)])
    assert reply is not None and "[[7]]" in reply.text and judge.stats.failures == 0
    if usage and usage["prompt_tokens"] == "12":
        assert reply.usage == {"prompt_tokens": 12, "completion_tokens": 3}
