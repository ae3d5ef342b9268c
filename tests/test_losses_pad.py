"""PAD: Plackett–Luce over rankings, LVPD, LPPD (true per-prompt JSD) and score calibration."""
import itertools
import math

import pytest
import torch

from distill.losses.pad import (all_rankings, calibrate_teacher_scores, intrinsic_reward, lppd_loss, lvpd_loss,
                                plackett_luce_log_prob, ranking_log_probs)


def pl_prob(scores, ranking, beta):
    """Plain-python Plackett–Luce probability of one ranking."""
    p, rest = 1.0, list(ranking)
    for item in ranking:
        p *= math.exp(beta * scores[item]) / sum(math.exp(beta * scores[j]) for j in rest)
        rest.remove(item)
    return p


def jsd(p, q):
    m = [(a + b) / 2 for a, b in zip(p, q)]
    kl = lambda x, y: sum(a * math.log(a / b) for a, b in zip(x, y) if a > 0)  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def test_intrinsic_reward_is_length_normalised():
    out = intrinsic_reward(torch.tensor([[-6.0, -3.0]]), torch.tensor([[3, 0]]))
    assert out.tolist() == [[-2.0, -3.0]]  # an empty response is clamped to length 1
    with pytest.raises(ValueError, match="must match"):
        intrinsic_reward(torch.zeros(2), torch.ones(3))


def test_all_rankings_lists_every_permutation_once():
    r = all_rankings(3)
    assert r.dtype == torch.long and r.shape == (6, 3)
    assert [tuple(x) for x in r.tolist()] == list(itertools.permutations(range(3)))
    assert all_rankings(3) is r  # cached
    assert all_rankings(5).unique(dim=0).shape[0] == 120


def test_more_than_seven_responses_is_refused():
    with pytest.raises(ValueError, match="n <= 7"):
        all_rankings(8)
    with pytest.raises(ValueError, match="n_keep"):
        ranking_log_probs(torch.zeros(1, 8), beta=1.0)
    with pytest.raises(ValueError, match="n <= 7"):
        lppd_loss(torch.zeros(1, 8), torch.zeros(1, 8), beta=1.0)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_plackett_luce_hand_value(beta):
    scores = [1.0, 2.0, 0.0]
    out = plackett_luce_log_prob(torch.tensor([scores]), torch.tensor([[1, 0, 2]]), beta)
    expected = math.exp(2 * beta) / (math.exp(beta) + math.exp(2 * beta) + 1) * math.exp(beta) / (math.exp(beta) + 1)
    assert out.item() == pytest.approx(math.log(expected), abs=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("beta", [0.5, 10.0])
def test_pl_probabilities_sum_to_one_and_match_python(n, beta):
    torch.manual_seed(n)
    scores = torch.randn(3, n)
    logp = ranking_log_probs(scores, beta)
    assert logp.shape == (3, math.factorial(n))
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3), atol=1e-5)
    perms = all_rankings(n)
    for r in range(0, perms.shape[0], max(1, perms.shape[0] // 7)):
        expected = pl_prob(scores[0].tolist(), perms[r].tolist(), beta)
        assert logp[0, r].exp().item() == pytest.approx(expected, rel=1e-4, abs=1e-9)
        one = plackett_luce_log_prob(scores, perms[r].expand(3, n), beta)
        assert torch.allclose(one, logp[:, r], atol=1e-5)


def test_plackett_luce_validates_arguments():
    with pytest.raises(ValueError, match="permutation"):
        plackett_luce_log_prob(torch.zeros(1, 3), torch.tensor([[0, 0, 1]]), 1.0)
    with pytest.raises(ValueError, match="beta"):
        ranking_log_probs(torch.zeros(1, 3), beta=0.0)


def test_lvpd_hand_value():
    loss, m = lvpd_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[5.0, 3.0]]), beta=1.0)
    # teacher ranks response 0 first: P = e^0 / (e^0 + e^1)
    assert loss.item() == pytest.approx(math.log(1 + math.e), abs=1e-6)
    assert set(m) == {"pad/pair_accuracy", "pad/top1_agreement"}
    assert m["pad/pair_accuracy"].item() == 0.0 and m["pad/top1_agreement"].item() == 0.0


