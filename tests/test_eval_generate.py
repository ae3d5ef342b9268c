"""Answer generation: the benchmarks' own answer-file formats, MT-Bench's temperature per category,
greedy decoding where the benchmarks ask for it, and the backends."""
from __future__ import annotations

import json

import pytest

from toyworld.task import ToyTask
from eval import generate as G
from eval.benchmarks import alpaca_eval2 as ae2
from eval.benchmarks import arena_hard as ah
from eval.benchmarks import mt_bench as mt

TASK = ToyTask()


class Recorder:
    """A backend that answers ``<turn index>:<last user message>`` and records every call."""

    name = "recorder"

    def __init__(self):
        self.calls = []

    def chat(self, conversations, *, temperature, max_new_tokens, desc=""):
        self.calls.append({"temperature": temperature, "max_new_tokens": max_new_tokens,
                           "conversations": [list(c) for c in conversations]})
        return [f"{len(c) // 2}:{c[-1]['content']}" for c in conversations]

    def count_tokens(self, text):
        return len(text.split())


@pytest.fixture(scope="module")
def tiny():
    from distill.models import build_model
    from toyworld.tokenizer import build_toy_tokenizer
    from omegaconf import OmegaConf

    tok = build_toy_tokenizer("gemma", TASK.corpus())
    family = OmegaConf.create({"family": "llama", "config_class": "transformers.LlamaConfig",
                               "attn_implementation": "eager",
                               "student": {"toy": {"num_hidden_layers": 1, "hidden_size": 16, "intermediate_size": 32,
                                                   "num_attention_heads": 2, "num_key_value_heads": 1}}})
    return build_model(family, "student", tok, "toy", seed=0, max_length=80), tok


# ---- file formats ------------------------------------------------------------------------------
def test_alpaca_eval_model_outputs_format(tmp_path):
    reference = [{"instruction": "sort : b a", "output": "[ a b ]", "generator": "ref", "dataset": "toy"},
                 {"instruction": "shift : a", "output": "b", "generator": "ref", "dataset": "toy"}]
    rows = G.alpaca_eval_outputs(Recorder(), reference, "student-x", max_new_tokens=8)
    path = G.write_alpaca_eval(tmp_path, rows)
    data = json.loads(path.read_text())
    assert path.name == "model_outputs.json" and isinstance(data, list)
    assert data == [{"instruction": "sort : b a", "output": "0:sort : b a", "generator": "student-x", "dataset": "toy"},
                    {"instruction": "shift : a", "output": "0:shift : a", "generator": "student-x", "dataset": "toy"}]
    assert ae2.read_model_outputs(path) == data


def test_arena_hard_answer_rows_are_greedy_and_in_fastchat_format(tmp_path):
    questions = [{"question_id": "q1", "category": "c", "cluster": "x", "turns": [{"content": "sort : b a"}]},
                 {"question_id": "q2", "category": "c", "cluster": "x", "turns": [{"content": "shift : a"}]}]
    rec = Recorder()
    rows = G.arena_hard_answers(rec, questions, "student-x", max_new_tokens=12, count=rec.count_tokens)
    assert [c["temperature"] for c in rec.calls] == [0.0] and rec.calls[0]["max_new_tokens"] == 12
    path = G.write_arena_hard(tmp_path, "student-x", rows)
    assert path == tmp_path / "model_answer" / "student-x.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [set(r) for r in lines] == [{"question_id", "answer_id", "model_id", "choices", "tstamp"}] * 2
    assert lines[0]["choices"] == [{"index": 0, "turns": [{"content": "0:sort : b a", "token_len": 4}]}]
    assert lines[0]["model_id"] == "student-x" and lines[0]["answer_id"] != lines[1]["answer_id"]
    answers = ah.read_answers(path)
    assert ah.avg_tokens(answers) == 3


