"""DCKD — Dual-Constrained Knowledge Distillation (Gao et al., ICLR 2025, §3.1).

The aligned teacher π_dpo is an artifact: its top-k token ids and log-probabilities at every
response position, computed once. The student is compared with it over k + 1 bins.
"""
from __future__ import annotations

import torch

from distill.losses.common import check_btv, gather_mass_outside, log_probs, masked_mean_nll, masked_seq_mean

Tensor = torch.Tensor


def _check_topk(student_logits: Tensor, ids: Tensor, logps: Tensor, mask: Tensor, what: str) -> None:
    check_btv(student_logits, mask, "student_logits")
    bt = tuple(student_logits.shape[:2])
    if ids.dim() != 3 or tuple(ids.shape[:2]) != bt or tuple(logps.shape) != tuple(ids.shape):
        raise ValueError(f"{what}: top-k ids and log-probs must both be [B, T, K] with [B, T] = {bt}, got "
                         f"{tuple(ids.shape)} and {tuple(logps.shape)}; cache the teacher on the same sequences")
    if ids.shape[-1] > student_logits.shape[-1]:
        raise ValueError(f"{what}: k = {ids.shape[-1]} exceeds the student vocabulary {student_logits.shape[-1]}; "
                         "teacher and student must share one vocabulary")
    if ids.dtype.is_floating_point:
        raise ValueError(f"{what}: top-k ids must be an integer tensor, got {ids.dtype}")


def topk_forward_kl(student_logits: Tensor, teacher_topk_ids: Tensor, teacher_topk_logps: Tensor,
                    teacher_log_rest: Tensor | None, mask: Tensor, student_logps: Tensor | None = None) -> Tensor:
    """Per-sequence forward KL(π_dpo ‖ π_θ) over k + 1 bins, averaged over response tokens: -> [B].

    At each response position with teacher top-k ids a_1..a_k:
        p_i = π_dpo(a_i|s_t),                 q_i = π_θ(a_i|s_t)
        p_rest = exp(teacher_log_rest),       log q_rest = logsumexp_{a ∉ top-k} z_a − logsumexp_a z_a
        KL_t = Σ_i p_i (log p_i − log q_i) + p_rest (log p_rest − log q_rest)
    and KL_b = (1/|y_b|) Σ_t KL_t over the unmasked positions.

    Both remaining-mass bins are exact. The student's comes from its logits through
    ``log_mass_outside`` (here ``gather_mass_outside``, the same logsumexp from its log-probabilities;
    never as 1 − Σ_i q_i, which in float32 cancels to 0 once the mass is
    below ~1e-7 and loses the bin's gradient); the teacher's is ``teacher_log_rest`` [B, T], the
    log of its mass outside its own top-k, computed the same way from the teacher's logits when the
    cache was built and stored in float32 (``rest.npy``; the only source of p_rest — it is not
    recomputed from the fp16 top-k log-probs). Exact when k = V (the rest bins are then dropped and
    ``teacher_log_rest`` may be None). Terms with p = 0 contribute 0 (so −inf teacher log-probs, e.g.
    an fp16 underflow, are safe); teacher values are cast to float32 and carry no gradient. Duplicate
    ids within one position are not allowed. ``student_logps``: ``log_probs(student_logits)`` when the
    caller already has it (``dckd_loss`` shares one pass over the vocabulary between NLL and KL).

    Source: Gao et al., ICLR 2025, §3.1 (DCKD); the k + 1 bins follow the ADPA reference code
    (``compress_probs`` / ``load_input_and_target_probs_fast`` in ``utils/compress_logits.py``,
    k = 50, and ``DistillTrainer.get_kl_loss``). Deliberate differences: the reference averages the
    KL over all response tokens of the batch at once, here it is a per-sequence mean (the paper's
    1/|y|); it clamps the student's probabilities to ≥ 1e-7 and forms the rest bins as 1 − Σ, here
    nothing is clamped and both rest bins are exact, which keeps the K = V case exact too.
    """
    ids = _checked_ids(student_logits, teacher_topk_ids, teacher_topk_logps, teacher_log_rest, mask)
    logps = log_probs(student_logits) if student_logps is None else student_logps
    if ids.shape[-1] == student_logits.shape[-1]:  # k = V: no mass outside the top-k
        return _kl_bins(logps.gather(-1, ids), None, teacher_topk_logps, None, mask)
    s_lp, s_lr = gather_mass_outside(logps, ids)
    return _kl_bins(s_lp, s_lr, teacher_topk_logps, teacher_log_rest, mask)


