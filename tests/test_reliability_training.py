"""Resume from any checkpoint, not only a late one: after a crash at step c (checkpoint at the last
multiple of ``checkpoint_every`` before it), the resumed run ends with the uninterrupted run's weights."""
from __future__ import annotations

import pytest
import torch

from distill.training import fit
from test_resume import TRAINER, Crash, CrashAt, _setup

STEPS = 12


def _fit(work, every, callbacks=()):
    module, train, collate = _setup()
    fit(module, train, collate, steps=STEPS, batch_size=8, seed=3, trainer_cfg=TRAINER, work_dir=work,
        checkpoint_every=every, extra_callbacks=list(callbacks))
    return module


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("reference"), every=100)


# (checkpoint_every, crash step): an early checkpoint (3 of 12: fewer steps done than left; the
# middle is tests/test_resume.py's case) and a crash in the very last step
@pytest.mark.parametrize("every,crash", [(3, 4), (11, 12)])
def test_resumed_run_ends_with_the_uninterrupted_weights(tmp_path, reference, every, crash):
    with pytest.raises(Crash):
        _fit(tmp_path, every, [CrashAt(crash)])
    step = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["global_step"]
    assert step == (crash // every) * every
    resumed = _fit(tmp_path, every)
    for (n, p), (_, q) in zip(reference.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)


class SigtermAt(CrashAt):
    """Lightning's own SIGTERM path: the signal handler's flag set after the batch of step ``at``."""

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.step:
            trainer._signal_connector.received_sigterm = True


def test_sigterm_during_training_exits_with_the_signal_status(tmp_path):
    # Lightning ends the loop with a bare SystemExit (status 0); a stopped run must not look finished
    with pytest.raises(SystemExit) as stopped:
        _fit(tmp_path, 3, [SigtermAt(4)])
    assert stopped.value.code == 143
    assert (tmp_path / "ckpt" / "last.ckpt").exists()
