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


# ---- the official pooled bootstrap over several models -------------------------------------------
def _official_pooled(judgments: list[dict], baseline: str, n_rounds: int = 100, seed: int = 42) -> dict:
    """arena-hard-auto's show_result.py as described in reference-data/README.md, written out
    independently: one battle row per game (×3 for a strong verdict), the rows duplicated, a tie
    counted as a win for A in the first copy only, an unpenalised logistic regression on ±ln 10,
    Elo 400 anchored at 1000; ``np.random.seed(seed)`` then ``battles.sample(frac=1.0,
    replace=True)`` per round; the 2.5/97.5 percentiles mapped to the win rate vs the baseline."""
    import math

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    outcome = {"A>>B": ("model_a", 3), "A>B": ("model_a", 1), "A=B": ("tie", 1), "B>A": ("model_b", 1),
               "B>>A": ("model_b", 3)}
    flip = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
    rows = []
    for j in judgments:
        for g, game in enumerate(j["games"]):
            if game["score"] not in outcome:
                continue
            winner, times = outcome[game["score"]]
            winner = winner if g == 0 else flip[winner]  # game 2 shows the model as A
            rows += [{"model_a": baseline, "model_b": j["model"], "winner": winner}] * times
    battles = pd.DataFrame(rows)

    def mle(df):
        models = pd.Series(range(len(pd.unique(pd.concat([df["model_a"], df["model_b"]])))),
                           index=pd.unique(pd.concat([df["model_a"], df["model_b"]])))
        df = pd.concat([df, df], ignore_index=True)
        x = np.zeros((len(df), len(models)))
        x[np.arange(len(df)), models[df["model_a"]].to_numpy()] = math.log(10)
        x[np.arange(len(df)), models[df["model_b"]].to_numpy()] = -math.log(10)
        y = np.zeros(len(df))
        y[(df["winner"] == "model_a").to_numpy()] = 1.0
        tie = (df["winner"] == "tie").to_numpy().copy()
        tie[len(tie) // 2:] = False
        y[tie] = 1.0
        lr = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8).fit(x, y)
        elo = 400 * lr.coef_[0]
        elo += 1000 - elo[models[baseline]]
        return pd.Series(elo, index=models.index)

    np.random.seed(seed)
    boots = pd.DataFrame([mle(battles.sample(frac=1.0, replace=True)) for _ in range(n_rounds)])
    point = mle(battles)
    wr = lambda e: 100 / (1 + 10 ** ((1000 - e) / 400))  # noqa: E731
    return {m: {"score": wr(point[m]), "ci_lower": wr(np.percentile(boots[m], 2.5)),
                "ci_upper": wr(np.percentile(boots[m], 97.5))} for m in point.index if m != baseline}


ROUNDS = 20  # the official 100 rounds, fewer for speed: the procedure (seed 42, resampling order) is the same


def _crafted_judgments(models: dict[str, float], n: int = 30, seed: int = 3) -> list[dict]:
    """Judgments for several models; a model's strength is its chance of a favourable verdict."""
    rng = random.Random(seed)
    rows = []
    for model, p in models.items():
        for q in range(n):
            def verdict(model_first: bool) -> str:
                u = rng.random()
                good, bad = ("A>B", "B>A") if model_first else ("B>A", "A>B")
                strong_good, strong_bad = ("A>>B", "B>>A") if model_first else ("B>>A", "A>>B")
                return (strong_good if u < p / 3 else good if u < p else "A=B" if u < p + 0.1
                        else strong_bad if u > 0.95 else bad)
            rows.append(judgment(model, f"q{q}", verdict(False), verdict(True)))
    return rows


def test_pooled_ci_over_several_models_equals_the_official_procedure(tmp_path):
    from eval.suite import BenchmarkResult, pool

    judgments = _crafted_judgments({"student-a": 0.3, "student-b": 0.5, "student-c": 0.7})
    official = _official_pooled(judgments, "base", n_rounds=ROUNDS)
    results = {}
    for model in ("student-a", "student-b", "student-c"):
        mine = [j for j in judgments if j["model"] == model]
        path = ah.write_judgments(tmp_path / model / "judgments.jsonl", mine)
        own = ah.score_judgments(mine, baseline="base", n_rounds=ROUNDS)[model]  # what a run scoring this model alone reports
        scores = {"score": own["score"], "score_ci_low": own["ci_lower"], "score_ci_high": own["ci_upper"],
                  "ci_n_models": 1}
        results[model] = {"arena_hard": BenchmarkResult("arena_hard", scores, {"judgments": str(path),
                                                                             "baseline": "base", "n_bootstrap": ROUNDS}, [])}
    per_model = {m: dict(r["arena_hard"].scores) for m, r in results.items()}
    pool(results)
    differs = False
    for model, r in results.items():
        s = r["arena_hard"].scores
        assert s["ci_n_models"] == 3
        assert s["score"] == pytest.approx(official[model]["score"], abs=1e-6)   # the point score is unchanged
        assert s["score_ci_low"] == pytest.approx(official[model]["ci_lower"], abs=1e-4)
        assert s["score_ci_high"] == pytest.approx(official[model]["ci_upper"], abs=1e-4)
        differs |= abs(s["score_ci_low"] - per_model[model]["score_ci_low"]) > 1e-3
        assert "pooled over 3 models" in r["arena_hard"].details["ci"]
        written = json.loads((tmp_path / model / "scores_pooled.json").read_text())
        assert written["ci_lower"] == s["score_ci_low"] and written["pooled_with"] == list(results)
    assert differs  # the per-model bootstrap is another CI


