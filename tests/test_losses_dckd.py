"""DCKD: top-k forward KL over k + 1 bins, and the full loss, against hand-computed values."""
import math

import pytest
import torch

from distill.losses.common import log_mass_outside
from distill.losses.dckd import dckd_loss, topk_forward_kl


def logits_of(probs):
    """Logits whose softmax is exactly ``probs`` (a nested list [B][T][V])."""
    return torch.tensor(probs).log()


def full_kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def rest_of(t_logps):
    """The teacher's log remaining mass for hand-made top-k log-probs (float64, then float32)."""
    return torch.log1p(-t_logps.double().exp().sum(-1)).float()


def test_topk_kl_hand_value_k1():
    student = logits_of([[[0.5, 0.3, 0.2]]])
    ids = torch.tensor([[[0]]])
    t_logps = torch.tensor([[[math.log(0.7)]]])
    expected = 0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.5)  # rest bins: 0.3 vs 0.5
    out = topk_forward_kl(student, ids, t_logps, rest_of(t_logps), torch.ones(1, 1))
    assert out.item() == pytest.approx(expected, abs=1e-6)


def test_topk_kl_hand_value_k2_and_sequence_mean():
    student = logits_of([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]])
    ids = torch.tensor([[[0, 1], [2, 0]]])
    t_logps = torch.tensor([[[0.6, 0.3], [0.8, 0.1]]]).log()
    kl0 = 0.6 * math.log(0.6 / 0.5) + 0.3 * math.log(0.3 / 0.3) + 0.1 * math.log(0.1 / 0.2)
    kl1 = 0.0  # teacher equals student on every bin at t = 1
    out = topk_forward_kl(student, ids, t_logps, rest_of(t_logps), torch.ones(1, 2))
    assert out.item() == pytest.approx((kl0 + kl1) / 2, abs=1e-6)
    only_first = topk_forward_kl(student, ids, t_logps, rest_of(t_logps), torch.tensor([[1.0, 0.0]]))
    assert only_first.item() == pytest.approx(kl0, abs=1e-6)


def test_topk_kl_equals_full_vocab_kl_when_k_is_v():
    torch.manual_seed(0)
    V = 6
    s_logits = torch.randn(2, 3, V)
    t_lp = torch.log_softmax(torch.randn(2, 3, V), -1)
    order = torch.randperm(V)  # ids in any order
    ids = order.expand(2, 3, V)
    out = topk_forward_kl(s_logits, ids, t_lp[..., order], None, torch.ones(2, 3))
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
    rest = log_mass_outside(logits, top.indices) if k < 5 else None
    out = topk_forward_kl(logits, top.indices, top.values, rest, torch.ones(2, 4))
    assert torch.allclose(out, torch.zeros(2), atol=1e-6)


def test_topk_kl_is_forward_kl_not_reverse():
    p, q = [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]
    ids = torch.tensor([[[0, 1, 2]]])
    fwd = topk_forward_kl(logits_of([[q]]), ids, logits_of([[p]]), None, torch.ones(1, 1))  # KL(p ‖ q)
    rev = topk_forward_kl(logits_of([[p]]), ids, logits_of([[q]]), None, torch.ones(1, 1))  # KL(q ‖ p)
    assert fwd.item() == pytest.approx(full_kl(p, q), abs=1e-6)
    assert rev.item() == pytest.approx(full_kl(q, p), abs=1e-6)
    assert abs(fwd.item() - rev.item()) > 0.1


def test_topk_kl_ignores_masked_positions():
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 8)
    t_logits = torch.randn(2, 4, 8)
    top = torch.log_softmax(t_logits, -1).topk(3, -1)
    rest = log_mass_outside(t_logits, top.indices)
    mask = torch.tensor([[1.0, 1, 0, 0], [1.0, 1, 1, 0]])
    base = topk_forward_kl(logits, top.indices, top.values, rest, mask)
    logits2, ids2, lps2, rest2 = logits.clone(), top.indices.clone(), top.values.clone(), rest.clone()
    pad = ~mask.bool()
    logits2[pad] = torch.randn(int(pad.sum()), 8) * 100
    ids2[pad] = -100  # garbage ids at padding must not even be gathered
    lps2[pad] = 0.0
    rest2[pad] = float("nan")
    assert torch.equal(topk_forward_kl(logits2, ids2, lps2, rest2, mask), base)


