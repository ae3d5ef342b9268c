"""DPO (Rafailov et al., 2023): the baseline, and how the aligned teacher π_dpo is made.

The batch holds chosen then rejected sequences (2B rows) and the frozen start model's sequence
log-probabilities ``ref_chosen_logps``/``ref_rejected_logps``, computed once before training.
"""
from __future__ import annotations

from distill.losses.common import sequence_logps
from distill.losses.dpo import dpo_loss
from distill.methods.base import MethodModule, response_logits


class DPOModule(MethodModule):
    def __init__(self, model, optimizer, scheduler=None, beta: float = 0.1):
        super().__init__(model, optimizer, scheduler)
        if beta <= 0:
            raise ValueError(f"method.beta must be > 0 (DPO's KL strength), got {beta}")
        self.beta = beta

    def model_step(self, batch):
        logits, labels, mask, _ = response_logits(self.model, batch["input_ids"], batch["attention_mask"],
                                              batch["labels"])
        logps = sequence_logps(logits, labels, mask)
        b = logps.shape[0] // 2
        return dpo_loss(logps[:b], logps[b:], batch["ref_chosen_logps"], batch["ref_rejected_logps"], self.beta)
