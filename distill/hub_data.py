"""The full world's data: the papers' sets read with ``datasets.load_dataset`` and converted, one
function per schema, into the rows the pipeline reads (see :mod:`distill.data`).

Needs hub access; in the toy world nothing here runs. Converters are tested on rows written in each
data set's schema.
"""
from __future__ import annotations

import random
from pathlib import Path

from distill.data import DataError, write_jsonl


def _last_assistant(messages: list[dict], where: str) -> str:
    if not messages or messages[-1].get("role") != "assistant":
        raise DataError(f"{where}: expected the conversation to end with an assistant message")
    return messages[-1]["content"]


def from_messages(row: dict, where: str = "row") -> dict:
    """deita-10k-v0-sft style: ``{"messages": [...]}`` ending with the assistant's answer."""
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: needs a non-empty 'messages' list")
    _last_assistant(msgs, where)
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in msgs]}


def from_chosen_rejected_messages(row: dict, where: str = "row") -> dict:
    """dpo-mix-7k / UltraFeedback-binarized style: ``chosen`` and ``rejected`` are full conversations
    sharing the prompt turns; the pair is (prompt turns, last chosen answer, last rejected answer)."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if not isinstance(chosen, list) or not isinstance(rejected, list):
        raise DataError(f"{where}: 'chosen' and 'rejected' must be message lists")
    prompt = chosen[:-1]
    if prompt != rejected[:-1]:
        raise DataError(f"{where}: chosen and rejected conversations differ before the last answer")
    return {"prompt": prompt, "chosen": _last_assistant(chosen, where), "rejected": _last_assistant(rejected, where)}


def from_prompt(row: dict, where: str = "row") -> dict:
    """Rows with a plain ``prompt`` string (UltraFeedback): a one-turn user prompt."""
    if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
        raise DataError(f"{where}: needs a non-empty 'prompt' string")
    return {"prompt": [{"role": "user", "content": row["prompt"]}]}


CONVERTERS = {"messages": from_messages, "chosen_rejected_messages": from_chosen_rejected_messages,
              "prompt": from_prompt}


def convert(rows, schema: str, name: str) -> list[dict]:
    if schema not in CONVERTERS:
        raise ValueError(f"unknown schema {schema!r} for {name}; choose from {sorted(CONVERTERS)}")
    return [CONVERTERS[schema](r, f"{name} row {i}") for i, r in enumerate(rows)]


def build_hub_data(dc, out: Path) -> None:
    """Download the configured sets and write sft/pairs/prompts/eval (+ validation splits)."""
    from datasets import load_dataset

    rng = random.Random(dc.seed)
    for part, val_name in (("sft", "val_sft"), ("pairs", "val_pairs"), ("prompts", None), ("eval", None)):
        src = dc[part]
        ds = load_dataset(src.path, split=src.split)
        if dc.max_rows:
            ds = ds.select(range(min(dc.max_rows, len(ds))))
        rows = convert(ds, src.schema, f"{src.path}:{src.split}")
        if val_name:
            rng.shuffle(rows)
            n_val = max(1, int(len(rows) * dc.val_fraction))
            write_jsonl(out / f"{val_name}.jsonl", rows[:n_val])
            rows = rows[n_val:]
        write_jsonl(out / f"{part}.jsonl", rows)
