"""Data files, chat-template encoding and batching.

Row schemas (one JSON object per line):
  * instruction data: ``{"messages": [{"role", "content"}, ...]}`` (the last message is the answer)
  * preference pairs: ``{"prompt": [messages], "chosen": str, "rejected": str}``
  * prompts:          ``{"prompt": [messages]}`` (+ ``answer`` in the toy world)
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from distill.files import atomic_write

log = logging.getLogger(__name__)
IGNORE = -100


class DataError(ValueError):
    """A malformed data file; the message names the file and line and the fix."""


REQUIRED = {"sft": ("messages",), "pairs": ("prompt", "chosen", "rejected"), "prompts": ("prompt",)}


def read_jsonl(path: str | os.PathLike, kind: str | None = None) -> list[dict]:
    """Read a JSON-lines file, checking each row against the schema ``kind``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file")
    rows = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                                "re-encode the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno}); "
                                "each line must be one JSON object") from None
            except RecursionError:
                raise DataError(f"{path}:{lineno}: JSON nested too deeply to read ({len(line)} characters); "
                                "each line must be one flat row object") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in REQUIRED.get(kind, ()) if k not in row]
            if missing:
                raise DataError(f"{path}:{lineno}: missing field(s) {missing}; a {kind!r} row needs "
                                f"{list(REQUIRED[kind])}")
            problem = _row_problem(kind, row)
            if problem:
                raise DataError(f"{path}:{lineno}: {problem}; fix or drop the row")
            rows.append(row)
    if kind in REQUIRED and not rows:
        raise DataError(f"{path}: no rows; a {kind!r} file needs at least one row with {list(REQUIRED[kind])}")
    return rows


ROLES = ("system", "user", "assistant")


def _messages_problem(field: str, messages, last: str) -> str | None:
    """``messages`` must be a non-empty list of {role, content} with known roles, non-empty
    contents, and end with a ``last`` turn."""
    if not isinstance(messages, list) or not messages:
        return f"{field!r} must be a non-empty list of {{role, content}} messages, got {type(messages).__name__}"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            return f"{field}[{i}] must be a message {{\"role\": str, \"content\": str}}, got {str(m)[:80]!r}"
        if m["role"] not in ROLES:
            return f"{field}[{i}] has the unknown role {m['role']!r}; roles are {', '.join(ROLES)}"
        if not m["content"].strip():
            return f"{field}[{i}] ({m['role']}) is empty"
    if messages[-1]["role"] != last:
        return (f"{field} ends with a {messages[-1]['role']!r} turn; it must end with the {last}'s "
                + ("answer (the turn the model learns)" if last == "assistant" else "turn (the prompt to answer)"))
    return None