def _checked_ids(student_logits: Tensor, teacher_topk_ids: Tensor, teacher_topk_logps: Tensor,
                 teacher_log_rest: Tensor | None, mask: Tensor) -> Tensor:
    """``topk_forward_kl``'s input checks; the top-k ids as int64 with 0 at masked positions."""
    _check_topk(student_logits, teacher_topk_ids, teacher_topk_logps, mask, "topk_forward_kl")
    k, v = teacher_topk_ids.shape[-1], student_logits.shape[-1]
    if k < v and (teacher_log_rest is None or tuple(teacher_log_rest.shape) != tuple(mask.shape)):
        got = None if teacher_log_rest is None else tuple(teacher_log_rest.shape)
        raise ValueError(f"topk_forward_kl: k = {k} < vocabulary {v} needs the "
                         f"teacher's log remaining mass [B, T] = {tuple(mask.shape)}, got {got}; read it from the "
                         "teacher cache (rest.npy)")
    keep = mask.bool()
    return torch.where(keep.unsqueeze(-1), teacher_topk_ids.long(), torch.zeros_like(teacher_topk_ids).long())


def _kl_bins(s_lp: Tensor, s_lr: Tensor | None, teacher_topk_logps: Tensor, teacher_log_rest: Tensor | None,
             mask: Tensor) -> Tensor:
    """``topk_forward_kl`` from the student's log-probabilities at the top-k ids ``s_lp`` [B, T, K] and
    its log remaining mass ``s_lr`` [B, T] (None when k = V): -> [B]."""
    t_lp = teacher_topk_logps.detach().to(s_lp.device, torch.float32)
    t_p = t_lp.exp()
    kl_top = torch.where(t_p > 0, t_p * (t_lp - s_lp), torch.zeros_like(t_p)).sum(-1)
    if s_lr is None:
        return masked_seq_mean(kl_top, mask)
    t_lr = teacher_log_rest.detach().to(s_lp.device, torch.float32)
    t_lr = torch.where(mask.bool(), t_lr, torch.zeros_like(t_lr))  # padding may hold anything
    t_rest = t_lr.exp()
    kl_rest = torch.where(t_rest > 0, t_rest * (t_lr - s_lr), torch.zeros_like(t_rest))
    return masked_seq_mean(kl_top + kl_rest, mask)


def dckd_loss(student_logits_w: Tensor, labels_w: Tensor, mask_w: Tensor, t_ids_w: Tensor, t_logps_w: Tensor,
              t_rest_w: Tensor | None, student_logits_l: Tensor, mask_l: Tensor, t_ids_l: Tensor, t_logps_l: Tensor,
              t_rest_l: Tensor | None, alpha: float, sign: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
    """DCKD loss on a preference pair (x, y_w, y_l):

        L = NLL_θ(y_w|x) + α · ( mean_b KL_w,b + mean_b KL_l,b )

    KL_w,b / KL_l,b are ``topk_forward_kl`` (forward KL from the aligned teacher π_dpo to the
    student) on the chosen / rejected response, each with the teacher's top-k ids, log-probs and
    log remaining mass (``t_rest_*``, [B, T]) on that response's own positions; NLL is the
    token-level mean of ``masked_mean_nll`` over every chosen token of the batch (as in the
    reference code's SFT term).

    Source: Gao et al., ICLR 2025, §3.1; the reference code weights each KL term by 0.1
    (α default 0.1), the paper sweeps α (its Figure 5).

    ``sign`` is an ablation, not part of the method: 1 (DCKD), 0 (the KL terms dropped: NLL on y_w
    alone) or −1 (the teacher's signal reversed: ``NLL − α·(KL_w + KL_l)``, pushing the student
    away from π_dpo), for measuring what the teacher contributes.

    Metrics (detached): ``loss/nll``, ``loss/kl_chosen``, ``loss/kl_rejected``.
    """
    if not alpha >= 0:
        raise ValueError(f"alpha (DCKD's KL weight) must be >= 0, got {alpha}")
    if sign not in (1, 0, -1):
        raise ValueError(f"sign must be 1, 0 or -1 (the teacher-signal ablation), got {sign}")
    logps_w = log_probs(student_logits_w)  # one pass over the vocabulary for the chosen rows' NLL and KL
    ids_w = _checked_ids(student_logits_w, t_ids_w, t_logps_w, t_rest_w, mask_w)
    if ids_w.shape[-1] < logps_w.shape[-1]:  # the labels' and the top-k's log-probs and the rest bin at once
        s_lp, s_lr, lab_lp = gather_mass_outside(logps_w, ids_w, labels_w)
        nll = masked_mean_nll(student_logits_w, labels_w, mask_w, label_lp=lab_lp)
        kl_w = _kl_bins(s_lp, s_lr, t_logps_w, t_rest_w, mask_w).mean()
    else:
        nll = masked_mean_nll(student_logits_w, labels_w, mask_w, logps=logps_w)
        kl_w = topk_forward_kl(student_logits_w, t_ids_w, t_logps_w, t_rest_w, mask_w, logps_w).mean()
    kl_l = topk_forward_kl(student_logits_l, t_ids_l, t_logps_l, t_rest_l, mask_l).mean()
    loss = nll + sign * alpha * (kl_w + kl_l)
    return loss, {"loss/nll": nll.detach(), "loss/kl_chosen": kl_w.detach(), "loss/kl_rejected": kl_l.detach()}
