"""MT-Bench single-answer grading, as in lm-sys/FastChat ``fastchat/llm_judge`` (``gen_judgment.py
--mode single``, ``common.py``, ``show_result.py``).

- 80 questions of two turns in 8 categories. Answers are generated at FastChat's per-category
  temperatures (``TEMPERATURE_CONFIG``, 0.7 for an unlisted category).
- Turn 1 is judged with the prompt ``single-v1``; turn 2 with ``single-v1-multi-turn`` (the judge
  sees both turns and grades the second answer). Questions in math, reasoning and coding use
  ``single-math-v1`` / ``single-math-v1-multi-turn`` with the GPT-4 reference answer. The prompts are
  read at run time from FastChat's own ``judge_prompts.jsonl``. Messages: the prompt's system
  prompt, then the filled template as the user turn; the judge answers at temperature 0 with up to
  2048 tokens.
- The score is parsed from ``[[x]]``, else ``[x]``, else -1.
- Rows scored -1 are dropped (and counted); the MT-Bench score is the mean of all remaining turn-1
  and turn-2 scores together (not the mean of the two turn means).
- Scores are per model and judge, as FastChat's ``show_result.py`` groups a judge's judgment file
  by ``model``; per category, the mean of both turns' kept scores (FastChat's radar plot of the
  eight categories, :data:`CATEGORIES` in its order).
"""
from __future__ import annotations

import ast
import logging
import math
import os
import re
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Optional, Sequence

from eval.benchmarks import DataFormatError, read_jsonl, require_file, write_jsonl
from eval.judges.base import Judge, complete_all, make_request
from eval.judges.verdicts import MT_BENCH_PROMPTS

log = logging.getLogger(__name__)

SOURCE = ("https://github.com/lm-sys/FastChat (fastchat/llm_judge/data/: mt_bench/question.jsonl, "
          "mt_bench/reference_answer/gpt-4.jsonl, judge_prompts.jsonl)")
NEED_REF_CATS = ("math", "reasoning", "coding")
CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
# FastChat fastchat/llm_judge/common.py ``temperature_config`` (generation, not judging).
TEMPERATURE_CONFIG = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                      "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
DEFAULT_TEMPERATURE = 0.7
JUDGE_TEMPERATURE = 0.0
JUDGE_MAX_TOKENS = 2048
PROMPTS = MT_BENCH_PROMPTS  # (reference-guided, turn) -> judge prompt name
_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


def generation_temperature(category: str) -> float:
    """The sampling temperature FastChat's ``gen_model_answer.py`` uses for a question's category."""
    return TEMPERATURE_CONFIG.get(category, DEFAULT_TEMPERATURE)


# ---- files ------------------------------------------------------------------------------------
def _file(path: str | os.PathLike, names: Sequence[str], what: str) -> Path:
    """``path`` itself, or in a folder the first of ``names`` found (FastChat's layout first)."""
    p = Path(path).expanduser()
    if p.is_dir():
        found = [p / n for n in names if (p / n).is_file()]
        p = found[0] if found else p / names[0]
    return require_file(p, what=what, source=SOURCE)


def load_questions(path: str | os.PathLike) -> list[dict]:
    """``question.jsonl`` (file or folder): ``{question_id, category, turns: [t1, t2]}``."""
    p = _file(path, ["question.jsonl"], "MT-Bench questions")
    rows = read_jsonl(p)
    for i, r in enumerate(rows):
        if not {"question_id", "category", "turns"} <= set(r):
            raise DataFormatError(f"{p}, row {i + 1}: expected question_id, category and turns")
    return rows


def load_reference_answers(path: str | os.PathLike) -> dict[int, dict]:
    """The GPT-4 reference answers (``reference_answer/gpt-4.jsonl``): question_id -> answer row."""
    p = _file(path, ["reference_answer/gpt-4.jsonl", "gpt-4.jsonl"], "MT-Bench reference answers (GPT-4)")
    rows = read_jsonl(p)
    for i, r in enumerate(rows):
        try:
            ok = "question_id" in r and isinstance(r["choices"][0]["turns"], list)
        except (KeyError, IndexError, TypeError):
            ok = False
        if not ok:
            raise DataFormatError(f"{p}, row {i + 1}: expected question_id and choices[0].turns")
    return {r["question_id"]: r for r in rows}


