"""Arena-Hard-Auto v0.1, judged and scored as in lmarena/arena-hard-auto (``gen_judgment.py``,
``show_result.py``, ``utils_math.py``).

Judging: for every question two games against the baseline (gpt-4-0314): game 1 shows the baseline as
assistant A and the model as B, game 2 swaps them. The judge sees the system prompt and the prompt
template of ``judge_config.yaml`` (read at run time from the benchmark's own file), answers at
temperature 0 with up to 4096 tokens, and its verdict is the unique match of
``\\[\\[([AB<>=]+)\\]\\]``; with no match the conversation continues ("continue your judgment and
finish by outputting a final verdict label"), up to ``number_of_judgment_attempts`` (2) calls.

Scoring: each game becomes battles between the baseline (``model_a``) and the model (``model_b``):
a tie counts once, a slight win once, a strong win (``>>``) three times; anything else (no verdict,
conflicting verdicts, ``<`` forms) is dropped. A Bradley-Terry model is fitted by unpenalised logistic
regression without intercept (features +-ln 10, a tie counted as half a win each way), ratings on the
Elo scale (400) with the baseline fixed at 1000. The score is the predicted win rate against the
baseline (0-100, baseline 50); the 95% CI takes the 2.5/97.5 percentiles of 100 bootstrap fits
(seed 42) that resample the battle rows. Because every battle involves the baseline, the point
score equals 100 * (wins + ties / 2) / battles.
"""
from __future__ import annotations

import logging
import math
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import numpy as np
import yaml

from eval.benchmarks import DataFormatError, read_jsonl, require_file, write_jsonl
from eval.judges.base import Judge, complete_all, make_request

if TYPE_CHECKING:  # pandas is imported where it is used: a finished run's rerun scores nothing
    import pandas as pd

log = logging.getLogger(__name__)

BENCH_NAME = "arena-hard-v0.1"
BASELINE_MODEL = "gpt-4-0314"
SOURCE = "https://github.com/lmarena/arena-hard-auto (data/arena-hard-v0.1/ and config/judge_config.yaml)"
ANSWER_TEMPERATURE = 0.0   # config/gen_answer_config.yaml of v0.1
ANSWER_MAX_TOKENS = 4096
CONTINUE_PROMPT = "continue your judgment and finish by outputting a final verdict label"
STRONG_WEIGHT = 3
N_BOOTSTRAP = 100
BOOTSTRAP_SEED = 42
# (game index, verdict) -> (winner, multiplicity); game 0 has the baseline as A, game 1 the model.
_BATTLES = {
    (0, "A=B"): ("tie", 1), (0, "A>B"): ("model_a", 1), (0, "A>>B"): ("model_a", STRONG_WEIGHT),
    (0, "B>A"): ("model_b", 1), (0, "B>>A"): ("model_b", STRONG_WEIGHT),
    (1, "A=B"): ("tie", 1), (1, "A>B"): ("model_b", 1), (1, "A>>B"): ("model_b", STRONG_WEIGHT),
    (1, "B>A"): ("model_a", 1), (1, "B>>A"): ("model_a", STRONG_WEIGHT),
}


# ---- files ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArenaJudgeConfig:
    """The fields of arena-hard-auto's ``judge_config.yaml`` that decide the judging."""

    judge_model: str
    baseline_model: str
    temperature: float
    max_tokens: int
    regex_pattern: str
    number_of_judgment_attempts: int
    system_prompt: str
    prompt_template: tuple[str, ...]
    pairwise: bool = True


