"""SimPO (Meng, Xia, Chen, NeurIPS 2024): reference-free preference optimisation of the SFT student.

Batch: chosen then rejected sequences of the preference pairs (2B rows: row i and row B + i are pair
i's responses). The reward of a response is the student's own length-normalised log-likelihood
times β; no reference model and no teacher is read, so the only artifacts are the data and the SFT
student it starts from (the PAD paper's strongest baseline: AlpacaEval 2 LC 44.94 on Gemma-2,
between DPO's 43.77 and PAD's 45.73).
"""
from __future__ import annotations

from dataclasses import dataclass

from distill import data as D
from distill.losses.common import sequence_logps
from distill.losses.simpo import simpo_loss
from distill.methods.base import MethodModule, response_logits
from distill.methods.plugin import Method, hp, load_student


class SimPOModule(MethodModule):
    def __init__(self, model, optimizer, scheduler=None, beta: float = 10.0, gamma: float = 5.0):
        super().__init__(model, optimizer, scheduler)
        if not beta > 0:
            raise ValueError(f"method.beta must be > 0 (SimPO's reward scale), got {beta}")
        if not gamma >= 0:
            raise ValueError(f"method.gamma must be >= 0 (SimPO's target reward margin), got {gamma}")
        self.beta, self.gamma = beta, gamma

    def model_step(self, batch):
        logits, labels, mask, _ = response_logits(self.model, batch["input_ids"], batch["attention_mask"],
                                                  batch["labels"])
        logps = sequence_logps(logits, labels, mask)
        lengths = mask.sum(-1)
        b = logps.shape[0] // 2
        return simpo_loss(logps[:b], logps[b:], lengths[:b], lengths[b:], self.beta, self.gamma)


# ----------------------------------------------------------------------------- the plugin
@dataclass
class SimPOConfig:
    """``conf/method/simpo.yaml``: −log σ(β/|y_w|·log π_θ(y_w|x) − β/|y_l|·log π_θ(y_l|x) − γ).

    Defaults: the released configuration for Gemma-2-9B-it (princeton-nlp/SimPO,
    ``training_configs/gemma-2-9b-it-simpo.yaml``: beta 10, gamma_beta_ratio 0.5, learning rate 8e-7),
    i.e. β = 10 and γ = 0.5·β = 5; the toy world uses the same values (its learning rate is
    ``stages.distill.lr``, as for every method)."""

    # β: scale of the length-normalised reward (paper: 2.0–10; Gemma-2-9B-it release: 10)
    beta: float = hp(10.0, "β", "SimPO reward scale", lo=0.0, lo_open=True, why="SimPO's reward scale")
    # γ: target reward margin (Gemma-2-9B-it release: gamma_beta_ratio 0.5, so γ = 0.5·β = 5)
    gamma: float = hp(5.0, "γ", "SimPO target margin", lo=0.0, why="SimPO's target reward margin; 0 removes it")


class SimPO(Method):
    names = ("simpo",)
    labels = {"simpo": "SimPO"}
    order = 60
    config = SimPOConfig
    paper = "Meng, Xia, Chen, NeurIPS 2024"
    bench_target = None

    def recipe(self, pipe, m, inputs, stage_cfg, out, work, logger=None):
        """SimPO of the SFT student on the preference pairs (no reference model, no teacher)."""
        model, tok = load_student(pipe, pipe.sft("student"), m.name)
        train = D.encode_pairs(tok, pipe.rows("pairs", "pairs"), pipe.cfg.stages.max_length)
        opt, sched = pipe.optimizers(stage_cfg)
        pipe.fit(SimPOModule(model, opt, sched, beta=m.beta, gamma=m.gamma), train, stage_cfg, out, work, logger, tok)

    def example_items(self, b, prompt, response, vocab, k, n_keep, rng, gen):
        from distill.methods.examples import seq

        return [{"seqs": [seq(rng, prompt, response, vocab), seq(rng, prompt, response, vocab)]} for _ in range(b)]

    def bench_module(self, model, optimizer, name=None):
        return SimPOModule(model, optimizer, beta=SimPOConfig.beta, gamma=SimPOConfig.gamma)


METHOD = SimPO()
