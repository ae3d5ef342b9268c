"""PAD — Preference-Aligned Distillation (Li et al., 2025, arXiv 2502.14272, §3).

Each prompt has n responses. A model's intrinsic reward of a response is its length-normalised
log-likelihood; a Plackett–Luce model with scale β turns n scores into a distribution over the n!
rankings, and the student's distribution is trained to match the teacher's.

Reference code (EganGu/PAD, ``scripts/dpo_trainer.py`` and the ``SimPOTrainer`` that
``scripts/run_pad.py`` trains with; ``training_configs/gemma-2-2b-it-pd.yaml``): β = 10 (scores are
multiplied by β before Plackett–Luce), ``loss_type: pd`` is LPPD and ``rd`` is LVPD, student
scores are average token log-probs.
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache

import torch

Tensor = torch.Tensor

MAX_N = 7  # 7! = 5040 rankings; 8! = 40320 per prompt is too many to enumerate per step


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise ValueError(f"beta (the Plackett-Luce scale) must be > 0, got {beta}; the PAD code uses 10")


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"need at least one response per prompt, got n = {n}")
    if n > MAX_N:
        raise ValueError(f"exact enumeration over n! rankings is limited to n <= {MAX_N} responses per prompt "
                         f"(got n = {n}, {math.factorial(n)} rankings); lower method.n_keep")


def _check_scores(student_scores: Tensor, teacher_scores: Tensor) -> None:
    if student_scores.dim() != 2 or tuple(student_scores.shape) != tuple(teacher_scores.shape):
        raise ValueError(f"student and teacher scores must both be [B, n], got {tuple(student_scores.shape)} "
                         f"and {tuple(teacher_scores.shape)}")


def intrinsic_reward(sum_logps: Tensor, lengths: Tensor) -> Tensor:
    """r_π(x, y) = (1/|y|) log π(y|x): sum of response-token log-probs over the response length.

    Any shape, elementwise; lengths are clamped to ≥ 1 (an empty response scores 0).
    Source: Li et al., 2025, §3 (the language model as its own reward function); the reference
    code's ``get_batch_logps(..., average_log_prob=True)``.
    """
    if tuple(sum_logps.shape) != tuple(lengths.shape):
        raise ValueError(f"sum_logps {tuple(sum_logps.shape)} and lengths {tuple(lengths.shape)} must match")
    return sum_logps / lengths.to(sum_logps.dtype).clamp_min(1)


@lru_cache(maxsize=None)
def _rankings(n: int) -> Tensor:
    return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long)


def all_rankings(n: int) -> Tensor:
    """All n! rankings of n items as a LongTensor [n!, n] (row r lists item ids best-first), in
    lexicographic order. Cached per n; treat the result as read-only."""
    _check_n(n)
    return _rankings(n)


def _pl_log_prob_ordered(ordered: Tensor) -> Tensor:
    """Σ_k [ o_k − log Σ_{m≥k} exp(o_m) ] over the last dim, for β-scaled scores already in rank order."""
    tail = torch.logcumsumexp(ordered.flip(-1), dim=-1).flip(-1)
    return (ordered - tail).sum(-1)


def plackett_luce_log_prob(scores: Tensor, ranking: Tensor, beta: float) -> Tensor:
    """log P_β(τ|s) of one ranking per row: [B, n], [B, n] (long) -> [B].

        P_β(τ|s) = Π_{k=1..n} exp(β s_{τ(k)}) / Σ_{m=k..n} exp(β s_{τ(m)})

    τ(k) is the id of the item ranked k-th (best first). Source: Li et al., 2025, §3
    (Plackett–Luce preference distribution); the reference code's
    ``plackett_luce_logprob_with_rankings`` summed over positions.
    """
    _check_beta(beta)
    if scores.dim() != 2 or tuple(ranking.shape) != tuple(scores.shape):
        raise ValueError(f"scores and ranking must both be [B, n], got {tuple(scores.shape)} and "
                         f"{tuple(ranking.shape)}")
    ranking = ranking.long()
    arange = torch.arange(scores.shape[1], device=ranking.device).expand_as(ranking)
    if not torch.equal(ranking.sort(-1).values, arange):
        raise ValueError("each row of ranking must be a permutation of 0..n-1")
    return _pl_log_prob_ordered((beta * scores).gather(1, ranking.to(scores.device)))


def ranking_log_probs(scores: Tensor, beta: float) -> Tensor:
    """log P_β(τ|s) for every ranking τ of ``all_rankings(n)``: [B, n] -> [B, n!].

    Exact enumeration; n > 7 raises ValueError. Rows sum to 1 in probability space.
    Source: Li et al., 2025, §3; the reference code's ``plackett_luce_logprob``.
    """
    _check_beta(beta)
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, n], got {tuple(scores.shape)}")
    perms = all_rankings(scores.shape[1]).to(scores.device)
    return _pl_log_prob_ordered((beta * scores)[:, perms])


def _pair_accuracy(student: Tensor, teacher: Tensor) -> Tensor:
    """Fraction of response pairs (i < j) that student and teacher order the same way (ties count as
    disagreement), over the whole batch."""
    ds = student.unsqueeze(-1) - student.unsqueeze(-2)
    dt = teacher.unsqueeze(-1) - teacher.unsqueeze(-2)
    upper = torch.ones_like(ds, dtype=torch.bool).triu(1)
    return ((ds * dt > 0) & upper).float().sum() / upper.float().sum().clamp_min(1)


def lvpd_loss(student_scores: Tensor, teacher_scores: Tensor, beta: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Vanilla preference distillation loss, batch mean:

        L = −log P_β(τ_T | s^S),   τ_T = argsort(s^T, descending)

    The teacher's scores only fix the target ranking (ties broken by index order) and get no
    gradient. Source: Li et al., 2025, §3 (LVPD); reference code ``loss_type == "rd"``.

    Metrics (detached): ``pad/pair_accuracy`` (share of response pairs the student orders like
    the teacher), ``pad/top1_agreement`` (same best response).
    """
    _check_scores(student_scores, teacher_scores)
    teacher = teacher_scores.detach().to(student_scores.device, student_scores.dtype)
    order = torch.sort(teacher, dim=-1, descending=True, stable=True).indices
    loss = -plackett_luce_log_prob(student_scores, order, beta).mean()
    return loss, _metrics(student_scores.detach(), teacher)


