"""ADPA — Advantage-Guided Distillation for Preference Alignment (Gao et al., ICLR 2025, §3.2).

Batch: the chosen responses y_w (first B rows, for the NLL term) and the student's own greedy
responses ŷ (last B rows) with the cached top-k ids of π_dpo and the log-probabilities of π_dpo and
π_ref at those ids (``t_ids``, ``t_logps``, ``t_ref_logps``).
"""
from __future__ import annotations

from dataclasses import dataclass

from distill import data as D
from distill.losses.adpa import adpa_loss
from distill.methods.base import MethodModule, at_positions, response_logits
from distill.methods.plugin import TEACHER_SIGN, Method, attach_cache_rows, hp, load_student, teacher_signal


class ADPAModule(MethodModule):
    def __init__(self, model, optimizer, scheduler=None, gamma: float = 0.1, advantage_clamp: bool = False,
                 sign: int = 1):
        super().__init__(model, optimizer, scheduler)
        if gamma < 0:
            raise ValueError(f"method.gamma (ADPA's advantage weight) must be >= 0, got {gamma}")
        self.gamma, self.advantage_clamp, self.sign = gamma, advantage_clamp, sign

    def model_step(self, batch):
        logits, labels, mask, pos = response_logits(self.model, batch["input_ids"], batch["attention_mask"],
                                                    batch["labels"])
        b = logits.shape[0] // 2
        pos = pos[b:]
        return adpa_loss(logits[:b], labels[:b], mask[:b], logits[b:], mask[b:], at_positions(batch["t_ids"][b:], pos),
                         at_positions(batch["t_logps"][b:], pos), at_positions(batch["t_ref_logps"][b:], pos),
                         self.gamma, self.advantage_clamp, self.sign)


# ----------------------------------------------------------------------------- the plugin
@dataclass
class ADPAConfig:
    """``conf/method/adpa.yaml``:
    NLL(y_w) − γ·(1/|ŷ|) Σ_t Σ_a π_θ(a|ŝ_t)·(log π_dpo − log π_ref)(a|ŝ_t)."""

    # γ: weight of the advantage term (the reference code's adpa_weight; swept in the paper's Fig. 5;
    # toy-world sweep in conf/method/adpa.yaml)
    gamma: float = hp(0.1, "γ", "ADPA advantage weight", lo=0.0, why="ADPA's advantage weight; 0 is SFT on y_w")
    # k: π_dpo's top-k tokens the advantage is summed over (reference code: 50; toy world 5)
    top_k: int = hp(50, "k", "teacher top-k", unit="tokens", lo=1, kind="integer",
                    why="teacher tokens cached per position")
    # clamp the advantage to [1e-8, 1 − 1e-8] as the reference code does (probably unintended; off)
    advantage_clamp: bool = hp(False, "clamp", "advantage clamped to (0, 1)", unit="true/false", kind="bool")
    # ablation (experiment=teacher_ablation): none = the advantage term dropped (γ = 0), flipped = −A
    teacher_signal: str = teacher_signal()


class ADPA(Method):
    names = ("adpa",)
    labels = {"adpa": "ADPA"}
    order = 30
    config = ADPAConfig
    token_level = True
    paper = "Gao et al., ICLR 2025, §3.2"
    bench_target = "token"

    def start(self, pipe, m):
        """The model ADPA starts from and whose greedy answers ŷ it trains on: the SFT student."""
        return pipe.sft("student")

    def inputs(self, pipe, m):
        """ŷ, the start model's greedy answers to the pairs' prompts, and π_dpo's top-k with π_ref's
        log-probabilities at those ids over ŷ."""
        start = self.start(pipe, m)
        samples = pipe.samples(start, "pairs", {"greedy": True})
        cache = pipe.topk_cache([pipe.dpo_teacher(), pipe.ref_teacher()], samples, m.top_k)
        return {"start": start, "samples": samples, "cache": cache}

    def recipe(self, pipe, m, inputs, stage_cfg, out, work, logger=None):
        from distill.cache import TopKCache

        model, tok = load_student(pipe, inputs["start"], m.name, same_vocabulary=True)
        rows = pipe.rows("pairs", "pairs")
        hats = D.read_jsonl(inputs["samples"].path / "samples.jsonl")
        cache = TopKCache(inputs["cache"].path)
        chosen = D.encode_pairs(tok, rows, pipe.cfg.stages.max_length)
        hat_seqs = pipe.encode_samples(tok, hats)
        train = [{"seqs": [it["seqs"][0], attach_cache_rows(hat_seqs[i][0], cache[i])]} for i, it in enumerate(chosen)]
        opt, sched = pipe.optimizers(stage_cfg)
        module = ADPAModule(model, opt, sched, gamma=m.gamma, advantage_clamp=m.advantage_clamp,
                            sign=TEACHER_SIGN[m.teacher_signal])
        pipe.fit(module, train, stage_cfg, out, work, logger, tok)

    def example_items(self, b, prompt, response, vocab, k, n_keep, rng, gen):
        from distill.methods.examples import seq, topk_rows

        return [{"seqs": [seq(rng, prompt, response, vocab),
                          {**seq(rng, prompt, response, vocab), **topk_rows(gen, response, vocab, k, True)}]}
                for _ in range(b)]

    def bench_module(self, model, optimizer, name=None):
        return ADPAModule(model, optimizer, gamma=1.0)


METHOD = ADPA()