def test_topk_kl_gradients_reach_the_student_only():
    torch.manual_seed(3)
    logits = torch.randn(1, 3, 6, requires_grad=True)
    t_logits = torch.randn(1, 3, 6)
    top = torch.log_softmax(t_logits, -1).topk(3, -1)
    t_lps = top.values.clone().requires_grad_(True)
    t_rest = log_mass_outside(t_logits, top.indices).requires_grad_(True)
    topk_forward_kl(logits, top.indices, t_lps, t_rest, torch.ones(1, 3)).sum().backward()
    assert t_lps.grad is None and t_rest.grad is None
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_topk_kl_fp16_teacher_and_zero_probability_entries():
    torch.manual_seed(4)
    logits = torch.randn(1, 2, 6)
    t_logits = torch.randn(1, 2, 6)
    top = torch.log_softmax(t_logits, -1).topk(3, -1)
    rest = log_mass_outside(t_logits, top.indices)
    full = topk_forward_kl(logits, top.indices, top.values, rest, torch.ones(1, 2))
    half = topk_forward_kl(logits, top.indices, top.values.half(), rest, torch.ones(1, 2))
    assert half.dtype == torch.float32
    assert torch.allclose(full, half, atol=1e-3)
    lps = top.values.clone()
    lps[0, 0, -1] = float("-inf")  # a top-k entry that underflowed to probability 0
    assert torch.isfinite(topk_forward_kl(logits, top.indices, lps, rest, torch.ones(1, 2))).all()
    no_rest = rest.clone()
    no_rest[0, 1] = float("-inf")  # a teacher with no mass outside its top-k: the rest bin drops out
    assert torch.isfinite(topk_forward_kl(logits, top.indices, top.values, no_rest, torch.ones(1, 2))).all()


def test_topk_kl_validates_shapes():
    with pytest.raises(ValueError, match="exceeds"):
        topk_forward_kl(torch.zeros(1, 1, 3), torch.zeros(1, 1, 4, dtype=torch.long), torch.zeros(1, 1, 4),
                        None, torch.ones(1, 1))
    with pytest.raises(ValueError, match=r"\[B, T, K\]"):
        topk_forward_kl(torch.zeros(1, 2, 3), torch.zeros(1, 1, 2, dtype=torch.long), torch.zeros(1, 1, 2),
                        torch.zeros(1, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="log remaining mass"):
        topk_forward_kl(torch.zeros(1, 2, 3), torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2),
                        None, torch.ones(1, 2))


def test_dckd_loss_hand_value_and_metrics():
    alpha = 0.1
    lw = logits_of([[[0.5, 0.3, 0.2]]]).requires_grad_(True)
    ll = logits_of([[[0.2, 0.3, 0.5]]]).requires_grad_(True)
    labels = torch.tensor([[0]])
    one = torch.ones(1, 1)
    tw, tl = torch.tensor([[[math.log(0.7)]]]), torch.tensor([[[math.log(0.6)]]])
    loss, m = dckd_loss(lw, labels, one, torch.tensor([[[0]]]), tw, rest_of(tw),
                        ll, one, torch.tensor([[[2]]]), tl, rest_of(tl), alpha)
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
        dckd_loss(z, lab, one, ids, lps, None, z, one, ids, lps, None, alpha=-0.1)


# ----------------------------------------------------------------------------------------------
# Exactness against a float64 reference that never forms 1 − Σ: the student's mass outside the
# teacher's top-k is summed directly over the other tokens, the teacher's comes from its logits.
def reference_kl64(s_logits, ids, t_logps, t_log_rest, mask):
    """Per-sequence top-k + rest KL in float64, rest bins by direct summation."""
    z = s_logits.double()
    q = torch.softmax(z, -1)
    inside = torch.zeros_like(q, dtype=torch.bool).scatter(-1, ids, True)
    log_q_rest = torch.where(inside, torch.zeros_like(q), q).sum(-1).log()
    log_qk = torch.log_softmax(z, -1).gather(-1, ids)
    p, lp = t_logps.double().exp(), t_logps.double()
    pr, lpr = t_log_rest.double().exp(), t_log_rest.double()
    kl = (p * (lp - log_qk)).sum(-1) + pr * (lpr - log_q_rest)
    m = mask.double()
    return (kl * m).sum(-1) / m.sum(-1)


