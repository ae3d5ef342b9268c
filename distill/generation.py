"""Batched generation with the model's chat template (left padding, one forward per batch)."""
from __future__ import annotations

import torch
from rich.progress import Progress

from distill.data import prompt_text


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, batch_size: int = 64,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, num_return_sequences: int = 1,
             seed: int = 0, desc: str = "generating") -> list[list[str]]:
    """Generate ``num_return_sequences`` responses per prompt (a list of message lists).

    Greedy when ``do_sample`` is false. Returns one list of decoded responses per prompt.
    """
    model.eval()
    tokenizer.padding_side = "left"
    texts = [prompt_text(tokenizer, p) for p in prompts]
    device = next(model.parameters()).device
    out: list[list[str]] = []
    torch.manual_seed(seed)
    with Progress(transient=True) as progress:
        task = progress.add_task(desc, total=len(texts))
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            kwargs = dict(do_sample=True, temperature=temperature, top_p=top_p) if do_sample else dict(do_sample=False)
            seqs = model.generate(**enc, max_new_tokens=max_new_tokens, num_return_sequences=num_return_sequences,
                                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                  top_k=None, **kwargs)
            decoded = tokenizer.batch_decode(seqs[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            decoded = [d.strip() for d in decoded]
            out.extend(decoded[j:j + num_return_sequences] for j in range(0, len(decoded), num_return_sequences))
            progress.advance(task, len(enc["input_ids"]))
    return out