def lppd_loss(student_scores: Tensor, teacher_scores: Tensor, beta: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Probabilistic preference distillation loss: per-prompt Jensen–Shannon divergence, batch mean.

        P = P_β(·|s^T),  Q = P_β(·|s^S)  over all n! rankings,  M = ½(P + Q)
        L = mean_b [ ½ KL(P_b ‖ M_b) + ½ KL(Q_b ‖ M_b) ]          (0 ≤ L ≤ log 2)

    Computed in log space (log M = logaddexp(log P, log Q) − log 2); the teacher side is detached.
    n > 7 raises ValueError.

    Source: Li et al., 2025, §3 (LPPD; ``method=pad``). The released code (``loss_type == "pd"``,
    ``jenson_shannon_divergence``) differs from the paper in two ways, neither reproduced here:
    (1) its M is ``logsumexp`` over the concatenation of all 2B student and teacher distributions
    of the batch (dim 0), so each prompt is compared with a mixture of every prompt in the batch
    (and that M does not sum to 1 when B > 1); (2) ``F.kl_div(log P, log M, log_target=True)``
    is KL(M ‖ P), the reverse of the JSD's KL(P ‖ M). This function is the true per-prompt JSD.

    Metrics (detached): ``pad/pair_accuracy``, ``pad/top1_agreement`` (as in ``lvpd_loss``).
    """
    _check_scores(student_scores, teacher_scores)
    teacher = teacher_scores.detach().to(student_scores.device, student_scores.dtype)
    log_p = ranking_log_probs(teacher, beta)
    log_q = ranking_log_probs(student_scores, beta)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(-1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(-1)
    loss = (0.5 * (kl_pm + kl_qm)).mean()
    return loss, _metrics(student_scores.detach(), teacher)


def _metrics(student: Tensor, teacher: Tensor) -> dict[str, Tensor]:
    return {"pad/pair_accuracy": _pair_accuracy(student, teacher),
            "pad/top1_agreement": (student.argmax(-1) == teacher.argmax(-1)).float().mean()}


def calibrate_teacher_scores(scores: Tensor, mean_selection_prob: Tensor, lam: float) -> Tensor:
    """Teacher score calibration with the MCQ selection probability:

        s^T_i ← (1 − λ) s^T_i + λ log p̄_i

    p̄_i is response i's mean probability of being chosen by the teacher when asked which of two
    responses is better (both orders). λ = 0 returns the scores unchanged; p̄ is floored at 1e-12.

    Source: Li et al., 2025, §3 (reward calibration). In the reference code the mix is
    ``scores_avglogp * alpha + scores_mcq * (1 - alpha)`` with ``scores_mcq`` = log p̄, i.e.
    λ = 1 − alpha: the trainer's default alpha = 0.5 gives λ = 0.5, and the released config
    (``training_configs/gemma-2-2b-it-pd.yaml``, ``alpha: 0.0``) gives λ = 1, teacher scores from
    the MCQ step alone. ``scripts/run_pad.py`` also drops prompts where no response, or every
    response, has p̄ > 0.5. The MCQ step itself (p̄, both orders) is ``distill.mcq``.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam (calibration weight λ) must be in [0, 1], got {lam}; 0 turns calibration off")
    scores = torch.as_tensor(scores)
    p = torch.as_tensor(mean_selection_prob, dtype=scores.dtype, device=scores.device)
    if tuple(p.shape) != tuple(scores.shape):
        raise ValueError(f"mean_selection_prob {tuple(p.shape)} must match scores {tuple(scores.shape)}")
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError("mean_selection_prob must be probabilities in [0, 1]")
    if lam == 0.0:
        return scores
    return (1.0 - lam) * scores + lam * p.clamp_min(1e-12).log()
