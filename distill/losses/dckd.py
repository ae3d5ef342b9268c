"""DCKD — Dual-Constrained Knowledge Distillation (Gao et al., ICLR 2025, §3.1).

The aligned teacher π_dpo is an artifact: its top-k token ids and log-probabilities at every
response position, computed once. The student is compared with it over k + 1 bins.
"""
from __future__ import annotations

import torch

from distill.losses.common import check_btv, masked_mean_nll, masked_seq_mean

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
                    mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-sequence forward KL(π_dpo ‖ π_θ) over k + 1 bins, averaged over response tokens: -> [B].

    At each response position with teacher top-k ids a_1..a_k:
        p_i = π_dpo(a_i|s_t),  p_rest = max(0, 1 − Σ_i p_i)
        q_i = π_θ(a_i|s_t),    q_rest = max(0, 1 − Σ_i q_i)
        KL_t = Σ_i p_i (log p_i − log q_i) + p_rest (log p_rest − log max(q_rest, eps))
    and KL_b = (1/|y_b|) Σ_t KL_t over the unmasked positions.

    Exact when k = V (the rest bins are then dropped). Terms with p = 0 contribute 0 (so −inf teacher
    log-probs, e.g. an fp16 underflow, are safe); teacher values are cast to float32 and carry no
    gradient. Duplicate ids within one position are not allowed.

    Source: Gao et al., ICLR 2025, §3.1 (DCKD); the k + 1 bins follow the ADPA reference code
    (``compress_probs`` / ``load_input_and_target_probs_fast`` in ``utils/compress_logits.py``,
    k = 50, and ``DistillTrainer.get_kl_loss``). Two deliberate differences: the reference averages
    the KL over all response tokens of the batch at once, here it is a per-sequence mean (the
    paper's 1/|y|); and it clamps the student's probabilities to ≥ 1e-7, here only the rest bin is
    clamped (eps), which keeps the K = V case exact.
    """
    _check_topk(student_logits, teacher_topk_ids, teacher_topk_logps, mask, "topk_forward_kl")
    keep = mask.bool()
    ids = torch.where(keep.unsqueeze(-1), teacher_topk_ids.long(), torch.zeros_like(teacher_topk_ids).long())
    t_lp = teacher_topk_logps.detach().to(student_logits.device, torch.float32)
    t_p = t_lp.exp()
    s_lp = torch.log_softmax(student_logits.float(), dim=-1).gather(-1, ids)
    zero = torch.zeros_like(t_p)
    kl_top = torch.where(t_p > 0, t_p * (t_lp - s_lp), zero).sum(-1)
    if ids.shape[-1] == student_logits.shape[-1]:  # k = V: no mass outside the top-k
        return masked_seq_mean(kl_top, mask)
    t_rest = (1.0 - t_p.sum(-1)).clamp_min(0.0)
    s_rest = (1.0 - s_lp.exp().sum(-1)).clamp_min(eps)
    kl_rest = torch.xlogy(t_rest, t_rest) - t_rest * s_rest.log()
    return masked_seq_mean(kl_top + kl_rest, mask)


def dckd_loss(student_logits_w: Tensor, labels_w: Tensor, mask_w: Tensor, t_ids_w: Tensor, t_logps_w: Tensor,
              student_logits_l: Tensor, mask_l: Tensor, t_ids_l: Tensor, t_logps_l: Tensor,
              alpha: float) -> tuple[Tensor, dict[str, Tensor]]:
    """DCKD loss on a preference pair (x, y_w, y_l):

        L = NLL_θ(y_w|x) + α · ( mean_b KL_w,b + mean_b KL_l,b )

    KL_w,b / KL_l,b are ``topk_forward_kl`` (forward KL from the aligned teacher π_dpo to the
    student) on the chosen / rejected response; NLL is the token-level mean of
    ``masked_mean_nll`` (as in the reference code's SFT term).

    Source: Gao et al., ICLR 2025, §3.1; the reference code weights each KL term by 0.1
    (α default 0.1), the paper sweeps α (its Figure 5).

    Metrics (detached): ``loss/nll``, ``loss/kl_chosen``, ``loss/kl_rejected``.
    """
    if not alpha >= 0:
        raise ValueError(f"alpha (DCKD's KL weight) must be >= 0, got {alpha}")
    nll = masked_mean_nll(student_logits_w, labels_w, mask_w)
    kl_w = topk_forward_kl(student_logits_w, t_ids_w, t_logps_w, mask_w).mean()
    kl_l = topk_forward_kl(student_logits_l, t_ids_l, t_logps_l, mask_l).mean()
    loss = nll + alpha * (kl_w + kl_l)
    return loss, {"loss/nll": nll.detach(), "loss/kl_chosen": kl_w.detach(), "loss/kl_rejected": kl_l.detach()}
