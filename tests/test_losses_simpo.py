"""SimPO's loss (distill.losses.simpo) against hand-computed values and its properties."""
from __future__ import annotations

import math

import pytest
import torch

from distill.losses.simpo import simpo_loss


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_hand_computed_value():
    # pair 1: logps -6 over 3 tokens, -12 over 4 tokens; pair 2: -2 over 2, -9 over 3 (β = 2, γ = 0.5)
    loss, m = simpo_loss(_t(-6.0, -2.0), _t(-12.0, -9.0), _t(3, 2), _t(4, 3), beta=2.0, gamma=0.5)
    r_w, r_l = [2 * -6 / 3, 2 * -2 / 2], [2 * -12 / 4, 2 * -9 / 3]  # [-4, -2], [-6, -6]
    want = sum(-math.log(1 / (1 + math.exp(-(w - l - 0.5)))) for w, l in zip(r_w, r_l)) / 2
    assert float(loss) == pytest.approx(want, rel=1e-6)
    assert float(m["rewards/chosen"]) == pytest.approx(-3.0) and float(m["rewards/rejected"]) == pytest.approx(-6.0)
    assert float(m["rewards/margin"]) == pytest.approx(3.0) and float(m["rewards/accuracy"]) == 1.0


def test_length_normalisation_and_reference_free():
    # the same per-token log-likelihood at any length gives the same reward: log σ(−γ) at equal rates
    loss, _ = simpo_loss(_t(-4.0), _t(-40.0), _t(2), _t(20), beta=10.0, gamma=5.0)
    assert float(loss) == pytest.approx(-math.log(1 / (1 + math.exp(5.0))), rel=1e-6)
    # DPO would need reference log-probs; SimPO's value depends on the policy's alone, so scaling both
    # sequences' log-likelihood by their length changes nothing
    a, _ = simpo_loss(_t(-3.0), _t(-5.0), _t(3), _t(5), beta=1.0, gamma=0.0)
    b, _ = simpo_loss(_t(-30.0), _t(-50.0), _t(30), _t(50), beta=1.0, gamma=0.0)
    assert float(a) == pytest.approx(float(b))


def test_the_margin_gamma_raises_the_loss_and_zero_margin_is_log_two():
    base = dict(policy_chosen_logps=_t(-2.0), policy_rejected_logps=_t(-2.0), chosen_lengths=_t(2),
                rejected_lengths=_t(2), beta=10.0)
    assert float(simpo_loss(**base, gamma=0.0)[0]) == pytest.approx(math.log(2))
    losses = [float(simpo_loss(**base, gamma=g)[0]) for g in (0.0, 0.5, 1.0, 5.0)]
    assert losses == sorted(losses) and losses[0] < losses[-1]


def test_gradients_raise_the_chosen_and_lower_the_rejected_likelihood():
    w, l = _t(-5.0, -3.0).requires_grad_(), _t(-4.0, -6.0).requires_grad_()
    loss, _ = simpo_loss(w, l, _t(5, 3), _t(4, 6), beta=2.0, gamma=1.0)
    loss.backward()
    assert (w.grad < 0).all() and (l.grad > 0).all()  # descent raises log π(y_w), lowers log π(y_l)
    # d/d log π(y_w) = −σ(−z)·β/|y_w| / B: the first pair, z = 2·(−1) − 2·(−1) − 1 = −1
    assert float(w.grad[0]) == pytest.approx(-(1 / (1 + math.exp(-1))) * 2 / 5 / 2, rel=1e-6)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="beta must be > 0"):
        simpo_loss(_t(-1.0), _t(-1.0), _t(1), _t(1), beta=0.0, gamma=1.0)
    with pytest.raises(ValueError, match="shape"):
        simpo_loss(_t(-1.0, -2.0), _t(-1.0), _t(1, 1), _t(1), beta=1.0, gamma=1.0)
    with pytest.raises(ValueError, match="at least one token"):
        simpo_loss(_t(-1.0), _t(-1.0), _t(0), _t(1), beta=1.0, gamma=1.0)
