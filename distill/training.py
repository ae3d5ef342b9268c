"""Run one Lightning fit with checkpoints that survive a crash, and exact resume.

The training data is read by a step-indexed sampler: the batch of step ``s`` depends only on
(seed, s), so a run resumed from the checkpoint of step ``s`` sees exactly the batches the
uninterrupted run would have seen.
"""
from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Sampler

log = logging.getLogger(__name__)


class StepBatchSampler(Sampler[list[int]]):
    """Yields the index batches of steps ``start .. total-1``; each epoch is a fresh permutation."""

    def __init__(self, n: int, batch_size: int, total_steps: int, seed: int, start: int = 0):
        if n < batch_size:
            batch_size = n
        self.n, self.bs, self.total, self.seed, self.start = n, batch_size, total_steps, seed, start
        self.per_epoch = n // batch_size

    def _batch(self, step: int) -> list[int]:
        epoch, i = divmod(step, self.per_epoch)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        return perm[i * self.bs:(i + 1) * self.bs].tolist()

    def __iter__(self):
        for step in range(self.start, self.total):
            yield self._batch(step)

    def __len__(self):
        return self.total - self.start


def fit(module: L.LightningModule, train_set, collate, *, steps: int, batch_size: int, seed: int,
        trainer_cfg, work_dir: Path, val_set=None, logger=False, checkpoint_every: int = 200,
        extra_callbacks: list | None = None) -> L.LightningModule:
    """Train ``module`` for ``steps`` optimizer steps; resume from ``work_dir/ckpt/last.ckpt``."""
    ckpt_dir = Path(work_dir) / "ckpt"
    last = ckpt_dir / "last.ckpt"
    start = 0
    if last.exists():
        start = int(torch.load(last, map_location="cpu", weights_only=False)["global_step"])
        log.info("resuming from %s (step %d of %d)", last, start, steps)
    L.seed_everything(seed, workers=True, verbose=False)
    sampler = StepBatchSampler(len(train_set), batch_size, steps, seed, start)
    train_dl = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate)
    val_dl = DataLoader(val_set, batch_size=batch_size, collate_fn=collate) if val_set else None
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=checkpoint_every, save_last=True,
                           save_top_k=0, enable_version_counter=False)
    trainer: L.Trainer = instantiate(trainer_cfg, max_steps=steps, default_root_dir=str(work_dir),
                                     logger=logger, callbacks=[ckpt, *(extra_callbacks or [])],
                                     val_check_interval=None, check_val_every_n_epoch=1 if val_dl else None,
                                     limit_val_batches=1.0 if val_dl else 0)
    trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if last.exists() else None)
    return module
