"""DPO (Rafailov et al., 2023): the baseline, and how the aligned teacher π_dpo is made."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.losses.common import check_sequence_inputs, reward_metrics

Tensor = torch.Tensor


def dpo_loss(policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, ref_chosen_logps: Tensor,
             ref_rejected_logps: Tensor, beta: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Direct Preference Optimization loss, batch mean.

        r_w = β (log π_θ(y_w|x) − log π_0(y_w|x)),   r_l = β (log π_θ(y_l|x) − log π_0(y_l|x))
        L   = −log σ(r_w − r_l)          (computed as −logsigmoid, stable for large margins)

    All four inputs are [B] sequence log-probabilities (sums over response tokens). π_0 is the
    frozen start model; its values are constants (no gradient flows into them).

    Source: Rafailov et al., "Direct Preference Optimization", NeurIPS 2023, Eq. 7; the
    ``sigmoid`` loss of TRL's DPOTrainer, which the ADPA reference code reuses for π_dpo.

    Metrics (batch means, detached): ``rewards/chosen`` = r_w, ``rewards/rejected`` = r_l,
    ``rewards/accuracy`` = fraction with r_w > r_l, ``rewards/margin`` = r_w − r_l.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (DPO's KL strength, typically 0.01-0.5), got {beta}")
    check_sequence_inputs("DPO", "policy_chosen_logps", policy_chosen_logps,
                          policy_rejected_logps=policy_rejected_logps, ref_chosen_logps=ref_chosen_logps,
                          ref_rejected_logps=ref_rejected_logps)
    pc = policy_chosen_logps.float()
    pr = policy_rejected_logps.float()
    rc = ref_chosen_logps.to(pc.device, torch.float32).detach()
    rr = ref_rejected_logps.to(pc.device, torch.float32).detach()
    chosen = beta * (pc - rc)
    rejected = beta * (pr - rr)
    loss = -F.logsigmoid(chosen - rejected).mean()
    return loss, reward_metrics(chosen, rejected)
