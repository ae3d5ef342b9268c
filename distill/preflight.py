"""Checks run before anything is trained in ``world=full`` (and its rehearsal): what would otherwise
fail only after hours of training.

- what the evaluation step reports (``eval.step``: the benchmarks' files in ``eval.<benchmark>.data_dir``,
  downloaded now when missing and allowed, and the local task folder of an Open LLM preset);
- each model's tokenizer (``model.<role>.hub_id``): it loads, has a chat template, and the template
  renders a user/assistant/user conversation;
- the data sets (``data.{sft,pairs,prompts,eval}``): the data stage is built now, so a missing data
  set, an unknown split or a schema that does not match fails here, naming the key and the fix.

The judge's key is checked earlier, with the rest of the config (:mod:`distill.validate`).
"""
from __future__ import annotations

import logging
from typing import Sequence

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

SAMPLE = [{"role": "user", "content": "Hello."}, {"role": "assistant", "content": "Hi."},
          {"role": "user", "content": "How are you?"}]


class PreflightError(RuntimeError):
    """Something a full-world run needs is missing or unusable; raised before any training."""


def tokenizer_problems(cfg, pipe) -> list[str]:
    out = []
    for role in ("teacher", "student"):
        hub_id = OmegaConf.select(cfg, f"model.{role}.hub_id")
        try:
            tok = pipe.tokenizer(role)
        except OSError as e:
            out.append(str(e))
            continue
        fix = (f"use an instruction-tuned checkpoint, or give it one: model.{role}.chat_template=<Jinja template "
               "or one of gemma, llama3, chatml, mistral> (model.chat_template for both roles)")
        if not getattr(tok, "chat_template", None):
            out.append(f"model.{role}.hub_id={hub_id}: its tokenizer has no chat template, which every stage "
                       f"needs to turn conversations into tokens; {fix}")
            continue
        try:
            tok.apply_chat_template(SAMPLE, tokenize=False, add_generation_prompt=True)
        except Exception as e:  # noqa: BLE001 - a Jinja error or raise_exception in the template
            out.append(f"model.{role}.hub_id={hub_id}: its chat template fails on a user/assistant/user conversation "
                       f"({type(e).__name__}: {e}); {fix}")
        if tok.eos_token_id is None:
            out.append(f"model.{role}.hub_id={hub_id}: its tokenizer has no eos token (answers would never end); "
                       "set one in its tokenizer_config.json")
    return out


def check_full_world(cfg, pipe, evaluation_problems: Sequence[str] = ()) -> None:
    """Raise :class:`PreflightError` listing every problem (``evaluation_problems``: the evaluation
    step's, e.g. missing benchmark files, see ``eval.suite.benchmark_problems``); then build the data
    stage (its errors name the data set, the split and the fix)."""
    problems = list(evaluation_problems) + tokenizer_problems(cfg, pipe)
    if problems:
        head = "world=%s cannot finish; fix this before training:" % cfg.world.name
        raise PreflightError(head + "\n  - " + "\n  - ".join(problems))
    pipe.data()
    log.info("preflight: benchmark files, tokenizers, chat templates and data sets are in order")