def load_judge_config(path: str | os.PathLike) -> ArenaJudgeConfig:
    """Read ``judge_config.yaml`` (a file, or a folder holding it)."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "judge_config.yaml"
    cfg = yaml.safe_load(require_file(p, what="Arena-Hard judge config", source=SOURCE).read_text())
    if not isinstance(cfg, dict):
        raise DataFormatError(f"{p}: expected a YAML mapping (arena-hard-auto's config/judge_config.yaml)")
    bench = str(cfg.get("bench_name", ""))
    if bench.startswith("arena-hard-v") and bench != BENCH_NAME:
        raise DataFormatError(f"{p}: this is the judge config of {bench} (bench_name: {bench}), not {BENCH_NAME}; "
                              f"get {BENCH_NAME}'s from {SOURCE}")
    try:
        return ArenaJudgeConfig(
            judge_model=cfg["judge_model"], baseline_model=cfg["baseline_model"],
            temperature=float(cfg["temperature"]), max_tokens=int(cfg["max_tokens"]),
            regex_pattern=cfg["regex_pattern"], number_of_judgment_attempts=int(cfg["number_of_judgment_attempts"]),
            system_prompt=cfg["system_prompt"], prompt_template=tuple(cfg["prompt_template"]),
            pairwise=bool(cfg.get("pairwise", True)))
    except KeyError as e:
        raise DataFormatError(f"{p}: missing key {e}") from None


def load_questions(path: str | os.PathLike) -> list[dict]:
    """``question.jsonl`` rows ``{question_id, category, cluster, turns: [{content}]}`` (file or folder)."""
    p = Path(path).expanduser()
    p = require_file(p / "question.jsonl" if p.is_dir() else p, what="Arena-Hard questions", source=SOURCE)
    rows = read_jsonl(p)
    for i, r in enumerate(rows):
        if "question_id" not in r or not r.get("turns") or "content" not in r["turns"][0]:
            raise DataFormatError(f"{p}, row {i + 1}: expected question_id and turns[0].content"
                                  + _other_version(r) + f"; get the v0.1 file from {SOURCE}")
    return rows


def _other_version(row: dict) -> str:
    """``"; this is <another version's file>"`` when the row's fields show which, else ``""``."""
    if "uid" in row and "prompt" in row:
        return "; this is an Arena-Hard v2.0 question file (rows with uid/prompt)"
    if "uid" in row and "messages" in row:
        return "; this is an Arena-Hard v2.0 answer file (rows with uid/messages)"
    return ""


def read_answers(path: str | os.PathLike) -> dict[str, dict]:
    """One model's answer file: question_id -> row (``choices[0].turns[0].{content, token_len}``)."""
    p = require_file(path, what="Arena-Hard model answers", source=SOURCE)
    out = {}
    for i, r in enumerate(read_jsonl(p)):
        try:
            r["choices"][0]["turns"][0]["content"]
            r["question_id"]
        except (KeyError, IndexError, TypeError):
            raise DataFormatError(f"{p}, row {i + 1}: expected question_id and choices[0].turns[0].content"
                                  + (_other_version(r) if isinstance(r, dict) else "")) from None
        out[r["question_id"]] = r
    return out


def load_model_answers(answer_dir: str | os.PathLike) -> dict[str, dict[str, dict]]:
    """All ``<model>.jsonl`` files of a ``model_answer/`` folder; the model name is the file's stem."""
    d = Path(answer_dir).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"Arena-Hard answer folder not found: {d}. Put model_answer/<model>.jsonl files "
                                f"there (the baseline {BASELINE_MODEL}.jsonl comes from {SOURCE}).")
    return {p.stem: read_answers(p) for p in sorted(d.glob("*.jsonl"))}


def load_baseline_answers(answer_dir: str | os.PathLike, baseline: str = BASELINE_MODEL) -> dict[str, dict]:
    return read_answers(require_file(Path(answer_dir).expanduser() / f"{baseline}.jsonl",
                                     what=f"the baseline's ({baseline}) answers", source=SOURCE))


def make_answer_row(question_id: str, model_id: str, content: str, token_len: Optional[int], *,
                    answer_id: Optional[str] = None, tstamp: Optional[float] = None) -> dict:
    """One answer row in the v0.1 format."""
    turn = {"content": content} if token_len is None else {"content": content, "token_len": int(token_len)}
    return {"question_id": question_id, "answer_id": answer_id or uuid.uuid4().hex, "model_id": model_id,
            "choices": [{"index": 0, "turns": [turn]}], "tstamp": time.time() if tstamp is None else tstamp}


