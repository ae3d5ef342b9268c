"""DCKD — Dual-Constrained Knowledge Distillation (Gao et al., ICLR 2025, §3.1).

Batch: chosen then rejected sequences (2B rows) with the aligned teacher's cached top-k
(``t_ids``/``t_logps``) and log remaining mass (``t_rest``) at every response token; the teacher
never runs here. Row i and row B + i are pair i's chosen and rejected responses, each with its own
teacher rows.
"""
from __future__ import annotations

from distill.losses.dckd import dckd_loss
from distill.methods.base import MethodModule, at_positions, response_logits


class DCKDModule(MethodModule):
    def __init__(self, model, optimizer, scheduler=None, alpha: float = 0.1):
        super().__init__(model, optimizer, scheduler)
        if alpha < 0:
            raise ValueError(f"method.alpha (DCKD's KL weight) must be >= 0, got {alpha}")
        self.alpha = alpha

    def model_step(self, batch):
        logits, labels, mask, pos = response_logits(self.model, batch["input_ids"], batch["attention_mask"],
                                                    batch["labels"])
        b = logits.shape[0] // 2
        ids, lps, rest = (at_positions(batch[k], pos) for k in ("t_ids", "t_logps", "t_rest"))
        return dckd_loss(logits[:b], labels[:b], mask[:b], ids[:b], lps[:b], rest[:b],
                         logits[b:], mask[b:], ids[b:], lps[b:], rest[b:], self.alpha)
