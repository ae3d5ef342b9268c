"""PAD's MCQ calibration: the comparison questions (both orders), the mean selection probability,
the toy teachers' comparison data, and the released code's filter."""
from __future__ import annotations

import math
import random
from types import SimpleNamespace

import pytest
import torch

from distill import data as D
from distill.mcq import (SEPARATOR, answer_ids, comparison_messages, keep_decided, mean_selection_probabilities,
                         toy_comparison)
from toyworld.task import ToyTask
from toyworld.tokenizer import build_toy_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_toy_tokenizer("gemma", ToyTask().corpus())


class Judge(torch.nn.Module):
    """A stand-in teacher that reads the question: the logit of answer ``a`` (first) minus that of
    ``b`` (second) is quality(first) − quality(second) + bias, quality = the number of tokens of a
    response, bias a preference for the first position."""

    def __init__(self, tok, bias: float):
        super().__init__()
        self.tok, self.bias = tok, bias
        self.sep = tok.convert_tokens_to_ids(SEPARATOR)
        self.a, self.b = answer_ids(tok, "toy")
        self.calls = []
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
        logits = torch.zeros(*input_ids.shape, len(self.tok))
        for r, (ids, m) in enumerate(zip(input_ids.tolist(), attention_mask.tolist())):
            ids = [t for t, keep in zip(ids, m) if keep]
            s1, s2 = [i for i, t in enumerate(ids) if t == self.sep]
            end = ids.index(self.tok.convert_tokens_to_ids("<end_of_turn>"), s2)
            first, second = s2 - s1 - 1, end - s2 - 1
            self.calls.append((first, second))
            logits[r, -1, self.a] = first - second + self.bias
            logits[r, -1, self.b] = 0.0
        return SimpleNamespace(logits=logits)


def test_mean_selection_probability_over_both_orders(tok):
    responses = ["a", "b b", "c c c", "d d d d"]  # quality 1..4 (tokens)
    rows = [{"prompt": [{"role": "user", "content": "sort : d b a c"}], "responses": responses}]
    bias = 0.7
    judge = Judge(tok, bias)
    p_bar = mean_selection_probabilities(judge, tok, rows, style="toy", batch_size=5, max_length=80)[0]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    q = [1, 2, 3, 4]
    expected = [sum(sig(q[i] - q[j] + bias) + (1 - sig(q[j] - q[i] + bias)) for j in range(4) if j != i) / 6
                for i in range(4)]
    assert p_bar == pytest.approx(expected, abs=1e-6)
    # every ordered pair asked once: 4 · 3 questions, each response 3 times first and 3 times second
    assert sorted(judge.calls) == sorted((q[i], q[j]) for i in range(4) for j in range(4) if i != j)
    assert sum(p_bar) == pytest.approx(2.0, abs=1e-6)  # normalised over the two answers: mean ½
    assert p_bar == sorted(p_bar)  # the longer (better) response wins more often


def test_position_bias_cancels_between_equal_responses(tok):
    rows = [{"prompt": [{"role": "user", "content": "reverse : a b"}], "responses": ["a b", "b a"]}]
    p_bar = mean_selection_probabilities(Judge(tok, bias=3.0), tok, rows, style="toy", batch_size=8,
                                         max_length=80)[0]
    assert p_bar == pytest.approx([0.5, 0.5], abs=1e-6)
    assert not keep_decided(p_bar)  # the released filter drops a prompt whose responses all tie


def test_released_filter():
    assert keep_decided([0.7, 0.5, 0.3]) and keep_decided([0.51, 0.49])
    assert not keep_decided([0.5, 0.5, 0.5]) and not keep_decided([0.6, 0.7])


def test_comparison_formats(tok):
    msgs = comparison_messages([{"role": "user", "content": "shift : a b"}], "[ b c ]", "b c", "toy")
    assert msgs == [{"role": "user", "content": f"shift : a b {SEPARATOR} [ b c ] {SEPARATOR} b c"}]
    nat = comparison_messages([{"role": "user", "content": "Name a colour."}], "Red.", "Blue.", "natural")
    text = nat[0]["content"]
    assert text.index("Name a colour.") < text.index("Response A:\nRed.") < text.index("Response B:\nBlue.")
    assert text.endswith("A or B.")
    with pytest.raises(ValueError, match="unknown comparison format"):
        comparison_messages([], "a", "b", "other")
    with pytest.raises(ValueError, match="cannot write the answer 'A'"):
        answer_ids(tok, "natural")  # the toy vocabulary has no capital letters