def write_answers(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    return write_jsonl(path, rows)


def tiktoken_len(text: str) -> int:
    """Token count as arena-hard-auto records it (tiktoken, the gpt-3.5-turbo encoding cl100k_base)."""
    try:
        import tiktoken

        enc = tiktoken.encoding_for_model("gpt-3.5-turbo")
    except Exception as e:  # noqa: BLE001 - missing package or an offline first use
        raise RuntimeError("token_len needs tiktoken with the cl100k_base encoding (downloaded on first use; "
                           "set TIKTOKEN_CACHE_DIR to a folder that holds it when offline)") from e
    return len(enc.encode(text, disallowed_special=()))


# ---- judging ----------------------------------------------------------------------------------
def game_messages(config: ArenaJudgeConfig, question: dict, answer_a: dict, answer_b: dict) -> list[dict]:
    """System prompt, then one user message per prompt template, filled like ``gen_judgment.py``:
    ``question_i`` from the question's turns, ``answer_1..`` from A's turns, then B's."""
    args = {f"question_{i + 1}": t["content"] for i, t in enumerate(question["turns"])}
    a_turns = answer_a["choices"][0]["turns"]
    args.update({f"answer_{i + 1}": t["content"] for i, t in enumerate(a_turns)})
    args.update({f"answer_{i + 1 + len(a_turns)}": t["content"] for i, t in enumerate(answer_b["choices"][0]["turns"])})
    messages = [{"role": "system", "content": config.system_prompt}]
    messages += [{"role": "user", "content": template.format(**args)} for template in config.prompt_template]
    return messages


def parse_verdict(judgment: str, pattern: str | re.Pattern = r"\[\[([AB<>=]+)\]\]") -> tuple[Optional[str], bool]:
    """(verdict, try_again): the single distinct label found; none -> (None, True); several
    different ones -> (None, False)."""
    labels = [m for m in re.findall(pattern, judgment) if m != ""]
    if not labels:
        return None, True
    if len(set(labels)) == 1:
        return labels[0].strip("\n"), False
    return None, False


def judge_games(judge: Judge, config: ArenaJudgeConfig, questions: Sequence[dict], answers: Mapping[str, dict],
                baseline_answers: Mapping[str, dict], *, model: Optional[str] = None) -> list[dict]:
    """Judgment rows ``{question_id, model, judge, games: [{user_prompt, judgment, score}] * 2}``.

    Questions the model did not answer are skipped with a warning (as the authors do). A request the
    judge could not answer at all ends its game with ``score`` None (dropped when scoring)."""
    games, rows = [], []
    for q in questions:
        qid = q["question_id"]
        if qid not in answers:
            log.warning("Arena-Hard: no answer to question %s; skipped", qid)
            continue
        if qid not in baseline_answers:
            raise KeyError(f"the baseline's answers have no question {qid!r}; is the baseline file complete?")
        ans, base = answers[qid], baseline_answers[qid]
        row = {"question_id": qid, "model": model or ans.get("model_id"), "judge": config.judge_model, "games": []}
        n_games = 2 if config.pairwise else 1
        for g in range(n_games):
            a, b = (base, ans) if g % 2 == 0 else (ans, base)
            conv = game_messages(config, q, a, b)
            game = {"user_prompt": conv[1]["content"], "judgment": "", "score": None}
            row["games"].append(game)
            games.append({"conv": conv, "game": game, "active": True})
        rows.append(row)
    pattern = re.compile(config.regex_pattern)
    for _ in range(config.number_of_judgment_attempts):
        active = [g for g in games if g["active"]]
        if not active:
            break
        replies = complete_all(judge, [make_request(g["conv"], temperature=config.temperature,
                                                    max_tokens=config.max_tokens) for g in active])
        for g, reply in zip(active, replies, strict=True):
            if reply is None:
                g["active"] = False
                g["game"]["error"] = "judge request failed"
                continue
            g["game"]["judgment"] += "\n" + reply.text
            g["game"]["score"], again = parse_verdict(g["game"]["judgment"], pattern)
            g["conv"] = g["conv"] + [{"role": "assistant", "content": reply.text}]
            g["active"] = again
            if again:
                g["conv"] = g["conv"] + [{"role": "user", "content": CONTINUE_PROMPT}]
    return rows


def read_judgments(path: str | os.PathLike) -> list[dict]:
    return read_jsonl(require_file(path, what="Arena-Hard judgments", source="a previous judging run"))


def write_judgments(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    return write_jsonl(path, rows)


# ---- scoring ----------------------------------------------------------------------------------
def battles_from_judgments(judgments: Sequence[dict], baseline: str = BASELINE_MODEL, *,
                           first_game_only: bool = False) -> pd.DataFrame:
    """Battle rows ``question_id, model_a (= baseline), model_b, winner`` (see the module docstring)."""
    import pandas as pd

    rows = []
    for j in judgments:
        for g, game in enumerate(j["games"][: 1 if first_game_only else 2]):
            winner, times = _BATTLES.get((g, game.get("score")), (None, 0))
            rows += [{"question_id": j["question_id"], "model_a": baseline, "model_b": j["model"],
                      "winner": winner}] * times
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner"])


def fit_bradley_terry(battles: pd.DataFrame, baseline: str = BASELINE_MODEL, *, scale: float = 400.0,
                      base: float = 10.0, anchor: float = 1000.0) -> pd.Series:
    """Elo-scale Bradley-Terry ratings by unpenalised, intercept-free logistic regression.

    A battle's row has +ln(base) in model_a's column and -ln(base) in model_b's. Each battle is
    observed twice (as arena-hard-auto duplicates its battles): a win counts twice for its winner, a
    tie once for each side. Battles between the same two models share their row, so they are summed
    into two weighted rows (A won / B won); the log-likelihood, and so the fit, is unchanged.
    Ratings are ``scale * coefficient``, shifted so the baseline sits at ``anchor``.
    """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    won = battles["winner"].to_numpy()
    share_a = np.where(won == "model_a", 1.0, np.where(np.isin(won, ["tie", "tie (bothbad)"]), 0.5, 0.0))
    pairs = (pd.DataFrame({"a": battles["model_a"].to_numpy(), "b": battles["model_b"].to_numpy(),
                           "w1": 2 * share_a, "w0": 2 * (1 - share_a)})
             .groupby(["a", "b"], sort=False, as_index=False)[["w1", "w0"]].sum())
    models = pd.Index(pd.unique(pd.concat([battles["model_a"], battles["model_b"]])))
    x = np.zeros((len(pairs), len(models)))
    x[np.arange(len(pairs)), models.get_indexer(pairs["a"])] = math.log(base)
    x[np.arange(len(pairs)), models.get_indexer(pairs["b"])] = -math.log(base)
    lr = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8)
    with threadpool_limits(limits=1):  # a few parameters: BLAS threads only add overhead
        lr.fit(np.vstack([x, x]), np.r_[np.ones(len(pairs)), np.zeros(len(pairs))],
               sample_weight=np.r_[pairs["w1"], pairs["w0"]])
    ratings = scale * lr.coef_[0]
    if baseline in models:
        ratings = ratings + anchor - ratings[models.get_loc(baseline)]
    return pd.Series(ratings, index=models)


def bootstrap_ratings(battles: pd.DataFrame, baseline: str = BASELINE_MODEL, *, n_rounds: int = N_BOOTSTRAP,
                      seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Ratings refitted on ``n_rounds`` resamples (with replacement) of the battle rows; one row per round.

    One ``RandomState(seed)`` drives all rounds: the same draws as the authors' ``np.random.seed(42)``
    followed by ``battles.sample(frac=1.0, replace=True)``."""
    import pandas as pd

    rng = np.random.RandomState(seed)
    rounds = [fit_bradley_terry(battles.sample(frac=1.0, replace=True, random_state=rng), baseline)
              for _ in range(n_rounds)]
    return pd.DataFrame(rounds)


def win_rate_vs_baseline(rating: float, baseline_rating: float = 1000.0, *, scale: float = 400.0,
                         base: float = 10.0) -> float:
    """Predicted win rate (0-100) of a rating against the baseline's."""
    return 100.0 / (1.0 + base ** ((baseline_rating - rating) / scale))


def avg_tokens(answers: Mapping[str, dict]) -> Optional[int]:
    """int(mean ``token_len``) over a model's answers (None if the file has no token counts)."""
    lens = [a["choices"][0]["turns"][0].get("token_len") for a in answers.values()]
    if not lens or any(n is None for n in lens):
        return None
    return int(sum(lens) / len(lens))


def score_judgments(judgments: Sequence[dict], model_answers: Optional[Mapping[str, Mapping[str, dict]]] = None,
                    *, baseline: str = BASELINE_MODEL, n_rounds: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED
                    ) -> dict[str, dict]:
    """Per model: ``score`` and ``ci_lower``/``ci_upper`` (win rate vs the baseline, 0-100), the Elo
    ratings behind them, battle counts, games dropped for lack of a verdict, and ``avg_tokens``.

    All models in ``judgments`` are fitted and bootstrapped together, as ``show_result.py`` does.
    """
    battles = battles_from_judgments(judgments, baseline)
    if battles.empty:
        raise ValueError("no usable verdicts: every game was dropped")
    ratings = fit_bradley_terry(battles, baseline)
    boots = bootstrap_ratings(battles, baseline, n_rounds=n_rounds, seed=seed)
    out = {}
    for model in sorted({j["model"] for j in judgments}):
        mine = battles[battles["model_b"] == model]
        games = [g for j in judgments if j["model"] == model for g in j["games"][:2]]
        lo, hi = (np.nanpercentile(boots[model], [2.5, 97.5]) if model in boots else (math.nan, math.nan))
        elo = float(ratings.get(model, math.nan))
        out[model] = {
            "score": win_rate_vs_baseline(elo), "ci_lower": win_rate_vs_baseline(lo),
            "ci_upper": win_rate_vs_baseline(hi), "elo": elo, "elo_lower": float(lo), "elo_upper": float(hi),
            "n_battles": int(len(mine)), "wins": int((mine["winner"] == "model_b").sum()),
            "losses": int((mine["winner"] == "model_a").sum()), "ties": int((mine["winner"] == "tie").sum()),
            "n_games": len(games), "n_games_dropped": sum(1 for g in games if (0, g.get("score")) not in _BATTLES),
            "avg_tokens": avg_tokens(model_answers[model]) if model_answers and model in model_answers else None,
            "baseline": baseline, "n_bootstrap": n_rounds, "seed": seed,
        }
    return out
