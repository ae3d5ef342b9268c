"""PAD — Preference-Aligned Distillation (Li et al., 2025, §3).

Batch: B prompts × n responses, stacked response-major (n·B rows: every prompt's first response,
then every prompt's second, ...), and ``teacher_scores`` [B, n], the teacher's length-normalised
log-likelihoods computed once (with the teacher's own tokenizer), calibrated by its MCQ answers when
``method.calibration_lambda > 0`` (``distill.recipes.pad``). The student's scores are its own
length-normalised log-likelihoods, with gradients; row j·B + b is prompt b's response j, hence
``.view(n, b).T``.
"""
from __future__ import annotations

from typing import Callable

from distill.losses.common import sequence_logps
from distill.losses.pad import intrinsic_reward
from distill.methods.base import MethodModule, response_logits


class PADModule(MethodModule):
    def __init__(self, model, optimizer, scheduler=None, loss_fn: Callable | None = None):
        super().__init__(model, optimizer, scheduler)
        if loss_fn is None:
            raise ValueError("PADModule needs loss_fn (method.loss: lppd_loss or lvpd_loss)")
        self.loss_fn = loss_fn

    def model_step(self, batch):
        logits, labels, mask, _ = response_logits(self.model, batch["input_ids"], batch["attention_mask"],
                                                  batch["labels"])
        teacher = batch["teacher_scores"].float()
        b, n = teacher.shape
        scores = intrinsic_reward(sequence_logps(logits, labels, mask), mask.sum(-1)).view(n, b).T
        return self.loss_fn(scores, teacher)
