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
