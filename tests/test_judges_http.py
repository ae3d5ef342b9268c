"""The HTTP judge against the local fake server: retries, validation, cache, accounting, failure share."""
from __future__ import annotations

import re
import sqlite3

import pytest

from eval.judges.base import InvalidReplyError, JudgeError, JudgeFailureRateError, make_request
from eval.judges.cache import JudgeCache, request_key
from eval.judges.fake_server import MALFORMED_TEXT, FakeJudgeServer
from eval.judges.http import HTTPJudge

VERDICT = re.compile(r"\[\[(\d+)\]\]")


def rate(body: dict) -> str:
    """A deterministic oracle: the score is the number of words in the last user message."""
    return f"Rating: [[{len(body['messages'][-1]['content'].split())}]]"


def has_verdict(reply) -> bool:
    return bool(VERDICT.search(reply.text))


def ask(text: str) -> dict:
    return make_request([{"role": "system", "content": "judge"}, {"role": "user", "content": text}],
                        temperature=0.0, max_tokens=64)


@pytest.fixture
def server():
    with FakeJudgeServer(rate, delay_s=2.0) as s:
        yield s


def make_judge(server, **kw) -> HTTPJudge:
    opts = dict(base_url=server.base_url, api_key_env=None, backoff_base_s=0.001, backoff_max_s=0.01,
                timeout_s=5.0, max_concurrency=4)
    opts.update(kw)
    return HTTPJudge("fake-judge", **opts)


def test_answers_and_accounts_tokens_and_cost(server):
    judge = make_judge(server, price_input_per_1m=2.0, price_output_per_1m=10.0)
    reply = judge.complete(**ask("one two three"))
    assert reply.text == "Rating: [[3]]" and not reply.cached
    assert reply.usage == {"prompt_tokens": 4, "completion_tokens": 2}  # the fake server counts words
    assert judge.stats.cost_usd == pytest.approx((4 * 2.0 + 2 * 10.0) / 1e6)
    sent = server.requests[0]
    assert sent["model"] == "fake-judge" and sent["temperature"] == 0.0 and sent["max_tokens"] == 64
    assert "logprobs" not in sent


def test_api_key_is_read_from_the_named_variable(monkeypatch, server):
    monkeypatch.delenv("MY_JUDGE_KEY", raising=False)
    with pytest.raises(JudgeError, match="MY_JUDGE_KEY"):
        make_judge(server, api_key_env="MY_JUDGE_KEY")
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test")
    assert make_judge(server, api_key_env="MY_JUDGE_KEY").complete(**ask("a b")).text == "Rating: [[2]]"


@pytest.mark.parametrize("fault,times", [("500", 2), ("429", 3), ("bad_json", 1), ("delay", 1)])
def test_transient_faults_are_retried(server, fault, times):
    judge = make_judge(server, timeout_s=0.5)
    server.inject(fault, times)
    assert judge.complete(**ask("x y z w")).text == "Rating: [[4]]"
    assert server.calls == times + 1
    assert judge.stats.retries == times and judge.stats.failures == 0 and judge.stats.api_calls == 1


def test_retries_are_bounded(server):
    judge = make_judge(server, max_retries=2)
    server.inject("500", 5)
    with pytest.raises(JudgeError, match="gave up after 3 attempts"):
        judge.complete(**ask("x"))
    assert server.calls == 3 and judge.stats.failures == 1


def test_malformed_verdicts_are_asked_again(server):
    judge = make_judge(server, invalid_retries=2)
    server.inject("malformed", 2)
    assert judge.complete(**ask("a b c"), validate=has_verdict).text == "Rating: [[3]]"
    assert server.calls == 3 and judge.stats.invalid_replies == 2

    server.inject("malformed", 3)
    with pytest.raises(InvalidReplyError) as e:
        judge.complete(**ask("d e"), validate=has_verdict)
    assert e.value.reply.text == MALFORMED_TEXT and server.calls == 6


def test_without_a_validator_a_malformed_reply_is_returned(server):
    server.inject("malformed")
    assert make_judge(server).complete(**ask("a")).text == MALFORMED_TEXT


