"""Lightning strategies built from config, and what the training loop needs to know about them.

``conf/trainer/*.yaml`` name a factory under ``trainer.strategy._target_``; Hydra builds the strategy
when it builds the Trainer:

* ``ddp``              -> :class:`lightning.pytorch.strategies.DDPStrategy` (named directly)
* ``fsdp``             -> :func:`fsdp`: FSDP wrapping each decoder layer of the family
                          (``model.decoder_layer``, a dotted class path resolved here)
* ``deepspeed_zero2/3`` -> :func:`deepspeed`: DeepSpeed ZeRO stage 2 or 3 (the ``deepspeed`` extra)

The effective (global) batch of one optimizer step is ``stages.<stage>.batch_size``; each process
reads ``batch_size / (devices · num_nodes · accumulate_grad_batches)`` sequences items per
micro-step (:func:`micro_batch_size`), so changing the number of GPUs or the accumulation does not
change what one step sees.
"""
from __future__ import annotations

import importlib.util
import os

from hydra.utils import get_class

DEEPSPEED_HINT = 'DeepSpeed is not installed: pip install -e ".[deepspeed]" (on a machine with CUDA)'


def fsdp(layer_class: str, activation_checkpointing: bool = False, **kwargs):
    """FSDPStrategy whose ``auto_wrap_policy`` (and, if asked, activation checkpointing) is the set
    ``{layer_class}``: one FSDP unit per decoder layer, the usual unit for transformer LMs.

    ``layer_class`` is a dotted path such as
    ``transformers.models.gemma2.modeling_gemma2.Gemma2DecoderLayer`` (``model.decoder_layer``);
    other keyword arguments go to :class:`~lightning.pytorch.strategies.FSDPStrategy`
    (``sharding_strategy``, ``state_dict_type``, ``cpu_offload``, ...).
    """
    from lightning.pytorch.strategies import FSDPStrategy

    cls = get_class(layer_class)
    return FSDPStrategy(auto_wrap_policy={cls},
                        activation_checkpointing_policy={cls} if activation_checkpointing else None, **kwargs)


def deepspeed(stage: int, **kwargs):
    """DeepSpeedStrategy at ZeRO ``stage`` (2: optimizer states and gradients sharded; 3: the
    parameters too). Other keyword arguments go to
    :class:`~lightning.pytorch.strategies.DeepSpeedStrategy` (``offload_optimizer``, ...)."""
    if stage not in (1, 2, 3):
        raise ValueError(f"trainer.strategy.stage must be 1, 2 or 3 (ZeRO stage), got {stage}")
    if importlib.util.find_spec("deepspeed") is None:
        raise ImportError(DEEPSPEED_HINT)
    from lightning.pytorch.strategies import DeepSpeedStrategy

    return DeepSpeedStrategy(stage=stage, **kwargs)


def shards_parameters(strategy) -> bool:
    """True when no process holds the whole model after training (FSDP, DeepSpeed ZeRO-3): the
    weights must be gathered before they are saved."""
    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

    if isinstance(strategy, FSDPStrategy):
        return True
    return isinstance(strategy, DeepSpeedStrategy) and strategy.config.get("zero_optimization", {}).get("stage") == 3


def gather_full_state_dict(trainer) -> dict | None:
    """The full weights of a sharded model (collective: every rank must call it); a dict on rank 0,
    None elsewhere and for strategies that do not shard parameters."""
    strategy = trainer.strategy
    if not shards_parameters(strategy):
        return None
    from lightning.pytorch.strategies import FSDPStrategy

    if isinstance(strategy, FSDPStrategy):
        state = strategy.lightning_module_state_dict()  # state_dict_type=full: rank 0 only, on the CPU
    else:
        state = strategy.deepspeed_engine._zero3_consolidated_16bit_state_dict()
    return state if trainer.is_global_zero and state else None


def micro_batch_size(global_batch: int, world_size: int, accumulate: int) -> int:
    """Items one process reads per micro-step so that one optimizer step sees ``global_batch``."""
    parts = world_size * accumulate
    if global_batch % parts:
        raise ValueError(
            f"the batch size {global_batch} is the effective batch of one optimizer step and must be a multiple "
            f"of devices × num_nodes × accumulate_grad_batches = {world_size} × {accumulate} = {parts}; "
            "change stages.<stage>.batch_size or trainer.accumulate_grad_batches")
    return global_batch // parts


def follower_rank() -> bool:
    """True in a process that a distributed launcher started as anything but global rank 0
    (Lightning's script launcher, torchrun, ``srun`` with several tasks). Such a process runs the
    same pipeline as rank 0 so that it can join each collective training run, but rank 0 alone
    publishes artifacts and writes model files."""
    return any(int(os.environ.get(v, "0") or 0) != 0 for v in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))
