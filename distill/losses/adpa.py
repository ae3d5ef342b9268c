"""ADPA — Advantage-Guided Distillation for Preference Alignment (Gao et al., ICLR 2025, §3.2).

The advantage of action a at state s_t is A(s_t, a) = log π_dpo(a|s_t) − log π_ref(a|s_t), read
from cached teacher artifacts at the aligned teacher's top-k ids along the student's own
(on-policy) response ŷ.

Where this departs from the reference code (SLIT-AI/ADPA): the reference caches each teacher's
*own* top-k (``compress_probs`` / ``compress_logits`` in ``utils/compress_logits.py``, k = 50) and
rebuilds each teacher's distribution from it (``restore_logits`` leaves every other token at −inf;
the probabilities are then floored at 1e-8 by ``prob_stabilize``). So at a token in π_dpo's top-k
that π_ref does not rank in its own top-k, the reference's log π_ref is the floor (≈ −18.4), not
π_ref's value, and the advantage there is inflated by up to ~18 nats — exactly at the tokens where
the two teachers disagree most, which are the ones the advantage is meant to measure. Here π_ref is
read at π_dpo's top-k ids (``ref_logps.npy`` of the teacher cache: π_ref's exact log-probabilities
at the same ids, k·2 more bytes per token), so every A(s, a) summed over is the true difference of
the two teachers' log-probabilities, and with k = V the term is exact.
"""
from __future__ import annotations

import torch

from distill.losses.common import check_btv, masked_mean_nll, masked_seq_mean

Tensor = torch.Tensor

CLAMP_LO, CLAMP_HI = 1e-8, 1.0 - 1e-8
LOGP_FLOOR = -1e4  # finite floor for cached log-probs (an fp16 underflow can store −inf)


def advantage_term(student_logits_hat: Tensor, mask_hat: Tensor, topk_ids: Tensor, dpo_topk_logps: Tensor,
                   ref_topk_logps: Tensor, advantage_clamp: bool = False) -> Tensor:
    """Expected advantage of the student's policy along ŷ, per sequence: -> [B].

        A(ŝ_t, a) = log π_dpo(a|ŝ_t) − log π_ref(a|ŝ_t)           for a in the top-k ids of π_dpo
        term_b    = (1/|ŷ_b|) Σ_t Σ_a π_θ(a|ŝ_t) · A(ŝ_t, a)

    π_θ(a|ŝ_t) is the student's full-vocabulary softmax probability (not renormalised over the
    k ids); with k = V the sum over a is exact. Teacher values are cast to float32, floored at
    −1e4 and carry no gradient. The loss *maximises* this term.

    advantage_clamp=True reproduces the ADPA reference code, which passes the advantage through
    ``load_input_and_target_probs_fast(..., prob_stabilize=True)`` (``utils/compress_logits.py``)
    and so clamps it to [1e-8, 1 − 1e-8] as if it were a probability. That turns every
    disadvantage (A < 0) into ≈ 0 and caps every advantage at ≈ 1: the student is then only pushed
    towards tokens π_dpo prefers, never away from the ones it dislikes. It looks unintended and is
    off by default. (The same helper also clamps the student's probabilities to [1e-8, 1 − 1e-8];
    that is not reproduced, it only matters for probabilities below 1e-8.)

    Source: Gao et al., ICLR 2025, §3.2; reference code ``DistillTrainer.get_reverse_ce`` in
    ``scripts/run_distill_dpo.py`` (k = 50). The reference averages over all tokens of the batch
    at once; here it is the paper's per-sequence mean 1/|ŷ|, then the batch mean.
    """
    check_btv(student_logits_hat, mask_hat, "student_logits_hat")
    bt = tuple(student_logits_hat.shape[:2])
    if topk_ids.dim() != 3 or tuple(topk_ids.shape[:2]) != bt:
        raise ValueError(f"topk_ids must be [B, T, K] with [B, T] = {bt}, got {tuple(topk_ids.shape)}")
    for name, t in (("dpo_topk_logps", dpo_topk_logps), ("ref_topk_logps", ref_topk_logps)):
        if tuple(t.shape) != tuple(topk_ids.shape):
            raise ValueError(f"{name} must match topk_ids {tuple(topk_ids.shape)}, got {tuple(t.shape)}; "
                             "cache both teachers at the aligned teacher's top-k ids")
    if topk_ids.shape[-1] > student_logits_hat.shape[-1] or topk_ids.dtype.is_floating_point:
        raise ValueError(f"topk_ids must be integer ids with k <= vocabulary {student_logits_hat.shape[-1]}; "
                         "teachers and student must share one vocabulary")
    keep = mask_hat.bool()
    ids = torch.where(keep.unsqueeze(-1), topk_ids.long(), torch.zeros_like(topk_ids).long())
    dev = student_logits_hat.device
    dpo = dpo_topk_logps.detach().to(dev, torch.float32).clamp_min(LOGP_FLOOR)
    ref = ref_topk_logps.detach().to(dev, torch.float32).clamp_min(LOGP_FLOOR)
    adv = dpo - ref
    if advantage_clamp:
        adv = adv.clamp(CLAMP_LO, CLAMP_HI)
    probs = torch.softmax(student_logits_hat.float(), dim=-1).gather(-1, ids)
    return masked_seq_mean((probs * adv).sum(-1), mask_hat)


def adpa_loss(student_logits_w: Tensor, labels_w: Tensor, mask_w: Tensor, student_logits_hat: Tensor,
              mask_hat: Tensor, topk_ids: Tensor, dpo_topk_logps: Tensor, ref_topk_logps: Tensor,
              gamma: float, advantage_clamp: bool = False, sign: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
    """ADPA loss:

        L = NLL_θ(y_w|x) − γ · mean_b term_b

    NLL is the token-level mean over the chosen responses (``masked_mean_nll``, as the reference
    code's SFT term); term_b is ``advantage_term`` on the student's greedy response ŷ.

    Source: Gao et al., ICLR 2025, §3.2; γ is the reference code's ``adpa_weight``, swept in the
    paper's Figure 5. See ``advantage_term`` for ``advantage_clamp``.

    ``sign`` is an ablation, not part of the method: 1 (ADPA), 0 (the advantage term dropped: NLL on
    y_w alone, as γ = 0) or −1 (the advantage reversed, A = log π_ref − log π_dpo: the student is
    pushed toward what alignment made less likely), for measuring what the teacher contributes.

    Metrics (detached): ``loss/nll``, ``loss/advantage`` (mean_b term_b, unsigned).
    """
    if not gamma >= 0:
        raise ValueError(f"gamma (ADPA's advantage weight) must be >= 0, got {gamma}")
    if sign not in (1, 0, -1):
        raise ValueError(f"sign must be 1, 0 or -1 (the teacher-signal ablation), got {sign}")
    nll = masked_mean_nll(student_logits_w, labels_w, mask_w)
    term = advantage_term(student_logits_hat, mask_hat, topk_ids, dpo_topk_logps, ref_topk_logps,
                          advantage_clamp).mean()
    loss = nll - sign * gamma * term
    return loss, {"loss/nll": nll.detach(), "loss/advantage": term.detach()}
