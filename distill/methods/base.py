"""The shared LightningModule: optimizer and scheduler from config partials, one ``model_step``
used by training and validation, slash-namespaced metrics (``train/loss``, ``val/loss``, ...)."""
from __future__ import annotations

from functools import partial

import lightning as L
import torch

from distill.data import IGNORE


def shifted_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
    """Run ``model`` and align its outputs with the tokens they predict.

    Returns ``(logits [B,T-1,V], labels [B,T-1], mask [B,T-1])`` where ``logits[:, t]`` predicts
    ``labels[:, t]`` and ``mask`` is 1 on response tokens (the convention of ``distill.losses``).
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1]
    labels = labels[:, 1:]
    mask = (labels != IGNORE).float()
    return logits.float(), labels.clamp_min(0), mask


class MethodModule(L.LightningModule):
    """Base class: subclasses implement ``model_step(batch) -> (loss, metrics)``."""

    def __init__(self, model: torch.nn.Module, optimizer: partial, scheduler: partial | None = None):
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.save_hyperparameters(logger=False, ignore=["model", "optimizer", "scheduler"])

    def model_step(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def _log_step(self, split: str, batch: dict):
        loss, metrics = self.model_step(batch)
        bs = batch["input_ids"].shape[0]
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=bs, on_step=split == "train",
                 on_epoch=split != "train")
        for k, v in metrics.items():
            self.log(f"{split}/{k}", v, batch_size=bs, on_step=split == "train", on_epoch=split != "train")
        return loss

    def training_step(self, batch, batch_idx):
        return self._log_step("train", batch)

    def validation_step(self, batch, batch_idx):
        return self._log_step("val", batch)

    def configure_optimizers(self):
        opt = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(optimizer=opt, total_steps=self.trainer.max_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def warmup_cosine(optimizer, total_steps: int, warmup_ratio: float = 0.1, min_ratio: float = 0.0):
    """Linear warm-up then cosine decay to ``min_ratio`` of the peak learning rate."""
    import math

    warm = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