def peaked_case(student_rest: float, offset: float = 0.0, V: int = 64, k: int = 5, seed: int = 0):
    """Teacher with mass ~0.1 outside its top-k; student logits (float32) whose mass outside the
    teacher's top-k is ``student_rest`` at every position, shifted by ``offset`` (huge logits)."""
    g = torch.Generator().manual_seed(seed)
    B, T = 2, 3
    t_logits = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    ids = t_logits.topk(k, -1).indices
    t_logits = t_logits.scatter_add(-1, ids, torch.full((B, T, k), 3.0, dtype=torch.float64))
    t_lp = torch.log_softmax(t_logits, -1)
    t_logps = t_lp.gather(-1, ids)
    t_rest = torch.log1p(-t_logps.exp().sum(-1))  # float64: exact enough at a mass of ~0.1
    top = torch.randn(B, T, k, generator=g, dtype=torch.float64)
    other = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 0.5
    # put the outside mass at exactly student_rest: log Σ_out e^z − log Σ_top e^z = log(r / (1 − r))
    gap = torch.logsumexp(other.scatter(-1, ids, float("-inf")), -1) - torch.logsumexp(top, -1)
    other = other - (gap - math.log(student_rest / (1 - student_rest))).unsqueeze(-1)
    s_logits = other.scatter(-1, ids, top) + offset
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    return s_logits.float(), ids, t_logps.half(), t_rest.float(), mask


@pytest.mark.parametrize("student_rest", [1e-3, 1e-8, 1e-15, 1e-22, 1e-30])
@pytest.mark.parametrize("offset", [0.0, 3.0e4])
def test_topk_kl_and_gradient_match_float64_for_confident_students(student_rest, offset):
    s_logits, ids, t_logps, t_rest, mask = peaked_case(student_rest, offset)
    z = s_logits.clone().requires_grad_(True)
    out = topk_forward_kl(z, ids, t_logps, t_rest, mask)
    out.sum().backward()
    z64 = s_logits.double().requires_grad_(True)
    ref = reference_kl64(z64, ids, t_logps, t_rest, mask)
    ref.sum().backward()
    # the case really is one where 1 − Σ q fails in float32: the mass is measured at the intended size
    q_out = torch.softmax(s_logits.double(), -1).scatter(-1, ids, 0.0).sum(-1)
    assert torch.allclose(q_out, torch.full_like(q_out, student_rest), rtol=1e-3)
    torch.testing.assert_close(out.double(), ref.detach(), rtol=1e-5, atol=0.0)
    torch.testing.assert_close(z.grad.double(), z64.grad, rtol=1e-5, atol=1e-12)
    # the rest bin's own gradient (on the tokens outside the top-k) is there and is right
    outside = torch.ones_like(z.grad, dtype=torch.bool).scatter(-1, ids, False) & mask.bool().unsqueeze(-1)
    assert (z64.grad[outside].abs() > 1e-4).all()


def test_the_float64_case_defeats_one_minus_sum_in_float32():
    """The old route, log max(1 − Σ q_i, 1e-8) in float32, is off by nats on these inputs."""
    s_logits, ids, t_logps, t_rest, mask = peaked_case(1e-30)
    naive = (1 - torch.softmax(s_logits, -1).gather(-1, ids).sum(-1)).clamp_min(1e-8).log()
    exact = log_mass_outside(s_logits, ids)
    assert (naive - math.log(1e-30)).abs().min() > 40
    torch.testing.assert_close(exact.double(), torch.full_like(exact, math.log(1e-30)).double(), rtol=1e-5, atol=0.0)


