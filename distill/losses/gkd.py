"""Generalised JSD between teacher and student token distributions (on-policy GKD, Agarwal et al.)."""
from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def generalized_jsd(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor, beta: float = 0.5,
                    temperature: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Generalised Jensen–Shannon divergence per response token, mean over the batch's tokens.

        P_T = softmax(z_T / τ),  P_S = softmax(z_S / τ),  M = β·P_T + (1 − β)·P_S
        JSD_β(P_T ‖ P_S) = β·KL(P_T ‖ M) + (1 − β)·KL(P_S ‖ M)           (0 < β < 1)
        β = 0:  KL(P_T ‖ P_S)   (forward KL, defined directly: the expression above vanishes at β → 0)
        β = 1:  KL(P_S ‖ P_T)   (reverse KL)
        L = Σ_{b,t} mask · JSD_β(P_T(·|s_{b,t}) ‖ P_S(·|s_{b,t})) / Σ mask

    ``student_logits``/``teacher_logits`` [B, L, V] at the same positions (the teacher's carry no
    gradient), ``mask`` [B, L] 1 on the response tokens. Gradients flow into the student only.

    Source: Agarwal et al., "On-Policy Distillation of Language Models: Learning from Self-Generated
    Mistakes", ICLR 2024, Eq. 1 (generalised JSD); the convention (M = β·P_T + (1−β)·P_S, β = 0
    forward and β = 1 reverse KL, logits divided by the temperature, sum over the vocabulary and mean
    over unmasked tokens) is that of TRL's ``GKDTrainer.generalized_jsd_loss`` (reduction
    ``batchmean`` with labels), whose trainer leaves τ at 1.

    Metrics (detached): ``kl/forward`` = mean KL(P_T ‖ P_S) per token, ``kl/reverse`` = mean KL(P_S ‖ P_T).
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1] (GKD's interpolation: 0 forward KL, 1 reverse KL), got {beta}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"teacher_logits has shape {tuple(teacher_logits.shape)}, expected "
                         f"{tuple(student_logits.shape)} like student_logits (teacher and student must share a "
                         "vocabulary and positions)")
    if tuple(mask.shape) != tuple(student_logits.shape[:-1]):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(student_logits.shape[:-1])}")
    log_s = torch.log_softmax(student_logits.float() / temperature, -1)
    log_t = torch.log_softmax(teacher_logits.detach().float().to(log_s.device) / temperature, -1)
    p_s, p_t = log_s.exp(), log_t.exp()
    forward = (p_t * (log_t - log_s)).sum(-1)   # KL(P_T ‖ P_S) per token
    reverse = (p_s * (log_s - log_t)).sum(-1)   # KL(P_S ‖ P_T)
    if beta == 0.0:
        per_token = forward
    elif beta == 1.0:
        per_token = reverse
    else:
        log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log(1 - beta)]), 0)
        per_token = beta * (p_t * (log_t - log_m)).sum(-1) + (1 - beta) * (p_s * (log_s - log_m)).sum(-1)
    m = mask.to(per_token.dtype)
    n = m.sum().clamp_min(1.0)
    loss = (per_token * m).sum() / n
    metrics = {"kl/forward": ((forward * m).sum() / n).detach(), "kl/reverse": ((reverse * m).sum() / n).detach()}
    return loss, metrics