def test_the_report_pools_arena_hard_over_the_runs(tmp_path):
    from eval.report import arena_ci_note, pool_arena_hard

    judgments = _crafted_judgments({"dckd": 0.4, "sft": 0.5, "adpa": 0.6}, seed=5)
    # the battle rows in the report's order: run 0's student, its reference, run 1's student (arena-hard-auto
    # reads its judgment files in directory order; the resampling follows the row order)
    official = _official_pooled(judgments, "base", n_rounds=ROUNDS)
    records = []
    ref = ah.write_judgments(tmp_path / "sft.jsonl", [j for j in judgments if j["model"] == "sft"])
    for i, method in enumerate(("dckd", "adpa")):
        path = ah.write_judgments(tmp_path / f"{method}.jsonl", [j for j in judgments if j["model"] == method])
        details = {"baseline": "base", "n_bootstrap": ROUNDS}
        records.append({"method": method, "model": "gemma", "seed": 0, "scores": {
            "eval/arena_hard/score": official[method]["score"], "eval/arena_hard/score_ci_low": 0.0,
            "eval/arena_hard/score_ci_high": 100.0, "eval/arena_hard/ci_n_models": 1.0},
            "references": {"student · SFT (π_sft)": {"eval/arena_hard/score": 50.0, "eval/arena_hard/ci_n_models": 1.0}},
            "benchmarks": {"student": {"arena_hard": {"judgments": str(path), **details}},
                           "student · SFT (π_sft)": {"arena_hard": {"judgments": str(ref), **details}}}})
    assert "per-model" in arena_ci_note(records)
    pooled, info = pool_arena_hard(records)
    assert info["n_models"] == 3  # two students and the reference both runs evaluated identically, once
    for rec in pooled:
        s = rec["scores"]
        assert s["eval/arena_hard/score_ci_low"] == pytest.approx(official[rec["method"]]["ci_lower"], abs=1e-4)
        assert s["eval/arena_hard/score_ci_high"] == pytest.approx(official[rec["method"]]["ci_upper"], abs=1e-4)
        assert s["eval/arena_hard/ci_n_models"] == 3
    assert records[0]["scores"]["eval/arena_hard/score_ci_low"] == 0.0  # the input records are left alone
    assert "pooled over 3 models" in arena_ci_note(pooled)


def test_several_checkpoints_get_the_pooled_ci(tmp_path, monkeypatch):
    """``Suite.run_models`` (several models evaluated together) pools Arena-Hard's CI; per_model keeps each one's."""
    from conftest import compose_cfg
    from distill.artifacts import ArtifactStore
    from eval.suite import BenchmarkResult, Suite, Target, check_config

    judgments = _crafted_judgments({"ckpt-a": 0.4, "ckpt-b": 0.6}, seed=11)
    official = _official_pooled(judgments, "base", n_rounds=ROUNDS)

    def fake_run(self, target, benchmarks=None):
        mine = [j for j in judgments if j["model"] == target.name]
        path = ah.write_judgments(tmp_path / target.name / "judgments.jsonl", mine)
        own = ah.score_judgments(mine, baseline="base", n_rounds=ROUNDS)[target.name]
        return {"arena_hard": BenchmarkResult("arena_hard", {"score": own["score"], "score_ci_low": own["ci_lower"],
                                                             "score_ci_high": own["ci_upper"], "ci_n_models": 1},
                                              {"judgments": str(path), "baseline": "base", "n_bootstrap": ROUNDS}, [])}

    monkeypatch.setattr(Suite, "run", fake_run)
    targets = [Target(name=n, key=n, load=lambda: None) for n in ("ckpt-a", "ckpt-b")]
    for ci, n_models in (("auto", 2), ("per_model", 1)):
        cfg = compose_cfg(["eval=all", "world=full", "judge=vllm", f"eval.arena_hard.ci={ci}"], tmp_path)
        with Suite(cfg, ArtifactStore(tmp_path / "artifacts"), tmp_path / "out") as suite:
            out = suite.run_models(targets)
        for name in ("ckpt-a", "ckpt-b"):
            s = out[name]["arena_hard"].scores
            assert s["ci_n_models"] == n_models
            if ci == "auto":
                assert s["score_ci_low"] == pytest.approx(official[name]["ci_lower"], abs=1e-4)
    cfg = compose_cfg(["eval=all", "world=full", "judge=vllm", "eval.arena_hard.ci=pooled_maybe"], tmp_path)
    with pytest.raises(ValueError, match="eval.arena_hard.ci=pooled_maybe"):
        check_config(cfg)


def test_the_printed_table_says_which_ci():
    import io

    from rich.console import Console

    from eval.suite import print_benchmark_table

    def text(n):
        buf = io.StringIO()
        rows = [(m, {"eval/arena_hard/score": 40.0, "eval/arena_hard/score_ci_low": 37.5,
                     "eval/arena_hard/score_ci_high": 42.5, "eval/arena_hard/ci_n_models": n}) for m in ("a", "b")]
        print_benchmark_table(rows, console=Console(file=buf, width=300))
        return buf.getvalue()

    assert "95% CI per-model" in text(1) and "pooled" not in text(1)
    assert "95% CI pooled over 2 models" in text(2) and "40.0 [37.5, 42.5]" in text(2)
