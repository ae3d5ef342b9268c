"""Scoring judges: reading the benchmarks' judge prompts back, the toy oracle (in-process and over
HTTP) and a reward model, each answering in the benchmark's own verdict format."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from toyworld.task import ToyTask, ToyTaskConfig
from eval.benchmarks import alpaca_eval2 as ae2
from eval.benchmarks import arena_hard as ah
from eval.benchmarks import mt_bench as mt
from eval.benchmarks import toy as toy_sets
from eval.judges.base import JudgeError
from eval.judges.oracle import OracleJudge, ServedOracleJudge
from eval.judges.verdicts import JudgePrompts, RequestForm, UnknownRequestError

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason=f"benchmark reference data not found at {REF}")
TASK = ToyTask(ToyTaskConfig(w_correct=0.6, w_format=0.4))  # the weights the hand values below use


# ---- reading prompts back ----------------------------------------------------------------------
def test_format_templates_are_read_back_with_repeated_fields_and_braces():
    form = RequestForm("f", "single", (("system", "S"), ("user", "Q: {question} {{literal}} A: {answer} / {question}")))
    assert form.match([{"role": "system", "content": "S"},
                       {"role": "user", "content": "Q: x y {literal} A: [ a ] / x y"}]) == {"question": "x y",
                                                                                          "answer": "[ a ]"}
    assert form.match([{"role": "system", "content": "S"},
                       {"role": "user", "content": "Q: x {literal} A: a / y"}]) is None  # repeated field differs
    assert form.match([{"role": "user", "content": "S"}, {"role": "user", "content": "Q: x {literal} A: a / x"}]) is None


def test_replace_templates_keep_json_braces_and_later_duplicates():
    template = '{\n "instruction": """{instruction}""",\n}\n{output_1} then {output_2} and {output_1}'
    form = RequestForm("p", "pairwise_tie", (("user", template),), style="replace")
    text = '{\n "instruction": """sort : b a""",\n}\nFIRST then SECOND and {output_1}'
    assert form.match([{"role": "user", "content": text}]) == {"instruction": "sort : b a", "output_1": "FIRST",
                                                               "output_2": "SECOND"}


def test_unknown_requests_are_refused():
    judge = OracleJudge(TASK)
    with pytest.raises(UnknownRequestError, match="none of the judge prompts"):
        judge.complete([{"role": "user", "content": "hello"}], temperature=0, max_tokens=5)
    judge.forms.add_pairwise(ae2.PAIRWISE_PROMPT.read_text())
    prompt = ae2._fill(ae2.PAIRWISE_PROMPT.read_text(), {"instruction": "write a poem", "output_1": "a",
                                                         "output_2": "b"})
    with pytest.raises(UnknownRequestError, match="not a toy-task instruction"):
        judge.complete([{"role": "user", "content": prompt}], temperature=0, max_tokens=5)


# ---- the oracle, every benchmark's verdict -----------------------------------------------------
def _mt_prompts(real: bool):
    return mt.load_judge_prompts(REF / "mt_bench" if real else toy_sets.MT_BENCH_JUDGE_PROMPTS)


def _arena_config(real: bool):
    return ah.load_judge_config(REF / "arena_hard_v0.1" if real else toy_sets.ARENA_JUDGE_CONFIG)


@pytest.mark.parametrize("real", [False, pytest.param(True, marks=needs_ref)], ids=["toy-prompts", "real-prompts"])
def test_oracle_grades_mt_bench_turns_from_the_true_answers(real):
    prompts, judge = _mt_prompts(real), OracleJudge(TASK)
    judge.forms.add_mt_bench(prompts)
    q = {"question_id": 1, "category": "math", "turns": ["sort : c b a", "shift : it"]}
    ref = mt.make_answer_row(1, "ref", ["[ a b c ]", "[ b c d ]"])
    cases = {("[ a b c ]", "[ b c d ]"): (10.0, 10.0), ("a b c", "b c d"): (6.4, 6.4),
             ("[ a c b ]", "[ b c ]"): (round(1 + 9 * (0.6 * (1 - 2 / 3) + 0.4), 1), round(1 + 9 * (0.6 * (2 / 3) + 0.4), 1))}
    for (a1, a2), expected in cases.items():
        ans = mt.make_answer_row(1, "m", [a1, a2])
        rows = mt.judge_answers(judge, prompts, [q], {1: ans}, {1: ref})
        assert [r["score"] for r in rows] == list(expected)
        assert [r["judge"][1] for r in rows] == ["single-math-v1", "single-math-v1-multi-turn"]
    # writing: no reference needed; the second turn chains on the first turn's true answer
    q = {"question_id": 2, "category": "writing", "turns": ["reverse : a b c", "sort : it"]}
    rows = mt.judge_answers(judge, prompts, [q], {2: mt.make_answer_row(2, "m", ["[ c b a ]", "[ a b c ]"])})
    assert [r["score"] for r in rows] == [10.0, 10.0]


@pytest.mark.parametrize("real", [False, pytest.param(True, marks=needs_ref)], ids=["toy-prompts", "real-prompts"])
def test_oracle_plays_both_arena_hard_games(real):
    config = _arena_config(real)
    judge = OracleJudge(TASK)
    judge.forms.add_arena(config)
    questions = [{"question_id": f"q{i}", "turns": [{"content": c}]} for i, c in
                 enumerate(["sort : c b a", "reverse : a b c", "shift : a b c d"])]
    base = {q["question_id"]: ah.make_answer_row(q["question_id"], "base", a, 3)
            for q, a in zip(questions, ["a b c", "[ c b a ]", "[ b c d e ]"])}
    mine = {q["question_id"]: ah.make_answer_row(q["question_id"], "me", a, 3)
            for q, a in zip(questions, ["[ a b c ]", "[ c b a ]", "[ b c d f ]"])}
    rows = ah.judge_games(judge, config, questions, mine, base, model="me")
    # q0: format only (0.4 >= strong margin): a strong win; q1: identical: a tie; q2: one letter of four
    # wrong (0.15 < 0.3): a slight loss
    assert [[g["score"] for g in r["games"]] for r in rows] == [["B>>A", "A>>B"], ["A=B", "A=B"], ["A>B", "B>A"]]
    s = ah.score_judgments(rows, {"me": mine}, baseline="base", n_rounds=5)["me"]
    assert (s["wins"], s["losses"], s["ties"]) == (6, 2, 2)


def test_oracle_alpaca_eval_log_probabilities_follow_the_shown_order():
    spec = ae2.load_annotator()
    judge = OracleJudge(TASK)
    judge.forms.add_alpaca_annotator(spec)
    for switched in (False, True):
        messages = ae2.annotator_messages("sort : b a", "a b", "[ a b ]", spec, switched=switched)
        reply = judge.complete(messages, temperature=1.0, max_tokens=1, logprobs=True, top_logprobs=5)
        assert ae2.preference_from_logprobs(reply.top_logprobs, spec, switched=switched) == 2.0  # the model wins
    reference = [{"instruction": "sort : b a", "output": "[ a b ]"}, {"instruction": "reverse : a b", "output": "b a"}]
    outputs = ae2.make_model_outputs(reference, ["[ a b ]", "[ b a ]"], "me")  # a copy (no call), a win
    rows = ae2.annotate(outputs, reference, judge, spec=spec)
    assert [r["preference"] for r in rows] == [1.5, 2.0] and judge.calls == 3
    messages = ae2.annotator_messages("shift : a", "b", "b", spec, switched=False)
    top = judge.complete(messages, temperature=1.0, max_tokens=1, logprobs=True).top_logprobs
    assert ae2.preference_from_logprobs(top, spec, switched=False) == 1.5  # equal rewards: a tie


def test_oracle_answers_our_pairwise_prompt():
    judge = OracleJudge(TASK)
    judge.forms.add_pairwise(ae2.PAIRWISE_PROMPT.read_text())
    reference = [{"instruction": "sort : b a", "output": "a b"}, {"instruction": "shift : a", "output": "[ b ]"}]
    outputs = ae2.make_model_outputs(reference, ["[ a b ]", "[ c ]"], "me")
    rows = ae2.annotate_with_verdicts(outputs, reference, judge)
    assert [r["preference"] for r in rows] == [2.0, 1.0]


def test_served_oracle_answers_over_http_like_in_process(tmp_path):
    prompts = _mt_prompts(False)
    q = [{"question_id": 1, "category": "writing", "turns": ["sort : c b a", "reverse : it"]}]
    answers = {1: mt.make_answer_row(1, "m", ["[ a b c ]", "c b a"])}
    local = OracleJudge(TASK)
    local.forms.add_mt_bench(prompts)
    served = ServedOracleJudge(TASK, cache=str(tmp_path / "cache.sqlite"))
    try:
        served.forms.add_mt_bench(prompts)
        over_http = mt.judge_answers(served, prompts, q, answers)
        assert served.server.calls == 2 and served.stats.api_calls == 2
        assert [r["score"] for r in over_http] == [r["score"] for r in mt.judge_answers(local, prompts, q, answers)]
        assert [r["score"] for r in mt.judge_answers(served, prompts, q, answers)] == [10.0, 6.4]
        assert served.server.calls == 2  # the second time from the on-disk cache
        with pytest.raises(JudgeError, match="400"):  # a prompt the oracle cannot read: a request error
            served.complete([{"role": "user", "content": "hello"}], temperature=0, max_tokens=5)
    finally:
        served.close()


# ---- a reward model ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_rm():
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from toyworld.tokenizer import build_toy_tokenizer

    tok = build_toy_tokenizer("llama", TASK.corpus())
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64, num_labels=1,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    return LlamaForSequenceClassification(cfg), tok


def _conv(q, a):
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def test_reward_model_scores_conversations_consistently_in_batches(tiny_rm):
    from eval.judges.reward_model import RewardModelJudge

    model, tok = tiny_rm
    judge = RewardModelJudge("tiny-rm", reward_model=model, tokenizer=tok, device="cpu", batch_size=3)
    convs = [_conv("sort : c b a", a) for a in ("[ a b c ]", "a b c", "[ a c ]", "c", "[ a b c d e f g ]")]
    batched = judge.rewards(convs)
    one_by_one = [judge.rewards([c])[0] for c in convs]
    assert batched == pytest.approx(one_by_one, abs=1e-5)  # padding does not change a reward
    assert len(set(round(r, 6) for r in batched)) == len(convs)
    assert tok.padding_side == "left"  # the tokenizer is handed back as it was
    assert "<|start_header_id|>" in judge.text(convs[0])  # the reward model's own chat template


def test_reward_model_answers_the_benchmarks_by_comparing_rewards(tiny_rm, tmp_path):
    from eval.judges.reward_model import RewardModelJudge

    model, tok = tiny_rm
    judge = RewardModelJudge("tiny-rm", reward_model=model, tokenizer=tok, device="cpu", strong_margin=0.05,
                             tie_margin=0.0, cache=str(tmp_path / "rm.sqlite"))
    q, a, b = "sort : c b a", "[ a b c ]", "a b c"
    ra, rb = judge.rewards([_conv(q, a), _conv(q, b)])
    # Arena-Hard: labels from the reward difference
    config = _arena_config(False)
    judge.forms.add_arena(config)
    question = {"question_id": "q", "turns": [{"content": q}]}
    rows = ah.judge_games(judge, config, [question], {"q": ah.make_answer_row("q", "me", a, 3)},
                          {"q": ah.make_answer_row("q", "base", b, 3)}, model="me")
    d = ra - rb
    strength = ">>" if abs(d) >= 0.05 else ">"
    first = f"B{strength}A" if d > 0 else f"A{strength}B"  # game 1: A = the baseline (b)
    assert rows[0]["games"][0]["score"] == first
    # AlpacaEval: p(first shown better) = sigmoid(r_first - r_second)
    spec = ae2.load_annotator()
    judge.forms.add_alpaca_annotator(spec)
    reply = judge.complete(ae2.annotator_messages(q, b, a, spec, switched=False), temperature=1, max_tokens=1,
                           logprobs=True, top_logprobs=5)
    assert ae2.preference_from_logprobs(reply.top_logprobs, spec, switched=False) == pytest.approx(
        2 - 1 / (1 + math.exp(-(rb - ra))), abs=1e-6)
    # MT-Bench: a grade in 1-10, monotone in the reward
    prompts = _mt_prompts(False)
    judge.forms.add_mt_bench(prompts)
    qs = [{"question_id": i, "category": "writing", "turns": [q, "reverse : it"]} for i in (1, 2)]
    answers = {1: mt.make_answer_row(1, "m", [a, "c b a"]), 2: mt.make_answer_row(2, "m", [b, "c b a"])}
    rows = mt.judge_answers(judge, prompts, qs, answers)
    g1, g2 = rows[0]["score"], rows[2]["score"]
    assert 1 <= min(g1, g2) and max(g1, g2) <= 10 and (g1 - g2) * (ra - rb) >= 0
    assert g1 == judge.grade(ra)
    calls = judge.calls
    mt.judge_answers(judge, prompts, qs, answers)
    assert judge.calls == calls and judge.cache_hits == 4  # the rerun is answered from the cache
    judge.close()


def test_reward_model_judge_loads_a_saved_classifier(tiny_rm, tmp_path):
    from eval.judges.reward_model import RewardModelJudge

    model, tok = tiny_rm
    model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    judge = RewardModelJudge(str(tmp_path / "rm"), device="cpu", dtype="float32")
    conv = _conv("sort : b a", "[ a b ]")
    assert judge.model == str(tmp_path / "rm")
    assert judge.rewards([conv]) == pytest.approx(RewardModelJudge("x", reward_model=model, tokenizer=tok,
                                                                   device="cpu").rewards([conv]), abs=1e-5)


def test_judge_prompts_registry_keeps_toy_and_real_forms_apart():
    forms = JudgePrompts()
    forms.add_mt_bench(_mt_prompts(False))
    n = len(forms)
    if REF.is_dir():
        forms.add_mt_bench(_mt_prompts(True))
        assert len(forms) == 2 * n
    assert "mt_bench/single-v1" in forms and len(forms.names()) == 4


def test_http_judge_asks_a_repeated_request_of_a_batch_once(tmp_path):
    """Both Arena-Hard games of a question are the same request when the two answers are equal."""
    from eval.judges.base import make_request
    from eval.judges.fake_server import FakeJudgeServer
    from eval.judges.http import HTTPJudge

    def req(text):
        return make_request([{"role": "user", "content": text}], temperature=0.0, max_tokens=8)

    with FakeJudgeServer(lambda body: f"[[{body['messages'][0]['content']}]]") as server:
        judge = HTTPJudge("j", base_url=server.base_url, api_key_env=None, max_concurrency=4,
                          cache=str(tmp_path / "c.sqlite"))
        replies = judge.complete_many([req("a"), req("b"), req("a"), req("a")])
        assert [r.text for r in replies] == ["[[a]]", "[[b]]", "[[a]]", "[[a]]"]
        assert server.calls == 2 and [r.cached for r in replies] == [False, False, True, True]
        assert (judge.stats.requests, judge.stats.cache_hits, judge.stats.api_calls) == (4, 2, 2)