def load_judge_prompts(path: str | os.PathLike) -> dict[str, dict]:
    """FastChat's ``judge_prompts.jsonl``: prompt name -> ``{system_prompt, prompt_template, ...}``.
    A folder may be ``data/`` or ``data/mt_bench/`` of FastChat's layout."""
    p = _file(path, ["judge_prompts.jsonl", "../judge_prompts.jsonl"], "FastChat judge prompts")
    rows = read_jsonl(p)
    for i, r in enumerate(rows):
        if not {"name", "system_prompt", "prompt_template"} <= set(r):
            raise DataFormatError(f"{p}, row {i + 1}: expected name, system_prompt and prompt_template")
    prompts = {r["name"]: r for r in rows}
    missing = set(PROMPTS.values()) - set(prompts)
    if missing:
        raise DataFormatError(f"{p}: missing judge prompts {sorted(missing)}")
    return prompts


def make_answer_row(question_id: int, model_id: str, turns: Sequence[str], *, answer_id: Optional[str] = None,
                    tstamp: Optional[float] = None) -> dict:
    """One answer row in FastChat's ``model_answer/<model>.jsonl`` format."""
    return {"question_id": question_id, "answer_id": answer_id or uuid.uuid4().hex, "model_id": model_id,
            "choices": [{"index": 0, "turns": list(turns)}], "tstamp": time.time() if tstamp is None else tstamp}


def read_answers(path: str | os.PathLike) -> dict[int, dict]:
    p = require_file(path, what="MT-Bench model answers", source="our generation run")
    out = {}
    for i, r in enumerate(read_jsonl(p)):
        try:
            turns = r["choices"][0]["turns"]
        except (KeyError, IndexError, TypeError):
            turns = None
        if "question_id" not in r or not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise DataFormatError(f"{p}, row {i + 1}: expected question_id and choices[0].turns (a list of strings)")
        out[r["question_id"]] = r
    return out


def write_answers(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    return write_jsonl(path, rows)


# ---- judging ----------------------------------------------------------------------------------
def judge_prompt_name(category: str, turn: int) -> str:
    if turn not in (1, 2):
        raise ValueError(f"turn must be 1 or 2, got {turn}")
    return PROMPTS[(category in NEED_REF_CATS, turn)]


def judge_messages(prompts: Mapping[str, dict], question: dict, answer: dict, turn: int,
                   ref_answer: Optional[dict] = None) -> tuple[str, list[dict]]:
    """(prompt name, messages) for grading one turn of one answer, filled as in ``run_judge_single``."""
    name = judge_prompt_name(question["category"], turn)
    kwargs = {}
    if question["category"] in NEED_REF_CATS:
        if ref_answer is None:
            raise ValueError(f"question {question['question_id']} ({question['category']}) needs its reference "
                             "answer (reference_answer/gpt-4.jsonl)")
        ref = ref_answer["choices"][0]["turns"]
        kwargs["ref_answer_1"] = ref[0]
        if turn == 2:
            kwargs["ref_answer_2"] = ref[1]
    a = answer["choices"][0]["turns"]
    if turn == 1:
        user = prompts[name]["prompt_template"].format(question=question["turns"][0], answer=a[0], **kwargs)
    else:
        user = prompts[name]["prompt_template"].format(question_1=question["turns"][0], question_2=question["turns"][1],
                                                       answer_1=a[0], answer_2=a[1], **kwargs)
    return name, [{"role": "system", "content": prompts[name]["system_prompt"]}, {"role": "user", "content": user}]


def parse_score(judgment: str) -> float:
    """The first ``[[x]]``, else the first ``[x]``, else -1 (FastChat ``one_score_pattern``)."""
    match = _SCORE.search(judgment) or _SCORE_BACKUP.search(judgment)
    if not match:
        return -1
    try:
        return ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):  # e.g. "08", which literal_eval refuses
        return float(match.group(1))


def judge_answers(judge: Judge, prompts: Mapping[str, dict], questions: Sequence[dict], answers: Mapping[int, dict],
                  ref_answers: Optional[Mapping[int, dict]] = None, *, model: Optional[str] = None,
                  judge_name: Optional[str] = None, retry_unparsed: bool = False) -> list[dict]:
    """Judgment rows in FastChat's ``<judge>_single.jsonl`` format, two per answered question.

    A reply without a score is recorded as -1 and dropped at scoring time, as FastChat does;
    ``retry_unparsed`` asks the judge again instead (a deviation, off by default)."""
    meta, requests = [], []
    for q in questions:
        qid = q["question_id"]
        if qid not in answers:
            log.warning("MT-Bench: no answer to question %s; skipped", qid)
            continue
        for turn in (1, 2):
            ref = (ref_answers or {}).get(qid)
            name, messages = judge_messages(prompts, q, answers[qid], turn, ref)
            meta.append((qid, turn, name, messages[1]["content"]))
            requests.append(make_request(messages, temperature=JUDGE_TEMPERATURE, max_tokens=JUDGE_MAX_TOKENS))
    replies = complete_all(judge, requests, validate=(lambda r: parse_score(r.text) != -1) if retry_unparsed else None)
    rows = []
    for (qid, turn, name, user_prompt), reply in zip(meta, replies, strict=True):
        text = "$ERROR$" if reply is None else reply.text
        rows.append({"question_id": qid, "model": model or answers[qid].get("model_id"),
                     "judge": [judge_name or judge.model, name], "user_prompt": user_prompt, "judgment": text,
                     "score": -1 if reply is None else parse_score(text), "turn": turn, "tstamp": time.time()})
    return rows


