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
