"""Teacher cache (top-k + remaining mass), diversity selection, cross-tokenizer checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from distill import data as D
from distill.cache import TopKCache, build_topk_cache, check_same_vocabulary, scatter_rows, template_fingerprint
from distill.sampling import select_diverse
from toyworld.task import ToyTask
from toyworld.tokenizer import build_toy_tokenizer


def test_select_diverse_max_min():
    responses = ["a b c", "a b c", "a b d", "x y z w", "a"]
    keep = select_diverse(responses, 3)
    assert len(keep) == 3 and 3 in keep  # the most distant response is always kept
    assert not {0, 1} <= set(keep)  # never both copies of a duplicate while distinct ones remain
    assert select_diverse(responses, 5) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n_keep=6 exceeds"):
        select_diverse(responses, 6)


def test_scatter_rows_places_blocks_at_response_positions():
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 0]], dtype=torch.bool)
    rows = [np.array([[1, 2], [3, 4]]), np.array([[5, 6]])]
    out = scatter_rows(mask, rows, 0, torch.long)
    assert out.shape == (2, 4, 2)
    assert out[0, 1].tolist() == [1, 2] and out[0, 2].tolist() == [3, 4] and out[1, 2].tolist() == [5, 6]
    assert out[0, 0].tolist() == [0, 0]
    with pytest.raises(RuntimeError, match="teacher cache has 3 rows for 2"):
        scatter_rows(torch.tensor([[0, 1], [0, 1]], dtype=torch.bool), rows, 0, torch.long)


def _tiny(tok, seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=tok.pad_token_id)
    return AutoModelForCausalLM.from_config(cfg).eval()


def test_cache_matches_the_teacher_and_is_compact(tmp_path):
    task = ToyTask()
    tok = build_toy_tokenizer("llama", task.corpus())
    teacher, ref = _tiny(tok, 0), _tiny(tok, 1)
    import random

    rows = task.preference_rows(6, random.Random(0))
    seqs = [{"seqs": [s]} for it in D.encode_pairs(tok, rows, 40) for s in it["seqs"]]
    collate = D.Collator(tok.pad_token_id)
    build_topk_cache(tmp_path, teacher, seqs, collate, k=5, batch_size=4, reference=ref)
    cache = TopKCache(tmp_path)
    assert len(cache) == 12
    # row 3 = pair 1's rejected response: compare with the teacher run directly
    s = seqs[3]["seqs"][0]
    ids = torch.tensor([s["input_ids"]])
    with torch.no_grad():
        lp = teacher(input_ids=ids).logits[0, :-1].log_softmax(-1)
        rlp = ref(input_ids=ids).logits[0, :-1].log_softmax(-1)
    pos = [i for i, t in enumerate(s["labels"][1:]) if t != D.IGNORE]
    top = lp[pos].topk(5, -1)
    got = cache[3]
    assert (got["ids"] == top.indices.numpy()).all()
    np.testing.assert_allclose(got["logps"].astype(np.float32), top.values.numpy(), atol=2e-3)
    np.testing.assert_allclose(got["ref_logps"].astype(np.float32),
                               rlp[pos].gather(-1, top.indices).numpy(), atol=2e-3)
    # the remaining mass is stored exactly, in float32, and read back with the other rows
    assert got["rest"].dtype == np.float32
    full_lp = lp[pos].double()
    outside = full_lp.scatter(-1, top.indices, float("-inf")).logsumexp(-1)
    np.testing.assert_allclose(got["rest"], outside.numpy(), rtol=1e-5)
    # 4 bytes/id + 2 bytes/logp (+2 ref) per k, +4 for the rest: far below 4·V bytes of full logits
    assert cache.bytes_per_token == 5 * (4 + 2 + 2) + 4
    batch = collate([{"seqs": [{**s, "t_ids": got["ids"], "t_logps": got["logps"], "t_rest": got["rest"]}]}])
    assert batch["t_ids"].shape == (1, len(s["input_ids"]) - 1, 5)
    assert batch["t_rest"].shape == (1, len(s["input_ids"]) - 1)
    assert torch.equal(batch["t_rest"][0, pos], torch.from_numpy(np.array(got["rest"])))
    # a cache of the older layout (fp16 rest) is refused, naming the fix
    np.save(tmp_path / "rest.npy", got["rest"].astype(np.float16))
    with pytest.raises(ValueError, match="older version.*rebuild"):
        TopKCache(tmp_path)


def test_vocabulary_and_template_mismatch_are_refused():
    task = ToyTask()
    word, bpe = (build_toy_tokenizer("gemma", task.corpus(), kind) for kind in ("word", "bpe"))
    with pytest.raises(ValueError, match="dckd needs the teacher and the student to share a vocabulary.*pad"):
        check_same_vocabulary(bpe, word, "teacher-bpe", "student-word", "dckd")
    other = build_toy_tokenizer("gemma", task.corpus(), "word")
    other.chat_template = "{{ messages[0]['content'] }}"
    with pytest.raises(ValueError, match="different chat templates"):
        check_same_vocabulary(other, word, "t", "s", "adpa")
    assert template_fingerprint(word) != template_fingerprint(other)
    check_same_vocabulary(word, build_toy_tokenizer("gemma", task.corpus(), "word"), "t", "s", "dckd")