def test_logprobs_are_passed_through():
    def answer(body):
        return {"text": "M", "top_logprobs": [[("M", -0.1), ("m", -2.5), ("The", -9.0)]]}

    with FakeJudgeServer(answer) as s:
        judge = make_judge(s)
        reply = judge.complete(**{**ask("a"), "logprobs": True, "top_logprobs": 2})
    assert s.requests[0]["logprobs"] is True and s.requests[0]["top_logprobs"] == 2
    assert reply.top_logprobs == [[{"token": "M", "logprob": -0.1}, {"token": "m", "logprob": -2.5}]]


def test_batch_concurrency_is_bounded(server):
    judge = make_judge(server, max_concurrency=3)
    replies = judge.complete_many([ask(" ".join(["w"] * n)) for n in range(1, 25)])
    assert [r.text for r in replies] == [f"Rating: [[{n}]]" for n in range(1, 25)]  # order kept
    assert server.calls == 24 and 1 <= server.max_in_flight <= 3


def test_failures_below_the_threshold_come_back_as_none(server):
    judge = make_judge(server, max_retries=0, max_concurrency=1, max_failure_share=0.25)
    server.inject("500", 2)
    replies = judge.complete_many([ask(f"q{i}") for i in range(10)])
    assert sum(r is None for r in replies) == 2
    assert judge.stats.failures == 2 and judge.stats.requests == 10 and judge.stats.failure_share == 0.2
    judge.check_failure_share()  # 20% <= 25%: fine


def test_failure_share_above_the_threshold_raises(server):
    judge = make_judge(server, max_retries=0, max_concurrency=1, max_failure_share=0.1)
    server.inject("500", 3)
    with pytest.raises(JudgeFailureRateError, match=r"3 of 10 requests failed"):
        judge.complete_many([ask(f"q{i}") for i in range(10)])
    with pytest.raises(JudgeFailureRateError):
        judge.check_failure_share()


def test_request_errors_are_not_retried(server):
    judge = make_judge(server)
    server.inject("400")
    with pytest.raises(JudgeError, match="not retryable"):
        judge.complete(**ask("a"))
    assert server.calls == 1 and judge.stats.retries == 0 and judge.stats.failures == 1


# ---- cache ------------------------------------------------------------------------------------
def test_a_rerun_makes_no_calls(server, tmp_path):
    requests = [ask(f"question number {i}") for i in range(12)]
    first = make_judge(server, cache=tmp_path / "judge.sqlite").complete_many(requests)
    assert server.calls == 12

    rerun = make_judge(server, cache=tmp_path / "judge.sqlite")  # a new process would do the same
    again = rerun.complete_many(requests)
    assert server.calls == 12 and rerun.stats.cache_hits == 12 and rerun.stats.api_calls == 0
    assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)
    assert rerun.stats.cost_usd == 0.0


def test_cache_keys_cover_model_and_every_request_field(server, tmp_path):
    cache = tmp_path / "judge.sqlite"
    make_judge(server, cache=cache).complete(**ask("a b"))
    make_judge(server, cache=cache).complete(**{**ask("a b"), "temperature": 0.7})
    make_judge(server, cache=cache).complete(**{**ask("a b"), "max_tokens": 65})
    HTTPJudge("other-judge", base_url=server.base_url, api_key_env=None, cache=cache).complete(**ask("a b"))
    assert server.calls == 4 and len(JudgeCache(cache)) == 4
    assert request_key("m", ask("a")) != request_key("m", ask("b")) != request_key("n", ask("b"))


def test_rejected_replies_are_not_cached(server, tmp_path):
    cache = tmp_path / "judge.sqlite"
    judge = make_judge(server, cache=cache, invalid_retries=0)
    server.inject("malformed")
    with pytest.raises(InvalidReplyError):
        judge.complete(**ask("a b"), validate=has_verdict)
    assert len(JudgeCache(cache)) == 0
    assert judge.complete(**ask("a b"), validate=has_verdict).text == "Rating: [[2]]"  # asked again
    assert server.calls == 2 and len(JudgeCache(cache)) == 1


def test_cache_entries_are_committed_one_by_one(server, tmp_path):
    """A run killed after some replies keeps them: each reply is committed before the next call."""
    cache_path = tmp_path / "judge.sqlite"
    judge = make_judge(server, cache=cache_path, max_retries=0, max_concurrency=1, max_failure_share=1.0)
    server.inject("500", 1)
    judge.complete_many([ask("fails first")] + [ask(f"ok {i}") for i in range(3)])
    with sqlite3.connect(cache_path) as other:  # another connection (another process) sees them
        assert other.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 3
