"""Scores over complete inputs only: answer and judgment files are checked against the prompts they
answer (eval/benchmarks/coverage.py), in the suite's scoring paths and where judgment files are read back
(the suite's and the report's pooled Arena-Hard CI); the judge cache names a file it cannot read."""
from __future__ import annotations

import json
import sqlite3

import pytest

from distill.results import IncompleteAnswersError
from eval.benchmarks import arena_hard as ah
from eval.benchmarks import mt_bench as mt
from eval.benchmarks import coverage
from eval.judges.cache import JudgeCache, JudgeCacheError

QUESTIONS = [{"question_id": f"q{i}", "category": "writing", "turns": [f"question {i}", "again"]} for i in range(5)]


def judgment(model: str, qid: str, games: int = 2) -> dict:
    return {"question_id": qid, "model": model, "judge": "j", "games": [{"score": "A>B"}, {"score": "B>A"}][:games]}


def test_complete_rows_pass_and_come_back_as_given():
    rows = [judgment("m", q["question_id"]) for q in QUESTIONS]
    assert coverage.arena_judgments(rows, QUESTIONS, "j.jsonl") == rows
    answers = {q["question_id"]: {"question_id": q["question_id"]} for q in QUESTIONS}
    assert coverage.arena_answers(answers, QUESTIONS, "a.jsonl") is answers   # the reader's mapping, unchanged
    mt_rows = [{"question_id": q["question_id"], "turn": t} for q in QUESTIONS for t in (1, 2)]
    assert coverage.mt_judgments(mt_rows, QUESTIONS, "m.jsonl") == mt_rows


def test_missing_extra_repeated_and_incomplete_rows_are_named_with_ids_and_fix():
    rows = [judgment("m", q) for q in ("q0", "q1", "q1", "zz")] + [judgment("m", "q2", games=1)]
    with pytest.raises(coverage.CoverageError) as e:
        coverage.arena_judgments(rows, QUESTIONS, "out/judgments.jsonl")
    msg = str(e.value)
    assert msg.startswith("out/judgments.jsonl: Arena-Hard judgments: 5 rows for 5 questions")
    assert "2 missing ('q3', 'q4')" in msg
    assert "1 extra, of no prompt scored here ('zz')" in msg
    assert "1 repeated ('q1')" in msg
    assert "1 incomplete ('q2')" in msg
    assert "fix: delete out/judgments.jsonl and rerun" in msg
    assert isinstance(e.value, IncompleteAnswersError)   # the same family as the generation files' check


def test_mt_bench_judgments_need_both_turns_of_every_question():
    rows = [{"question_id": q["question_id"], "turn": t} for q in QUESTIONS for t in (1, 2)][:-1]  # q4 turn 2 lost
    with pytest.raises(coverage.CoverageError, match=r"9 rows for 5 \(question, turn\) pairs x 1|1 missing \(\('q4', 2\)\)"):
        coverage.mt_judgments(rows, QUESTIONS, "mt/judgments.jsonl")


def test_alpaca_annotations_one_per_instruction():
    reference = [{"instruction": f"i{k}", "output": "x"} for k in range(4)]
    rows = [{"instruction": f"i{k}", "preference": 2.0} for k in range(3)]
    with pytest.raises(coverage.CoverageError, match=r"annotations.json: AlpacaEval annotations: 3 rows for 4 "
                                                     r"instructions; 1 missing \('i3'\)"):
        coverage.alpaca_annotations(rows, reference, "annotations.json")
    many = [{"instruction": f"i{k}"} for k in range(40)]
    with pytest.raises(coverage.CoverageError, match=r"34 missing .*\.\.\. \(28 more\)"):
        coverage.alpaca_outputs(many[:6], [{"instruction": f"i{k}"} for k in range(40)], "o.json")


