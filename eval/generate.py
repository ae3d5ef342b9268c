"""Answers to the benchmarks' questions, generated with the model's chat template and saved in each
benchmark's own file format (so they can also be submitted to the benchmark's own tooling).

Backends: :class:`HFBackend` (default; batched ``model.generate`` through
:func:`distill.generation.generate`, left padding, the tokenizer's chat template) and
:class:`VLLMBackend` (needs the ``vllm`` extra).

Per-benchmark settings, as the benchmarks' own generation scripts set them:

- AlpacaEval 2: one answer per instruction; greedy unless configured (AlpacaEval leaves decoding
  to the model's config). ``model_outputs.json``: a JSON list of
  ``{instruction, output, generator, dataset}`` in the reference's order.
- Arena-Hard v0.1: greedy (``temperature: 0.0`` in ``gen_answer_config.yaml``), up to
  ``max_new_tokens``; ``model_answer/<model>.jsonl`` rows ``{question_id, answer_id, model_id,
  choices: [{index, turns: [{content, token_len}]}], tstamp}``. ``token_len`` counts tokens with
  tiktoken's ``cl100k_base`` as arena-hard-auto does, or with the model's own tokenizer
  (``token_counter: model``, the toy world), or is left out when tiktoken cannot load its encoding.
- MT-Bench: two turns (the second sees the model's own first answer), temperature by category as
  FastChat's ``temperature_config`` sets it (writing/roleplay 0.7, extraction/math/coding/reasoning
  0.0, stem/humanities 0.1, otherwise 0.7), greedy below 1e-4 as ``gen_model_answer.py`` decides;
  ``model_answer/<model>.jsonl`` rows ``{question_id, answer_id, model_id, choices: [{index,
  turns: [t1, t2]}], tstamp}``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional, Sequence

from eval.benchmarks import alpaca_eval2 as ae2
from eval.benchmarks import arena_hard as ah
from eval.benchmarks import mt_bench as mt

log = logging.getLogger(__name__)

GREEDY_BELOW = 1e-4  # FastChat gen_model_answer.py: do_sample = temperature >= 1e-4
Conversation = list[dict]


class HFBackend:
    """Batched generation with a transformers model held in memory."""

    name = "hf"

    def __init__(self, model, tokenizer, *, batch_size: int = 16, seed: int = 0, top_p: float = 1.0):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.seed, self.top_p = int(batch_size), int(seed), float(top_p)

    def chat(self, conversations: Sequence[Conversation], *, temperature: float, max_new_tokens: int,
             desc: str = "generating") -> list[str]:
        """One answer per conversation (each a list of messages ending with a user turn)."""
        from distill.generation import generate

        if not conversations:
            return []
        sample = temperature >= GREEDY_BELOW
        outs = generate(self.model, self.tokenizer, [list(c) for c in conversations], max_new_tokens=max_new_tokens,
                        batch_size=self.batch_size, do_sample=sample, temperature=temperature if sample else 1.0,
                        top_p=self.top_p, seed=self.seed, desc=desc)
        return [o[0] for o in outs]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


class VLLMBackend:
    """Generation with vLLM (``pip install -e ".[vllm]"``, a CUDA machine). Not exercised by the
    tests here: vLLM is not installed in the CPU environment."""

    name = "vllm"

    def __init__(self, model_path: str, *, seed: int = 0, top_p: float = 1.0, **llm_kwargs):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ImportError("the vLLM generation backend needs vllm: install the vllm extra "
                              "(pip install -e \".[vllm]\") on a CUDA machine, or use backend=hf") from e
        self._sampling = SamplingParams
        self.llm = LLM(model=str(model_path), seed=seed, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.seed, self.top_p = int(seed), float(top_p)

    def chat(self, conversations: Sequence[Conversation], *, temperature: float, max_new_tokens: int,
             desc: str = "generating") -> list[str]:
        if not conversations:
            return []
        t = temperature if temperature >= GREEDY_BELOW else 0.0
        params = self._sampling(temperature=t, top_p=self.top_p if t > 0 else 1.0, max_tokens=max_new_tokens,
                                seed=self.seed)
        outs = self.llm.chat([list(c) for c in conversations], params, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outs]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def make_backend(kind: str, *, model=None, tokenizer=None, path: Optional[str] = None, batch_size: int = 16,
                 seed: int = 0, **kwargs):
    """``hf`` (the in-memory ``model``/``tokenizer``) or ``vllm`` (loads ``path`` itself)."""
    if kind == "hf":
        return HFBackend(model, tokenizer, batch_size=batch_size, seed=seed)
    if kind == "vllm":
        if path is None:
            raise ValueError("the vllm backend loads the model itself: give the checkpoint's path or hub id")
        return VLLMBackend(path, seed=seed, **kwargs)
    raise ValueError(f"unknown generation backend {kind!r}; choose 'hf' or 'vllm'")


# ---- token counts (Arena-Hard's token_len) -----------------------------------------------------
def token_counter(kind: str, backend) -> Optional[Callable[[str], int]]:
    """``tiktoken`` (arena-hard-auto's count; None with a warning when the encoding cannot be
    loaded, e.g. offline), ``model`` (the answering model's tokenizer) or ``none``."""
    if kind == "none":
        return None
    if kind == "model":
        return backend.count_tokens
    if kind == "tiktoken":
        try:
            ah.tiktoken_len("probe")
        except RuntimeError as e:
            log.warning("Arena-Hard: %s; answers are saved without token_len (avg_tokens unknown)", e)
            return None
        return ah.tiktoken_len
    raise ValueError(f"unknown token counter {kind!r}; choose tiktoken, model or none")


# ---- the benchmarks ----------------------------------------------------------------------------
def alpaca_eval_outputs(backend, reference_outputs: Sequence[dict], generator: str, *, max_new_tokens: int,
                        temperature: float = 0.0) -> list[dict]:
    """``model_outputs.json`` rows answering every instruction of ``reference_outputs``, in order."""
    convs = [[{"role": "user", "content": r["instruction"]}] for r in reference_outputs]
    outs = backend.chat(convs, temperature=temperature, max_new_tokens=max_new_tokens, desc="AlpacaEval answers")
    return ae2.make_model_outputs(reference_outputs, outs, generator)


def arena_hard_answers(backend, questions: Sequence[dict], model_id: str, *, max_new_tokens: int,
                       temperature: float = ah.ANSWER_TEMPERATURE,
                       count: Optional[Callable[[str], int]] = None) -> list[dict]:
    """Answer rows (one turn per question; every turn of a multi-turn question is answered)."""
    n_turns = max(len(q["turns"]) for q in questions) if questions else 0
    convs: list[Conversation] = [[] for _ in questions]
    answers: list[list[str]] = [[] for _ in questions]
    for t in range(n_turns):
        idx = [i for i, q in enumerate(questions) if t < len(q["turns"])]
        for i in idx:
            convs[i] = convs[i] + [{"role": "user", "content": questions[i]["turns"][t]["content"]}]
        outs = backend.chat([convs[i] for i in idx], temperature=temperature, max_new_tokens=max_new_tokens,
                            desc=f"Arena-Hard answers (turn {t + 1})")
        for i, o in zip(idx, outs, strict=True):
            convs[i] = convs[i] + [{"role": "assistant", "content": o}]
            answers[i].append(o)
    rows = []
    for q, turns in zip(questions, answers, strict=True):
        content = [{"content": a, **({"token_len": int(count(a))} if count else {})} for a in turns]
        row = ah.make_answer_row(q["question_id"], model_id, turns[0], None)
        row["choices"][0]["turns"] = content
        rows.append(row)
    return rows


def mt_bench_temperature(question: dict, temperature_config: Optional[dict] = None) -> float:
    """FastChat: a question's ``required_temperature`` if it has one, else its category's."""
    if question.get("required_temperature") is not None:
        return float(question["required_temperature"])
    cfg = mt.TEMPERATURE_CONFIG if temperature_config is None else temperature_config
    return float(cfg.get(question["category"], mt.DEFAULT_TEMPERATURE))


def mt_bench_answers(backend, questions: Sequence[dict], model_id: str, *, max_new_tokens: int,
                     temperature_config: Optional[dict] = None) -> list[dict]:
    """Two-turn answers; questions are batched by temperature, turn 2 after turn 1."""
    groups: dict[float, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        groups[mt_bench_temperature(q, temperature_config)].append(i)
    turns: list[list[str]] = [[] for _ in questions]
    convs: list[Conversation] = [[] for _ in questions]
    for temp, idx in sorted(groups.items()):
        n_turns = max(len(questions[i]["turns"]) for i in idx)
        for t in range(n_turns):
            live = [i for i in idx if t < len(questions[i]["turns"])]
            for i in live:
                convs[i] = convs[i] + [{"role": "user", "content": questions[i]["turns"][t]}]
            outs = backend.chat([convs[i] for i in live], temperature=temp, max_new_tokens=max_new_tokens,
                                desc=f"MT-Bench answers (T={temp:g}, turn {t + 1})")
            for i, o in zip(live, outs, strict=True):
                convs[i] = convs[i] + [{"role": "assistant", "content": o}]
                turns[i].append(o)
    return [mt.make_answer_row(q["question_id"], model_id, ts) for q, ts in zip(questions, turns, strict=True)]


# ---- files -------------------------------------------------------------------------------------
def write_alpaca_eval(out_dir: str | Path, rows: Sequence[dict]) -> Path:
    """``<out_dir>/model_outputs.json``."""
    return ae2.write_model_outputs(Path(out_dir) / "model_outputs.json", rows)


def write_arena_hard(out_dir: str | Path, model_id: str, rows: Sequence[dict]) -> Path:
    """``<out_dir>/model_answer/<model_id>.jsonl``."""
    return ah.write_answers(Path(out_dir) / "model_answer" / f"{model_id}.jsonl", rows)


def write_mt_bench(out_dir: str | Path, model_id: str, rows: Sequence[dict]) -> Path:
    """``<out_dir>/model_answer/<model_id>.jsonl``."""
    return mt.write_answers(Path(out_dir) / "model_answer" / f"{model_id}.jsonl", rows)
