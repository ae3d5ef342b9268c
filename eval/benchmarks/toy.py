"""Toy variants of the benchmarks' question sets, built from the toy task and laid out exactly like
the real ones, so the same readers, generation, judging and scoring code runs on them.

========================== ====================================================================
benchmark                  toy files (in the benchmark's own layout)
========================== ====================================================================
AlpacaEval 2               ``<reference>/model_outputs.json``: toy instructions with the reference
                           model's answers (the AlpacaEval 2 reference is GPT-4 Turbo's)
Arena-Hard                 ``question.jsonl`` (one turn, ``cluster`` = the operation),
                           ``model_answer/<baseline>.jsonl`` (the baseline model's greedy answers)
                           and ``judge_config.yaml`` (``eval/prompts/toy/``, this project's wording)
MT-Bench                   ``question.jsonl`` from :meth:`ToyTask.two_turn_rows` (turn 2 applies a new
                           operation to the first answer), categories cycling through MT-Bench's
                           eight (so each category's temperature and the reference-guided prompts
                           are exercised), ``reference_answer/toy-oracle.jsonl`` (the exact answers,
                           bracketed) and ``judge_prompts.jsonl`` (``eval/prompts/toy/``)
Open LLM Leaderboard       ``eval/tasks/``: local JSON + lm-eval task YAMLs (see :mod:`.open_llm`)
========================== ====================================================================

Question sets are drawn with their own seed (``eval.toy.seed`` plus a per-benchmark offset), not
from the training data files.
"""
from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

from toyworld.task import ToyTask, render, solve

from . import alpaca_eval2 as ae2
from . import arena_hard as ah
from . import mt_bench as mt
from . import write_jsonl

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts" / "toy"
ARENA_JUDGE_CONFIG = PROMPTS_DIR / "arena_hard_judge_config.yaml"
MT_BENCH_JUDGE_PROMPTS = PROMPTS_DIR / "mt_bench_judge_prompts.jsonl"
MT_BENCH_CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
REFERENCE_MODEL_ID = "toy-oracle"   # MT-Bench's reference answers: the exact ones
SEED_OFFSETS = {"alpaca_eval2": 1, "arena_hard": 2, "mt_bench": 3, "open_llm": 4}

Answerer = Callable[[list[list[dict]]], list[str]]  # conversations -> greedy answers


def _rng(seed: int, bench: str) -> random.Random:
    return random.Random(f"{seed}/{bench}")


def _unique_problems(task: ToyTask, n: int, rng: random.Random):
    """``n`` distinct problems (distinct instructions)."""
    seen, out = set(), []
    for _ in range(100 * n):
        p = task.sample(rng)
        if p.instruction not in seen:
            seen.add(p.instruction)
            out.append(p)
            if len(out) == n:
                return out
    raise ValueError(f"the toy task has fewer than {n} distinct problems; lower the question count")


def alpaca_instructions(task: ToyTask, n: int, seed: int) -> list[dict]:
    return [{"instruction": p.instruction, "dataset": "toy"} for p in _unique_problems(task, n, _rng(seed, "alpaca_eval2"))]


def arena_questions(task: ToyTask, n: int, seed: int) -> list[dict]:
    rows = []
    for p in _unique_problems(task, n, _rng(seed, "arena_hard")):
        qid = hashlib.sha256(f"toy/{p.instruction}".encode()).hexdigest()[:32]
        rows.append({"question_id": qid, "category": "arena-hard-toy", "cluster": p.op,
                     "turns": [{"content": p.instruction}]})
    return rows


def mt_bench_questions(task: ToyTask, n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(questions, reference answer rows); question ids start at 1001."""
    rng = _rng(seed, "mt_bench")
    rows, seen = [], set()
    while len(rows) < n:
        r = task.two_turn_rows(1, rng)[0]
        key = r["turns"][0]  # distinct first turns, as in MT-Bench
        if key in seen:
            if len(seen) > 100 * n:
                raise ValueError(f"the toy task has fewer than {n} distinct two-turn questions")
            continue
        seen.add(key)
        rows.append(r)
    questions, refs = [], []
    for i, r in enumerate(rows):
        qid = 1001 + i
        questions.append({"question_id": qid, "category": MT_BENCH_CATEGORIES[i % len(MT_BENCH_CATEGORIES)],
                          "turns": list(r["turns"])})
        refs.append(mt.make_answer_row(qid, REFERENCE_MODEL_ID, [render(a, True) for a in r["answers"]],
                                       answer_id=f"toy-{qid}", tstamp=0.0))
    return questions, refs


def true_answers(task: ToyTask, turns: Sequence[str]) -> list[list[str]]:
    """The exact answer of each turn of a toy conversation (``<op> : it`` chains)."""
    out: list[list[str]] = []
    for t in turns:
        op, rest = (s.strip() for s in t.split(":", 1))
        items = out[-1] if rest == "it" else rest.split()
        out.append(solve(op, list(items), task.letters))
    return out


# ---- the files ---------------------------------------------------------------------------------
def build_alpaca_eval(out: Path, task: ToyTask, *, n: int, seed: int, reference_name: str,
                      answer: Answerer) -> Path:
    """``<out>/<reference_name>/model_outputs.json``; returns the folder ``out``."""
    instructions = alpaca_instructions(task, n, seed)
    outputs = answer([[{"role": "user", "content": r["instruction"]}] for r in instructions])
    rows = [{**r, "output": o, "generator": reference_name} for r, o in zip(instructions, outputs, strict=True)]
    ae2.write_model_outputs(out / reference_name / "model_outputs.json", rows)
    return out


def build_arena_hard(out: Path, task: ToyTask, *, n: int, seed: int, baseline_name: str, answer: Answerer,
                     count: Optional[Callable[[str], int]] = None) -> Path:
    """``question.jsonl``, ``model_answer/<baseline_name>.jsonl`` and ``judge_config.yaml``."""
    import yaml

    questions = arena_questions(task, n, seed)
    write_jsonl(out / "question.jsonl", questions)
    outputs = answer([[{"role": "user", "content": q["turns"][0]["content"]}] for q in questions])
    rows = [ah.make_answer_row(q["question_id"], baseline_name, o, count(o) if count else None,
                               answer_id=f"toy-{q['question_id'][:12]}", tstamp=0.0)
            for q, o in zip(questions, outputs, strict=True)]
    ah.write_answers(out / "model_answer" / f"{baseline_name}.jsonl", rows)
    cfg = yaml.safe_load(ARENA_JUDGE_CONFIG.read_text())
    cfg["baseline_model"] = baseline_name
    (out / "judge_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=1000))
    return out


def build_mt_bench(out: Path, task: ToyTask, *, n: int, seed: int) -> Path:
    """``question.jsonl``, ``reference_answer/toy-oracle.jsonl`` and ``judge_prompts.jsonl``."""
    questions, refs = mt_bench_questions(task, n, seed)
    write_jsonl(out / "question.jsonl", questions)
    write_jsonl(out / "reference_answer" / f"{REFERENCE_MODEL_ID}.jsonl", refs)
    shutil.copyfile(MT_BENCH_JUDGE_PROMPTS, out / "judge_prompts.jsonl")
    return out
