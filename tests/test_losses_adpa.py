"""ADPA: the advantage term and the full loss, against hand-computed values."""
import math

import pytest
import torch

from distill.losses.adpa import adpa_loss, advantage_term


def logits_of(probs):
    return torch.tensor(probs).log()


def test_advantage_term_hand_value():
    student = logits_of([[[0.5, 0.3, 0.2]]])
    ids = torch.tensor([[[0, 2]]])
    dpo = torch.tensor([[[0.6, 0.3]]]).log()
    ref = torch.tensor([[[0.4, 0.5]]]).log()
    expected = 0.5 * math.log(0.6 / 0.4) + 0.2 * math.log(0.3 / 0.5)
    out = advantage_term(student, torch.ones(1, 1), ids, dpo, ref)
    assert out.shape == (1,)
    assert out.item() == pytest.approx(expected, abs=1e-6)


def test_advantage_term_is_a_per_sequence_mean_and_ignores_padding():
    student = logits_of([[[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]]])
    ids = torch.tensor([[[0, 1], [0, 1], [0, 1]]])
    dpo = torch.log(torch.tensor([[[0.8, 0.2], [0.5, 0.5], [0.5, 0.5]]]))
    ref = torch.log(torch.tensor([[[0.4, 0.4], [0.5, 0.25], [0.5, 0.5]]]))
    t0 = 0.5 * math.log(2.0) + 0.5 * math.log(0.5)
    t1 = 0.9 * 0.0 + 0.1 * math.log(2.0)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    base = advantage_term(student, mask, ids, dpo, ref)
    assert base.item() == pytest.approx((t0 + t1) / 2, abs=1e-6)
    student2, ids2, dpo2 = student.clone(), ids.clone(), dpo.clone()
    student2[0, 2] = torch.tensor([50.0, -50.0])
    ids2[0, 2] = torch.tensor([-100, 10 ** 6])
    dpo2[0, 2] = 5.0
    assert torch.equal(advantage_term(student2, mask, ids2, dpo2, ref), base)


def test_advantage_term_is_maximised_on_the_argmax_advantage_token():
    torch.manual_seed(0)
    V = 5
    ids = torch.arange(V).view(1, 1, V)
    dpo = torch.log_softmax(torch.randn(1, 1, V), -1)
    ref = torch.log_softmax(torch.randn(1, 1, V), -1)
    adv = (dpo - ref).view(-1)
    best = int(adv.argmax())
    one_hot = torch.full((1, 1, V), -30.0)
    one_hot[0, 0, best] = 30.0
    top = advantage_term(one_hot, torch.ones(1, 1), ids, dpo, ref).item()
    assert top == pytest.approx(adv.max().item(), abs=1e-5)
    for _ in range(50):
        other = advantage_term(torch.randn(1, 1, V) * 3, torch.ones(1, 1), ids, dpo, ref).item()
        assert other <= top + 1e-6
    # and gradient ascent from a uniform student moves mass onto that token
    logits = torch.zeros(1, 1, V, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=5.0)
    for _ in range(200):
        opt.zero_grad()
        (-advantage_term(logits, torch.ones(1, 1), ids, dpo, ref)).sum().backward()
        opt.step()
    assert int(logits.detach().argmax()) == best
    assert torch.softmax(logits.detach(), -1)[0, 0, best] > 0.9


def test_advantage_clamp_reproduces_the_reference_clamp():
    student = logits_of([[[0.5, 0.3, 0.2]]])
    ids = torch.tensor([[[0, 1, 2]]])
    dpo = torch.tensor([[[0.6, 0.1, 0.3]]]).log()
    ref = torch.tensor([[[0.2, 0.4, 0.4]]]).log()
    # A = [log 3 (>1), log 0.25 (<0), log 0.75 (<0)]
    plain = advantage_term(student, torch.ones(1, 1), ids, dpo, ref).item()
    clamped = advantage_term(student, torch.ones(1, 1), ids, dpo, ref, advantage_clamp=True).item()
    assert plain == pytest.approx(0.5 * math.log(3) + 0.3 * math.log(0.25) + 0.2 * math.log(0.75), abs=1e-6)
    assert clamped == pytest.approx(0.5 * (1 - 1e-8) + 0.3 * 1e-8 + 0.2 * 1e-8, abs=1e-6)
    # with the clamp a disadvantaged token costs nothing: moving mass onto it is no longer penalised
    bad = logits_of([[[0.01, 0.98, 0.01]]])
    assert advantage_term(bad, torch.ones(1, 1), ids, dpo, ref).item() < -1.0
    assert advantage_term(bad, torch.ones(1, 1), ids, dpo, ref, advantage_clamp=True).item() > 0.0


