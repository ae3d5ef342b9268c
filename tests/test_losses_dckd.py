"""DCKD: top-k forward KL over k + 1 bins, and the full loss, against hand-computed values."""
import math

import pytest
import torch

from distill.losses.dckd import dckd_loss, topk_forward_kl


def logits_of(probs):
    """Logits whose softmax is exactly ``probs`` (a nested list [B][T][V])."""
    return torch.tensor(probs).log()


def full_kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def test_topk_kl_hand_value_k1():
    student = logits_of([[[0.5, 0.3, 0.2]]])
    ids = torch.tensor([[[0]]])
    t_logps = torch.tensor([[[math.log(0.7)]]])
    expected = 0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.5)  # rest bins: 0.3 vs 0.5
    out = topk_forward_kl(student, ids, t_logps, torch.ones(1, 1))
    assert out.item() == pytest.approx(expected, abs=1e-6)


def test_topk_kl_hand_value_k2_and_sequence_mean():
    student = logits_of([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]])
    ids = torch.tensor([[[0, 1], [2, 0]]])
    t_logps = torch.tensor([[[0.6, 0.3], [0.8, 0.1]]]).log()
    kl0 = 0.6 * math.log(0.6 / 0.5) + 0.3 * math.log(0.3 / 0.3) + 0.1 * math.log(0.1 / 0.2)
    kl1 = 0.0  # teacher equals student on every bin at t = 1
    out = topk_forward_kl(student, ids, t_logps, torch.ones(1, 2))
    assert out.item() == pytest.approx((kl0 + kl1) / 2, abs=1e-6)
    only_first = topk_forward_kl(student, ids, t_logps, torch.tensor([[1.0, 0.0]]))
    assert only_first.item() == pytest.approx(kl0, abs=1e-6)


def test_topk_kl_equals_full_vocab_kl_when_k_is_v():
    torch.manual_seed(0)
    V = 6
    s_logits = torch.randn(2, 3, V)
    t_lp = torch.log_softmax(torch.randn(2, 3, V), -1)
    order = torch.randperm(V)  # ids in any order
    ids = order.expand(2, 3, V)
    out = topk_forward_kl(s_logits, ids, t_lp[..., order], torch.ones(2, 3))
    q = torch.softmax(s_logits, -1).tolist()
    p = t_lp.exp().tolist()
    for b in range(2):
        expected = sum(full_kl(p[b][t], q[b][t]) for t in range(3)) / 3
        assert out[b].item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("k", [2, 5])
def test_topk_kl_is_zero_when_student_equals_teacher(k):
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 5)
    top = torch.log_softmax(logits, -1).topk(k, -1)
    out = topk_forward_kl(logits, top.indices, top.values, torch.ones(2, 4))
    assert torch.allclose(out, torch.zeros(2), atol=1e-6)


def test_topk_kl_is_forward_kl_not_reverse():
    p, q = [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]
    ids = torch.tensor([[[0, 1, 2]]])
    fwd = topk_forward_kl(logits_of([[q]]), ids, logits_of([[p]]), torch.ones(1, 1))  # KL(p ‖ q)
    rev = topk_forward_kl(logits_of([[p]]), ids, logits_of([[q]]), torch.ones(1, 1))  # KL(q ‖ p)
    assert fwd.item() == pytest.approx(full_kl(p, q), abs=1e-6)
    assert rev.item() == pytest.approx(full_kl(q, p), abs=1e-6)
    assert abs(fwd.item() - rev.item()) > 0.1


def test_topk_kl_ignores_masked_positions():
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 8)
    top = torch.log_softmax(torch.randn(2, 4, 8), -1).topk(3, -1)
    mask = torch.tensor([[1.0, 1, 0, 0], [1.0, 1, 1, 0]])
    base = topk_forward_kl(logits, top.indices, top.values, mask)
    logits2, ids2, lps2 = logits.clone(), top.indices.clone(), top.values.clone()
    pad = ~mask.bool()
    logits2[pad] = torch.randn(int(pad.sum()), 8) * 100
    ids2[pad] = -100  # garbage ids at padding must not even be gathered
    lps2[pad] = 0.0
    assert torch.equal(topk_forward_kl(logits2, ids2, lps2, mask), base)


