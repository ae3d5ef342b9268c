"""Each method's LightningModule on a hand-built batch, against the loss computed per sequence from
first principles.

The batch is made the way training makes it: items of several sequences with prompts and
responses of different lengths go through ``distill.data.Collator`` (right padding, group-major
stacking, teacher-cache rows scattered to response positions), then ``module.model_step``. The
reference runs the model on every sequence alone (no padding, no batch), reads token t's
log-probability from the logits at position t − 1, and writes each method's formula out in
float64 with plain loops over sequences, tokens and rankings, without the package's loss
functions. So a fault in how a module slices, shifts, groups or pairs its inputs changes the
module's value and not the reference's.
"""
from __future__ import annotations

import itertools
import math
from functools import partial

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from distill.data import IGNORE, Collator
from distill.losses.pad import lppd_loss, lvpd_loss
from distill.methods.adpa import ADPAModule
from distill.methods.dckd import DCKDModule
from distill.methods.dpo import DPOModule
from distill.methods.pad import PADModule

V, PAD_ID = 23, 0
TOL = dict(rel=1e-5, abs=1e-6)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=PAD_ID, bos_token_id=1, eos_token_id=2)
    m = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # larger weights: peakier distributions, so that every mistake shows
        for p in m.parameters():
            p.mul_(4.0)
    return m.eval()


