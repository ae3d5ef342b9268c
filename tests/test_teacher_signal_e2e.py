"""End to end, in the default toy world: each distillation method's teacher signal is measurable.

One multirun of ``python run.py`` (the toy world at its default sizes, gemma, seed 0) trains DCKD,
ADPA and PAD-LPPD with their teacher signal as it is, removed and flipped
(``method.teacher_signal``), and checks the oracle's win rates: the method beats both ablations by
a margin. A sign error in the KL, the advantage or the teacher's scores, a teacher signal that never
reaches the loss, or a cache of the wrong teacher makes the method no better than an ablation, and
this test fails. (Measured margins, ``experiment=teacher_ablation``, 3 seeds: README "Teacher-signal
ablation".) About 4 minutes on an idle 2-core CPU: the teachers and the SFT student are trained.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from distill.results import load_records

METHODS = ("dckd", "adpa", "pad_lppd")
# the smallest margin (win-rate points) each method keeps over its ablations at seed 0. Measured at
# seed 0 in two runs of experiment=teacher_ablation (README): over `none` DCKD 6.3 and 6.8, ADPA 3.7
# and 6.5, PAD-LPPD 17.8 and 24.8; over `flipped` DCKD 16.7 and 13.3, ADPA 9.2 and 9.8, PAD-LPPD 52.3
# and 49.0. A flipped sign turns the method into its `flipped` ablation, 9 points or more below it.
MARGIN = {"none": 1.0, "flipped": 5.0}


@pytest.mark.slow
def test_every_teacher_signal_beats_its_removal_and_its_flip(tmp_path):
    env = {**os.environ, "DISTILL_ROOT": str(tmp_path), "DISTILL_PROGRESS": "plain"}
    cmd = [sys.executable, "run.py", "-m", f"method={','.join(METHODS)}", "method.teacher_signal=teacher,none,flipped",
           "logger=none", "group=signal", f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    win = {(r["method"], r["hparams"]["teacher_signal"]): r["scores"]["toy/win_rate"]
           for r in load_records([tmp_path / "results"], group="signal")}
    assert len(win) == 3 * len(METHODS), sorted(win)
    report = "; ".join(f"{m}: " + ", ".join(f"{s} {win[m, s]:.1f}" for s in ("teacher", "none", "flipped"))
                       for m in METHODS)
    for m in METHODS:
        for ablation, margin in MARGIN.items():
            assert win[m, "teacher"] >= win[m, ablation] + margin, report
    # the table of paired differences the multirun prints at its end
    assert "Teacher-signal ablation" in proc.stdout and "teacher's sign flipped" in proc.stdout
