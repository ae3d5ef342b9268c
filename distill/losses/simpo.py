"""SimPO (Meng, Xia, Chen, NeurIPS 2024): preference optimisation with a reference-free reward."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.losses.common import check_sequence_inputs, reward_metrics

Tensor = torch.Tensor


def simpo_loss(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, chosen_lengths: Tensor,
               rejected_lengths: Tensor, beta: float, gamma: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Simple Preference Optimization loss, batch mean.

        r_w = β/|y_w| · log π_θ(y_w|x),   r_l = β/|y_l| · log π_θ(y_l|x)
        L   = −log σ(r_w − r_l − γ)        (computed as −logsigmoid)

    The reward is the policy's own length-normalised log-likelihood scaled by β: no reference model.
    γ is the target reward margin: the chosen response's reward must exceed the rejected one's by γ
    before the loss flattens out. ``policy_*_logps`` are [B] sequence log-probabilities (sums over
    response tokens), ``*_lengths`` [B] the response token counts |y| (≥ 1).

    Source: Meng, Xia, Chen, "SimPO: Simple Preference Optimization with a Reference-Free Reward",
    NeurIPS 2024, Eq. 6. The released code (princeton-nlp/SimPO, ``simpo_trainer.py``) parameterises
    the margin as ``gamma_beta_ratio`` = γ/β and computes −log σ(β·(r̄_w − r̄_l − γ/β)), r̄ the
    length-normalised log-likelihoods: the same value; its label smoothing is 0 by default (not
    offered here).

    Metrics (batch means, detached): ``rewards/chosen`` = r_w, ``rewards/rejected`` = r_l,
    ``rewards/accuracy`` = fraction with r_w > r_l, ``rewards/margin`` = r_w − r_l.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (SimPO's reward scale, the paper's 2.0-10), got {beta}")
    check_sequence_inputs("SimPO", "policy_chosen_logps", policy_chosen_logps,
                          policy_rejected_logps=policy_rejected_logps, chosen_lengths=chosen_lengths,
                          rejected_lengths=rejected_lengths)
    lw = chosen_lengths.to(policy_chosen_logps.device, torch.float32).detach()
    ll = rejected_lengths.to(policy_chosen_logps.device, torch.float32).detach()
    if bool((lw <= 0).any()) or bool((ll <= 0).any()):
        raise ValueError("SimPO needs every response to hold at least one token (a length of 0 was given)")
    chosen = beta * policy_chosen_logps.float() / lw
    rejected = beta * policy_rejected_logps.float() / ll
    loss = -F.logsigmoid(chosen - rejected - gamma).mean()
    return loss, reward_metrics(chosen, rejected)
