"""Benchmarks scored the way their authors score them.

- :mod:`eval.benchmarks.alpaca_eval2` -- AlpacaEval 2 (win rate and length-controlled win rate,
  computed by the ``alpaca_eval`` package itself).
- :mod:`eval.benchmarks.arena_hard` -- Arena-Hard-Auto v0.1 (two games per question, Bradley-Terry
  against the baseline, bootstrap CI).
- :mod:`eval.benchmarks.mt_bench` -- MT-Bench single-answer grading (FastChat ``llm_judge``).

Each module reads the benchmark's own files from a local directory the user configures; the helpers
below give every reader the same error messages: a missing file says which file to put where and
where to get it, a malformed JSON(L) line names the file and the line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from distill.files import atomic_write


class DataFormatError(ValueError):
    """A benchmark file that exists but cannot be read (names the file and, for JSON, the line)."""


def require_file(path: str | os.PathLike, *, what: str, source: str) -> Path:
    """Return ``path`` if it is a file, else raise a FileNotFoundError that says what to put there."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"{what} not found: expected the file {p.name!r} at {p}. "
            f"Put it there (or point the config at its folder); get it from {source}."
        )
    return p


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file; blank lines are skipped, a malformed line raises with its number."""
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{path}, line {lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataFormatError(f"{path}, line {lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _not_utf8(path, lineno: int, e: UnicodeDecodeError, column: int) -> DataFormatError:
    return DataFormatError(f"{path}, line {lineno}: not valid UTF-8 ({e.reason} at byte {column} of the line); "
                           "re-encode the file as UTF-8")


def _decode(raw: bytes, path, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, lineno, e, e.start) from None


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a syntax error (or a byte that is not UTF-8) raises with the file name and line number."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        raise _not_utf8(path, raw.count(b"\n", 0, e.start) + 1, e, e.start - line_start) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from None


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write rows as JSON lines, atomically (a reader never sees half a file)."""
    return atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write one JSON document (indented like the benchmarks' own files), atomically."""
    return atomic_write(path, json.dumps(obj, indent=4, ensure_ascii=False) + "\n")