def test_adpa_loss_hand_value_metrics_and_gradients():
    gamma = 2.0
    lw = logits_of([[[0.5, 0.3, 0.2]]]).requires_grad_(True)
    lhat = logits_of([[[0.5, 0.3, 0.2]]]).requires_grad_(True)
    ids = torch.tensor([[[0, 2]]])
    dpo = torch.tensor([[[0.6, 0.3]]]).log().requires_grad_(True)
    ref = torch.tensor([[[0.4, 0.5]]]).log().requires_grad_(True)
    loss, m = adpa_loss(lw, torch.tensor([[1]]), torch.ones(1, 1), lhat, torch.ones(1, 1), ids, dpo, ref, gamma)
    nll = -math.log(0.3)
    term = 0.5 * math.log(1.5) + 0.2 * math.log(0.6)
    assert loss.item() == pytest.approx(nll - gamma * term, abs=1e-6)
    assert set(m) == {"loss/nll", "loss/advantage"}
    assert m["loss/nll"].item() == pytest.approx(nll, abs=1e-6)
    assert m["loss/advantage"].item() == pytest.approx(term, abs=1e-6)
    loss.backward()
    assert dpo.grad is None and ref.grad is None
    # raising the logit of the positive-advantage token 0 lowers the loss; of the negative one raises it
    assert lhat.grad[0, 0, 0] < 0 < lhat.grad[0, 0, 2]


def test_adpa_fp16_teachers_and_validation():
    torch.manual_seed(1)
    lhat = torch.randn(1, 2, 6)
    ids = torch.randint(0, 6, (1, 2, 3))
    dpo, ref = torch.randn(1, 2, 3) - 2, torch.randn(1, 2, 3) - 2
    full = advantage_term(lhat, torch.ones(1, 2), ids, dpo, ref)
    half = advantage_term(lhat, torch.ones(1, 2), ids, dpo.half(), ref.half())
    assert half.dtype == torch.float32 and torch.allclose(full, half, atol=1e-2)
    with pytest.raises(ValueError, match="gamma"):
        adpa_loss(lhat, torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2), lhat, torch.ones(1, 2), ids,
                  dpo, ref, gamma=-1.0)
    with pytest.raises(ValueError, match="ref_topk_logps"):
        advantage_term(lhat, torch.ones(1, 2), ids, dpo, ref[..., :2])


def test_adpa_nll_is_the_mean_over_every_chosen_token_of_the_batch():
    """Two chosen responses of 1 and 3 tokens: the token mean weighs the long one 3:1 (the
    reference code's cross-entropy over the flattened batch), not 1:1 as a per-sequence mean would."""
    s = logits_of([[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
    labels = torch.tensor([[0, 0, 0], [0, 1, 0]])
    mask = torch.tensor([[1.0, 0, 0], [1.0, 1, 1]])
    nll = [-math.log(0.5), -math.log(0.9), -math.log(0.8), -math.log(0.6)]
    hat_mask = torch.ones(2, 1)
    ids = torch.zeros(2, 1, 1, dtype=torch.long)
    loss, m = adpa_loss(s, labels, mask, s[:, :1], hat_mask, ids, torch.zeros(2, 1, 1), torch.zeros(2, 1, 1), 1.0)
    assert m["loss/nll"].item() == pytest.approx(sum(nll) / 4, abs=1e-6)
    assert loss.item() == pytest.approx(sum(nll) / 4, abs=1e-6)  # advantage 0: log π_dpo = log π_ref
