"""MT-Bench single-answer grading: files, prompt selection, score parsing and the score itself."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from eval.benchmarks import DataFormatError
from eval.benchmarks import mt_bench as mt
from eval.judges.base import FunctionJudge

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"
MT = REF / "mt_bench"
needs_ref = pytest.mark.skipif(not MT.is_dir(), reason=f"MT-Bench reference data not found at {MT}")


@pytest.fixture(scope="module")
def data():
    if not MT.is_dir():
        pytest.skip(f"MT-Bench reference data not found at {MT}")
    return {"questions": mt.load_questions(MT), "refs": mt.load_reference_answers(MT / "reference_answer_gpt-4.jsonl"),
            "prompts": mt.load_judge_prompts(MT), "answers": mt.read_answers(MT / "example_model_answer_gpt-4o.jsonl")}


def row(qid, turn, score, category=None):
    extra = {"category": category} if category else {}
    return {"question_id": qid, "turn": turn, "score": score, "model": "m", **extra}


# ---- files ----------------------------------------------------------------------------------
def test_files_load(data):
    assert len(data["questions"]) == 80 and all(len(q["turns"]) == 2 for q in data["questions"])
    need_ref = {q["question_id"] for q in data["questions"] if q["category"] in mt.NEED_REF_CATS}
    assert set(data["refs"]) == need_ref and len(need_ref) == 30
    assert set(mt.PROMPTS.values()) <= set(data["prompts"])
    assert len(data["answers"]) == 80


@needs_ref
def test_fastchats_folder_layout_is_understood(tmp_path):
    bench = tmp_path / "data" / "mt_bench"
    (bench / "reference_answer").mkdir(parents=True)
    (bench / "question.jsonl").write_bytes((MT / "question.jsonl").read_bytes())
    (bench / "reference_answer" / "gpt-4.jsonl").write_bytes((MT / "reference_answer_gpt-4.jsonl").read_bytes())
    (tmp_path / "data" / "judge_prompts.jsonl").write_bytes((MT / "judge_prompts.jsonl").read_bytes())
    assert len(mt.load_questions(bench)) == 80
    assert len(mt.load_reference_answers(bench)) == 30
    assert "single-v1" in mt.load_judge_prompts(bench)


def test_temperature_config_is_fastchats():
    """lm-sys/FastChat fastchat/llm_judge/common.py temperature_config."""
    assert mt.TEMPERATURE_CONFIG == {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0,
                                     "coding": 0.0, "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
    assert mt.generation_temperature("stem") == 0.1 and mt.generation_temperature("unlisted") == 0.7


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"judge_prompts\.jsonl.*lm-sys/FastChat"):
        mt.load_judge_prompts(tmp_path)
    bad = tmp_path / "question.jsonl"
    bad.write_text('{"question_id": 81, "category": "writing", "turns": ["a", "b"]}\n{"question_id": 82,\n')
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(bad))}, line 2"):
        mt.load_questions(tmp_path)


def test_answer_rows_round_trip(tmp_path):
    rows = [mt.make_answer_row(81, "student", ["first", "second"])]
    back = mt.read_answers(mt.write_answers(tmp_path / "student.jsonl", rows))
    assert back[81]["choices"] == [{"index": 0, "turns": ["first", "second"]}]
    assert set(back[81]) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}


# ---- prompts --------------------------------------------------------------------------------
@pytest.mark.parametrize("category,turn,name", [
    ("writing", 1, "single-v1"), ("writing", 2, "single-v1-multi-turn"),
    ("stem", 1, "single-v1"), ("roleplay", 2, "single-v1-multi-turn"),
    ("math", 1, "single-math-v1"), ("reasoning", 2, "single-math-v1-multi-turn"), ("coding", 1, "single-math-v1"),
])
def test_prompt_selection(category, turn, name):
    assert mt.judge_prompt_name(category, turn) == name


def test_judge_messages(data):
    q = {x["question_id"]: x for x in data["questions"]}
    a = mt.make_answer_row(0, "student", ["ANSWER-ONE", "ANSWER-TWO"])
    name, (system, user) = mt.judge_messages(data["prompts"], q[81], a, 1)
    assert name == "single-v1" and system == {"role": "system", "content": "You are a helpful assistant."}
    assert f"[Question]\n{q[81]['turns'][0]}\n\n[The Start of Assistant's Answer]\nANSWER-ONE\n" in user["content"]

    name, (system, user) = mt.judge_messages(data["prompts"], q[81], a, 2)
    assert name == "single-v1-multi-turn" and "second user question" in system["content"]
    assert user["content"].index("ANSWER-ONE") < user["content"].index(q[81]["turns"][1]) < \
        user["content"].index("ANSWER-TWO")

    ref = data["refs"][101]["choices"][0]["turns"]
    name, (_, user) = mt.judge_messages(data["prompts"], q[101], a, 2, data["refs"][101])
    assert name == "single-math-v1-multi-turn"
    for ref_turn in ref:
        assert f"### Reference answer:\n{ref_turn}" in user["content"]
    name, (_, user) = mt.judge_messages(data["prompts"], q[101], a, 1, data["refs"][101])
    assert name == "single-math-v1" and f"[The Start of Reference Answer]\n{ref[0]}\n" in user["content"]
    with pytest.raises(ValueError, match="reference"):
        mt.judge_messages(data["prompts"], q[101], a, 1)


@pytest.mark.parametrize("text,score", [
    ("Rating: [[7]]", 7), ("[[8.5]]", 8.5), ("Rating: [[10]]. Earlier I thought [[3]]", 10),
    ("no double brackets, rating [6]", 6), ("[[x]] then [4]", 4), ("Rating: 9/10", -1), ("", -1),
    ("[[08]]", 8.0),
])
def test_parse_score(text, score):
    assert mt.parse_score(text) == score


# ---- score ----------------------------------------------------------------------------------
def test_score_is_the_mean_of_all_kept_turns_not_of_turn_means():
    rows = [row(1, 1, 10, "math"), row(2, 1, 8, "math"), row(3, 1, 6, "stem"), row(1, 2, 2, "math"),
            row(2, 2, -1, "math"), row(3, 2, -1, "stem")]
    s = mt.score_judgments(rows)
    assert s["score"] == pytest.approx((10 + 8 + 6 + 2) / 4)           # 6.5
    assert (s["turn_1"], s["turn_2"]) == (8.0, 2.0)                       # their mean would be 5.0
    assert (s["n_scored"], s["n_dropped"], s["n_judgments"]) == (4, 2, 6)
    assert s["per_category"] == {"math": pytest.approx(20 / 3), "stem": 6.0}


def _j(model: str, qid: int, turn: int, score, judge: str = "gpt-4") -> dict:
    return {"question_id": qid, "model": model, "judge": [judge, "single-v1"], "turn": turn, "score": score}


def test_scores_are_per_model_and_per_category_as_fastchat_groups_them():
    """Two models in one judgment file (FastChat's gpt-4_single.jsonl): never pooled; per model and
    per category, the hand counts."""
    questions = [{"question_id": 81, "category": "writing"}, {"question_id": 82, "category": "writing"},
                 {"question_id": 111, "category": "math"}, {"question_id": 131, "category": "stem"}]
    rows = [_j("a", 81, 1, 9), _j("a", 81, 2, 7), _j("a", 82, 1, 8), _j("a", 82, 2, -1),
            _j("a", 111, 1, 2), _j("a", 111, 2, 4), _j("a", 131, 1, 10), _j("a", 131, 2, 6),
            _j("b", 81, 1, 5), _j("b", 81, 2, 5), _j("b", 82, 1, 3), _j("b", 82, 2, 1),
            _j("b", 111, 1, 10), _j("b", 111, 2, -1), _j("b", 131, 1, 7), _j("b", 131, 2, 7)]
    with pytest.raises(ValueError, match="score each apart with score_by_model"):
        mt.score_judgments(rows, questions)
    by = mt.score_by_model(rows, questions)
    assert list(by) == [("a", "gpt-4"), ("b", "gpt-4")]
    a, b = by[("a", "gpt-4")], by[("b", "gpt-4")]
    # model a: kept 9 7 8 2 4 10 6 (82/turn 2 dropped)
    assert a["score"] == pytest.approx(46 / 7) and a["n_scored"] == 7 and a["n_dropped"] == 1
    assert a["turn_1"] == pytest.approx((9 + 8 + 2 + 10) / 4) and a["turn_2"] == pytest.approx((7 + 4 + 6) / 3)
    assert a["per_category"] == {"writing": pytest.approx(24 / 3), "math": 3.0, "stem": 8.0}
    # model b: kept 5 5 3 1 10 7 7 (111/turn 2 dropped)
    assert b["score"] == pytest.approx(38 / 7) and b["turn_2"] == pytest.approx((5 + 1 + 7) / 3)
    assert b["per_category"] == {"writing": 3.5, "math": 10.0, "stem": 7.0}
    assert list(a["per_category"]) == ["writing", "math", "stem"]  # FastChat's radar order
    # the same model under another judge is another group
    other = mt.score_by_model(rows[:2] + [dict(r, judge=["gpt-4o", "single-v1"]) for r in rows[:2]], questions)
    assert set(other) == {("a", "gpt-4"), ("a", "gpt-4o")}


def test_per_category_table_for_papers():
    by = {"a": {"per_category": {"stem": 8.0, "writing": 7.25}, "score": 7.5},
          "b_1": {"per_category": {"writing": 5.0}, "score": 5.0}}
    md = mt.category_table(by)
    assert md.splitlines()[0] == "| Model | Writing | STEM | Overall |"
    assert md.splitlines()[2] == "| a | 7.25 | 8.00 | 7.50 |" and md.splitlines()[3] == "| b_1 | 5.00 | — | 5.00 |"
    tex = mt.category_table(by, latex=True)
    assert r"b\_1 & 5.00 & — & 5.00 \\" in tex and tex.startswith(r"\begin{tabular}{lrrr}")


def test_judge_answers_end_to_end(data):
    def judge_fn(messages, **kw):
        return "Fine answer. Rating: [[9]]" if "Reference" not in messages[1]["content"] else "Rating: [4]"

    judge = FunctionJudge(judge_fn, model="gpt-4")
    rows = mt.judge_answers(judge, data["prompts"], data["questions"], data["answers"], data["refs"])
    assert judge.calls == 160 and len(rows) == 160
    assert all(r["temperature"] == 0.0 and r["max_tokens"] == 2048 for r in judge.requests)
    by_cat = {q["question_id"]: q["category"] for q in data["questions"]}
    for r in rows:
        assert r["judge"] == ["gpt-4", mt.judge_prompt_name(by_cat[r["question_id"]], r["turn"])]
        assert r["score"] == (4 if by_cat[r["question_id"]] in mt.NEED_REF_CATS else 9)
        assert r["model"] == "gpt-4o"
    s = mt.score_judgments(rows, data["questions"])
    assert s["score"] == pytest.approx((50 * 9 + 30 * 4) / 80) and s["per_category"]["coding"] == 4.0


def test_unparsed_replies_score_minus_one_and_are_dropped(data):
    q = [x for x in data["questions"] if x["category"] == "writing"][:2]
    replies = iter(["no score here", "Rating: [[5]]"] * 8)
    judge = FunctionJudge(lambda messages, **kw: next(replies))
    rows = mt.judge_answers(judge, data["prompts"], q, data["answers"])
    assert [r["score"] for r in rows] == [-1, 5, -1, 5]
    assert mt.score_judgments(rows)["n_dropped"] == 2


def test_retry_unparsed_asks_an_http_judge_again(data):
    from eval.judges.fake_server import FakeJudgeServer
    from eval.judges.http import HTTPJudge

    q = [x for x in data["questions"] if x["category"] == "writing"][:1]
    with FakeJudgeServer(lambda body: "Rating: [[6]]") as server:
        judge = HTTPJudge("gpt-4", base_url=server.base_url, api_key_env=None, max_concurrency=1)
        server.inject("malformed")
        rows = mt.judge_answers(judge, data["prompts"], q, data["answers"], retry_unparsed=True)
        assert server.calls == 3
    assert [r["score"] for r in rows] == [6, 6]