def test_long_questions_are_cut_keeping_each_response_start(tok):
    long_a, long_b = " ".join(["a"] * 30), " ".join(["b"] * 30)
    rows = [{"prompt": [{"role": "user", "content": "sort : a b"}], "responses": [long_a, long_b]}]
    judge = Judge(tok, 0.0)
    mean_selection_probabilities(judge, tok, rows, style="toy", batch_size=4, max_length=40)
    assert all(first == second and 1 <= first < 30 for first, second in judge.calls)


def test_toy_comparison_rows_follow_the_oracle_in_both_orders(tok):
    task = ToyTask()
    rows = task.comparison_rows(400, random.Random(0))
    firsts = 0
    for row in rows:
        question, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        instruction, a, b = (part.strip() for part in question.split(SEPARATOR))
        assert question == toy_comparison(instruction, a, b)
        ra, rb = task.reward(a, row["answer"]), task.reward(b, row["answer"])
        assert ra != rb and answer == ("a" if ra > rb else "b")
        firsts += answer == "a"
        # every word is in the toy vocabulary: the teacher reads the question as written
        ids = D.encode_sft(tok, [row], 80)[0]["seqs"][0]["input_ids"]
        assert tok.unk_token_id not in ids and len(ids) <= 80
    assert 0.4 < firsts / len(rows) < 0.6
    assert rows == task.comparison_rows(400, random.Random(0))  # deterministic


@pytest.mark.parametrize("method", ["pad", "pad_lppd", "pad_lvpd"])
def test_the_full_world_default_is_the_released_setting_and_the_toy_world_keeps_it_off(method):
    from conftest import compose_cfg

    full = compose_cfg([f"method={method}", "world=full"])
    toy = compose_cfg([f"method={method}"])
    assert full.method.calibration_lambda == 1.0 and full.method.calibration_filter is True
    assert toy.method.calibration_lambda == 0.0


@pytest.mark.slow
def test_pad_with_mcq_calibration_runs_in_the_toy_world(tiny_cfg):
    """λ = 1: the teachers learn the comparison format (another teacher key than λ = 0 has), the
    MCQ artifact holds p̄ for every sample, and the student trains on the calibrated scores."""
    import json

    from distill.artifacts import ArtifactStore
    from distill.methods.plugin import lookup
    from distill.stages import Pipeline

    base = Pipeline(tiny_cfg("method=pad", "logger=none", "method.n_samples=3", "method.n_keep=3"))
    cfg = tiny_cfg("method=pad", "logger=none", "method.n_samples=3", "method.n_keep=3",
                   "method.calibration_lambda=1.0", "method.calibration_toy_rows=64")
    store = ArtifactStore(cfg.paths.artifacts)
    pipe = Pipeline(cfg, store)
    assert pipe.teacher_comparisons()["rows"] == 64 and not base.teacher_comparisons()
    art = pipe.distill()
    assert (art.path / "model").exists()
    built = {s for s, _, r in store.events if not r}
    assert {"sft_teacher", "pad_mcq", "pad_scores"} <= built
    assert pipe.sft("teacher").key != base.sft("teacher").key  # λ = 0 keeps its own teachers
    assert pipe.sft("student").key == base.sft("student").key  # the student is the same
    mcq = [json.loads(line)["p_bar"] for line in
           (lookup(cfg.method).inputs(pipe, cfg.method)["mcq"].path / "mcq.jsonl").read_text().splitlines()]
    assert len(mcq) == cfg.data.sizes.prompts and all(len(p) == 3 and sum(p) == pytest.approx(1.5) for p in mcq)


def test_a_question_reads_the_same_alone_and_left_padded_in_a_batch(tok):
    """Left padding must not move a question's positions: the same p̄ batched or one at a time."""
    from transformers import AutoModelForCausalLM, Gemma2Config

    torch.manual_seed(0)
    cfg = Gemma2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=96,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    rows = [{"prompt": [{"role": "user", "content": "sort : c b a"}], "responses": ["a b c", "[ a b c ]", "c"]},
            {"prompt": [{"role": "user", "content": "shift : a"}], "responses": ["b", "[ b c d e f ]"]}]
    batched = mean_selection_probabilities(model, tok, rows, style="toy", batch_size=16, max_length=80)
    alone = mean_selection_probabilities(model, tok, rows, style="toy", batch_size=1, max_length=80)
    for b, a in zip(batched, alone):
        assert b == pytest.approx(a, abs=1e-5)
