"""Artifacts, data files, the toy task and its oracle, tokenizers."""
from __future__ import annotations

import json
import multiprocessing as mp
import random
import time
from pathlib import Path

import pytest

from distill.artifacts import ArtifactStore, fingerprint
from distill.data import DataError, Truncation, read_jsonl
from toyworld.task import ToyTask, ToyTaskConfig, parse, render
from toyworld.tokenizer import STYLES, build_toy_tokenizer


# ----------------------------------------------------------------------------- artifacts
def test_fingerprint_ignores_key_order_and_int_float():
    assert fingerprint({"a": 1, "b": {"c": 2.0}}) == fingerprint({"b": {"c": 2}, "a": 1.0})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_store_builds_once_and_reuses(tmp_path):
    store, calls = ArtifactStore(tmp_path), []

    def build(out, work):
        calls.append(1)
        (out / "x.txt").write_text("hi")

    a = store.get_or_build("s", {"k": 1}, build)
    b = store.get_or_build("s", {"k": 1}, build)
    assert calls == [1] and not a.reused and b.reused and a.path == b.path
    assert (a.path / "x.txt").read_text() == "hi"
    assert a.manifest["files"] == ["x.txt"] and a.manifest["spec"] == {"k": 1}


def test_failed_build_leaves_no_artifact(tmp_path):
    store = ArtifactStore(tmp_path)

    def boom(out, work):
        (out / "half.txt").write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.get_or_build("s", {"k": 1}, boom)
    assert not store.exists("s", {"k": 1})
    assert not list((tmp_path / "s").glob("*.tmp-*"))
    a = store.get_or_build("s", {"k": 1}, lambda out, work: (out / "ok").write_text("1"))
    assert (a.path / "ok").exists() and not a.reused


def _slow_build(root, marker):
    def build(out, work):
        with open(marker, "a") as fh:
            fh.write("built\n")
        time.sleep(1.0)
        (out / "v").write_text("1")

    ArtifactStore(root).get_or_build("s", {"k": 1}, build)


def test_two_processes_build_once(tmp_path):
    marker = tmp_path / "marker"
    ps = [mp.get_context("fork").Process(target=_slow_build, args=(tmp_path / "store", marker)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(30)
    assert [p.exitcode for p in ps] == [0, 0]
    assert marker.read_text().count("built") == 1


# ----------------------------------------------------------------------------- data files
def test_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"}\n{"prompt": [}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON"):
        read_jsonl(p, "pairs")


def test_missing_field_and_bad_utf8(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": [], "chosen": "a"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:1: missing field\(s\) \['rejected'\]"):
        read_jsonl(p, "pairs")
    p.write_bytes(b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
                  b'{"messages": "\xff"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid UTF-8"):
        read_jsonl(p, "sft")


def test_truncation_counts_and_keeps_prompt_end():
    t = Truncation(10)
    p, r = t(list(range(8)), [100, 101, 102, 103])
    assert len(p) + len(r) == 10 and p[-1] == 7 and r[0] == 100 and t.count == 1
    assert t([1, 2], [3]) == ([1, 2], [3]) and t.count == 1


# ----------------------------------------------------------------------------- toy task
def test_oracle_reward_components():
    task = ToyTask(ToyTaskConfig(w_correct=0.6, w_format=0.4))
    ans = ["a", "b", "c", "d"]
    assert task.reward("[ a b c d ]", ans) == pytest.approx(1.0)
    assert task.reward("a b c d", ans) == pytest.approx(0.6)
    assert task.reward("[ a b c ]", ans) == pytest.approx(0.6 * 0.75 + 0.4)  # one deletion of four
    assert task.reward("", ans) == 0.0
    assert task.judge("[ a b c d ]", "a b c d", ans) == 1.0
    assert task.judge("a b c d", "[ a b c d ]", ans) == 0.0
    assert task.judge("a b c d", "a b c d", ans) == 0.5


def test_task_solutions_and_data():
    task, rng = ToyTask(), random.Random(0)
    for _ in range(50):
        p = task.sample(rng)
        if p.op == "sort":
            assert p.answer == sorted(p.items)
        elif p.op == "reverse":
            assert p.answer == p.items[::-1]
    pairs = task.preference_rows(200, rng)
    assert all(task.reward(r["chosen"], r["answer"]) > task.reward(r["rejected"], r["answer"]) for r in pairs)
    sft = task.sft_rows(400, rng)
    share = sum(parse(r["messages"][1]["content"])[1] for r in sft) / len(sft)
    assert 0.25 < share < 0.45  # both formats, bracketed in 35% of the answers
    assert parse(render(["a", "b"], True)) == (["a", "b"], True)


def test_preference_pairs_are_better_not_gold():
    """The chosen response beats the rejected one by the oracle, but is itself often wrong or plain:
    the pairs show less than a teacher aligned on their contrast learns."""
    task, rng = ToyTask(), random.Random(1)
    pairs = task.preference_rows(2000, rng)
    assert all(task.reward(r["chosen"], r["answer"]) > task.reward(r["rejected"], r["answer"]) for r in pairs)
    wrong = sum(task.correctness(r["chosen"], r["answer"]) < 1 for r in pairs) / len(pairs)
    plain = sum(not parse(r["chosen"])[1] for r in pairs) / len(pairs)
    assert 0.15 < wrong < 0.35 and 0.4 < plain < 0.65  # measured: 0.24 and 0.52 (4000 pairs, seed 0)
    # one letter wrong costs more than the format: correctness decides first
    assert task.reward("a b c d e f g h", list("abcdefgh")) > task.reward("[ a b c d e f g i ]", list("abcdefgh"))
    gold = ToyTask(ToyTaskConfig(pair_correct_share=1.0, pair_format_share=0.5)).preference_rows(200, random.Random(0))
    assert all(parse(r["chosen"]) == (r["answer"], True) for r in gold)  # only the format differs, then
    assert task.preference_rows(50, random.Random(3)) == task.preference_rows(50, random.Random(3))


def test_bad_task_config():
    with pytest.raises(ValueError, match="sum to 1"):
        ToyTaskConfig(w_correct=0.5, w_format=0.6)
    with pytest.raises(ValueError, match="unknown ops"):
        ToyTaskConfig(ops=("sort", "fly"))
    with pytest.raises(ValueError, match="pair_correct_share must be in"):
        ToyTaskConfig(pair_correct_share=1.5)
    with pytest.raises(ValueError, match="every pair a tie"):
        ToyTaskConfig(pair_correct_share=1.0, pair_format_share=1.0)


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_tokenizers_round_trip_with_template(style, kind):
    task = ToyTask()
    tok = build_toy_tokenizer(style, task.corpus(), kind)
    text = "[ a b c ]"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids).split() == text.split()
    prompt = tok.apply_chat_template([{"role": "user", "content": "sort : c b a"}], tokenize=False,
                                     add_generation_prompt=True)
    assert "sort : c b a" in prompt and prompt.startswith(tok.bos_token)
