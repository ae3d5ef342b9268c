"""PAD — Preference-Aligned Distillation (Li et al., 2025, §3).

Batch: B prompts × n responses, stacked response-major (n·B rows: every prompt's first response,
then every prompt's second, ...), and ``teacher_scores`` [B, n], the teacher's length-normalised
log-likelihoods computed once (with the teacher's own tokenizer), calibrated by its MCQ answers when
``method.calibration_lambda > 0`` (:meth:`PAD.recipe`). The student's scores are its own
length-normalised log-likelihoods, with gradients; row j·B + b is prompt b's response j, hence
``.view(n, b).T``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

from distill import data as D
from distill.losses.common import sequence_logps
from distill.losses.pad import intrinsic_reward
from distill.methods.base import MethodModule, response_logits
from distill.methods.plugin import TEACHER_SIGNAL, Method, hp, load_student, teacher_signal

log = logging.getLogger(__name__)


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


# ----------------------------------------------------------------------------- the plugin
@dataclass
class PADConfig:
    """``conf/method/pad_lppd.yaml`` (``pad_lvpd``, ``pad``): the student's preference distribution over
    its own diverse samples matched to the teacher's (Plackett–Luce over length-normalised scores)."""

    # β: Plackett–Luce scale (reference code: 10)
    beta: float = hp(10.0, "β", "Plackett–Luce scale", lo=0.0, lo_open=True, why="PAD's Plackett-Luce scale")
    # sampling of the student start model, done once (reference code: T = 1.0, top-p 0.95, 5 → keep 4)
    temperature: float = hp(1.0, "T", "sampling temperature", lo=0.0, lo_open=True, why="sampling temperature")
    top_p: float = hp(0.95, "top-p", "nucleus mass", unit="probability, 0–1", lo=0.0, lo_open=True, hi=1.0,
                      why="nucleus sampling")
    n_samples: int = hp(5, "n", "samples per prompt", unit="count", lo=1, kind="integer",
                        why="responses sampled per prompt")
    n_keep: int = hp(4, "n_keep", "kept samples per prompt", unit="count", lo=2, kind="integer",
                     why="responses ranked per prompt")
    # λ: MCQ calibration weight, s_T ← (1−λ)·s_T + λ·log p̄ (released code: λ = 1, the full world's default)
    calibration_lambda: float = hp(1.0, "λ", "calibration weight", lo=0.0, hi=1.0,
                                   why="PAD's MCQ calibration weight; 0 turns it off, 1 is the released "
                                       "configuration")
    # with λ > 0, keep a prompt only if some response has p̄ > 0.5 and some p̄ <= 0.5 (released code)
    calibration_filter: bool = hp(True, "filter", "MCQ filter", unit="true/false", kind="bool")
    # toy world, λ > 0: comparison questions added to the teachers' instruction data
    calibration_toy_rows: int = hp(4000, "rows", "toy comparison questions", unit="count", lo=0, kind="integer",
                                   why="comparison questions the toy teachers learn")
    # ablation (experiment=teacher_ablation): the teacher's scores made constant (none), shuffled
    # among each prompt's samples, or negated (flipped: the teacher's ranking reversed)
    teacher_signal: str = teacher_signal(TEACHER_SIGNAL + ("shuffled",),
                                         "teacher: the method; none: constant teacher scores; shuffled: each "
                                         "prompt's scores permuted; flipped: the scores negated")


def ablate_teacher_scores(scores: list[list[float]], signal: str, seed: int) -> list[list[float]]:
    """The teacher's scores of each prompt's samples under a teacher-signal ablation:

    * ``teacher``: as they are (PAD);
    * ``none``: 0 for every sample, so P_β(·|s^T) is uniform over the rankings (LPPD) and the
      "teacher's ranking" is the samples' order (LVPD): the teacher says nothing;
    * ``shuffled``: each prompt's scores permuted at random (a seeded ``random.Random(seed)``): the
      same values, no longer attached to the samples they score;
    * ``flipped``: negated, so the teacher's ranking is reversed (its best sample ranked last).
    """
    import random

    if signal == "teacher":
        return [list(s) for s in scores]
    if signal == "none":
        return [[0.0] * len(s) for s in scores]
    if signal == "flipped":
        return [[-v for v in s] for s in scores]
    if signal == "shuffled":
        rng = random.Random(seed)
        return [rng.sample(list(s), len(s)) for s in scores]
    raise ValueError(f"teacher_signal={signal!r}: choose teacher, none, shuffled or flipped")