def test_dckd_loss_and_gradient_match_float64_on_lm_like_distributions():
    """Vocabulary 4096, k = 50, a student at temperature 0.3 (confident), fp16 teacher cache."""
    g = torch.Generator().manual_seed(7)
    B, T, V, k = 2, 5, 4096, 50
    t_logits = torch.randn(B, T, V, generator=g) * 2.5
    s_logits = (t_logits + torch.randn(B, T, V, generator=g)) / 0.3
    top = torch.log_softmax(t_logits, -1).topk(k, -1)
    t_rest = log_mass_outside(t_logits, top.indices)
    mask = torch.ones(B, T)
    mask[1, 3:] = 0
    labels = torch.randint(0, V, (B, T), generator=g)
    z = s_logits.clone().requires_grad_(True)
    loss, _ = dckd_loss(z, labels, mask, top.indices, top.values.half(), t_rest, z, mask, top.indices,
                        top.values.half(), t_rest, alpha=0.5)
    loss.backward()
    z64 = s_logits.double().requires_grad_(True)
    nll = -(torch.log_softmax(z64, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1) * mask).sum() / mask.sum()
    kl = reference_kl64(z64, top.indices, top.values.half(), t_rest, mask).mean()
    ref = nll + 0.5 * 2 * kl
    ref.backward()
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-5, atol=0.0)
    torch.testing.assert_close(z.grad.double(), z64.grad, rtol=1e-5, atol=1e-12)


def test_dckd_nll_is_the_mean_over_every_chosen_token_of_the_batch():
    """Chosen responses of 1 and 3 tokens: weights 1:3 (token mean), not 1:1 (sequence mean)."""
    s = logits_of([[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
    labels = torch.tensor([[0, 0, 0], [0, 1, 0]])
    mask = torch.tensor([[1.0, 0, 0], [1.0, 1, 1]])
    nll = [-math.log(0.5), -math.log(0.9), -math.log(0.8), -math.log(0.6)]
    ids = torch.tensor([[[0, 1]] * 3] * 2)
    lps = torch.log_softmax(s, -1)  # the teacher equals the student: both KL terms are 0
    loss, m = dckd_loss(s, labels, mask, ids, lps, None, s, mask, ids, lps, None, alpha=1.0)
    assert m["loss/nll"].item() == pytest.approx(sum(nll) / 4, abs=1e-6)
    assert loss.item() == pytest.approx(sum(nll) / 4, abs=1e-6)


@pytest.mark.parametrize("scale", [1.0, 0.02])  # 0.02: a confident student, mass outside the top-k < e^-50
def test_gather_mass_outside_equals_gather_logsumexp_and_label_logps_with_gradients(scale):
    """The one-pass ``gather_mass_outside`` against autograd over ``gather``, ``log_mass_outside_logps``
    and ``label_logps``: values and gradients to float32 rounding, every output used with weights."""
    from distill.losses.common import gather_mass_outside, label_logps, log_mass_outside_logps, log_probs

    g = torch.Generator().manual_seed(11)
    B, T, V, k = 2, 6, 997, 13
    logits = torch.randn(B, T, V, generator=g) * 3 / scale
    ids = torch.log_softmax(logits, -1).topk(k, -1).indices
    labels = torch.randint(-100, V, (B, T), generator=g)  # masked-style ids are clamped as label_logps does
    w_ids, w_rest, w_lab = (torch.randn(B, T, k, generator=g), torch.randn(B, T, generator=g),
                            torch.randn(B, T, generator=g))
    z1, z2 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    lp1 = log_probs(z1)
    want = (lp1.gather(-1, ids), log_mass_outside_logps(lp1, ids), label_logps(lp1, labels))
    got = gather_mass_outside(log_probs(z2), ids, labels)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    if scale < 1:
        assert want[1].max() < -50  # the rest bin is tiny here (< e^-50), and still finite
    sum(((x * w).sum() for x, w in zip(want, (w_ids, w_rest, w_lab)))).backward()
    sum(((x * w).sum() for x, w in zip(got, (w_ids, w_rest, w_lab)))).backward()
    torch.testing.assert_close(z2.grad, z1.grad, rtol=1e-5, atol=1e-6)
    # without labels: the two outputs, and a gradient through the rest bin alone
    z3 = logits.clone().requires_grad_(True)
    at_ids, rest = gather_mass_outside(log_probs(z3), ids)
    torch.testing.assert_close(rest, want[1], rtol=1e-6, atol=1e-6)
    rest.sum().backward()
    z4 = logits.clone().requires_grad_(True)
    log_mass_outside_logps(log_probs(z4), ids).sum().backward()
    torch.testing.assert_close(z3.grad, z4.grad, rtol=1e-5, atol=1e-6)
