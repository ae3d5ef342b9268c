"""Arena-Hard v0.1: files, judge prompts, verdict parsing, battles, Bradley-Terry score and bootstrap CI."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from eval.benchmarks import DataFormatError
from eval.benchmarks import arena_hard as ah
from eval.judges.base import FunctionJudge

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"
AH = REF / "arena_hard_v0.1"
needs_ref = pytest.mark.skipif(not AH.is_dir(), reason=f"Arena-Hard reference data not found at {AH}")


@pytest.fixture(scope="module")
def config() -> ah.ArenaJudgeConfig:
    if not AH.is_dir():
        pytest.skip(f"Arena-Hard reference data not found at {AH}")
    return ah.load_judge_config(AH / "judge_config.yaml")


def judgment(model: str, qid: str, g1, g2) -> dict:
    return {"question_id": qid, "model": model, "judge": "j", "games": [{"score": g1}, {"score": g2}]}


# ---- files ----------------------------------------------------------------------------------
@needs_ref
def test_questions_and_answers_load():
    questions = ah.load_questions(AH)
    assert len(questions) == 500 and {q["category"] for q in questions} == {"arena-hard-v0.1"}
    answers = ah.load_model_answers(AH / "model_answer")
    assert set(answers) == {"gpt-4-0314", "gpt-4-0613", "gpt-3.5-turbo-0125"}
    assert all(len(a) == 500 for a in answers.values())
    assert ah.load_baseline_answers(AH / "model_answer").keys() == answers["gpt-4-0314"].keys()


@needs_ref
@pytest.mark.parametrize("model,published", [("gpt-4-0314", 423), ("gpt-4-0613", 354), ("gpt-3.5-turbo-0125", 329)])
def test_avg_tokens_match_the_published_leaderboard(model, published):
    """`average #tokens` of arena-hard-auto's v0.1 leaderboard (README), from the same answer files."""
    assert ah.avg_tokens(ah.read_answers(AH / "model_answer" / f"{model}.jsonl")) == published


def test_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"question\.jsonl.*lmarena/arena-hard-auto"):
        ah.load_questions(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"gpt-4-0314\.jsonl"):
        ah.load_baseline_answers(tmp_path)
    with pytest.raises(FileNotFoundError, match="judge_config.yaml"):
        ah.load_judge_config(tmp_path)


def test_malformed_jsonl_names_file_and_line(tmp_path):
    bad = tmp_path / "question.jsonl"
    bad.write_text('{"question_id": "a", "turns": [{"content": "x"}]}\n\n{"question_id": "b", turns: []}\n')
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(bad))}, line 3"):
        ah.load_questions(bad)


def test_answer_rows_round_trip(tmp_path):
    rows = [ah.make_answer_row("q1", "student", "Hello", 2), ah.make_answer_row("q2", "student", "Bye", 1)]
    path = ah.write_answers(tmp_path / "model_answer" / "student.jsonl", rows)
    back = ah.read_answers(path)
    assert back["q1"]["choices"][0]["turns"][0] == {"content": "Hello", "token_len": 2}
    assert set(back["q2"]) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
    assert ah.avg_tokens(back) == 1


# ---- judge prompt and verdicts -----------------------------------------------------------------
@needs_ref
def test_judge_config_is_the_benchmarks_own(config):
    assert (config.judge_model, config.baseline_model, config.temperature, config.max_tokens) == (
        "gpt-4-1106-preview", "gpt-4-0314", 0.0, 4096)
    assert config.regex_pattern == r"\[\[([AB<>=]+)\]\]" and config.number_of_judgment_attempts == 2
    assert config.system_prompt.startswith("Please act as an impartial judge")


@needs_ref
def test_game_messages_put_the_baseline_first_then_swap(config):
    q = {"question_id": "q", "turns": [{"content": "QUESTION"}]}
    base = ah.make_answer_row("q", "gpt-4-0314", "BASELINE", 1)
    model = ah.make_answer_row("q", "student", "STUDENT {braces} kept", 1)
    system, user = ah.game_messages(config, q, base, model)
    assert system == {"role": "system", "content": config.system_prompt}
    assert user["content"] == ("<|User Prompt|>\nQUESTION\n\n<|The Start of Assistant A's Answer|>\nBASELINE\n"
                               "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n"
                               "STUDENT {braces} kept\n<|The End of Assistant B's Answer|>")
    _, swapped = ah.game_messages(config, q, model, base)
    assert swapped["content"].index("STUDENT") < swapped["content"].index("BASELINE")


@pytest.mark.parametrize("text,expected", [
    ("My final verdict is: [[A>>B]]", ("A>>B", False)),
    ("[[A>B]]", ("A>B", False)),
    ("tie: [[A=B]]", ("A=B", False)),
    ("[[B>A]]", ("B>A", False)),
    ("Assistant B is significantly better: [[B>>A]]", ("B>>A", False)),
    ("[[A<B]]", ("A<B", False)),                      # parsed, then dropped when making battles
    ("[[B>A]] as said, [[B>A]]", ("B>A", False)),     # the same label twice is fine
    ("first [[A>B]] then [[B>A]]", (None, False)),    # conflicting labels: no verdict, no retry
    ("I think B is better.", (None, True)),           # nothing: ask the judge to continue
    ("[[C]]", (None, True)),
])
def test_parse_verdict(text, expected):
    assert ah.parse_verdict(text) == expected