def test_mt_bench_two_turns_at_fastchats_temperature_per_category(tmp_path):
    cats = ["writing", "roleplay", "extraction", "math", "coding", "reasoning", "stem", "humanities", "unlisted"]
    questions = [{"question_id": 81 + i, "category": c, "turns": [f"first {c}", f"second {c}"]}
                 for i, c in enumerate(cats)]
    rec = Recorder()
    rows = G.mt_bench_answers(rec, questions, "student-x", max_new_tokens=9)
    expected = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0,
                "stem": 0.1, "humanities": 0.1, "unlisted": 0.7}
    seen = {}
    for call in rec.calls:
        for conv in call["conversations"]:
            cat = conv[0]["content"].split()[1]
            seen.setdefault(cat, set()).add(call["temperature"])
    assert seen == {c: {t} for c, t in expected.items()}
    assert all(call["max_new_tokens"] == 9 for call in rec.calls)
    # turn 2 sees the model's own turn-1 answer
    second = [conv for call in rec.calls for conv in call["conversations"] if len(conv) == 3]
    assert len(second) == len(cats)
    assert all(conv[1] == {"role": "assistant", "content": f"0:{conv[0]['content']}"} for conv in second)
    path = G.write_mt_bench(tmp_path, "student-x", rows)
    back = mt.read_answers(path)
    assert back[81]["choices"] == [{"index": 0, "turns": ["0:first writing", "1:second writing"]}]
    assert set(back[81]) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}


def test_mt_bench_required_temperature_and_custom_config():
    assert G.mt_bench_temperature({"category": "writing", "required_temperature": 0.2}) == 0.2
    assert G.mt_bench_temperature({"category": "writing"}, {"writing": 0.0}) == 0.0
    assert G.mt_bench_temperature({"category": "stem"}) == mt.TEMPERATURE_CONFIG["stem"] == 0.1


# ---- the HF backend ----------------------------------------------------------------------------
def test_hf_backend_is_greedy_below_fastchats_threshold(monkeypatch, tiny):
    import distill.generation

    seen = []

    def fake_generate(model, tokenizer, prompts, **kw):
        seen.append(kw)
        return [["x"] for _ in prompts]

    monkeypatch.setattr(distill.generation, "generate", fake_generate)
    backend = G.HFBackend(*tiny, batch_size=4, seed=3)
    conv = [[{"role": "user", "content": "sort : b a"}]]
    backend.chat(conv, temperature=0.0, max_new_tokens=5)
    backend.chat(conv, temperature=0.7, max_new_tokens=5)
    assert (seen[0]["do_sample"], seen[1]["do_sample"], seen[1]["temperature"]) == (False, True, 0.7)
    assert seen[0]["batch_size"] == 4 and seen[0]["seed"] == 3 and seen[0]["max_new_tokens"] == 5


def test_hf_backend_generates_with_the_chat_template(tiny):
    model, tok = tiny
    backend = G.HFBackend(model, tok, batch_size=2, seed=0)
    convs = [[{"role": "user", "content": "sort : b a"}],
             [{"role": "user", "content": "sort : b a"}, {"role": "assistant", "content": "[ a b ]"},
              {"role": "user", "content": "shift : it"}],
             [{"role": "user", "content": "reverse : a b c"}]]
    greedy = backend.chat(convs, temperature=0.0, max_new_tokens=6)
    assert len(greedy) == 3 and all(isinstance(x, str) for x in greedy)
    assert backend.chat(convs, temperature=0.0, max_new_tokens=6) == greedy
    sampled = [backend.chat(convs, temperature=0.7, max_new_tokens=6) for _ in range(2)]
    assert sampled[0] == sampled[1]  # seeded
    assert backend.count_tokens("[ a b ]") == 4


def test_vllm_backend_without_vllm_says_to_install_the_extra():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"install the vllm extra"):
            G.make_backend("vllm", path="some/model")
    else:  # pragma: no cover - a CUDA machine with vllm
        pytest.skip("vllm is installed")
    with pytest.raises(ValueError, match="unknown generation backend"):
        G.make_backend("tgi")


def test_token_counter_choices(tiny):
    backend = G.HFBackend(*tiny)
    assert G.token_counter("none", backend) is None
    assert G.token_counter("model", backend)("[ a b ]") == 4
    with pytest.raises(ValueError, match="unknown token counter"):
        G.token_counter("words", backend)