class PAD(Method):
    names = ("pad_lppd", "pad_lvpd")
    labels = {"pad": "PAD", "pad_lppd": "PAD-LPPD", "pad_lvpd": "PAD-LVPD"}
    order = 50
    config = PADConfig
    paper = "Li et al., arXiv 2502.14272 (code EganGu/PAD)"
    bench_target = "prompt"

    def sampling(self, pipe, m) -> dict:
        return {"n_samples": m.n_samples, "n_keep": m.n_keep, "temperature": m.temperature, "top_p": m.top_p,
                "seed": pipe.sampling_seed()}

    def inputs(self, pipe, m):
        """The SFT student's n_samples → n_keep diverse samples per prompt, π_dpo's scores of them (its
        own tokenizer), and with λ > 0 π_dpo's MCQ answers comparing them."""
        samples = pipe.samples(pipe.sft("student"), "prompts", self.sampling(pipe, m))
        out = {"samples": samples, "scores": pipe.sequence_scores(pipe.dpo_teacher(), samples)}
        if float(m.get("calibration_lambda") or 0) > 0:
            out["mcq"] = pipe.pairwise_choices(pipe.dpo_teacher(), samples)
        return out

    def teacher_data(self, m, cfg):
        """Toy world with λ > 0: the comparison questions the teachers learn besides the task, so that
        π_dpo can answer the MCQ (``method.calibration_toy_rows``, ``ToyTask.comparison_rows``)."""
        if cfg.world.source != "toy" or not float(m.get("calibration_lambda") or 0) > 0:
            return {}
        return {"rows": int(m.calibration_toy_rows), "seed": int(cfg.data.seed), "format": "toy-v1"}

    def check(self, m, prefix, cfg):
        from distill.losses.pad import MAX_N
        from omegaconf import OmegaConf

        def integer(v):
            return isinstance(v, int) and not isinstance(v, bool)

        problems = []
        n_keep, n_samples = m.get("n_keep"), m.get("n_samples")
        if integer(n_keep) and integer(n_samples) and n_keep > n_samples:
            problems.append(f"{prefix}.n_keep={n_keep}: must be <= {prefix}.n_samples={n_samples} (the kept responses "
                            f"are chosen among the sampled ones); set {prefix}.n_keep={n_samples}, or "
                            f"{prefix}.n_samples={n_keep}")
        loss = str(OmegaConf.select(m, "loss._target_", default="") or "")
        if loss.endswith("lppd_loss") and integer(n_keep) and n_keep > MAX_N:
            problems.append(f"{prefix}.n_keep={n_keep}: must be <= {MAX_N} for LPPD, which enumerates all n_keep! "
                            f"rankings ({n_keep}! = {math.factorial(n_keep)} per prompt); set {prefix}.n_keep={MAX_N} "
                            "or lower, or use method=pad_lvpd (no enumeration)")
        return problems

    def plan(self, m):
        return {"seqs": int(m.get("n_keep", 2)), "rows": "prompts", "reference_pass": False, "online": ()}

    def recipe(self, pipe, m, inputs, stage_cfg, out, work, logger=None):
        """Match the student's preference distribution over its own diverse samples to the teacher's.

        With ``method.calibration_lambda`` = λ > 0 the teacher's scores are calibrated by its MCQ
        answers (``distill.mcq``): s^T ← (1 − λ) s^T + λ log p̄, and with ``method.calibration_filter``
        prompts whose p̄ are all on one side of ½ are dropped, as in the released code (counted in the
        log; an error if none is left)."""
        import torch
        from hydra.utils import instantiate

        from distill.losses.pad import calibrate_teacher_scores
        from distill.mcq import keep_decided

        lam = float(m.calibration_lambda)
        model, tok = load_student(pipe, pipe.sft("student"), m.name)
        rows = D.read_jsonl(inputs["samples"].path / "samples.jsonl")
        scores = [sc["scores"] for sc in D.read_jsonl(inputs["scores"].path / "scores.jsonl")]
        seqs = pipe.encode_samples(tok, rows)
        keep = list(range(len(rows)))
        if lam > 0:
            p_bar = [r["p_bar"] for r in D.read_jsonl(inputs["mcq"].path / "mcq.jsonl")]
            if len(p_bar) != len(scores):
                raise RuntimeError(f"the MCQ artifact has {len(p_bar)} prompts for {len(scores)} sample sets; delete "
                                   "it and run again")
            scores = [calibrate_teacher_scores(torch.tensor(s, dtype=torch.float64),
                                               torch.tensor(p, dtype=torch.float64), lam).tolist()
                      for s, p in zip(scores, p_bar)]
            if m.calibration_filter:
                keep = [i for i in keep if keep_decided(p_bar[i])]
                log.info("PAD calibration λ=%s: kept %d of %d prompts (some response with p̄ > 0.5 and some <= 0.5)",
                         lam, len(keep), len(rows))
                if not keep:
                    raise RuntimeError("PAD's MCQ filter (method.calibration_filter) dropped every prompt: the "
                                       "teacher's answers tie; set method.calibration_filter=false or "
                                       "method.calibration_lambda=0")
            _log_mcq_agreement(pipe, rows, p_bar)
        if m.teacher_signal != "teacher":
            scores = ablate_teacher_scores(scores, m.teacher_signal, pipe.sampling_seed())
            log.info("PAD teacher-signal ablation: teacher_signal=%s (not the method)", m.teacher_signal)
        train = [{"seqs": seqs[i], "teacher_scores": scores[i]} for i in keep]
        opt, sched = pipe.optimizers(stage_cfg)
        module = PADModule(model, opt, sched, loss_fn=instantiate(m.loss))
        pipe.fit(module, train, stage_cfg, out, work, logger, tok)

    def example_items(self, b, prompt, response, vocab, k, n_keep, rng, gen):
        from distill.methods.examples import seq

        return [{"seqs": [seq(rng, prompt, response, vocab) for _ in range(n_keep)],
                 "teacher_scores": (-rng.random(n_keep) * 3).tolist()} for _ in range(b)]

    def bench_module(self, model, optimizer, name=None):
        import functools

        from distill.losses.pad import lppd_loss, lvpd_loss

        loss = lvpd_loss if name == "pad_lvpd" else lppd_loss
        return PADModule(model, optimizer, loss_fn=functools.partial(loss, beta=PADConfig.beta))


def _log_mcq_agreement(pipe, rows: list[dict], p_bar: list[list[float]]) -> None:
    """Toy world: how often the teacher's MCQ order of two samples agrees with the oracle's (pairs
    the oracle does not tie), logged once — what the calibration adds can be read off it."""
    if pipe.source != "toy":
        return
    task = pipe.task()
    answers = [r["answer"] for r in pipe.rows("prompts")]
    agree = total = 0
    for row, p, ans in zip(rows, p_bar, answers):
        rew = [task.reward(y, ans) for y in row["responses"]]
        for i in range(len(rew)):
            for j in range(i + 1, len(rew)):
                if abs(rew[i] - rew[j]) > 1e-9 and p[i] != p[j]:
                    total += 1
                    agree += (rew[i] > rew[j]) == (p[i] > p[j])
    if total:
        log.info("PAD calibration: the teacher's MCQ order agrees with the oracle on %.1f%% of %d sample pairs",
                 100 * agree / total, total)


METHOD = PAD()
