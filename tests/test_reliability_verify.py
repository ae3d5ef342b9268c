"""Reused artifacts are verified (sizes always, SHA-256 once per process); a damaged one is moved
aside and rebuilt with a warning naming it. A damaged resume checkpoint is set aside too."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from distill import artifacts as A
from distill.artifacts import ArtifactStore
from distill.training import resume_point


@pytest.fixture
def store(tmp_path):
    A._VERIFIED.clear()
    calls = []

    def build(out, work):
        calls.append(1)
        (out / "model").mkdir()
        (out / "model" / "weights.bin").write_bytes(bytes(range(256)) * 64)
        (out / "rows.jsonl").write_text('{"a": 1}\n{"a": 2}\n')

    s = ArtifactStore(tmp_path / "store")
    art = s.get_or_build("stage", {"k": 1}, build)
    return s, build, calls, art


def new_process():
    A._VERIFIED.clear()  # what a fresh process has checked: nothing


def test_manifest_records_size_and_sha256(store):
    _, _, _, art = store
    sums = art.manifest["checksums"]
    assert sums["model/weights.bin"]["size"] == 256 * 64
    assert sums["rows.jsonl"]["sha256"] == A.file_digest(art.path / "rows.jsonl")
    assert art.manifest["files"] == ["model/weights.bin", "rows.jsonl"]


@pytest.mark.parametrize("damage,what", [
    (lambda p: (p / "model" / "weights.bin").write_bytes(b"\0" * 100), "model/weights.bin has 100 bytes"),
    (lambda p: (p / "rows.jsonl").write_text('{"a": 1}\n'), "rows.jsonl has 9 bytes"),
    (lambda p: (p / "rows.jsonl").write_text('{"a": 9}\n{"a": 2}\n'), "rows.jsonl does not match its recorded SHA-256"),
    (lambda p: (p / "model" / "weights.bin").unlink(), "model/weights.bin is missing"),
    (lambda p: (p / "manifest.json").write_text("{not json"), "manifest.json cannot be read"),
    (lambda p: (p / "manifest.json").write_text("{}"), "manifest.json cannot be read"),
])
def test_a_damaged_artifact_is_moved_aside_and_rebuilt_with_a_warning(store, damage, what, caplog):
    s, build, calls, art = store
    damage(art.path)
    new_process()
    with caplog.at_level(logging.WARNING, logger="distill.artifacts"):
        again = s.get_or_build("stage", {"k": 1}, build)
    assert calls == [1, 1] and not again.reused and again.path == art.path
    (aside,) = [p for p in art.path.parent.iterdir() if ".corrupt-" in p.name]
    assert aside.name.startswith(f"{art.key}.corrupt-")
    assert what in caplog.text and str(art.path) in caplog.text and str(aside) in caplog.text
    assert (again.path / "rows.jsonl").read_text() == '{"a": 1}\n{"a": 2}\n'  # whole again
    new_process()
    assert s.get_or_build("stage", {"k": 1}, build).reused and calls == [1, 1]  # and reused from now on


def test_checksums_once_per_process_sizes_every_time(store):
    s, build, calls, art = store
    assert s.get_or_build("stage", {"k": 1}, build).reused  # built here: already verified
    (art.path / "rows.jsonl").write_text('{"a": 9}\n{"a": 2}\n')  # same size, other bytes
    assert s.get_or_build("stage", {"k": 1}, build).reused  # the checksum is not recomputed in this process
    (art.path / "rows.jsonl").write_text('{"a": 1}\n')  # another size: seen at once
    assert not s.get_or_build("stage", {"k": 1}, build).reused and calls == [1, 1]


def _ckpt(path, step):
    torch.save({"global_step": step, "state_dict": {"w": torch.zeros(64)}}, path)


def test_a_truncated_last_checkpoint_falls_back_to_an_older_one(tmp_path, caplog):
    d = tmp_path / "ckpt"
    d.mkdir()
    _ckpt(d / "step=2.ckpt", 2)
    _ckpt(d / "last.ckpt", 4)
    data = (d / "last.ckpt").read_bytes()
    (d / "last.ckpt").write_bytes(data[: len(data) // 2])  # a full disk during the write
    with caplog.at_level(logging.WARNING, logger="distill.training"):
        path, step = resume_point(d)
    assert (path, step) == (d / "step=2.ckpt", 2)
    assert f"cannot resume from {d / 'last.ckpt'}" in caplog.text and "trying an older checkpoint" in caplog.text
    assert [p.name for p in d.iterdir() if ".corrupt-" in p.name][0].startswith("last.ckpt.corrupt-")


def test_a_truncated_only_checkpoint_restarts_the_stage(tmp_path, caplog):
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with caplog.at_level(logging.WARNING, logger="distill.training"):
        assert resume_point(d) == (None, 0)
    assert "training this stage from its start" in caplog.text and str(d / "last.ckpt") in caplog.text
    assert not (d / "last.ckpt").exists()
    assert resume_point(tmp_path / "none") == (None, 0)


def test_fit_resumes_from_scratch_after_a_truncated_checkpoint(tmp_path):
    """The whole loop: a damaged last.ckpt does not stop training; the stage runs from step 0."""
    from test_resume import TRAINER, _setup  # noqa: PLC0415 - the resume test's tiny model and data

    from distill.training import fit

    module, train, collate = _setup()
    work = tmp_path / "work"
    (work / "ckpt").mkdir(parents=True)
    (work / "ckpt" / "last.ckpt").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    fit(module, train, collate, steps=3, batch_size=4, seed=0, trainer_cfg=TRAINER, work_dir=work,
        checkpoint_every=1)
    assert torch.load(work / "ckpt" / "last.ckpt", weights_only=False)["global_step"] == 3
    assert json.dumps(sorted(p.name.split("-")[0] for p in (work / "ckpt").iterdir())) == \
        json.dumps(["last.ckpt", "last.ckpt.corrupt"])


def test_a_resumed_run_counts_against_the_whole_run_and_does_not_warn(tmp_path, recwarn):
    """After a resume the progress bar's count and total both cover the whole run (not "30/24"), and
    Lightning's "dataloader is not resumable" warning (the sampler resumes exactly) is not shown."""
    import lightning as L
    from omegaconf import OmegaConf
    from test_resume import TRAINER, Crash, CrashAt, _setup  # noqa: PLC0415

    from distill.progress import StageProgress
    from distill.training import fit

    trainer_cfg = OmegaConf.merge(TRAINER, {"enable_progress_bar": True})
    seen = []

    class Record(L.Callback):  # after the stage's progress callback (distill.progress), which counts steps
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            (bar,) = [c for c in trainer.callbacks if isinstance(c, StageProgress)]
            seen.append((bar.tracker.done, bar.tracker.total))

    with pytest.raises(Crash):
        fit(*_setup(), steps=10, batch_size=8, seed=3, trainer_cfg=trainer_cfg, work_dir=tmp_path, checkpoint_every=2,
            extra_callbacks=[CrashAt(7)])
    seen.clear()
    fit(*_setup(), steps=10, batch_size=8, seed=3, trainer_cfg=trainer_cfg, work_dir=tmp_path, checkpoint_every=2,
        extra_callbacks=[Record()])
    assert seen == [(7, 10), (8, 10), (9, 10), (10, 10)]
    assert not [w for w in recwarn.list if "not resumable" in str(w.message)]
