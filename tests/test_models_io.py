"""A saved toy model comes back with the very tokenizer it was trained with, in every family."""
from __future__ import annotations

import pytest

from conftest import compose_cfg
from distill.models import build_model, build_tokenizer, load_pretrained, save_pretrained

WORDS = "sort reverse shift : [ ] a b c d e".split()


@pytest.mark.parametrize("family", ["gemma", "llama", "qwen", "danube"])
@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_saved_tokenizer_round_trips(family, kind, tmp_path):
    fam = compose_cfg([f"model={family}", f"model.tokenizer.kind={kind}"]).model
    tok = build_tokenizer(fam, "toy", WORDS)
    model = build_model(fam, "student", tok, "toy", seed=0, max_length=32)
    save_pretrained(model, tok, tmp_path)
    _, loaded = load_pretrained(tmp_path)
    text = "sort : c a b [ a b c ]"
    ids = tok(text)["input_ids"]
    assert loaded(text)["input_ids"] == ids
    # the family's own hub tokenizer class (e.g. Qwen2's byte-level one) would decode "[abc]"
    assert loaded.decode(ids) == tok.decode(ids) and " a b c " in loaded.decode(ids)
    chat = [{"role": "user", "content": "sort : c a b"}]
    assert (loaded.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            == tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))


def test_generation_cuts_long_prompts_from_the_left_and_counts_them(caplog):
    from distill.generation import fit_prompts, generate, prompt_budget

    ids, cut = fit_prompts([[1, 2, 3], [1, 2, 3, 4, 5, 6]], budget=4)
    assert ids == [[1, 2, 3], [3, 4, 5, 6]] and cut == 1
    assert fit_prompts([[1, 2]], None) == ([[1, 2]], 0)

    fam = compose_cfg(["model=llama"]).model
    tok = build_tokenizer(fam, "toy", WORDS)
    model = build_model(fam, "student", tok, "toy", seed=0, max_length=24)
    assert prompt_budget(model, 8) == 16
    long = [{"role": "user", "content": "sort : " + "a b c " * 20}]
    short = [{"role": "user", "content": "sort : c a b"}]
    with caplog.at_level("WARNING", logger="distill.generation"):
        outs = generate(model, tok, [long, short], max_new_tokens=8, batch_size=2)
    assert len(outs) == 2 and all(len(o) == 1 for o in outs)
    assert "1 of 2 prompts are longer" in caplog.text
