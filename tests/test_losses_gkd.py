"""GKD's generalised JSD (distill.losses.gkd) against hand-computed values and its properties."""
from __future__ import annotations

import math

import pytest
import torch

from distill.losses.gkd import generalized_jsd


def _logits(*probs):
    """[1, n, V] logits whose softmax rows are ``probs``."""
    return torch.tensor([[list(map(math.log, p)) for p in probs]], dtype=torch.float64)


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


T, S = [0.8, 0.2], [0.5, 0.5]


def test_hand_computed_value_at_beta_half():
    m = [0.5 * a + 0.5 * b for a, b in zip(T, S)]
    want = 0.5 * _kl(T, m) + 0.5 * _kl(S, m)
    loss, metrics = generalized_jsd(_logits(S), _logits(T), torch.ones(1, 1), beta=0.5)
    assert float(loss) == pytest.approx(want, rel=1e-6)
    assert float(metrics["kl/forward"]) == pytest.approx(_kl(T, S), rel=1e-6)
    assert float(metrics["kl/reverse"]) == pytest.approx(_kl(S, T), rel=1e-6)


def test_beta_weights_the_mixture_towards_the_teacher():
    beta = 0.3
    m = [beta * a + (1 - beta) * b for a, b in zip(T, S)]  # M = β·P_T + (1−β)·P_S (TRL's convention)
    want = beta * _kl(T, m) + (1 - beta) * _kl(S, m)
    loss, _ = generalized_jsd(_logits(S), _logits(T), torch.ones(1, 1), beta=beta)
    assert float(loss) == pytest.approx(want, rel=1e-6)


def test_beta_zero_is_forward_and_one_is_reverse_kl_and_they_differ():
    fwd, _ = generalized_jsd(_logits(S), _logits(T), torch.ones(1, 1), beta=0.0)
    rev, _ = generalized_jsd(_logits(S), _logits(T), torch.ones(1, 1), beta=1.0)
    assert float(fwd) == pytest.approx(_kl(T, S), rel=1e-6) and float(rev) == pytest.approx(_kl(S, T), rel=1e-6)
    assert abs(float(fwd) - float(rev)) > 1e-3  # the KL direction matters
    # the limits of the interpolation: JSD_β / β -> KL(P_T‖P_S) as β -> 0,
    # JSD_β / (1−β) -> KL(P_S‖P_T) as β -> 1
    eps = 1e-3  # (the loss runs in float32)
    near0, _ = generalized_jsd(_logits(S), _logits(T), torch.ones(1, 1), beta=eps)
    near1, _ = generalized_jsd(_logits(S), _logits(T), torch.ones(1, 1), beta=1 - eps)
    assert float(near0) / eps == pytest.approx(_kl(T, S), rel=1e-2)
    assert float(near1) / eps == pytest.approx(_kl(S, T), rel=1e-2)


def test_zero_at_identity_and_symmetric_at_one_half():
    z = torch.randn(2, 5, 7, dtype=torch.float64)
    for beta in (0.0, 0.2, 0.5, 1.0):
        assert float(generalized_jsd(z, z.clone(), torch.ones(2, 5), beta=beta)[0]) == pytest.approx(0.0, abs=1e-6)
    a, b = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    ab, ba = (float(generalized_jsd(x, y, torch.ones(2, 5), beta=0.5)[0]) for x, y in ((a, b), (b, a)))
    assert ab == pytest.approx(ba, rel=1e-5) and ab > 0


def test_temperature_divides_both_logits_and_masking_ignores_padding():
    s, t = torch.randn(1, 4, 6), torch.randn(1, 4, 6)
    hot, _ = generalized_jsd(s, t, torch.ones(1, 4), beta=0.5, temperature=2.0)
    same, _ = generalized_jsd(s / 2, t / 2, torch.ones(1, 4), beta=0.5)
    assert float(hot) == pytest.approx(float(same), rel=1e-5)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    s2, t2 = s.clone(), t.clone()
    s2[0, 2:] += 100 * torch.randn(2, 6)  # garbage at padding
    assert float(generalized_jsd(s2, t2, mask)[0]) == pytest.approx(float(generalized_jsd(s[:, :2], t[:, :2],
                                                                                         mask[:, :2])[0]), rel=1e-6)


def test_gradients_reach_the_student_only_and_vanish_at_the_teacher():
    s = torch.randn(1, 3, 5, requires_grad=True)
    t = torch.randn(1, 3, 5, requires_grad=True)
    loss, _ = generalized_jsd(s, t, torch.ones(1, 3), beta=0.5)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None
    s0 = t.detach().clone().requires_grad_(True)
    generalized_jsd(s0, t.detach(), torch.ones(1, 3), beta=0.5)[0].backward()
    assert s0.grad.abs().max() < 1e-6  # the divergence is minimal where the student equals the teacher


def test_bad_inputs_are_refused():
    z = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\]"):
        generalized_jsd(z, z, torch.ones(1, 2), beta=1.5)
    with pytest.raises(ValueError, match="share a vocabulary"):
        generalized_jsd(z, torch.zeros(1, 2, 4), torch.ones(1, 2))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generalized_jsd(z, z, torch.ones(1, 2), temperature=0.0)
