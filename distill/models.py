"""Tokenizers and models for both worlds.

* ``source: toy`` — a random-init model of the family's real architecture class (e.g.
  ``Gemma2Config``), shrunk to the sizes under ``model.<role>.toy``, with a tokenizer trained
  locally in the family's chat style.
* ``source: hub`` — the checkpoint ``model.<role>.hub_id`` (a hub id or a local folder) and its own
  tokenizer and template; ``model.chat_template`` (or ``model.<role>.chat_template``) gives a
  checkpoint without one a template: a Jinja string or a style name of
  :data:`distill.templates.TEMPLATES` (``gemma``, ``llama3``, ``chatml``, ``mistral``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from hydra.utils import get_class
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from toyworld.tokenizer import build_toy_tokenizer

log = logging.getLogger(__name__)


def build_tokenizer(family_cfg, source: str, words: list[str] | None = None, role: str = "student"):
    """The tokenizer a family's models speak: trained locally (toy) or from the hub."""
    if source == "toy":
        tok_cfg = family_cfg.get("tokenizer", {})
        return build_toy_tokenizer(family_cfg.chat_style, words or [], kind=tok_cfg.get("kind", "word"),
                                   vocab_size=tok_cfg.get("vocab_size", 64))
    hub_id = family_cfg[role].hub_id
    try:
        tok = AutoTokenizer.from_pretrained(hub_id)
    except (OSError, ValueError) as e:
        raise OSError(f"model.{role}.hub_id={hub_id}: its tokenizer cannot be loaded ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}); set model.{role}.hub_id to a hub id or a folder "
                      "written by save_pretrained (with tokenizer files)") from e
    template = family_cfg[role].get("chat_template") or family_cfg.get("chat_template")
    if template:  # a base checkpoint without one: a named style or a Jinja template
        from distill.templates import TEMPLATES

        tok.chat_template = TEMPLATES.get(template, template)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def build_model(family_cfg, role: str, tokenizer: PreTrainedTokenizerBase, source: str, seed: int,
                max_length: int = 128, dtype: str = "float32"):
    """A fresh model for ``role`` (``teacher`` or ``student``) of the family."""
    role_cfg = family_cfg[role]
    if source == "hub":
        return AutoModelForCausalLM.from_pretrained(
            role_cfg.hub_id, dtype=getattr(torch, dtype), attn_implementation=family_cfg.attn_implementation)
    config_cls = get_class(family_cfg.config_class)
    config = config_cls(vocab_size=len(tokenizer), max_position_embeddings=max_length,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, **dict(role_cfg.toy))
    config._attn_implementation = family_cfg.attn_implementation
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    log.info("built toy %s %s (%s, %.2fM parameters)", family_cfg.family, role, config_cls.__name__,
             sum(p.numel() for p in model.parameters()) / 1e6)
    return model


def save_pretrained(model, tokenizer, out: Path) -> None:
    """Save ``model`` and ``tokenizer``. A distributed follower rank writes nothing (rank 0 does); a
    model trained with sharded parameters (FSDP, ZeRO-3) is saved from the full weights that
    :func:`distill.training.fit` gathered into ``model.full_state_dict``."""
    from distill.strategies import follower_rank

    if follower_rank():
        return
    model.save_pretrained(out, safe_serialization=True, state_dict=getattr(model, "full_state_dict", None))
    tokenizer.save_pretrained(out)


def load_tokenizer(path: str | Path):
    """The tokenizer saved with a model. A toy tokenizer is saved as a plain ``tokenizers`` backend;
    ``AutoTokenizer`` would pick the class of the model's family from ``config.json`` instead (for
    Qwen2: a byte-level tokenizer whose decoding drops the toy tokenizer's spaces), so it is
    loaded as what it was saved as."""
    cfg = Path(path) / "tokenizer_config.json"
    if cfg.is_file() and json.loads(cfg.read_text()).get("tokenizer_class") in ("TokenizersBackend",
                                                                               "PreTrainedTokenizerFast"):
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path))


def inference_device(setting: str = "auto") -> str:
    """Where a frozen model runs (samples, teacher caches and scores, answers, the DPO reference
    pass): ``auto`` is this process's CUDA device when there is one (``cuda:<LOCAL_RANK>``), else the
    CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given."""
    if setting != "auto":
        return setting
    import os

    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"


def load_pretrained(path: str | Path, dtype: str = "float32", device: str = "cpu"):
    """Load a model and its tokenizer saved by a stage (or from a hub id), on ``device``."""
    tok = load_tokenizer(path)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
    if device != "cpu":
        model = model.to(device)
    model.eval()
    return model, tok