# ---- battles and score --------------------------------------------------------------------------
def test_battle_weights_and_the_position_swap():
    b = ah.battles_from_judgments([
        judgment("m", "1", "A>>B", "A>B"),   # game 1: baseline strongly better x3; game 2: model (A) better x1
        judgment("m", "2", "A=B", "B>>A"),   # a tie x1; game 2: baseline (B) strongly better x3
        judgment("m", "3", "B>A", "A<B"),    # model better x1; "<" forms dropped
        judgment("m", "4", None, "B>A"),     # no verdict dropped; game 2: baseline (B) better x1
    ])
    assert set(b["model_a"]) == {"gpt-4-0314"} and set(b["model_b"]) == {"m"}
    assert b.groupby("question_id")["winner"].apply(list).to_dict() == {
        "1": ["model_a"] * 3 + ["model_b"],
        "2": ["tie"] + ["model_a"] * 3,
        "3": ["model_b"],
        "4": ["model_a"],
    }


# outcome from the model's side -> the label the judge writes in game 1 (baseline = A) and game 2 (model = A)
LABELS = {"model>>": ("B>>A", "A>>B"), "model>": ("B>A", "A>B"), "tie": ("A=B", "A=B"),
          "base>": ("A>B", "B>A"), "base>>": ("A>>B", "B>>A"), "odd": ("A<B", "B<A"), "none": (None, None)}


def synthetic_judgments(n_questions: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    outcomes = list(LABELS)
    weights = {"student": [3, 3, 2, 2, 1, 1, 1], "weaker": [1, 2, 2, 3, 3, 1, 1]}
    return [judgment(m, str(q), LABELS[rng.choices(outcomes, w)[0]][0], LABELS[rng.choices(outcomes, w)[0]][1])
            for m, w in weights.items() for q in range(n_questions)]


def test_score_is_the_win_share_and_the_ci_brackets_it():
    judgments = synthetic_judgments(150)
    result = ah.score_judgments(judgments, n_rounds=100)
    battles = ah.battles_from_judgments(judgments)
    for model, r in result.items():
        mine = battles[battles["model_b"] == model]
        wins, ties = (mine["winner"] == "model_b").sum(), (mine["winner"] == "tie").sum()
        assert r["score"] == pytest.approx(100 * (wins + 0.5 * ties) / len(mine), abs=1e-4)
        assert (r["wins"], r["ties"], r["n_battles"]) == (wins, ties, len(mine))
        assert r["ci_lower"] < r["score"] < r["ci_upper"]
        assert 0 < r["ci_lower"] and r["ci_upper"] < 100
        assert r["n_games"] == 300 and r["n_games_dropped"] > 0
    assert result["student"]["score"] > 50 > result["weaker"]["score"]


def test_bootstrap_is_seeded():
    judgments = synthetic_judgments(60, seed=1)
    a = ah.score_judgments(judgments, n_rounds=20, seed=42)
    b = ah.score_judgments(judgments, n_rounds=20, seed=42)
    c = ah.score_judgments(judgments, n_rounds=20, seed=7)
    assert a == b
    assert a["student"]["ci_lower"] != c["student"]["ci_lower"]


def test_ratings_are_anchored_on_the_baseline():
    battles = ah.battles_from_judgments(synthetic_judgments(80, seed=2))
    ratings = ah.fit_bradley_terry(battles)
    assert ratings["gpt-4-0314"] == pytest.approx(1000.0)
    assert ah.win_rate_vs_baseline(1000.0) == 50.0
    assert ah.win_rate_vs_baseline(1400.0) == pytest.approx(100 * 10 / 11)


def test_all_games_dropped_is_an_error():
    with pytest.raises(ValueError, match="no usable verdicts"):
        ah.score_judgments([judgment("m", "1", None, "A<B")])


# ---- judging end to end ---------------------------------------------------------------------------
@needs_ref
def test_judge_games_two_games_and_a_second_attempt(config, tmp_path):
    questions = ah.load_questions(AH)[:3]
    base = ah.load_baseline_answers(AH / "model_answer")
    mine = {q["question_id"]: ah.make_answer_row(q["question_id"], "student", f"STUDENT-{i}", 2)
            for i, q in enumerate(questions)}

    def judge_fn(messages, **kw):
        prompt = messages[1]["content"]
        if len(messages) == 2 and "STUDENT-0" in prompt:
            return "Let me think about it..."  # no verdict: this game continues once
        a_block = prompt.split("<|The Start of Assistant A's Answer|>")[1].split("<|The End of Assistant A")[0]
        return "My final verdict is: [[A>B]]" if "STUDENT-" in a_block else "[[B>>A]]"

    judge = FunctionJudge(judge_fn)
    rows = ah.judge_games(judge, config, questions, mine, base, model="student")
    assert judge.calls == 6 + 2
    continued = [r for r in judge.requests if len(r["messages"]) == 4]
    assert len(continued) == 2 and continued[0]["messages"][3] == {"role": "user", "content": ah.CONTINUE_PROMPT}
    assert all(r["temperature"] == 0.0 and r["max_tokens"] == 4096 for r in judge.requests)
    first = rows[0]["games"][0]
    assert first["judgment"] == "\nLet me think about it...\n[[B>>A]]" and first["score"] == "B>>A"
    for r in rows:
        assert [g["score"] for g in r["games"]] == ["B>>A", "A>B"]  # the student wins both games
    result = ah.score_judgments(rows, {"student": mine}, n_rounds=10)["student"]
    assert result["wins"] == 3 * 3 + 3 and result["losses"] == 0 and result["avg_tokens"] == 2
    path = ah.write_judgments(tmp_path / "j.jsonl", rows)
    assert ah.read_judgments(path) == json.loads(json.dumps(rows))
