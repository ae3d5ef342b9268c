"""DPO (Rafailov et al., 2023): the baseline, and how the aligned teacher π_dpo is made.

The batch holds chosen then rejected sequences (2B rows) and the frozen start model's sequence
log-probabilities ``ref_chosen_logps``/``ref_rejected_logps``, computed once before training.
"""
from __future__ import annotations

from dataclasses import dataclass

from distill.losses.common import sequence_logps
from distill.losses.dpo import dpo_loss
from distill.methods.base import MethodModule, response_logits
from distill.methods.plugin import Method, hp, stage_with


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


# ----------------------------------------------------------------------------- the plugin
@dataclass
class DPOConfig:
    """``conf/method/dpo.yaml``: DPO of the SFT student on the preference pairs."""

    # β: strength of the implicit KL to the start model (papers: 0.01–0.5; default 0.1)
    beta: float = hp(0.1, "β", "strength of DPO's implicit KL", lo=0.0, lo_open=True, why="DPO's KL strength")


class DPO(Method):
    names = ("dpo",)
    labels = {"dpo": "DPO"}
    order = 10
    config = DPOConfig
    baseline = True
    paper = "Rafailov et al., NeurIPS 2023"

    def plan(self, m):
        return {"seqs": 2, "rows": "pairs", "reference_pass": True, "online": ()}

    def recipe(self, pipe, m, inputs, stage_cfg, out, work, logger=None):
        """DPO of the SFT student (also the frozen reference) on the preference pairs, β = ``method.beta``."""
        pipe.train_dpo(pipe.sft("student").path / "model", stage_with(stage_cfg, beta=m.beta), out, work, logger)

    def example_items(self, b, prompt, response, vocab, k, n_keep, rng, gen):
        from distill.methods.examples import seq

        return [{"seqs": [seq(rng, prompt, response, vocab), seq(rng, prompt, response, vocab)],
                 "ref_chosen_logps": float(-response * 3), "ref_rejected_logps": float(-response * 4)}
                for _ in range(b)]

    def bench_module(self, model, optimizer, name=None):
        return DPOModule(model, optimizer, beta=DPOConfig.beta)


METHOD = DPO()
