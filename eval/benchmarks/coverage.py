"""Scores over complete inputs only: answer and judgment files checked against the prompts they answer.

Every scoring path calls one function here, with one line, before it scores: the rows it is about
to score (a model's answers, AlpacaEval annotations, Arena-Hard or MT-Bench judgments) must cover
the benchmark's prompts exactly, each as often as the benchmark asks (one annotation per
instruction, one Arena-Hard judgment row of two games per question, one MT-Bench judgment per
question and turn). Otherwise :class:`CoverageError` names the file, how many rows are missing,
extra or repeated, which ids, and the fix (delete the file and rerun what wrote it). A truncated,
edited or foreign file would otherwise be scored over the prompts it happens to hold, which
skews a score without a word (the benchmarks' own code skips a question without an answer).

- :func:`alpaca_outputs`, :func:`alpaca_annotations` -- keyed by the instruction.
- :func:`arena_answers`, :func:`arena_judgments` -- keyed by ``question_id``; judgments need
  ``games`` games each (two: positions swapped).
- :func:`mt_answers`, :func:`mt_judgments` -- keyed by ``question_id``; judgments by
  (``question_id``, ``turn``), turns 1 and 2.
- :func:`check` -- the general form.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Any, Callable, Hashable, Iterable, Mapping, Optional, Sequence

from distill.results import IncompleteAnswersError

SHOWN = 6  # ids listed per kind of mismatch


class CoverageError(IncompleteAnswersError):
    """Rows that do not cover exactly the prompts they are scored on (named file, counts, ids, fix)."""


def _ids(ids: Sequence) -> str:
    shown = ", ".join(repr(i)[:60] for i in ids[:SHOWN])
    return shown + (f", ... ({len(ids) - SHOWN} more)" if len(ids) > SHOWN else "")


def check(rows: Iterable, expected: Iterable[Hashable], path: str | os.PathLike, *, what: str,
          key: str | Callable[[Any], Hashable], per_id: int = 1, unit: str = "prompts",
          complete: Optional[Callable[[Any], bool]] = None, fix: Optional[str] = None) -> list:
    """``rows`` (of ``path``) must hold each id of ``expected`` exactly ``per_id`` times and no other
    id; ``complete(row)``, when given, must hold for every row (e.g. both games judged). Returns
    ``rows`` as given (a mapping id -> row, as the answer readers return, is checked on its values);
    raises :class:`CoverageError` otherwise."""
    given = rows
    rows = list(rows.values()) if isinstance(rows, Mapping) else list(rows)
    get = (lambda r: r.get(key) if isinstance(r, Mapping) else None) if isinstance(key, str) else key
    expected = list(dict.fromkeys(expected))
    ids = [get(r) for r in rows]
    seen, want = Counter(ids), set(expected)
    missing = [e for e in expected if seen[e] < per_id]
    extra = [i for i in dict.fromkeys(ids) if i not in want]
    repeated = [i for i in dict.fromkeys(ids) if i in want and seen[i] > per_id]
    partial = [get(r) for r in rows if complete is not None and not complete(r)]
    if not (missing or extra or repeated or partial):
        return given if isinstance(given, (Mapping, list)) else rows
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_ids(missing)})")
    if extra:
        problems.append(f"{len(extra)} extra, of no prompt scored here ({_ids(extra)})")
    if repeated:
        problems.append(f"{len(repeated)} repeated ({_ids(repeated)})")
    if partial:
        problems.append(f"{len(partial)} incomplete ({_ids(partial)})")
    need = f"{len(expected)} {unit}" + (f" x {per_id}" if per_id > 1 else "")
    fix = fix or (f"delete {path} and rerun the run that wrote it (answers and judge replies are reused from "
                  "their artifacts and the judge cache, so nothing is asked twice)")
    raise CoverageError(f"{path}: {what}: {len(rows)} rows for {need}; {'; '.join(problems)}; scores are computed "
                        f"over complete inputs only; fix: {fix}")


def alpaca_outputs(outputs: Sequence[dict], reference: Sequence[dict], path) -> list:
    """A ``model_outputs.json``: one output per reference instruction."""
    return check(outputs, [r["instruction"] for r in reference], path, what="AlpacaEval model outputs",
                 key="instruction", unit="instructions")


def alpaca_annotations(rows: Sequence[dict], reference: Sequence[dict], path) -> list:
    """AlpacaEval annotations: one per reference instruction."""
    return check(rows, [r["instruction"] for r in reference], path, what="AlpacaEval annotations",
                 key="instruction", unit="instructions")


def arena_answers(answers: Mapping[str, dict] | Sequence[dict], questions: Sequence[dict], path) -> list:
    """An Arena-Hard answer file (rows, or ``read_answers``' question_id -> row): one per question."""
    return check(answers, [q["question_id"] for q in questions], path, what="Arena-Hard answers",
                 key="question_id", unit="questions")


def arena_judgments(judgments: Sequence[dict], questions: Optional[Sequence[dict] | Sequence[str]], path,
                    games: Optional[int] = 2) -> list:
    """Arena-Hard judgment rows: one per question, each with ``games`` games (2: positions swapped;
    None: as many as the file's fullest row). ``questions`` are question rows or their ids (e.g. the
    keys of the model's answers, :func:`answer_ids`); None checks repeats and games only."""
    rows = list(judgments)
    if games is None:
        games = max((len(r["games"]) for r in rows if isinstance(r.get("games"), list)), default=0)
    ids = (list(dict.fromkeys(r.get("question_id") for r in rows)) if questions is None
           else [q["question_id"] if isinstance(q, Mapping) else q for q in questions])
    return check(rows, ids, path, what="Arena-Hard judgments", key="question_id", unit="questions",
                 complete=lambda r: isinstance(r.get("games"), list) and len(r["games"]) == games)


def arena_judgment_file(path: str | os.PathLike, details: Mapping) -> list:
    """Read an Arena-Hard ``judgments.jsonl`` and check it against the answers it judged (the file
    ``details["answers"]`` of the run's benchmark details names; without one, repeats and games only)."""
    from eval.benchmarks import arena_hard as ah

    return arena_judgments(ah.read_judgments(path), answer_ids(details.get("answers")), path, games=None)


def answer_ids(path: Optional[str | os.PathLike]) -> Optional[list]:
    """The question ids of an Arena-Hard or MT-Bench answer file (FastChat's layout); None without a path."""
    if not path:
        return None
    from eval.benchmarks import read_jsonl, require_file

    return [r.get("question_id") for r in read_jsonl(require_file(path, what="model answers",
                                                                  source="the run that judged them"))]


def mt_answers(answers: Mapping[int, dict] | Sequence[dict], questions: Sequence[dict], path) -> list:
    """An MT-Bench answer file: one per question."""
    return check(answers, [q["question_id"] for q in questions], path, what="MT-Bench answers",
                 key="question_id", unit="questions")


def mt_judgments(judgments: Sequence[dict], questions: Sequence[dict], path, turns: Sequence[int] = (1, 2)) -> list:
    """MT-Bench single-answer judgments: one per question and turn."""
    return check(judgments, [(q["question_id"], t) for q in questions for t in turns], path,
                 what="MT-Bench judgments", key=lambda r: (r.get("question_id"), r.get("turn")),
                 unit="(question, turn) pairs")
