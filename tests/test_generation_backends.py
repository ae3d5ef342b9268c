"""``generation.backend``: hf (default, unchanged) and vllm (behind the `vllm` extra)."""
from __future__ import annotations

import sys
import types

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from distill.generation import generate
from toyworld.task import ToyTask
from toyworld.tokenizer import build_toy_tokenizer

PROMPTS = [[{"role": "user", "content": "sort: c a b"}], [{"role": "user", "content": "reverse: a b"}]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tok = build_toy_tokenizer("llama", ToyTask().corpus())
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=tok.pad_token_id))
    path = tmp_path_factory.mktemp("m")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path), tok


def test_hf_is_the_default_and_batching_does_not_change_greedy_answers(tiny):
    model, tok = tiny
    a = generate(model, tok, PROMPTS, max_new_tokens=5)
    b = generate(model, tok, PROMPTS, max_new_tokens=5, batch_size=1, backend="hf")
    assert a == b and len(a) == 2 and all(len(x) == 1 for x in a)


def test_unknown_backend(tiny):
    with pytest.raises(ValueError, match="hf"):
        generate(*tiny, PROMPTS, max_new_tokens=2, backend="tgi")


def test_vllm_absent_names_the_extra(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[vllm\]"'):
        generate(*tiny, PROMPTS, max_new_tokens=2, backend="vllm")


def test_vllm_backend_maps_the_request(tiny, monkeypatch):
    """With a stand-in vllm module: the saved model's path, greedy = temperature 0, n samples, ids without a second BOS."""
    model, tok = tiny
    calls = {}

    class SamplingParams:
        def __init__(self, **kw):
            calls["params"] = kw

    class LLM:
        def __init__(self, **kw):
            calls["llm"] = kw

        def generate(self, requests, params):
            calls["requests"] = requests
            n = calls["params"]["n"]
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" r{i}.{j} ") for j in range(n)])
                    for i in range(len(requests))]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    out = generate(model, tok, PROMPTS, max_new_tokens=7, do_sample=True, temperature=0.7, top_p=0.9,
                   num_return_sequences=3, seed=5, backend="vllm")
    assert out == [["r0.0", "r0.1", "r0.2"], ["r1.0", "r1.1", "r1.2"]]
    assert calls["llm"]["model"] == model.name_or_path and calls["llm"]["seed"] == 5
    assert {k: calls["params"][k] for k in ("n", "max_tokens", "temperature", "top_p")} == \
        {"n": 3, "max_tokens": 7, "temperature": 0.7, "top_p": 0.9}
    ids = calls["requests"][0]["prompt_token_ids"]
    assert ids == tok(tok.apply_chat_template(PROMPTS[0], tokenize=False, add_generation_prompt=True),
                      add_special_tokens=False)["input_ids"]
    generate(model, tok, PROMPTS, max_new_tokens=2, backend="vllm")
    assert calls["params"]["temperature"] == 0.0  # greedy


def test_pipeline_passes_the_backend_and_keys_it(tiny_cfg):
    from distill.stages import Pipeline

    hf = Pipeline(tiny_cfg())
    vl = Pipeline(tiny_cfg("generation.backend=vllm"))
    assert hf.generation_backend() == "hf" and vl.generation_backend() == "vllm"
    assert hf._generation_spec(4)["generation"] == {"backend": "hf"}
    assert vl._generation_spec(4)["generation"] == {"backend": "vllm"}
