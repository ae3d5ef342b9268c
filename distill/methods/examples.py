"""Random example items in the shapes the method modules read, for the bench (``bench/run.py``) and
module tests: token ids, and teacher-cache rows as ``distill.cache`` stores them."""
from __future__ import annotations

import torch

from distill.data import IGNORE


def seq(rng, prompt: int, response: int, vocab: int) -> dict:
    """One sequence of ``prompt`` + ``response`` random ids (from 3: 0-2 are pad, bos, eos); labels on
    the response only."""
    ids = rng.integers(3, vocab, prompt + response).tolist()
    return {"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]}


def topk_rows(gen, n: int, vocab: int, k: int, ref: bool) -> dict:
    """Teacher cache rows as the cache stores them: top-k ids (int32), log-probs (fp16), the log
    remaining mass (fp32), and a reference's log-probs at those ids (fp16) with ``ref``."""
    from distill.losses.common import log_mass_outside

    lp = torch.randn(n, vocab, generator=gen).mul(3).log_softmax(-1)
    top_lp, top_id = lp.topk(k, dim=-1)
    rows = {"t_ids": top_id.to(torch.int32).numpy(), "t_logps": top_lp.to(torch.float16).numpy(),
            "t_rest": log_mass_outside(lp[None], top_id[None])[0].numpy()}
    if ref:
        ref_lp = torch.randn(n, vocab, generator=gen).mul(3).log_softmax(-1).gather(-1, top_id)
        rows["t_ref_logps"] = ref_lp.to(torch.float16).numpy()
    return rows