def seq(rng: np.random.Generator, prompt: int, response: int) -> dict:
    ids = [1] + rng.integers(3, V, prompt - 1 + response - 1).tolist() + [2]
    return {"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]}


def teacher_rows(rng: np.random.Generator, n: int, k: int, ref: bool = False) -> dict:
    """Cache rows of one sequence: distinct top-k ids, fp16 log-probs, fp32 log remaining mass."""
    ids = np.stack([rng.permutation(V)[:k] for _ in range(n)]).astype(np.int32)
    logits = rng.normal(size=(n, V)) * 2
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    top = np.take_along_axis(lp, ids, -1)
    rows = {"t_ids": ids, "t_logps": top.astype(np.float16),
            "t_rest": np.log1p(-np.exp(top).sum(-1)).astype(np.float32)}
    if ref:
        ref_lp = rng.normal(size=(n, V)) * 2
        ref_lp = ref_lp - np.log(np.exp(ref_lp).sum(-1, keepdims=True))
        rows["t_ref_logps"] = np.take_along_axis(ref_lp, ids, -1).astype(np.float16)
    return rows


def n_resp(s: dict) -> int:
    return sum(1 for t in s["labels"] if t != IGNORE)


@torch.no_grad()
def token_logprobs(model, s: dict) -> tuple[np.ndarray, list[int]]:
    """The sequence alone through the model: float64 log-softmax rows predicting each response
    token (row j, from the logits at the position before it, predicts the j-th response token),
    and those tokens."""
    ids = torch.tensor([s["input_ids"]])
    logits = model(input_ids=ids).logits[0].double()
    pos = [t for t, lab in enumerate(s["labels"]) if lab != IGNORE]
    return torch.log_softmax(logits[[t - 1 for t in pos]], -1).numpy(), [s["input_ids"][t] for t in pos]


def seq_logp(model, s) -> float:
    lp, toks = token_logprobs(model, s)
    return sum(float(lp[j, y]) for j, y in enumerate(toks))


def nll_token_mean(model, seqs) -> float:
    """−(Σ over every response token of the sequences) / (their number)."""
    total, count = 0.0, 0
    for s in seqs:
        lp, toks = token_logprobs(model, s)
        total -= sum(float(lp[j, y]) for j, y in enumerate(toks))
        count += len(toks)
    return total / count


def topk_kl(model, s) -> float:
    """(1/|y|) Σ_t [Σ_i p_i log(p_i/q_i) + p_rest log(p_rest/q_rest)], q_rest summed directly."""
    lp, _ = token_logprobs(model, s)
    kls = []
    for j in range(lp.shape[0]):
        ids = [int(a) for a in s["t_ids"][j]]
        p = [math.exp(float(v)) for v in s["t_logps"][j]]
        q = np.exp(lp[j])
        p_rest = math.exp(float(s["t_rest"][j]))
        q_rest = float(np.delete(q, ids).sum())
        kl = sum(pi * (math.log(pi) - float(lp[j, a])) for pi, a in zip(p, ids))
        kls.append(kl + p_rest * (math.log(p_rest) - math.log(q_rest)))
    return sum(kls) / len(kls)


def advantage(model, s) -> float:
    """(1/|ŷ|) Σ_t Σ_i π_θ(a_i|ŝ_t) (log π_dpo − log π_ref)(a_i|ŝ_t)."""
    lp, _ = token_logprobs(model, s)
    terms = [sum(math.exp(float(lp[j, int(a)])) * (float(d) - float(r))
                 for a, d, r in zip(s["t_ids"][j], s["t_logps"][j], s["t_ref_logps"][j]))
             for j in range(lp.shape[0])]
    return sum(terms) / len(terms)


def pl_logprob(scores: list[float], order: tuple[int, ...], beta: float) -> float:
    out = 0.0
    for k in range(len(order)):
        rest = [beta * scores[i] for i in order[k:]]
        m = max(rest)
        out += beta * scores[order[k]] - (m + math.log(sum(math.exp(r - m) for r in rest)))
    return out


def module_loss(module, items) -> float:
    with torch.no_grad():
        loss, _ = module.model_step(Collator(PAD_ID)(items))
    return float(loss)


# ---------------------------------------------------------------------------------------------- DPO
def test_dpo_module_matches_per_pair_formula(model):
    rng, beta = np.random.default_rng(1), 0.3
    shapes = [((3, 4), (3, 7)), ((5, 2), (5, 5)), ((2, 6), (2, 3))]  # (prompt, response) chosen, rejected
    items = []
    for (pw, rw), (pl, rl) in shapes:
        items.append({"seqs": [seq(rng, pw, rw), seq(rng, pl, rl)],
                      "ref_chosen_logps": float(-rng.uniform(5, 20)), "ref_rejected_logps": float(-rng.uniform(5, 20))})
    expected = 0.0
    for it in items:
        w, l = it["seqs"]
        margin = beta * ((seq_logp(model, w) - it["ref_chosen_logps"]) - (seq_logp(model, l) - it["ref_rejected_logps"]))
        expected += math.log1p(math.exp(-margin)) / len(items)
    got = module_loss(DPOModule(model, optimizer=None, beta=beta), items)
    assert got == pytest.approx(expected, **TOL)


# ---------------------------------------------------------------------------------------------- DCKD
def dckd_items(seed=2, k=4):
    rng = np.random.default_rng(seed)
    shapes = [((3, 2), (3, 6)), ((5, 7), (5, 3)), ((2, 4), (2, 5))]
    items = []
    for (pw, rw), (pl, rl) in shapes:
        w, l = seq(rng, pw, rw), seq(rng, pl, rl)
        items.append({"seqs": [{**w, **teacher_rows(rng, n_resp(w), k)}, {**l, **teacher_rows(rng, n_resp(l), k)}]})
    return items


def test_dckd_module_matches_per_sequence_formula(model):
    items, alpha = dckd_items(), 0.7
    chosen, rejected = [it["seqs"][0] for it in items], [it["seqs"][1] for it in items]
    nll = nll_token_mean(model, chosen)
    kl_w = sum(topk_kl(model, s) for s in chosen) / len(items)
    kl_l = sum(topk_kl(model, s) for s in rejected) / len(items)
    got = module_loss(DCKDModule(model, optimizer=None, alpha=alpha), items)
    assert got == pytest.approx(nll + alpha * (kl_w + kl_l), **TOL)


def test_dckd_module_nll_alone_is_the_token_mean(model):
    """α = 0 isolates the supervised term: the mean over every chosen token of the batch."""
    items = dckd_items(seed=3)
    got = module_loss(DCKDModule(model, optimizer=None, alpha=0.0), items)
    assert got == pytest.approx(nll_token_mean(model, [it["seqs"][0] for it in items]), **TOL)


# ---------------------------------------------------------------------------------------------- ADPA
def adpa_items(seed=4, k=5):
    rng = np.random.default_rng(seed)
    shapes = [((3, 2), (3, 6)), ((6, 7), (6, 3)), ((2, 4), (2, 5))]  # (prompt, response) of y_w and ŷ
    items = []
    for (pw, rw), (ph, rh) in shapes:
        hat = seq(rng, ph, rh)
        items.append({"seqs": [seq(rng, pw, rw), {**hat, **teacher_rows(rng, n_resp(hat), k, ref=True)}]})
    return items


def test_adpa_module_matches_per_sequence_formula(model):
    """Also ADPA+'s module: ADPA+ trains this very module, from the DCKD student and with ŷ from it
    (the start model and the samples differ, not how the batch is read)."""
    items, gamma = adpa_items(), 0.8
    nll = nll_token_mean(model, [it["seqs"][0] for it in items])
    adv = sum(advantage(model, it["seqs"][1]) for it in items) / len(items)
    got = module_loss(ADPAModule(model, optimizer=None, gamma=gamma), items)
    assert got == pytest.approx(nll - gamma * adv, **TOL)


def test_adpa_module_nll_alone_is_the_token_mean(model):
    items = adpa_items(seed=5)
    got = module_loss(ADPAModule(model, optimizer=None, gamma=0.0), items)
    assert got == pytest.approx(nll_token_mean(model, [it["seqs"][0] for it in items]), **TOL)


# ---------------------------------------------------------------------------------------------- PAD
def pad_items(seed=6, n=3, prompts=(3, 5)):
    rng = np.random.default_rng(seed)
    items = []
    for p in prompts:
        seqs = [seq(rng, p, int(r)) for r in rng.choice(np.arange(2, 9), n, replace=False)]
        items.append({"seqs": seqs, "teacher_scores": rng.normal(size=n).round(3).tolist()})
    return items


def student_scores(model, item) -> list[float]:
    return [seq_logp(model, s) / n_resp(s) for s in item["seqs"]]


def test_pad_lppd_module_matches_the_jsd_over_all_rankings(model):
    items, beta = pad_items(), 2.0
    expected = 0.0
    for it in items:
        s, t = student_scores(model, it), it["teacher_scores"]
        orders = list(itertools.permutations(range(len(s))))
        P = [math.exp(pl_logprob(t, o, beta)) for o in orders]
        Q = [math.exp(pl_logprob(s, o, beta)) for o in orders]
        M = [(p + q) / 2 for p, q in zip(P, Q)]
        jsd = 0.5 * sum(p * math.log(p / m) for p, m in zip(P, M)) + 0.5 * sum(q * math.log(q / m) for q, m in zip(Q, M))
        expected += jsd / len(items)
    module = PADModule(model, optimizer=None, loss_fn=partial(lppd_loss, beta=beta))
    assert module_loss(module, items) == pytest.approx(expected, **TOL)


def test_pad_lvpd_module_matches_the_teachers_ranking_likelihood(model):
    items, beta = pad_items(seed=7, n=4, prompts=(2, 4, 3)), 3.0
    expected = 0.0
    for it in items:
        s, t = student_scores(model, it), it["teacher_scores"]
        order = tuple(sorted(range(len(t)), key=lambda i: -t[i]))
        expected -= pl_logprob(s, order, beta) / len(items)
    module = PADModule(model, optimizer=None, loss_fn=partial(lvpd_loss, beta=beta))
    assert module_loss(module, items) == pytest.approx(expected, **TOL)


def test_reference_pass_and_pad_scores_are_the_per_sequence_sums(model):
    """The DPO reference pass and PAD's teacher scores (the LM head at response positions only)
    give each sequence's own log π(y|x), and (1/|y|) log π(y|x), on a padded batch of prompts and
    responses of different lengths."""
    from distill.stages import add_reference_logps, length_normalised_logps

    rng = np.random.default_rng(7)
    pairs = [{"seqs": [seq(rng, p, r), seq(rng, p, r2)]} for p, r, r2 in [(3, 4, 6), (5, 2, 3), (2, 7, 2)]]
    add_reference_logps(model, pairs, Collator(PAD_ID), batch_size=2)

    def logp(s):
        rows, toks = token_logprobs(model, s)
        return float(sum(rows[j, t] for j, t in enumerate(toks)))

    for it in pairs:
        assert it["ref_chosen_logps"] == pytest.approx(logp(it["seqs"][0]), **TOL)
        assert it["ref_rejected_logps"] == pytest.approx(logp(it["seqs"][1]), **TOL)
    singles = [{"seqs": [s]} for it in pairs for s in it["seqs"]]
    scores = length_normalised_logps(model, singles, Collator(PAD_ID), batch_size=4)
    assert scores == pytest.approx([logp(it["seqs"][0]) / n_resp(it["seqs"][0]) for it in singles], **TOL)
