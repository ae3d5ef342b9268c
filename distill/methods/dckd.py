"""DCKD — Dual-Constrained Knowledge Distillation (Gao et al., ICLR 2025, §3.1).

Batch: chosen then rejected sequences (2B rows) with the aligned teacher's cached top-k
(``t_ids``/``t_logps``) and log remaining mass (``t_rest``) at every response token; the teacher
never runs here. Row i and row B + i are pair i's chosen and rejected responses, each with its own
teacher rows.
"""
from __future__ import annotations

from dataclasses import dataclass

from distill import data as D
from distill.losses.dckd import dckd_loss
from distill.methods.base import MethodModule, at_positions, response_logits
from distill.methods.plugin import TEACHER_SIGN, Method, attach_cache_rows, hp, load_student, teacher_signal


class DCKDModule(MethodModule):
    def __init__(self, model, optimizer, scheduler=None, alpha: float = 0.1, sign: int = 1):
        super().__init__(model, optimizer, scheduler)
        if alpha < 0:
            raise ValueError(f"method.alpha (DCKD's KL weight) must be >= 0, got {alpha}")
        self.alpha, self.sign = alpha, sign

    def model_step(self, batch):
        logits, labels, mask, pos = response_logits(self.model, batch["input_ids"], batch["attention_mask"],
                                                    batch["labels"])
        b = logits.shape[0] // 2
        ids, lps, rest = (at_positions(batch[k], pos) for k in ("t_ids", "t_logps", "t_rest"))
        return dckd_loss(logits[:b], labels[:b], mask[:b], ids[:b], lps[:b], rest[:b],
                         logits[b:], mask[b:], ids[b:], lps[b:], rest[b:], self.alpha, self.sign)


# ----------------------------------------------------------------------------- the plugin
@dataclass
class DCKDConfig:
    """``conf/method/dckd.yaml``: NLL(y_w) + α·(KL(π_dpo‖π_θ) on y_w + KL(π_dpo‖π_θ) on y_l)."""

    # α: weight of the two forward-KL terms (reference code: 0.1; the paper sweeps it, Fig. 5)
    alpha: float = hp(0.1, "α", "DCKD KL weight", lo=0.0, why="DCKD's KL weight; 0 turns the KL terms off")
    # k: teacher top-k tokens cached per position, + one bin for the remaining mass (reference code: 50)
    top_k: int = hp(50, "k", "teacher top-k", unit="tokens", lo=1, kind="integer",
                    why="teacher tokens cached per position")
    # ablation (experiment=teacher_ablation): none = α·KL dropped (NLL on y_w), flipped = NLL − α·KL
    teacher_signal: str = teacher_signal()


class DCKD(Method):
    names = ("dckd",)
    labels = {"dckd": "DCKD"}
    order = 20
    config = DCKDConfig
    token_level = True
    paper = "Gao et al., ICLR 2025 (ADPA paper), §3.1"
    bench_target = "token"

    def inputs(self, pipe, m):
        """π_dpo's top-k over the chosen and rejected responses of the pairs."""
        return {"cache": pipe.topk_cache([pipe.dpo_teacher()], "pairs", m.top_k)}

    def recipe(self, pipe, m, inputs, stage_cfg, out, work, logger=None):
        from distill.cache import TopKCache

        model, tok = load_student(pipe, pipe.sft("student"), "dckd", same_vocabulary=True)
        pairs = D.encode_pairs(tok, pipe.rows("pairs", "pairs"), pipe.cfg.stages.max_length)
        cache = TopKCache(inputs["cache"].path)
        train = [{"seqs": [attach_cache_rows(it["seqs"][0], cache[2 * i]),
                           attach_cache_rows(it["seqs"][1], cache[2 * i + 1])]} for i, it in enumerate(pairs)]
        opt, sched = pipe.optimizers(stage_cfg)
        pipe.fit(DCKDModule(model, opt, sched, alpha=m.alpha, sign=TEACHER_SIGN[m.teacher_signal]), train, stage_cfg, out, work, logger, tok)

    def example_items(self, b, prompt, response, vocab, k, n_keep, rng, gen):
        from distill.methods.examples import seq, topk_rows

        return [{"seqs": [{**seq(rng, prompt, response, vocab), **topk_rows(gen, response, vocab, k, False)}
                          for _ in range(2)]} for _ in range(b)]

    def bench_module(self, model, optimizer, name=None):
        return DCKDModule(model, optimizer, alpha=DCKDConfig.alpha)


METHOD = DCKD()
