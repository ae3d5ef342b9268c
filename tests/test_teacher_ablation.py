"""Teacher-signal ablations: the losses' sign, PAD's score ablations, the config field, the paired table."""
import math

import pytest
import torch
from omegaconf import OmegaConf

from distill.losses.adpa import adpa_loss
from distill.losses.dckd import dckd_loss
from distill.methods.pad import ablate_teacher_scores
from distill.methods.plugin import TEACHER_SIGN, check, hparams_of
from distill.results import mean_ci_t
from eval.ablation import markdown, paired_differences


def logits_of(probs):
    return torch.tensor(probs).log()


def rest_of(t_logps):
    return torch.log1p(-t_logps.double().exp().sum(-1)).float()


def dckd_at(sign):
    lw = logits_of([[[0.5, 0.3, 0.2]]]).requires_grad_(True)
    ll = logits_of([[[0.2, 0.3, 0.5]]]).requires_grad_(True)
    one = torch.ones(1, 1)
    tw, tl = torch.tensor([[[math.log(0.7)]]]), torch.tensor([[[math.log(0.6)]]])
    loss, m = dckd_loss(lw, torch.tensor([[0]]), one, torch.tensor([[[0]]]), tw, rest_of(tw),
                        ll, one, torch.tensor([[[2]]]), tl, rest_of(tl), 0.1, sign=sign)
    loss.backward()
    return loss.item(), m, lw.grad, ll.grad


def test_dckd_sign_hand_values_and_gradients():
    nll = -math.log(0.5)
    kl = (0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.5)) + (0.6 * math.log(0.6 / 0.5) + 0.4 * math.log(0.4 / 0.5))
    for sign in (1, 0, -1):
        loss, m, _, gl = dckd_at(sign)
        assert loss == pytest.approx(nll + sign * 0.1 * kl, abs=1e-6)
        assert m["loss/kl_rejected"].item() > 0  # metrics stay unsigned
        # the rejected response gets a gradient only through the teacher's term, reversed when flipped
        assert (gl.abs().sum() > 0) == (sign != 0)
    g_teacher, g_flipped = dckd_at(1)[3], dckd_at(-1)[3]
    assert torch.allclose(g_flipped, -g_teacher)
    with pytest.raises(ValueError, match="sign"):
        dckd_at(2)


def test_adpa_sign_hand_values_and_direction():
    def run(sign):
        lw = logits_of([[[0.5, 0.3, 0.2]]])
        lhat = logits_of([[[0.5, 0.3, 0.2]]]).requires_grad_(True)
        ids = torch.tensor([[[0, 2]]])
        dpo, ref = torch.tensor([[[0.6, 0.3]]]).log(), torch.tensor([[[0.4, 0.5]]]).log()
        loss, _ = adpa_loss(lw, torch.tensor([[1]]), torch.ones(1, 1), lhat, torch.ones(1, 1), ids, dpo, ref, 2.0,
                            sign=sign)
        loss.backward()
        return loss.item(), lhat.grad

    nll, term = -math.log(0.3), 0.5 * math.log(1.5) + 0.2 * math.log(0.6)
    for sign in (1, 0, -1):
        assert run(sign)[0] == pytest.approx(nll - sign * 2.0 * term, abs=1e-6)
    # ADPA raises the positive-advantage token 0; the flipped signal lowers it; none leaves ŷ alone
    assert run(1)[1][0, 0, 0] < 0 < run(-1)[1][0, 0, 0]
    assert run(0)[1].abs().sum() == 0


def test_pad_score_ablations():
    scores = [[-0.1, -0.5, -0.3, -0.9], [-1.0, -0.2, -0.4, -0.6], [-0.7, -0.3, -0.2, -0.8]]
    assert ablate_teacher_scores(scores, "teacher", 0) == scores
    assert ablate_teacher_scores(scores, "none", 0) == [[0.0] * 4] * 3
    flipped = ablate_teacher_scores(scores, "flipped", 0)
    for s, f in zip(scores, flipped):  # the teacher's ranking reversed
        assert sorted(range(4), key=lambda i: -f[i]) == sorted(range(4), key=lambda i: s[i])
    shuffled = ablate_teacher_scores(scores, "shuffled", 0)
    assert [sorted(s) for s in shuffled] == [sorted(s) for s in scores]  # the same values per prompt
    assert shuffled != scores and shuffled == ablate_teacher_scores(scores, "shuffled", 0)  # seeded
    assert ablate_teacher_scores(scores, "shuffled", 1) != shuffled
    with pytest.raises(ValueError, match="teacher_signal"):
        ablate_teacher_scores(scores, "reversed", 0)


