"""Data that would silently train the wrong thing is loud.

* A text field holding a list or an object was trained as its Python repr (``"['a', 'b']"``): now
  an error naming file, line and field (numbers are still converted to text, as documented).
* ``data.jsonl#1000`` on 40 rows, split for evaluation, put copies of training rows in the eval
  set (the split came after oversampling): the split is now made on distinct rows first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swiftune.data import LoadStats, load_datasets
from swiftune.data.errors import DataError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = {"instruction": "Say hi", "output": "hi"}


@pytest.mark.parametrize("row, field", [
    ({"instruction": "Name two", "output": ["a", "b"]}, "output"),
    ({"instruction": {"text": "Name two"}, "output": "a"}, "instruction"),
    ({"instruction": "Name two", "input": ["x"], "output": "a"}, "input"),
    ({"instruction": "Name two", "output": "a", "system": {"role": "x"}}, "system"),
    ({"instruction": "Name two", "output": "a", "history": [[["q"], "r"]]}, "history[0][0]"),
    ({"query": ["q"], "response": "r"}, "query"),
    ({"query": "q", "response": True}, "response"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": {"a": 1}}]},
     "messages[1].content"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": [1, 2]}]},
     "conversations[1].content"),
])
def test_a_list_or_object_in_a_text_field_is_an_error_naming_file_line_and_field(tmp_path, row, field) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD if "instruction" in row else row, row, row])
    if "instruction" not in row:
        path = write_jsonl(tmp_path / "data.jsonl", [row, row])
    with pytest.raises(DataError) as info:
        load_datasets([str(path)])
    message = str(info.value)
    line = 2 if "instruction" in row else 1
    assert f"{path} line {line}" in message and f"field '{field}'" in message, message


def test_numbers_are_converted_and_bad_rows_can_be_skipped(tmp_path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [{"instruction": "2 + 3", "output": 5},
                                                 {"instruction": "list", "output": ["a"]},
                                                 {"instruction": 7.5, "output": "ok"}])
    stats = LoadStats()
    train, _ = load_datasets([str(path)], skip_bad_rows=True, stats=stats)
    answers = sorted(m["content"] for ex in train for m in ex["messages"])
    assert answers == ["2 + 3", "5", "7.5", "ok"]
    assert stats.skipped == 1 and "line 2" in stats.bad_rows()[0] and "field 'output'" in stats.bad_rows()[0]


def key(example: dict) -> str:
    return json.dumps(example, sort_keys=True)


@pytest.mark.parametrize("n", [None, 1000, 20])
def test_eval_rows_are_never_copies_of_training_rows(tmp_path, n) -> None:
    rows = [{"instruction": f"question {i}", "output": f"answer {i}"} for i in range(40)]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    spec = str(path) if n is None else f"{path}#{n}"
    train, val = load_datasets([spec], val_ratio=0.1, seed=3)
    assert val and not {key(e) for e in val} & {key(e) for e in train}
    distinct = min(40, n or 40)
    assert len(val) == round(distinct * 0.1)  # a tenth of the distinct rows, however many copies train on
    assert len(train) + len(val) == (n or 40)  # '#N' still means N examples in all
    assert len({key(e) for e in val}) == len(val)  # no copies inside the eval set either


def test_duplicate_rows_in_the_file_stay_on_one_side(tmp_path) -> None:
    rows = [{"instruction": f"question {i % 10}", "output": f"answer {i % 10}"} for i in range(40)]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    train, val = load_datasets([str(path)], val_ratio=0.25, seed=0)
    assert val and not {key(e) for e in val} & {key(e) for e in train}
    assert len(train) + len(val) == 40


def test_a_split_that_leaves_nothing_to_train_on_is_an_error(tmp_path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD] * 5)
    with pytest.raises(DataError, match="distinct"):
        load_datasets([f"{path}#100"], val_ratio=0.2)
