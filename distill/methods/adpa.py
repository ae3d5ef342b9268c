"""ADPA — Advantage-Guided Distillation for Preference Alignment (Gao et al., ICLR 2025, §3.2).

Batch: the chosen responses y_w (first B rows, for the NLL term) and the student's own greedy
responses ŷ (last B rows) with the cached top-k ids of π_dpo and the log-probabilities of π_dpo and
π_ref at those ids (``t_ids``, ``t_logps``, ``t_ref_logps``).
"""
from __future__ import annotations

from distill.losses.adpa import adpa_loss
from distill.methods.base import MethodModule, at_positions, response_logits


class ADPAModule(MethodModule):
    def __init__(self, model, optimizer, scheduler=None, gamma: float = 0.1, advantage_clamp: bool = False):
        super().__init__(model, optimizer, scheduler)
        if gamma < 0:
            raise ValueError(f"method.gamma (ADPA's advantage weight) must be >= 0, got {gamma}")
        self.gamma, self.advantage_clamp = gamma, advantage_clamp

    def model_step(self, batch):
        logits, labels, mask, pos = response_logits(self.model, batch["input_ids"], batch["attention_mask"],
                                                    batch["labels"])
        b = logits.shape[0] // 2
        pos = pos[b:]
        return adpa_loss(logits[:b], labels[:b], mask[:b], logits[b:], mask[b:], at_positions(batch["t_ids"][b:], pos),
                         at_positions(batch["t_logps"][b:], pos), at_positions(batch["t_ref_logps"][b:], pos),
                         self.gamma, self.advantage_clamp)
