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


FULL_LOGITS = False
"""When True, ``response_logits`` returns the full shifted logits of every position (the former code
path, kept for the side-by-side measurement in ``bench/run.py``); the losses are the same."""


class SoftCap(torch.autograd.Function):
    """``cap · tanh(z / cap)`` (Gemma-2's final logit soft-capping) with a one-pass backward.

    The forward is the ``*ForCausalLM`` forward's three operations in the same order (divide, tanh,
    multiply), so its values are the same bits. Autograd through those three would run three passes
    over the [N, V] logits in the backward (× cap, tanh's derivative, ÷ cap); the cap cancels
    (d/dz cap·tanh(z/cap) = 1 − tanh²(z/cap)), so this backward is one ``tanh_backward`` pass on the
    saved tanh: the same gradient to float32 rounding, and no other tensor is kept."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, cap: float) -> torch.Tensor:
        t = (z / cap).tanh_()
        ctx.save_for_backward(t)
        return t * cap

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (t,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, t), None


def soft_cap(z: torch.Tensor, cap: float) -> torch.Tensor:
    """``cap · tanh(z / cap)``: :class:`SoftCap` where it needs a gradient, the plain operations
    (in place on ``z``'s copy) where none is recorded."""
    if torch.is_grad_enabled() and z.requires_grad:
        return SoftCap.apply(z, cap)
    return (z / cap).tanh_().mul_(cap)


def _lm_head(model, hidden: torch.Tensor) -> torch.Tensor:
    """The model's output layer on ``hidden`` [..., H], with the family's final logit soft-capping
    (Gemma-2: ``cap · tanh(logits / cap)`` when ``config.final_logit_softcapping`` is set), exactly as
    the ``*ForCausalLM`` forward applies it (``soft_cap``)."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    if cap is not None:
        logits = soft_cap(logits, cap)
    return logits


def response_positions(labels: torch.Tensor) -> torch.Tensor:
    """Indices [B, L] into the shifted positions 0..T-2 of each row's response tokens, in order,
    padded (with prompt or padding positions, masked later) to the longest response L of the batch."""
    mask = labels[:, 1:] != IGNORE
    width = max(int(mask.sum(-1).max()), 1) if mask.numel() else 1
    return torch.sort((~mask).to(torch.int8), dim=-1, stable=True).indices[:, :width]


def at_positions(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` [B, T-1, ...] (aligned with the shifted labels, e.g. teacher-cache tensors) at
    ``pos`` [B, L] from ``response_positions``: -> [B, L, ...]."""
    idx = pos.to(x.device).view(*pos.shape, *([1] * (x.dim() - 2))).expand(*pos.shape, *x.shape[2:])
    return x.gather(1, idx)


def response_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
    """Like ``shifted_logits`` but only at response positions, where the losses read them.

    The decoder runs over the whole sequence; its final hidden states are gathered at each row's
    response positions (``response_positions``) and only those go through the LM head (and
    soft-capping), so prompt positions cost no [T, V] work and no logits tensor is sliced or copied.
    Returns ``(logits [B,L,V] float32, labels [B,L], mask [B,L], pos [B,L])``; ``mask`` is 1 on
    response tokens and 0 on the padding up to the longest response L; ``at_positions(x, pos)`` brings
    any [B, T-1, ...] tensor aligned with the shifted labels to the same layout. Every per-sequence
    sum or mean over masked positions equals the one over ``shifted_logits``.
    Models without ``get_decoder``/``get_output_embeddings`` take the full forward, then the
    positions are gathered from its logits.
    """
    shifted = labels[:, 1:]
    if FULL_LOGITS:
        pos = torch.arange(shifted.shape[1], device=labels.device).expand_as(shifted)
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1]
        return logits.float(), shifted.clamp_min(0), (shifted != IGNORE).float(), pos
    pos = response_positions(labels)
    lab = shifted.gather(1, pos)
    mask = (lab != IGNORE).float()
    decoder = getattr(model, "get_decoder", None)
    head = getattr(model, "get_output_embeddings", None)
    if decoder is None or head is None or decoder() is None or head() is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1]
        logits = at_positions(logits, pos)
    else:
        hidden = decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        logits = _lm_head(model, at_positions(hidden, pos))
    return logits.float(), lab.clamp_min(0), mask, pos


def build_optimizer(factory, params: list) -> torch.optim.Optimizer:
    """``factory(params=params)``; for torch's Adam/AdamW on CPU parameters with neither ``fused`` nor
    ``foreach`` configured, with ``fused=True``.

    On the CPU torch's default for these optimizers is its per-tensor loop (``foreach`` is for
    accelerators); the fused CPU kernel does the same update in one pass per tensor, 3.4× faster on
    the bench's 12M-parameter model (10 ms against 35 ms a step), and agrees with the loop to
    float32 rounding (``tests/test_response_logits.py::test_fused_adamw_on_the_cpu_matches_the_loop``).
    A configured ``fused`` or ``foreach`` is kept as it is, and parameters on an accelerator get
    torch's own default."""
    keywords = getattr(factory, "keywords", None) or {}
    func = getattr(factory, "func", factory)
    if (func in (torch.optim.AdamW, torch.optim.Adam) and "fused" not in keywords and "foreach" not in keywords
            and params and all(p.device.type == "cpu" and p.dtype in (torch.float32, torch.float64, torch.bfloat16,
                                                                      torch.float16) for p in params)):
        return factory(params=params, fused=True)
    return factory(params=params)


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
        opt = build_optimizer(self.optimizer_factory, [p for p in self.parameters() if p.requires_grad])
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
