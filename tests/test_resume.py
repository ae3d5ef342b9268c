"""A run killed mid-training resumes from its last checkpoint and ends where an uninterrupted run ends."""
from __future__ import annotations

import random

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, LlamaConfig

from distill import data as D
from distill.methods.base import warmup_cosine
from distill.methods.sft import SFTModule
from toyworld.task import ToyTask
from toyworld.tokenizer import build_toy_tokenizer
from distill.training import StepBatchSampler, fit

TRAINER = OmegaConf.create({"_target_": "lightning.Trainer", "accelerator": "cpu", "devices": 1,
                            "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1})


class Crash(Exception):
    pass


class CrashAt(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            raise Crash()


def _setup():
    task = ToyTask()
    tok = build_toy_tokenizer("llama", task.corpus())
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=tok.pad_token_id))
    train = D.encode_sft(tok, task.sft_rows(64, random.Random(0)), 40)
    opt = lambda params: torch.optim.AdamW(params, lr=1e-2)
    sched = lambda optimizer, total_steps: warmup_cosine(optimizer, total_steps)
    return SFTModule(model, opt, sched), train, D.Collator(tok.pad_token_id)


def _fit(work, callbacks=()):
    module, train, collate = _setup()
    fit(module, train, collate, steps=10, batch_size=8, seed=3, trainer_cfg=TRAINER, work_dir=work,
        checkpoint_every=2, extra_callbacks=list(callbacks))
    return module


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    reference = _fit(tmp_path / "a")
    with pytest.raises(Crash):
        _fit(tmp_path / "b", [CrashAt(7)])
    assert (tmp_path / "b" / "ckpt" / "last.ckpt").exists()
    step = torch.load(tmp_path / "b" / "ckpt" / "last.ckpt", weights_only=False)["global_step"]
    assert step == 6  # the last multiple of checkpoint_every before the crash
    resumed = _fit(tmp_path / "b")
    for (n, p), (_, q) in zip(reference.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)


def test_step_sampler_depends_only_on_seed_and_step():
    full = list(StepBatchSampler(20, 4, 12, seed=1))
    tail = list(StepBatchSampler(20, 4, 12, seed=1, start=7))
    assert full[7:] == tail and len(full) == 12
    assert full[:5] != full[5:10]  # a fresh permutation each epoch
    assert list(StepBatchSampler(20, 4, 12, seed=2)) != full