def test_topk_kl_gradients_reach_the_student_only():
    torch.manual_seed(3)
    logits = torch.randn(1, 3, 6, requires_grad=True)
    top = torch.log_softmax(torch.randn(1, 3, 6), -1).topk(3, -1)
    t_lps = top.values.clone().requires_grad_(True)
    topk_forward_kl(logits, top.indices, t_lps, torch.ones(1, 3)).sum().backward()
    assert t_lps.grad is None
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_topk_kl_fp16_teacher_and_zero_probability_entries():
    torch.manual_seed(4)
    logits = torch.randn(1, 2, 6)
    top = torch.log_softmax(torch.randn(1, 2, 6), -1).topk(3, -1)
    full = topk_forward_kl(logits, top.indices, top.values, torch.ones(1, 2))
    half = topk_forward_kl(logits, top.indices, top.values.half(), torch.ones(1, 2))
    assert half.dtype == torch.float32
    assert torch.allclose(full, half, atol=1e-3)
    lps = top.values.clone()
    lps[0, 0, -1] = float("-inf")  # a top-k entry that underflowed to probability 0
    assert torch.isfinite(topk_forward_kl(logits, top.indices, lps, torch.ones(1, 2))).all()


def test_topk_kl_validates_shapes():
    with pytest.raises(ValueError, match="exceeds"):
        topk_forward_kl(torch.zeros(1, 1, 3), torch.zeros(1, 1, 4, dtype=torch.long), torch.zeros(1, 1, 4),
                        torch.ones(1, 1))
    with pytest.raises(ValueError, match=r"\[B, T, K\]"):
        topk_forward_kl(torch.zeros(1, 2, 3), torch.zeros(1, 1, 2, dtype=torch.long), torch.zeros(1, 1, 2),
                        torch.ones(1, 2))


def test_dckd_loss_hand_value_and_metrics():
    alpha = 0.1
    lw = logits_of([[[0.5, 0.3, 0.2]]]).requires_grad_(True)
    ll = logits_of([[[0.2, 0.3, 0.5]]]).requires_grad_(True)
    labels = torch.tensor([[0]])
    one = torch.ones(1, 1)
    loss, m = dckd_loss(lw, labels, one, torch.tensor([[[0]]]), torch.tensor([[[math.log(0.7)]]]),
                        ll, one, torch.tensor([[[2]]]), torch.tensor([[[math.log(0.6)]]]), alpha)
    nll = -math.log(0.5)
    kl_w = 0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.5)
    kl_l = 0.6 * math.log(0.6 / 0.5) + 0.4 * math.log(0.4 / 0.5)
    assert loss.item() == pytest.approx(nll + alpha * (kl_w + kl_l), abs=1e-6)
    assert set(m) == {"loss/nll", "loss/kl_chosen", "loss/kl_rejected"}
    assert m["loss/nll"].item() == pytest.approx(nll, abs=1e-6)
    assert m["loss/kl_chosen"].item() == pytest.approx(kl_w, abs=1e-6)
    assert m["loss/kl_rejected"].item() == pytest.approx(kl_l, abs=1e-6)
    loss.backward()
    assert ll.grad.abs().sum() > 0  # the rejected response is constrained too


def test_dckd_rejects_negative_alpha():
    z = torch.zeros(1, 1, 3)
    ids, lps, one, lab = torch.zeros(1, 1, 1, dtype=torch.long), torch.zeros(1, 1, 1), torch.ones(1, 1), \
        torch.zeros(1, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="alpha"):
        dckd_loss(z, lab, one, ids, lps, z, one, ids, lps, alpha=-0.1)
