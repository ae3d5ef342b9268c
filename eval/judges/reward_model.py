"""A reward model as a judge: a sequence classifier (``AutoModelForSequenceClassification`` with one
output, e.g. ``sfairXC/FsfairX-LLaMA3-RM-v0.1``) scores each (prompt, response) conversation
rendered with the reward model's own chat template; the benchmarks' judge prompts are answered by
comparing rewards (see :mod:`eval.judges.verdicts`).

- pairwise: the Bradley-Terry reading of the rewards, ``p(first better) = sigmoid(r1 - r2)``, gives
  AlpacaEval's log-probabilities; Arena-Hard's labels use ``tie_margin``/``strong_margin`` on
  ``r1 - r2``; our pairwise prompt the sign.
- single-answer grading (MT-Bench): ``1 + 9 * sigmoid((r - grade_center) / grade_scale)``. The
  reward scale of a reward model is arbitrary, so these grades are comparable between models
  judged by the same reward model, never with GPT-4's MT-Bench scores.

The conversation is rendered with ``tokenizer.apply_chat_template`` (no generation prompt) and
tokenised without adding special tokens again; the reward is the classifier's logit at the last
token (right padding, truncated from the left to ``max_length`` so the response is kept).
"""
from __future__ import annotations

import logging
import math
from typing import Optional

import torch

from distill.progress import Tracker, current_stage

from .verdicts import JudgePrompts, ScoringJudge

log = logging.getLogger(__name__)

DEFAULT_REWARD_MODEL = "sfairXC/FsfairX-LLaMA3-RM-v0.1"


class RewardModelJudge(ScoringJudge):
    """Judge by a reward model's scores.

    Args:
        model: hub id or local path of the reward model (also the judge's name in caches and
            judgments unless ``name`` is given).
        reward_model, tokenizer: an already-built classifier and tokenizer (tests, in-memory models);
            loaded from ``model`` when omitted.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda:0``, ...
        dtype: weights' dtype when loading (``bfloat16``, ``float32``, ...).
    """

    def __init__(self, model: str = DEFAULT_REWARD_MODEL, forms: Optional[JudgePrompts] = None, *,
                 reward_model=None, tokenizer=None, name: Optional[str] = None, device: str = "auto",
                 dtype: str = "bfloat16", batch_size: int = 8, max_length: int = 4096, grade_center: float = 0.0,
                 grade_scale: float = 1.0, strong_margin: float = 1.0, tie_margin: float = 0.0, cache=None):
        super().__init__(forms, strong_margin=strong_margin, tie_margin=tie_margin, cache=cache)
        self.model = name or model
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.grade_center, self.grade_scale = float(grade_center), float(grade_scale)
        if reward_model is None or tokenizer is None:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            reward_model = reward_model or AutoModelForSequenceClassification.from_pretrained(
                model, dtype=getattr(torch, dtype))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.reward_model = reward_model.to(device).eval()
        self.device = device
        self.tokenizer = tokenizer
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.reward_model.config.pad_token_id is None:
            self.reward_model.config.pad_token_id = self.tokenizer.pad_token_id
        if getattr(self.reward_model.config, "num_labels", 1) != 1:
            log.warning("reward model %s has %d outputs; the first is used as the reward", self.model,
                        self.reward_model.config.num_labels)

    def text(self, conversation: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=False)

    @torch.no_grad()
    def rewards(self, conversations: list[list[dict]]) -> list[float]:
        tok = self.tokenizer
        old_side, old_trunc = tok.padding_side, getattr(tok, "truncation_side", "right")
        tok.padding_side, tok.truncation_side = "right", "left"
        out: list[float] = []
        try:
            with Tracker(f"reward model {self.model}", total=len(conversations), stage=current_stage() or "judging",
                         unit="conversations") as bar:
                for i in range(0, len(conversations), self.batch_size):
                    texts = [self.text(c) for c in conversations[i:i + self.batch_size]]
                    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length,
                              add_special_tokens=False).to(self.device)
                    logits = self.reward_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
                    out.extend(logits[:, 0].float().tolist())
                    bar.advance(len(texts))
        finally:
            tok.padding_side, tok.truncation_side = old_side, old_trunc
        return out

    def grade(self, reward: float) -> float:
        z = (reward - self.grade_center) / self.grade_scale
        return round(1.0 + 9.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z)))), 1)

    def first_better_probability(self, r1: float, r2: float) -> float:
        d = max(-60.0, min(60.0, r1 - r2))
        return 1.0 / (1.0 + math.exp(-d))