def test_teacher_signal_field_and_its_check():
    from distill.methods.dckd import DCKDConfig
    from distill.methods.pad import PADConfig

    h = hparams_of(DCKDConfig)["teacher_signal"]
    assert h.ok("none") and h.ok("flipped") and not h.ok("shuffled") and not h.ok(1)
    assert hparams_of(PADConfig)["teacher_signal"].ok("shuffled")
    assert TEACHER_SIGN == {"teacher": 1, "none": 0, "flipped": -1}
    cfg = OmegaConf.create({"world": {"source": "toy"}})
    m = OmegaConf.create({"name": "dckd", "alpha": 0.1, "top_k": 5, "teacher_signal": "inverse"})
    (problem,) = check(m, cfg)
    assert "method.teacher_signal='inverse'" in problem and "teacher, none, flipped" in problem
    assert "set method.teacher_signal=teacher" in problem


def test_adpa_plus_dckd_stage_follows_its_teacher_signal():
    import pathlib

    from hydra import compose, initialize_config_dir

    conf = str(pathlib.Path(__file__).resolve().parents[1] / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        cfg = compose("config", overrides=["method=adpa_plus", "method.teacher_signal=none"])
        assert cfg.method.dckd.teacher_signal == "none"
        cfg = compose("config", overrides=["method=adpa_plus", "method.dckd.teacher_signal=none"])
        assert cfg.method.teacher_signal == "teacher" and cfg.method.dckd.teacher_signal == "none"


def record(method, signal, seed, win, **hp):
    return {"model": "gemma", "method": method, "seed": seed, "scores": {"toy/win_rate": win},
            "hparams": {"name": method, "teacher_signal": signal, **hp}}


def test_paired_differences_hand_values():
    recs = [record("dckd", "teacher", s, w, alpha=0.1) for s, w in enumerate((70.0, 72.0, 71.0))]
    recs += [record("dckd", "none", s, w, alpha=0.1) for s, w in enumerate((60.0, 65.0, 61.0))]
    recs += [record("dckd", "flipped", 0, 40.0, alpha=0.1)]
    recs += [record("dpo", None, 0, 55.0)]  # no ablation field: ignored
    rows = paired_differences(recs)
    none, flipped = rows
    assert (none["ablation"], flipped["ablation"]) == ("none", "flipped")
    assert none["diffs"] == [10.0, 7.0, 10.0] and none["seeds"] == [0, 1, 2]
    sd = math.sqrt(((10 - 9) ** 2 + (7 - 9) ** 2 + (10 - 9) ** 2) / 2)
    half = 4.302653 * sd / math.sqrt(3)  # t_{0.975, 2}
    assert none["diff"] == pytest.approx(9.0)
    assert (none["ci_low"], none["ci_high"]) == (pytest.approx(9 - half, abs=1e-4), pytest.approx(9 + half, abs=1e-4))
    assert flipped["seeds"] == [0] and flipped["diff"] == 30.0 and math.isnan(flipped["ci_low"])
    md = markdown(rows)
    assert "| gemma | DCKD | teacher removed | 3 | 71.0 | 62.0 | 9.0 [" in md
    assert "teacher's sign flipped | 1 | 70.0 | 40.0 | 30.0 [—, —]" in md


def test_paired_differences_keep_settings_apart():
    """Other hyperparameters are never paired across; ADPA+'s DCKD stage following its signal is the
    ablation itself, set apart it is a setting of its own."""
    recs = [record("dckd", "teacher", 0, 70.0, alpha=0.1), record("dckd", "none", 0, 60.0, alpha=0.5)]
    assert paired_differences(recs) == []
    both = [record("adpa_plus", "teacher", 0, 80.0, dckd={"teacher_signal": "teacher"}),
            record("adpa_plus", "none", 0, 60.0, dckd={"teacher_signal": "none"}),
            record("adpa_plus", "teacher", 0, 80.0, dckd={"teacher_signal": "none"})]
    rows = paired_differences(both)
    assert len(rows) == 1 and rows[0]["diff"] == 20.0


def test_mean_ci_t():
    m, lo, hi = mean_ci_t([1.0, 2.0, 3.0])
    assert m == 2.0 and hi - m == pytest.approx(4.302653 * 1.0 / math.sqrt(3), abs=1e-4) and m - lo == pytest.approx(hi - m)
    assert math.isnan(mean_ci_t([5.0])[1])
