"""DPO loss and the shared log-probability helpers, against values computed by hand."""
import math

import pytest
import torch

from distill.losses.common import masked_mean_nll, sequence_logps, token_logps
from distill.losses.dpo import dpo_loss


def log1pexp(x: float) -> float:
    return math.log1p(math.exp(x))


# ---- shared helpers -------------------------------------------------------------------------

def test_token_logps_hand_value_and_safe_ignore_label():
    # softmax([0, ln 2, 0]) = [1/4, 1/2, 1/4]
    logits = torch.tensor([[[0.0, math.log(2.0), 0.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[1, -100]])
    out = token_logps(logits, labels)
    assert out.shape == (1, 2)
    assert out[0, 0].item() == pytest.approx(math.log(0.5), abs=1e-6)
    assert torch.isfinite(out).all()


def test_sequence_logps_sums_response_tokens_only():
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0], [5.0, -5.0]]])  # p(1)=3/4, p(.)=1/2
    labels = torch.tensor([[1, 0, 0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    expected = math.log(0.75) + math.log(0.5)
    assert sequence_logps(logits, labels, mask).item() == pytest.approx(expected, abs=1e-6)
    garbage = logits.clone()
    garbage[0, 2] = torch.tensor([1e4, -1e4])
    labels2 = labels.clone()
    labels2[0, 2] = -100
    assert sequence_logps(garbage, labels2, mask).item() == pytest.approx(expected, abs=1e-6)


def test_masked_mean_nll_token_and_sequence_reductions():
    # row 0: one token with p = 3/4; row 1: three tokens with p = 1/2 each, then one padding slot
    logits = torch.zeros(2, 4, 2)
    logits[0, 0] = torch.tensor([math.log(3.0), 0.0])
    labels = torch.zeros(2, 4, dtype=torch.long)
    mask = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 1, 0]])
    a, b = -math.log(0.75), math.log(2.0)
    token = masked_mean_nll(logits, labels, mask)
    seq = masked_mean_nll(logits, labels, mask, reduction="sequence")
    assert token.item() == pytest.approx((a + 3 * b) / 4, abs=1e-6)
    assert seq.item() == pytest.approx((a + b) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        masked_mean_nll(logits, labels, mask, reduction="sum")


def test_helpers_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="mask"):
        sequence_logps(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4))


# ---- DPO ------------------------------------------------------------------------------------

def _example():
    pc = torch.tensor([-1.0, -3.0], requires_grad=True)
    pr = torch.tensor([-2.0, -1.0], requires_grad=True)
    rc = torch.tensor([-1.5, -2.0], requires_grad=True)
    rr = torch.tensor([-1.5, -2.0], requires_grad=True)
    return pc, pr, rc, rr


def test_dpo_hand_values_and_metrics():
    pc, pr, rc, rr = _example()
    loss, m = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # r_w = 0.5*(0.5, -1) = (0.25, -0.5); r_l = 0.5*(-0.5, 1) = (-0.25, 0.5); z = (0.5, -1)
    expected = (log1pexp(-0.5) + log1pexp(1.0)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert set(m) == {"rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin"}
    assert m["rewards/chosen"].item() == pytest.approx(-0.125)
    assert m["rewards/rejected"].item() == pytest.approx(0.125)
    assert m["rewards/accuracy"].item() == pytest.approx(0.5)
    assert m["rewards/margin"].item() == pytest.approx(-0.25)
    assert not any(v.requires_grad for v in m.values())


def test_dpo_gradient_to_policy_only():
    pc, pr, rc, rr = _example()
    beta = 0.5
    loss, _ = dpo_loss(pc, pr, rc, rr, beta)
    loss.backward()
    z = [0.5, -1.0]
    # dL/dπc_i = −(β/B)·σ(−z_i), dL/dπr_i = +(β/B)·σ(−z_i)
    for i, zi in enumerate(z):
        g = beta / 2 / (1 + math.exp(zi))
        assert pc.grad[i].item() == pytest.approx(-g, abs=1e-6)
        assert pr.grad[i].item() == pytest.approx(g, abs=1e-6)
    assert rc.grad is None and rr.grad is None


def test_dpo_is_stable_for_huge_margins():
    zero = torch.zeros(1)
    good, _ = dpo_loss(torch.tensor([0.0]), torch.tensor([-1e4]), zero, zero, beta=1.0)
    bad, _ = dpo_loss(torch.tensor([-1e4]), torch.tensor([0.0]), zero, zero, beta=1.0)
    assert good.item() == pytest.approx(0.0, abs=1e-6)
    assert bad.item() == pytest.approx(1e4, rel=1e-6)


def test_dpo_validates_arguments():
    pc, pr, rc, rr = _example()
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(pc, pr, rc, rr, beta=0.0)
    with pytest.raises(ValueError, match="shape"):
        dpo_loss(pc, pr[:1], rc, rr, beta=0.1)