def read_judgments(path: str | os.PathLike) -> list[dict]:
    return read_jsonl(require_file(path, what="MT-Bench judgments", source="a previous judging run"))


def write_judgments(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    return write_jsonl(path, rows)


# ---- scoring ----------------------------------------------------------------------------------
def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _judge_name(row: dict) -> Optional[str]:
    judge = row.get("judge")
    return judge[0] if isinstance(judge, (list, tuple)) and judge else judge


def score_judgments(judgments: Sequence[dict], questions: Optional[Sequence[dict]] = None) -> dict:
    """One model's scores under one judge: ``score`` (mean over every kept turn-1 and turn-2 row),
    ``turn_1``, ``turn_2``, ``per_category`` (both turns), and ``n_scored`` / ``n_dropped`` (rows
    whose score was -1).

    Categories come from ``questions`` when given, else from a ``category`` field of the rows.
    Judgments of several models (or judges) are refused: FastChat scores each model apart
    (:func:`score_by_model`), and a pooled mean is no model's score.
    """
    groups = {(j.get("model"), _judge_name(j)) for j in judgments}
    if len(groups) > 1:
        raise ValueError(f"MT-Bench judgments of {len(groups)} (model, judge) pairs {sorted(map(str, groups))}: "
                         "score each apart with score_by_model")
    category = {q["question_id"]: q["category"] for q in questions or []}
    kept = [j for j in judgments if j["score"] != -1]
    by_turn, by_cat = defaultdict(list), defaultdict(list)
    for j in kept:
        by_turn[j["turn"]].append(float(j["score"]))
        cat = category.get(j["question_id"], j.get("category"))
        if cat is not None:
            by_cat[cat].append(float(j["score"]))
    dropped = len(judgments) - len(kept)
    if dropped:
        log.warning("MT-Bench: %d of %d judgments had no score and were dropped", dropped, len(judgments))
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return {"score": _mean([float(j["score"]) for j in kept]), "turn_1": _mean(by_turn[1]), "turn_2": _mean(by_turn[2]),
            "per_category": {c: _mean(by_cat[c]) for c in sorted(by_cat, key=lambda c: (order.get(c, len(order)), c))},
            "n_scored": len(kept), "n_dropped": dropped, "n_judgments": len(judgments)}


def score_by_model(judgments: Sequence[dict], questions: Optional[Sequence[dict]] = None) -> dict[tuple, dict]:
    """FastChat's ``show_result.py`` (single mode): the judgments grouped by (model, judge), each
    scored by :func:`score_judgments`; keys in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for j in judgments:
        groups.setdefault((j.get("model"), _judge_name(j)), []).append(j)
    return {key: score_judgments(rows, questions) for key, rows in groups.items()}


def category_table(per_model: Mapping[str, Mapping[str, float]], *, fmt: str = ".2f", latex: bool = False) -> str:
    """The per-category table of papers (FastChat's radar plot as numbers): one row per model, the
    eight categories in FastChat's order and the overall score. ``per_model``: model -> the
    result of :func:`score_judgments` (``per_category`` and ``score``). Markdown, or LaTeX
    (booktabs) with ``latex``."""
    cats = [c for c in CATEGORIES if any(c in s.get("per_category", {}) for s in per_model.values())]
    header = ["Model", *[c.capitalize() if c != "stem" else "STEM" for c in cats], "Overall"]

    def cell(v) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    lines = [[str(m), *[cell(s.get("per_category", {}).get(c)) for c in cats], cell(s.get("score"))]
             for m, s in per_model.items()]
    if latex:
        esc = lambda t: t.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")  # noqa: E731
        out = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule", " & ".join(header) + r" \\",
               r"\midrule", *[" & ".join(esc(x) for x in row) + r" \\" for row in lines], r"\bottomrule",
               r"\end{tabular}"]
        return "\n".join(out) + "\n"
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in lines]
    return "\n".join(out) + "\n"