def _row_problem(kind: str | None, row: dict) -> str | None:
    """What is wrong with a row of a known ``kind`` beyond missing fields (types, empty answers)."""
    if kind == "sft":
        problem = _messages_problem("messages", row["messages"], "assistant")
        if problem is None and len(row["messages"]) < 2:
            problem = "'messages' holds only the answer; it needs a user turn before it"
        if problem and problem.startswith(f"messages[{len(row['messages']) - 1}] (assistant) is empty"):
            problem = "the answer (the last message's content) is empty"
        return problem
    if kind in ("pairs", "prompts"):
        problem = _messages_problem("prompt", row["prompt"], "user")
        if problem or kind == "prompts":
            return problem
        for field in ("chosen", "rejected"):
            if not isinstance(row[field], str):
                return f"{field!r} must be a string, got {type(row[field]).__name__}"
        if not row["chosen"].strip():
            return "the chosen response is empty"
    return None


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write rows atomically (temporary file, then rename)."""
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


# ------------------------------------------------------------------------- encoding
def prompt_text(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_prompt(tokenizer, messages: list[dict]) -> list[int]:
    return tokenizer(prompt_text(tokenizer, messages), add_special_tokens=False)["input_ids"]


def encode_response(tokenizer, response: str) -> list[int]:
    """Response tokens followed by the end-of-turn (eos) token."""
    return tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


class Truncation:
    """Cuts a (prompt, response) pair to ``max_length`` tokens and counts the pairs it cut.

    Policy: the response keeps its start and the prompt its end (the latest turn), the prompt
    keeping at least half the budget; every encoder reports the count as a warning."""

    def __init__(self, max_length: int):
        self.max_length, self.count = max_length, 0

    def __call__(self, prompt: list[int], response: list[int]) -> tuple[list[int], list[int]]:
        if len(prompt) + len(response) <= self.max_length:
            return prompt, response
        self.count += 1
        room_for_prompt = max(self.max_length - len(response), self.max_length // 2)
        prompt = prompt[max(0, len(prompt) - room_for_prompt):]
        return prompt, response[: self.max_length - len(prompt)]


def encode_example(tokenizer, messages: list[dict], response: str, trunc: Truncation) -> dict:
    """One sequence: ``input_ids`` = prompt + response + eos; ``labels`` = IGNORE on the prompt."""
    p, r = trunc(encode_prompt(tokenizer, messages), encode_response(tokenizer, response))
    return {"input_ids": p + r, "labels": [IGNORE] * len(p) + r}


def encode_sft(tokenizer, rows: list[dict], max_length: int) -> list[dict]:
    trunc = Truncation(max_length)
    out = [{"seqs": [encode_example(tokenizer, r["messages"][:-1], r["messages"][-1]["content"], trunc)]}
           for r in rows]
    _report(trunc, len(rows))
    return out


def encode_pairs(tokenizer, rows: list[dict], max_length: int) -> list[dict]:
    """Each item holds two sequences: the chosen, then the rejected response."""
    trunc = Truncation(max_length)
    out = [{"seqs": [encode_example(tokenizer, r["prompt"], r["chosen"], trunc),
                     encode_example(tokenizer, r["prompt"], r["rejected"], trunc)]} for r in rows]
    _report(trunc, 2 * len(rows))
    return out


def _report(trunc: Truncation, n: int) -> None:
    if trunc.count:
        log.warning("truncated %d of %d sequences to max_length=%d", trunc.count, n, trunc.max_length)


# ------------------------------------------------------------------------- batching
def pad(seqs: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            if left:
                out[i, width - len(s):] = torch.tensor(s)
            else:
                out[i, : len(s)] = torch.tensor(s)
    return out


def n_response_tokens(seq: dict) -> int:
    return sum(1 for t in seq["labels"][1:] if t != IGNORE)


def to_device(batch: dict, device) -> dict:
    """``batch``'s tensors on ``device``: a frozen model's forward passes outside the trainer run
    where that model is (CUDA when present, see :func:`distill.models.inference_device`)."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def scatter_rows(mask: torch.Tensor, rows: list[np.ndarray], fill: float, dtype) -> torch.Tensor:
    """Place per-sequence row blocks ``[n_b, *rest]`` at the response positions of a ``[B, T]`` mask
    -> ``[B, T, *rest]`` (``[B, T, k]`` for top-k rows, ``[B, T]`` for one value per token)."""
    out = torch.full((*mask.shape, *rows[0].shape[1:]), fill, dtype=dtype)
    flat = torch.from_numpy(np.concatenate(rows).astype(np.float32 if dtype.is_floating_point else np.int64))
    if int(mask.sum()) != flat.shape[0]:
        raise RuntimeError(f"teacher cache has {flat.shape[0]} rows for {int(mask.sum())} response tokens: "
                           "the cache was built for another encoding (max_length or template changed)")
    out[mask] = flat.to(dtype)
    return out


class Collator:
    """Batches items of the form ``{"seqs": [seq, ...], **fields}`` with the same number ``m`` of
    sequences per item. Sequences are stacked group-major (every item's first sequence, then every
    item's second, ...; for pairs: chosen then rejected) and right-padded to one width, so one
    forward pass covers them. Per-sequence arrays beside ``input_ids``/``labels`` (teacher-cache
    rows, one per response token) become ``[m·B, T-1, k]`` tensors aligned with the shifted labels;
    other item fields become tensors of length B.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[dict]) -> dict:
        m = len(items[0]["seqs"])
        seqs = [it["seqs"][g] for g in range(m) for it in items]
        ids = [s["input_ids"] for s in seqs]
        batch = {"input_ids": pad(ids, self.pad_id), "labels": pad([s["labels"] for s in seqs], IGNORE),
                 "attention_mask": pad([[1] * len(x) for x in ids], 0)}
        mask = batch["labels"][:, 1:] != IGNORE
        for key in sorted({k for s in seqs for k in s} - {"input_ids", "labels"}):
            ref = next(s[key] for s in seqs if key in s)
            rows = [s[key] if key in s else np.zeros((n_response_tokens(s), *ref.shape[1:]), ref.dtype) for s in seqs]
            batch[key] = scatter_rows(mask, rows, 0, torch.long if ref.dtype.kind in "iu" else torch.float32)
        for key in items[0]:
            if key != "seqs":
                batch[key] = torch.tensor(np.asarray([it[key] for it in items]))
        return batch
