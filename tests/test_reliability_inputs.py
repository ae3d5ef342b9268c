"""Bad input files: each gets an error that names the file and the line (or row), or a counted
skip where the benchmark itself skips; never a bare exception, never silence."""
from __future__ import annotations

import json
import logging
import random
import re

import pytest

from distill import data as D
from eval.benchmarks import DataFormatError

PROMPT = [{"role": "user", "content": "sort : b a"}]
GOOD = {"sft": {"messages": [*PROMPT, {"role": "assistant", "content": "[ a b ]"}]},
        "pairs": {"prompt": PROMPT, "chosen": "[ a b ]", "rejected": "a b"},
        "prompts": {"prompt": PROMPT}}


@pytest.mark.parametrize("kind,line,expected", [
    ("pairs", "[1, 2]", "expected a JSON object, got list"),
    ("sft", '{"messages": "hello"}', "'messages' must be a non-empty list"),
    ("sft", '{"messages": []}', "'messages' must be a non-empty list"),
    ("sft", '{"messages": [{"role": "user"}]}', "messages[0] must be a message"),
    ("sft", '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]}',
     "the answer (the last message's content) is empty"),
    ("pairs", json.dumps({"prompt": PROMPT, "chosen": "", "rejected": "a"}), "the chosen response is empty"),
    ("pairs", json.dumps({"prompt": PROMPT, "chosen": ["a"], "rejected": "a"}), "'chosen' must be a string"),
    ("pairs", json.dumps({"prompt": "sort : b a", "chosen": "a", "rejected": "b"}), "'prompt' must be a non-empty list"),
    ("prompts", json.dumps({"prompt": [{"role": "user", "content": 3}]}), "prompt[0] must be a message"),
    ("sft", json.dumps({"messages": [*PROMPT, {"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}),
     "messages ends with a 'user' turn; it must end with the assistant's answer"),
    ("sft", json.dumps({"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]}),
     "messages[0] has the unknown role 'robot'; roles are system, user, assistant"),
    ("sft", json.dumps({"messages": [{"role": "assistant", "content": "a"}]}), "it needs a user turn before it"),
    ("prompts", json.dumps({"prompt": [{"role": "user", "content": "   "}]}), "prompt[0] (user) is empty"),
    ("pairs", json.dumps({"prompt": [*PROMPT, {"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"}),
     "prompt ends with a 'assistant' turn; it must end with the user's turn"),
    ("prompts", '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested too deeply to read"),
])
def test_malformed_rows_name_file_line_and_problem(tmp_path, kind, line, expected):
    p = tmp_path / f"{kind}.jsonl"
    p.write_text(json.dumps(GOOD[kind]) + "\n" + line + "\n")
    with pytest.raises(D.DataError) as e:
        D.read_jsonl(p, kind)
    assert str(e.value).startswith(f"{p}:2: ") and expected in str(e.value)


@pytest.mark.parametrize("kind", ["sft", "pairs", "prompts"])
def test_an_empty_data_file_is_named(tmp_path, kind):
    p = tmp_path / f"{kind}.jsonl"
    p.write_text("\n")
    with pytest.raises(D.DataError, match=f"{p}: no rows; a '{kind}' file needs at least one row"):
        D.read_jsonl(p, kind)


def test_an_empty_rejected_response_is_a_valid_bad_answer(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text(json.dumps({**GOOD["pairs"], "rejected": ""}) + "\n")
    assert D.read_jsonl(p, "pairs")[0]["rejected"] == ""


def _tok():
    from toyworld.task import ToyTask
    from toyworld.tokenizer import build_toy_tokenizer

    return build_toy_tokenizer("llama", ToyTask().corpus())


def test_prompts_longer_than_the_context_are_cut_and_counted(caplog):
    tok = _tok()
    long = [{"role": "user", "content": "sort : " + " ".join("abc" * 20)}]
    rows = [{"prompt": long, "chosen": "[ a b ]", "rejected": "a b"}, GOOD["pairs"]]
    with caplog.at_level(logging.WARNING, logger="distill.data"):
        enc = D.encode_pairs(tok, rows, 32)
    assert "truncated 2 of 4 sequences to max_length=32" in caplog.text
    chosen = enc[0]["seqs"][0]
    assert len(chosen["input_ids"]) == 32
    n_answer = len(D.encode_response(tok, "[ a b ]"))
    assert chosen["input_ids"][-n_answer:] == D.encode_response(tok, "[ a b ]")  # the response is kept whole


def test_on_policy_samples_report_their_truncation(tiny_cfg, caplog):
    from distill.stages import Pipeline

    pipe = Pipeline(tiny_cfg("stages.max_length=12"))
    tok = pipe.tokenizer("student")
    rows = [{"prompt": PROMPT, "responses": ["[ a b ]", "[ " + "a " * 20 + "]"]}]
    with caplog.at_level(logging.WARNING, logger="distill.data"):
        pipe.encode_samples(tok, rows)
    assert "truncated" in caplog.text and "of 2 sequences to max_length=12" in caplog.text


# ------------------------------------------------------------------------------- benchmark files
def test_non_utf8_benchmark_files_name_file_and_line(tmp_path):
    from eval.benchmarks import alpaca_eval2 as ae
    from eval.benchmarks import mt_bench as mt

    q = tmp_path / "question.jsonl"
    q.write_bytes(b'{"question_id": 1, "category": "writing", "turns": ["a", "b"]}\n'
                  b'{"question_id": 2, "category": "writing", "turns": ["caf\xe9", "b"]}\n')
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(q))}, line 2: not valid UTF-8"):
        mt.load_questions(q)
    o = tmp_path / "model_outputs.json"
    o.write_bytes(b'[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "\xff", "output": "b"}\n]\n')
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(o))}, line 3: not valid UTF-8"):
        ae.read_model_outputs(o)


def test_benchmark_rows_missing_fields_name_file_and_row(tmp_path):
    from eval.benchmarks import arena_hard as ah
    from eval.benchmarks import mt_bench as mt

    ref = tmp_path / "gpt-4.jsonl"
    ref.write_text('{"question_id": 1, "choices": [{"turns": ["x"]}]}\n{"choices": [{"turns": ["x"]}]}\n')
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(ref))}, row 2: expected question_id"):
        mt.load_reference_answers(ref)
    prompts = tmp_path / "judge_prompts.jsonl"
    prompts.write_text('{"name": "single-v1", "system_prompt": "s"}\n')
    with pytest.raises(DataFormatError, match=r"judge_prompts\.jsonl, row 1: expected name, system_prompt and "):
        mt.load_judge_prompts(prompts)
    answers = tmp_path / "m.jsonl"
    answers.write_text('{"choices": [{"turns": [{"content": "x"}]}]}\n')
    with pytest.raises(DataFormatError, match=r"m\.jsonl, row 1: expected question_id"):
        ah.read_answers(answers)


def test_unanswered_questions_and_unparsed_verdicts_are_counted(caplog):
    """MT-Bench's own rules: a question without an answer is skipped, a judgment without a score is
    dropped; both are counted in the log (and the dropped ones in the scores)."""
    from eval.benchmarks import mt_bench as mt
    from eval.judges.base import FunctionJudge

    rng = random.Random(0)
    questions = [{"question_id": i, "category": "writing", "turns": [f"q{i}", "again"]} for i in range(3)]
    answers = {i: mt.make_answer_row(i, "m", [f"a{rng.random()}", "b"]) for i in range(2)}
    prompts = {n: {"name": n, "system_prompt": "s", "prompt_template": t}
               for n, t in (("single-v1", "{question} {answer}"),
                            ("single-v1-multi-turn", "{question_1} {answer_1} {question_2} {answer_2}"))}
    replies = iter(["Rating: [[7]]", "no rating", "Rating: [[5]]", "Rating: [[3]]"])
    with caplog.at_level(logging.WARNING, logger="eval.benchmarks.mt_bench"):
        rows = mt.judge_answers(FunctionJudge(lambda messages, **kw: next(replies)), prompts, questions, answers)
        scores = mt.score_judgments(rows, questions)
    assert "no answer to question 2; skipped" in caplog.text
    assert "1 of 4 judgments had no score and were dropped" in caplog.text
    assert scores["n_dropped"] == 1 and scores["n_scored"] == 3
