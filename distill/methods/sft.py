"""Supervised fine-tuning: token-level NLL of the response (how π_ref and π_sft are made)."""
from __future__ import annotations

from distill.losses.common import masked_mean_nll
from distill.methods.base import MethodModule, response_logits


class SFTModule(MethodModule):
    def model_step(self, batch):
        logits, labels, mask, _ = response_logits(self.model, batch["input_ids"], batch["attention_mask"],
                                              batch["labels"])
        return masked_mean_nll(logits, labels, mask), {}
