"""The full world's data: the papers' sets read with ``datasets.load_dataset`` and converted, one
function per schema, into the rows the pipeline reads (see :mod:`distill.data`).

Reads hub data sets (hub access) or local folders in the hub's layout (``data.<part>.path``); in the
toy world nothing here runs. Converters are tested on rows written in each data set's schema.
"""
from __future__ import annotations

import random
from pathlib import Path

from distill.data import DataError, write_jsonl


class MissingFieldError(DataError):
    """A data set row without a field its schema needs (named by :func:`convert` with the data set,
    row, field, schema and fix)."""

    def __init__(self, where: str, field: str, found, message: str | None = None):
        self.where, self.field = where, field
        self.found = sorted(found) if isinstance(found, dict) else f"a {type(found).__name__}, not an object"
        super().__init__(message or f"{where}: missing field {field!r} (it has: {self.found})")


def _field(obj, name: str, where: str, path: str, kind: type):
    """``obj[name]`` checked present and of ``kind``; a missing or mistyped field is a MissingFieldError."""
    if not isinstance(obj, dict) or name not in obj or obj[name] is None:
        raise MissingFieldError(where, path, obj if isinstance(obj, dict) else obj)
    if not isinstance(obj[name], kind):
        raise DataError(f"{where}: field {path!r} is a {type(obj[name]).__name__}, expected a {kind.__name__}")
    return obj[name]


def _messages(row: dict, name: str, where: str) -> list[dict]:
    """A non-empty list of ``{role, content}`` strings in ``row[name]``, every field checked first."""
    msgs = _field(row, name, where, name, list)
    if not msgs:
        raise DataError(f"{where}: field {name!r} is an empty list; it needs the conversation's messages")
    for j, m in enumerate(msgs):
        for key in ("role", "content"):
            _field(m, key, where, f"{name}[{j}].{key}", str)
    return msgs


def _last_assistant(messages: list[dict], where: str) -> str:
    if not messages or messages[-1].get("role") != "assistant":
        raise DataError(f"{where}: expected the conversation to end with an assistant message")
    return messages[-1]["content"]


def from_messages(row: dict, where: str = "row") -> dict:
    """deita-10k-v0-sft style: ``{"messages": [...]}`` ending with the assistant's answer."""
    msgs = _messages(row, "messages", where)
    _last_assistant(msgs, where)
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in msgs]}


def from_chosen_rejected_messages(row: dict, where: str = "row") -> dict:
    """dpo-mix-7k / UltraFeedback-binarized style: ``chosen`` and ``rejected`` are full conversations
    sharing the prompt turns; the pair is (prompt turns, last chosen answer, last rejected answer)."""
    chosen, rejected = _messages(row, "chosen", where), _messages(row, "rejected", where)
    prompt = chosen[:-1]
    if prompt != rejected[:-1]:
        raise DataError(f"{where}: chosen and rejected conversations differ before the last answer")
    return {"prompt": prompt, "chosen": _last_assistant(chosen, where), "rejected": _last_assistant(rejected, where)}


def from_prompt(row: dict, where: str = "row") -> dict:
    """Rows with a plain ``prompt`` string (UltraFeedback): a one-turn user prompt."""
    if not _field(row, "prompt", where, "prompt", str).strip():
        raise DataError(f"{where}: needs a non-empty 'prompt' string")
    return {"prompt": [{"role": "user", "content": row["prompt"]}]}


CONVERTERS = {"messages": from_messages, "chosen_rejected_messages": from_chosen_rejected_messages,
              "prompt": from_prompt}


SCHEMA_HELP = {"messages": "a 'messages' list of {role, content} ending with the assistant's answer "
                            "(HuggingFaceH4/deita-10k-v0-sft)",
               "chosen_rejected_messages": "'chosen' and 'rejected' conversations sharing their prompt turns "
                                           "(argilla/dpo-mix-7k, HuggingFaceH4/ultrafeedback_binarized)",
               "prompt": "a 'prompt' string (HuggingFaceH4/ultrafeedback_binarized)"}


def convert(rows, schema: str, name: str, key: str | None = None) -> list[dict]:
    """Rows of a data set in ``schema`` converted to the pipeline's rows. ``key`` (e.g.
    ``data.sft``) names the config entry in errors."""
    where = key or "data.<part>"
    if schema not in CONVERTERS:
        raise DataError(f"{where}.schema={schema!r} for {name}: unknown schema; choose from {sorted(CONVERTERS)}")
    try:
        return [CONVERTERS[schema](r, f"{name} row {i + 1} (index {i})") for i, r in enumerate(rows)]
    except DataError as e:
        columns = list(getattr(rows, "column_names", None) or (rows[0].keys() if len(rows) else []))
        if isinstance(e, MissingFieldError):
            raise MissingFieldError(e.where, e.field, {}, message=(
                f"{where}: {e.where}: missing field {e.field!r} (it has: {e.found}; the data set's columns: "
                f"{columns}). {where}.schema={schema} expects {SCHEMA_HELP[schema]}; fix: set {where}.schema to the "
                f"one that fits ({sorted(CONVERTERS)}), point {where}.path at a data set in that schema, or repair "
                f"or drop that row")) from None
        raise DataError(f"{where}: {e} (its columns: {columns}). {where}.schema={schema} expects "
                        f"{SCHEMA_HELP[schema]}; set {where}.schema to the one that fits ({sorted(CONVERTERS)}) or "
                        f"point {where}.path at a data set in that schema") from None


def load_split(src, key: str):
    """``datasets.load_dataset(src.path, split=src.split)`` with errors that name ``key`` and the fix."""
    from datasets import load_dataset

    try:
        return load_dataset(src.path, split=src.split)
    except ValueError as e:
        if "split" in str(e).lower():
            raise DataError(f"{key}.split={src.split}: {src.path} has no such split ({str(e).splitlines()[0]}); "
                            f"set {key}.split to one of its splits") from None
        raise DataError(f"{key}.path={src.path}: cannot be read ({type(e).__name__}: {str(e).splitlines()[0]}); "
                        f"set {key}.path to a hub data set or a local folder") from None
    except (FileNotFoundError, ConnectionError, OSError) as e:
        raise DataError(f"{key}.path={src.path}: not found ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                        f"set {key}.path to a hub data set (with hub access) or a local folder holding it") from None


def build_hub_data(dc, out: Path) -> None:
    """Read the configured sets and write sft/pairs/prompts/eval (+ validation splits)."""
    rng = random.Random(dc.seed)
    for part, val_name in (("sft", "val_sft"), ("pairs", "val_pairs"), ("prompts", None), ("eval", None)):
        src = dc[part]
        ds = load_split(src, f"data.{part}")
        if dc.max_rows:
            ds = ds.select(range(min(dc.max_rows, len(ds))))
        rows = convert(ds, src.schema, f"{src.path}:{src.split}", f"data.{part}")
        if val_name:
            rng.shuffle(rows)
            n_val = max(1, int(len(rows) * dc.val_fraction))
            write_jsonl(out / f"{val_name}.jsonl", rows[:n_val])
            rows = rows[n_val:]
        write_jsonl(out / f"{part}.jsonl", rows)
