"""The LM head at response positions only: the same logits as the full forward (Gemma-2's final
soft-capping included), the same method losses as the full-logits path."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma2Config, LlamaConfig

import distill.methods.base as base
from distill.data import IGNORE
from distill.methods.sft import SFTModule

V = 29


def tiny(kind: str):
    torch.manual_seed(0)
    common = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    if kind == "gemma2":
        cfg = Gemma2Config(head_dim=8, final_logit_softcapping=0.5, **common)  # a low cap, so it bites
    else:
        cfg = LlamaConfig(**common)
    m = AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(4.0)
    return m


def batch():
    """Three rows of different prompt/response lengths, right-padded; one response is empty."""
    g = torch.Generator().manual_seed(1)
    rows = [(3, 6), (7, 2), (5, 0)]
    T = max(p + r for p, r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    att = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE)
    for i, (p, r) in enumerate(rows):
        ids[i, :p + r] = torch.randint(3, V, (p + r,), generator=g)
        att[i, :p + r] = 1
        labels[i, p:p + r] = ids[i, p:p + r]
    return ids, att, labels


@pytest.mark.parametrize("kind", ["llama", "gemma2"])
def test_response_logits_are_the_full_logits_at_response_positions(kind):
    model = tiny(kind)
    ids, att, labels = batch()
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=att).logits[:, :-1].float()
        logits, lab, mask, pos = base.response_logits(model, ids, att, labels)
    if kind == "gemma2":
        assert 0.45 < full.abs().max() <= 0.5  # the cap is applied and binds
    shifted = labels[:, 1:]
    assert logits.shape == (3, 6, V) and mask.sum(-1).tolist() == [6, 2, 0]
    for b in range(3):
        want = [t for t in range(shifted.shape[1]) if shifted[b, t] != IGNORE]
        n = len(want)
        assert pos[b, :n].tolist() == want
        assert torch.equal(lab[b, :n], shifted[b, want])
        torch.testing.assert_close(logits[b, :n], full[b, want], rtol=1e-5, atol=1e-5)
        assert not mask[b, n:].any()


def test_sft_loss_and_gradient_match_the_full_logits_path(monkeypatch):
    model = tiny("gemma2")
    ids, att, labels = batch()
    module = SFTModule(model, optimizer=None)
    out = {}
    for full in (False, True):
        monkeypatch.setattr(base, "FULL_LOGITS", full)
        model.zero_grad()
        loss, _ = module.model_step({"input_ids": ids, "attention_mask": att, "labels": labels})
        loss.backward()
        out[full] = (loss.detach(), model.lm_head.weight.grad.clone())
    torch.testing.assert_close(out[False][0], out[True][0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out[False][1], out[True][1], rtol=1e-5, atol=1e-6)


def test_a_model_without_a_separate_decoder_takes_the_full_forward():
    inner = tiny("llama")

    class Plain(torch.nn.Module):  # only forward(...).logits, like a wrapped or custom model
        def forward(self, **kw):
            return inner(**kw)

    ids, att, labels = batch()
    with torch.no_grad():
        got = base.response_logits(Plain(), ids, att, labels)
        want = base.response_logits(inner, ids, att, labels)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_soft_cap_is_the_three_operations_and_its_gradient_is_autograds():
    """``soft_cap``'s forward gives the bits of divide-tanh-multiply; its one-pass backward gives
    autograd's gradient through those three operations (to float32 rounding), large logits included."""
    g = torch.Generator().manual_seed(3)
    z0 = torch.randn(5, 7, 301, generator=g) * 40  # many beyond the cap, where tanh saturates
    w = torch.randn(5, 7, 301, generator=g)
    cap = 30.0
    z1, z2 = z0.clone().requires_grad_(), z0.clone().requires_grad_()
    want = torch.tanh(z1 / cap) * cap
    got = base.soft_cap(z2, cap)
    assert torch.equal(got, want)
    (want * w).sum().backward()
    (got * w).sum().backward()
    torch.testing.assert_close(z2.grad, z1.grad, rtol=1e-6, atol=1e-7)
    assert not torch.equal(z2.grad, torch.zeros_like(z2.grad))
    with torch.no_grad():  # no graph: the in-place path, same values
        assert torch.equal(base.soft_cap(z0.clone(), cap), want.detach())


def test_fused_adamw_on_the_cpu_matches_the_loop():
    """``build_optimizer`` picks torch's fused AdamW for CPU parameters when neither ``fused`` nor
    ``foreach`` is configured, keeps what is configured, and the fused update follows the per-tensor
    loop to float32 rounding over several steps."""
    from functools import partial

    model = tiny("gemma2").train()
    factory = partial(torch.optim.AdamW, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.0)
    params = [p for p in model.parameters() if p.requires_grad]
    assert base.build_optimizer(factory, params).defaults["fused"] is True
    kept = base.build_optimizer(partial(torch.optim.AdamW, lr=1e-2, foreach=False), params)
    assert not kept.defaults["fused"] and kept.defaults["foreach"] is False
    assert not base.build_optimizer(partial(torch.optim.SGD, lr=1e-2), params).defaults.get("fused")
    import copy

    ids, att, labels = batch()
    runs = {}
    for fused in (True, False):
        m = copy.deepcopy(model)
        ps = [p for p in m.parameters() if p.requires_grad]
        opt = base.build_optimizer(factory, ps) if fused else factory(params=ps, foreach=False)
        module = SFTModule(m, optimizer=None)
        for _ in range(4):
            loss, _ = module.model_step({"input_ids": ids, "attention_mask": att, "labels": labels})
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        runs[fused] = [p.detach() for p in ps]
    moved = max(float((a - b.detach()).abs().max()) for a, b in zip(runs[False], params))
    assert moved > 1e-3  # the steps changed the weights
    for a, b in zip(runs[True], runs[False]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
