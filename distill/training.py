"""Run one Lightning fit with checkpoints that survive a crash, and exact resume.

The training data is read by a step-indexed sampler: the batch of step ``s`` depends only on
(seed, s), so a run resumed from the checkpoint of step ``s`` sees exactly the batches the
uninterrupted run would have seen. ``batch_size`` is the effective batch of one optimizer step:
with W data-parallel processes (``devices × num_nodes``) and A = ``accumulate_grad_batches``, each
process reads ``batch_size / (W·A)`` items per micro-step, so the same step sees the same items
on one CPU and on many GPUs.
"""
from __future__ import annotations

import logging
import os
import signal
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, Sampler

from distill.progress import StageProgress
from distill.strategies import gather_full_state_dict, micro_batch_size

log = logging.getLogger(__name__)


class StepBatchSampler(Sampler[list[int]]):
    """Yields the index batches of steps ``start .. total-1``; each epoch is a fresh permutation.

    With ``world_size`` W and ``accumulate`` A, step s's batch is cut into W·A equal micro-batches
    and this process (data-parallel rank r, read from ``torch.distributed`` when it iterates) yields
    micro-batches r, W + r, ..., (A − 1)·W + r: the processes and micro-steps of one optimizer step
    together cover exactly the batch a single process would read.
    """

    def __init__(self, n: int, batch_size: int, total_steps: int, seed: int, start: int = 0,
                 world_size: int = 1, accumulate: int = 1, rank: int | None = None):
        parts = world_size * accumulate
        if n < batch_size:
            batch_size = max(parts, n - n % parts)
        self.micro = micro_batch_size(batch_size, world_size, accumulate)
        self.n, self.bs, self.total, self.seed, self.start = n, batch_size, total_steps, seed, start
        self.world_size, self.accumulate, self.rank = world_size, accumulate, rank
        self.per_epoch = n // batch_size

    def _batch(self, step: int) -> list[int]:
        epoch, i = divmod(step, self.per_epoch)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        return perm[i * self.bs:(i + 1) * self.bs].tolist()

    def __iter__(self):
        import torch.distributed as dist

        rank = self.rank
        if rank is None:
            rank = dist.get_rank() if self.world_size > 1 and dist.is_available() and dist.is_initialized() else 0
        for step in range(self.start, self.total):
            batch = self._batch(step)
            for m in range(self.accumulate):
                j = m * self.world_size + rank
                yield batch[j * self.micro:(j + 1) * self.micro]

    def __len__(self):
        # the whole run's batches, not only those left: a resumed Lightning loop restores the count
        # already done (start · A) and ends its epoch when the count reaches this length
        return self.total * self.accumulate


class _GatherShardedWeights(L.Callback):
    """FSDP / ZeRO-3: gather the full weights at the end of training, while the process group is up
    (every rank takes part); rank 0 keeps them for :func:`distill.models.save_pretrained`."""

    def on_train_end(self, trainer, pl_module):
        state = gather_full_state_dict(trainer)
        if state is not None and hasattr(pl_module, "model"):
            pl_module.model.full_state_dict = {k.removeprefix("model."): v for k, v in state.items()}


def _resume_step(last: Path) -> int:
    """Optimizer steps done by the checkpoint ``last`` (a file; a directory for DeepSpeed)."""
    if last.is_dir():
        last = next(last.rglob("*model_states.pt"))
    return int(torch.load(last, map_location="cpu", weights_only=False, mmap=True)["global_step"])


def resume_point(ckpt_dir: Path) -> tuple[Path | None, int]:
    """The checkpoint to resume from and its step: ``last.ckpt``, or, when it cannot be read (a
    truncated or damaged file: a full disk, a kill during the write), the newest other checkpoint
    in ``ckpt_dir`` that can, else none (the stage starts afresh). Each unreadable checkpoint is
    moved aside to ``<name>.corrupt-<time>`` with a warning naming it."""
    candidates = [ckpt_dir / "last.ckpt"] if (ckpt_dir / "last.ckpt").exists() else []
    candidates += sorted((p for p in ckpt_dir.glob("*.ckpt") if p.name != "last.ckpt"),
                         key=lambda p: p.stat().st_mtime, reverse=True) if ckpt_dir.is_dir() else []
    for path in candidates:
        try:
            return path, _resume_step(path)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is set aside the same way
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, aside)
            log.warning("cannot resume from %s (%s: %s); moved it aside to %s and %s", path, type(e).__name__,
                        str(e).splitlines()[0][:200] if str(e) else "", aside,
                        "trying an older checkpoint" if path is not candidates[-1] else
                        "training this stage from its start")
    return None, 0


def fit(module: L.LightningModule, train_set, collate, *, steps: int, batch_size: int, seed: int,
        trainer_cfg, work_dir: Path, val_set=None, logger=False, checkpoint_every: int = 200,
        extra_callbacks: list | None = None) -> L.LightningModule:
    """Train ``module`` for ``steps`` optimizer steps; resume from ``work_dir/ckpt/last.ckpt``."""
    ckpt_dir = Path(work_dir) / "ckpt"
    last, start = resume_point(ckpt_dir)
    if last is not None:
        log.info("resuming from %s (step %d of %d)", last, start, steps)
    L.seed_everything(seed, workers=True, verbose=False)
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=checkpoint_every, save_last=True,
                           save_top_k=0, enable_version_counter=False)
    # our sampler shards the data itself (see StepBatchSampler), so Lightning must not replace it;
    # trainer.enable_progress_bar shows distill.progress's bar/lines (named by stage), not Lightning's.
    # One "epoch" holds the whole run (see StepBatchSampler.__len__): with max_epochs=1 a resumed run's
    # progress counts against the whole run (with Lightning's default -1 its total would be the
    # remaining steps while its count starts at the checkpoint's: "30/24")
    progress = [StageProgress()] if trainer_cfg.get("enable_progress_bar", True) else []
    trainer: L.Trainer = instantiate(trainer_cfg, max_steps=steps, max_epochs=1, default_root_dir=str(work_dir),
                                     logger=logger, enable_progress_bar=False,
                                     callbacks=[ckpt, _GatherShardedWeights(), *progress, *(extra_callbacks or [])],
                                     val_check_interval=None, check_val_every_n_epoch=1 if val_set else None,
                                     limit_val_batches=1.0 if val_set else 0, use_distributed_sampler=False)
    world, accumulate = trainer.num_devices * trainer.num_nodes, trainer.accumulate_grad_batches
    sampler = StepBatchSampler(len(train_set), batch_size, steps, seed, start, world, accumulate)
    train_dl = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate)
    val_dl = DataLoader(val_set, batch_size=sampler.micro, collate_fn=collate) if val_set else None
    with warnings.catch_warnings():
        # the step-indexed sampler resumes exactly (it starts at the checkpoint's step), which
        # Lightning cannot know, so it warns that a mid-epoch resume may be inexact
        warnings.filterwarnings("ignore", message=r".*(resuming from a checkpoint that ended before the epoch|"
                                r"dataloader is not resumable|make your dataloader resumable).*")
        try:
            trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if last is not None else None)
        except SIGTERMException:
            # Lightning stops the loop on SIGTERM with a bare SystemExit (exit status 0): a scheduler or
            # a sweep would count the stopped run as finished. Exit as a process killed by SIGTERM does.
            log.warning("training stopped by SIGTERM at step %d of %d; the same command resumes it from the last "
                        "checkpoint in %s", trainer.global_step, steps, ckpt_dir)
            raise SystemExit(128 + signal.SIGTERM) from None
    return module
