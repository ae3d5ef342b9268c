"""The full world's converters (distill/hub_data.py): rows in each data set's schema, and rows with a
field missing, which fail with the data set, row, field, schema expected and fix (never a KeyError)."""
from __future__ import annotations

import pytest

from distill.data import DataError
from distill.hub_data import MissingFieldError, convert

USER, ANSWER = {"role": "user", "content": "sort : b a"}, {"role": "assistant", "content": "[ a b ]"}
WORSE = {"role": "assistant", "content": "a b"}


def test_each_schema_converts_its_rows():
    assert convert([{"messages": [USER, ANSWER]}], "messages", "d:train") == [{"messages": [USER, ANSWER]}]
    pair = convert([{"chosen": [USER, ANSWER], "rejected": [USER, WORSE], "score": 3}], "chosen_rejected_messages",
                   "d:train")
    assert pair == [{"prompt": [USER], "chosen": "[ a b ]", "rejected": "a b"}]
    assert convert([{"prompt": "sort : b a"}], "prompt", "d:train") == [{"prompt": [USER]}]


@pytest.mark.parametrize("schema,rows,field", [
    ("messages", [{"messages": [USER, ANSWER]}, {"messages": [USER, {"role": "assistant"}]}], "messages[1].content"),
    ("messages", [{"text": "hello"}], "messages"),
    ("messages", [{"messages": [USER, ANSWER]}, {"messages": ["just text", ANSWER]}], "messages[0].role"),
    ("chosen_rejected_messages", [{"chosen": [USER, ANSWER], "prompt": "x"}], "rejected"),
    ("chosen_rejected_messages", [{"chosen": [USER, {"content": "x"}], "rejected": [USER, WORSE]}], "chosen[1].role"),
    ("chosen_rejected_messages", [{"chosen": [USER, ANSWER], "rejected": [{"role": "user"}, WORSE]}],
     "rejected[0].content"),
    ("prompt", [{"prompt": "a"}, {"prompt": "b"}, {"instruction": "c"}], "prompt"),
    ("prompt", [{"prompt": None}], "prompt"),
])
def test_a_missing_field_is_named_with_row_schema_and_fix(schema, rows, field):
    with pytest.raises(MissingFieldError) as e:
        convert(rows, schema, "argilla/dpo-mix-7k:train", "data.pairs")
    msg, row = str(e.value), len(rows)
    assert not isinstance(e.value, KeyError) and isinstance(e.value, DataError)
    assert msg.startswith(f"data.pairs: argilla/dpo-mix-7k:train row {row} (index {row - 1}): missing field {field!r}")
    assert f"data.pairs.schema={schema} expects" in msg            # the schema expected
    assert "the data set's columns: [" in msg                      # what the data set has
    assert "fix: set data.pairs.schema to the one that fits" in msg and "repair or drop that row" in msg
    assert e.value.field == field


def test_a_mistyped_field_is_named_too():
    with pytest.raises(DataError, match=r"d:train row 1 \(index 0\): field 'messages' is a str, expected a list"):
        convert([{"messages": "hello"}], "messages", "d:train", "data.sft")