def test_lvpd_decreases_as_student_moves_to_teacher_order():
    teacher = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    start, goal = torch.tensor([[0.0, 1.0, 2.0, 3.0]]), teacher
    losses = [lvpd_loss((1 - t) * start + t * goal, teacher, beta=2.0)[0].item() for t in torch.linspace(0, 1, 6)]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    student = start.clone().requires_grad_(True)
    t_req = teacher.clone().requires_grad_(True)
    lvpd_loss(student, t_req, beta=2.0)[0].backward()
    assert t_req.grad is None
    after = lvpd_loss(start - 0.1 * student.grad, teacher, beta=2.0)[0].item()
    assert after < losses[0]


def test_lppd_hand_value_for_two_responses():
    beta, s_s, s_t = 2.0, [0.0, 0.5], [1.0, 0.0]
    p_t = [pl_prob(s_t, r, beta) for r in [(0, 1), (1, 0)]]
    p_s = [pl_prob(s_s, r, beta) for r in [(0, 1), (1, 0)]]
    loss, _ = lppd_loss(torch.tensor([s_s]), torch.tensor([s_t]), beta)
    assert loss.item() == pytest.approx(jsd(p_t, p_s), abs=1e-6)


def test_lppd_properties():
    torch.manual_seed(0)
    s, t = torch.randn(4, 4), torch.randn(4, 4)
    assert lppd_loss(s, s.clone(), 10.0)[0].item() == pytest.approx(0.0, abs=1e-6)
    a, b = lppd_loss(s, t, 10.0)[0].item(), lppd_loss(t, s, 10.0)[0].item()
    assert a == pytest.approx(b, abs=1e-6) and a > 1e-3
    extreme = lppd_loss(torch.tensor([[0.0, 10.0, 20.0]]), torch.tensor([[20.0, 10.0, 0.0]]), 10.0)[0].item()
    assert extreme <= math.log(2) + 1e-6 and extreme == pytest.approx(math.log(2), abs=1e-4)


def test_lppd_is_per_prompt_not_mixed_across_the_batch():
    torch.manual_seed(1)
    s, t = torch.randn(3, 3), torch.randn(3, 3)
    batch = lppd_loss(s, t, 10.0)[0]
    single = torch.stack([lppd_loss(s[i:i + 1], t[i:i + 1], 10.0)[0] for i in range(3)]).mean()
    assert batch.item() == pytest.approx(single.item(), abs=1e-6)


def test_lppd_gradient_flows_to_student_only_and_reduces_the_loss():
    torch.manual_seed(2)
    student = torch.randn(2, 4, requires_grad=True)
    teacher = torch.randn(2, 4, requires_grad=True)
    loss, m = lppd_loss(student, teacher, 1.0)
    loss.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0
    assert set(m) == {"pad/pair_accuracy", "pad/top1_agreement"}
    after = lppd_loss(student.detach() - 0.5 * student.grad, teacher.detach(), 1.0)[0]
    assert after.item() < loss.item()


def test_calibrate_teacher_scores():
    s, p = torch.tensor([-1.0, -2.0]), torch.tensor([0.8, 0.2])
    out = calibrate_teacher_scores(s, p, lam=0.25)
    assert out.tolist() == pytest.approx([0.75 * -1 + 0.25 * math.log(0.8), 0.75 * -2 + 0.25 * math.log(0.2)])
    assert torch.equal(calibrate_teacher_scores(s, p, lam=0.0), s)
    assert calibrate_teacher_scores(s, p, lam=1.0).tolist() == pytest.approx([math.log(0.8), math.log(0.2)])
    with pytest.raises(ValueError, match="lam"):
        calibrate_teacher_scores(s, p, lam=1.5)
    with pytest.raises(ValueError, match="probabilities"):
        calibrate_teacher_scores(s, torch.tensor([1.2, 0.1]), lam=0.5)