def test_mt_bench_scoring_path_refuses_a_skipped_question():
    """FastChat's judge_answers skips a question without an answer (and warns); the suite's check then stops."""
    from eval.judges.base import FunctionJudge

    answers = {q["question_id"]: mt.make_answer_row(q["question_id"], "m", ["[ a ]", "[ b ]"]) for q in QUESTIONS[:4]}
    templates = {1: "{question} {answer}", 2: "{question_1} {answer_1} {question_2} {answer_2}"}
    prompts = {name: {"name": name, "system_prompt": "", "prompt_template": templates[turn]}
               for (_, turn), name in mt.PROMPTS.items()}
    rows = mt.judge_answers(FunctionJudge(lambda messages, **kw: "[[5]]"), prompts, QUESTIONS, answers)
    assert len(rows) == 8
    with pytest.raises(coverage.CoverageError, match=r"2 missing \(\('q4', 1\), \('q4', 2\)\)"):
        coverage.mt_judgments(rows, QUESTIONS, "judgments.jsonl")


def _arena_files(tmp_path, models=("a", "b")):
    details = {}
    for m in models:
        answers = [ah.make_answer_row(q["question_id"], m, "[ x ]", 3) for q in QUESTIONS]
        a = ah.write_answers(tmp_path / m / "answer.jsonl", answers)
        j = ah.write_judgments(tmp_path / m / "judgments.jsonl", [judgment(m, q["question_id"]) for q in QUESTIONS])
        details[m] = {"answers": str(a), "judgments": str(j), "baseline": "base", "n_bootstrap": 5}
    return details


def _drop_last_line(path):
    lines = open(path).read().splitlines(keepends=True)
    open(path, "w").write("".join(lines[:-1]))


def test_suite_pool_refuses_a_truncated_judgment_file(tmp_path):
    from eval.suite import BenchmarkResult, pool

    details = _arena_files(tmp_path)
    results = {m: {"arena_hard": BenchmarkResult("arena_hard", {"score": 50.0}, d, [])} for m, d in details.items()}
    _drop_last_line(details["b"]["judgments"])
    with pytest.raises(coverage.CoverageError, match=r"b/judgments.jsonl: Arena-Hard judgments: 4 rows for 5 "
                                                     r"questions; 1 missing \('q4'\).*fix: delete .*b/judgments.jsonl"):
        pool(results)


def test_report_pool_refuses_an_edited_judgment_file(tmp_path):
    from eval.report import pool_arena_hard

    details = _arena_files(tmp_path)
    records = [{"method": m, "model": "gemma", "seed": 0, "scores": {"eval/arena_hard/score": 50.0},
                "benchmarks": {"student": {"arena_hard": d}}} for m, d in details.items()]
    assert pool_arena_hard(records)[1]["n_models"] == 2   # complete files pool
    path = details["a"]["judgments"]
    rows = [json.loads(x) for x in open(path)]
    rows[2]["question_id"] = "q99"
    open(path, "w").write("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(coverage.CoverageError, match=r"1 missing \('q2'\); 1 extra, of no prompt scored here \('q99'\)"):
        pool_arena_hard(records)


def test_judge_cache_names_an_unreadable_file_and_asks_again_for_a_damaged_reply(tmp_path, caplog):
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"not a database " * 100)
    with pytest.raises(JudgeCacheError, match=r"cache.sqlite: the judge cache cannot be read .*fix: move it aside"):
        JudgeCache(bad)
    good = tmp_path / "ok.sqlite"
    with JudgeCache(good) as c:
        c.put("judge", {"q": 1}, {"text": "[[5]]"})
        assert c.get("judge", {"q": 1}) == {"text": "[[5]]"}
    with sqlite3.connect(good) as db:
        db.execute("UPDATE replies SET reply = '{\"text\": '")
    with JudgeCache(good) as c:
        assert c.get("judge", {"q": 1}) is None   # asked again, not a crash, not a wrong reply
        c.put("judge", {"q": 1}, {"text": "[[6]]"})
        assert c.get("judge", {"q": 1}) == {"text": "[[6]]"}
    assert any("not a JSON object" in r.getMessage() for r in caplog.records)
