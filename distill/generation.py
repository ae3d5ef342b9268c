"""Batched generation with the model's chat template.

Two backends, chosen by ``generation.backend``:
  * ``hf`` (default): transformers' ``generate`` on the in-memory model, left padding, one batch of
    ``batch_size`` prompts at a time; any device.
  * ``vllm``: vLLM (``pip install -e ".[vllm]"``, a CUDA GPU) reloads the model from the directory
    it was loaded from (``model.name_or_path``: every stage's model is a saved artifact) and
    schedules all prompts itself (continuous batching, paged KV cache).
Both take the same prompts (chat-template text, no extra special tokens) and return the same shape.
"""
from __future__ import annotations

import logging

import torch

from distill.data import prompt_text
from distill.progress import Tracker, current_stage

log = logging.getLogger(__name__)


def prompt_budget(model, max_new_tokens: int) -> int | None:
    """How many prompt tokens fit: the model's context (``max_position_embeddings``) minus the new
    tokens; None when the model does not say."""
    ctx = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return max(1, int(ctx) - max_new_tokens) if isinstance(ctx, int) else None


def fit_prompts(ids: list[list[int]], budget: int | None, desc: str = "generating") -> tuple[list[list[int]], int]:
    """Truncation policy for generation: a prompt longer than ``budget`` tokens keeps its *last*
    ``budget`` tokens (the end of the conversation and the assistant header the answer follows);
    the number of prompts cut is returned and logged, never silent."""
    if budget is None:
        return ids, 0
    cut = sum(len(x) > budget for x in ids)
    if cut:
        log.warning("%s: %d of %d prompts are longer than the %d tokens the context leaves for a prompt; "
                    "kept their last %d tokens", desc, cut, len(ids), budget, budget)
    return [x[-budget:] for x in ids], cut


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, batch_size: int = 64,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, num_return_sequences: int = 1,
             seed: int = 0, desc: str = "generating", backend: str = "hf") -> list[list[str]]:
    """Generate ``num_return_sequences`` responses per prompt (a list of message lists).

    Greedy when ``do_sample`` is false. Returns one list of decoded responses per prompt.
    """
    if backend not in BACKENDS:
        raise ValueError(f"generation.backend={backend!r}: choose one of {sorted(BACKENDS)}")
    # token ids of the chat-template text (no second BOS), cut to the context by one policy for both backends
    ids, _ = fit_prompts([tokenizer(prompt_text(tokenizer, p), add_special_tokens=False)["input_ids"]
                          for p in prompts], prompt_budget(model, max_new_tokens), desc)
    if backend == "vllm":  # vLLM schedules every prompt at once: the tracker's lines say it is still running
        with Tracker(desc, total=len(ids), stage=current_stage() or "generate", unit="prompts") as bar:
            outs = generate_vllm(model, ids, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                 temperature=temperature, top_p=top_p, num_return_sequences=num_return_sequences,
                                 seed=seed)
            bar.update(len(ids))
        return outs
    model.eval()
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    out: list[list[str]] = []
    torch.manual_seed(seed)
    with Tracker(desc, total=len(ids), stage=current_stage() or "generate", unit="prompts") as bar:
        for i in range(0, len(ids), batch_size):
            enc = tokenizer.pad({"input_ids": ids[i:i + batch_size]}, padding=True, return_tensors="pt").to(device)
            kwargs = dict(do_sample=True, temperature=temperature, top_p=top_p) if do_sample else dict(do_sample=False)
            seqs = model.generate(**enc, max_new_tokens=max_new_tokens, num_return_sequences=num_return_sequences,
                                  pad_token_id=tokenizer.pad_token_id, eos_token_id=stop_token_ids(model, tokenizer),
                                  top_k=None, **kwargs)
            decoded = tokenizer.batch_decode(seqs[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            decoded = [d.strip() for d in decoded]
            out.extend(decoded[j:j + num_return_sequences] for j in range(0, len(decoded), num_return_sequences))
            bar.advance(len(enc["input_ids"]))
    return out


def stop_token_ids(model, tokenizer) -> list[int]:
    """The tokenizer's eos and the end-of-turn ids of the model's ``generation_config`` (Gemma-2-it:
    ``<eos>`` and ``<end_of_turn>``; Llama-3-Instruct: ``<|eot_id|>`` and ``<|end_of_text|>``)."""
    ids = [tokenizer.eos_token_id]
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += extra if isinstance(extra, (list, tuple)) else [extra]
    return list(dict.fromkeys(i for i in ids if isinstance(i, int)))


BACKENDS = {"hf", "vllm"}
VLLM_HINT = 'generation.backend=vllm needs vLLM: pip install -e ".[vllm]" (on a machine with a CUDA GPU)'


def generate_vllm(model, prompt_ids: list[list[int]], *, max_new_tokens: int, do_sample: bool = False,
                  temperature: float = 1.0, top_p: float = 1.0, num_return_sequences: int = 1,
                  seed: int = 0) -> list[list[str]]:
    """The vLLM backend: the model saved at ``model.name_or_path`` (or a path given as ``model``)
    serves ``prompt_ids`` (token ids of the chat-template text). Greedy is temperature 0."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as e:
        raise ImportError(VLLM_HINT) from e
    path = str(model if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__")
               else getattr(model, "name_or_path", ""))
    if not path:
        raise ValueError("generation.backend=vllm loads the model from disk, but this model has no name_or_path; "
                         "save it (save_pretrained) and load it from that directory")
    dtype = str(getattr(getattr(model, "config", None), "dtype", None) or "auto").replace("torch.", "")
    llm = LLM(model=path, tokenizer=path, seed=seed, dtype=dtype)
    params = SamplingParams(n=num_return_sequences, max_tokens=max_new_tokens, seed=seed,
                            temperature=temperature if do_sample else 0.0, top_p=top_p if do_sample else 1.0,
                            skip_special_tokens=True)
    # token ids, so that vLLM adds no second BOS to the templated text
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params)
    return [[c.text.strip() for c in out.outputs] for out in outputs]
