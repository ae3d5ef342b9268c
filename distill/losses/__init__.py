"""Pure loss functions: tensors in, ``(loss, metrics)`` out. Inputs are already shifted (see
``distill.losses.common``); nothing here runs a model."""
from distill.losses.adpa import adpa_loss, advantage_term
from distill.losses.common import masked_mean_nll, sequence_logps, token_logps
from distill.losses.dckd import dckd_loss, topk_forward_kl
from distill.losses.dpo import dpo_loss
from distill.losses.pad import (
    all_rankings,
    calibrate_teacher_scores,
    intrinsic_reward,
    lppd_loss,
    lvpd_loss,
    plackett_luce_log_prob,
    ranking_log_probs,
)

__all__ = [
    "adpa_loss", "advantage_term", "all_rankings", "calibrate_teacher_scores", "dckd_loss", "dpo_loss",
    "intrinsic_reward", "lppd_loss", "lvpd_loss", "masked_mean_nll", "plackett_luce_log_prob",
    "ranking_log_probs", "sequence_logps", "token_logps", "topk_forward_kl",
]
