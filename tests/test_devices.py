"""Where frozen models run, and how the DPO reference pass is cut into micro-batches."""
from __future__ import annotations

import torch

from conftest import compose_cfg
from distill.data import to_device
from distill.models import inference_device
from distill.stages import Pipeline


def test_inference_device_is_cuda_only_when_present(monkeypatch):
    assert inference_device("cpu") == "cpu" and inference_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert inference_device("auto") == "cuda:3"  # each rank its own GPU


def test_reference_pass_reads_one_devices_micro_batch(tmp_path):
    """The DPO reference pass holds what one device holds in training: the optimizer batch over
    devices × nodes × accumulation (128 pairs on 8 GPUs × 16 accumulation: 1 pair at a time)."""
    cfg = compose_cfg(["trainer=fsdp", "trainer.devices=8", "trainer.accumulate_grad_batches=16"], tmp_path)
    assert Pipeline(cfg).micro_batch(128) == 1
    assert Pipeline(compose_cfg(["trainer=cpu"], tmp_path)).micro_batch(32) == 32  # one device, no accumulation


def test_to_device_moves_tensors_only():
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "note": "x"}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["note"] == "x" and torch.equal(moved["input_ids"], batch["input_ids"])
    assert moved["input_ids"].device.type == "cpu"
