"""Batch ``infer`` says what it does to rows: a prompt cut to ``--max-length`` is a warning with the
number of dropped tokens and the row's line; a bad row is an error naming its line, or, with
``--skip-bad-rows`` (which the error suggests), skipped and reported."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import swiftune
from swiftune.cli.args import parse_command
from swiftune.data.errors import DataError
from swiftune.recipes.arguments import InferArguments

from cli_fixtures import ensure_model, read_jsonl

GEN = dict(max_new_tokens=2, batch_size=2, precision="fp32")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return ensure_model(tmp_path_factory.getbasetemp() / "cli-assets")


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_a_cut_prompt_is_a_warning_with_the_dropped_token_count(model, tmp_path, caplog) -> None:
    from swiftune.recipes import bridge

    long_question = " ".join(["What is the capital of France ?"] * 12)
    src = write(tmp_path / "in.jsonl", [json.dumps({"query": "Hello"}), json.dumps({"query": long_question})])
    with caplog.at_level(logging.WARNING, logger="swiftune"):
        rows = swiftune.infer(model=str(model), input=str(src), output=str(tmp_path / "out.jsonl"),
                              max_length=24, **GEN)
    assert len(rows) == 2
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1 and f"{src} line 2" in warnings[0], caplog.text

    from swiftune.loading import load_model

    _, tokenizer = load_model(str(model), task="causal-lm")
    template = bridge.resolve_template(None, None, tokenizer)
    full = len(bridge.encode_prompt([{"role": "user", "content": long_question}], tokenizer, template))
    assert full > 24 and f"dropped {full - 24} of {full} prompt tokens" in warnings[0], warnings[0]


def test_bad_rows_name_their_line_and_can_be_skipped(model, tmp_path, caplog) -> None:
    src = write(tmp_path / "in.jsonl", [json.dumps({"query": "Hello"}), '{"query": "How are', json.dumps({"foo": 1}),
                                        json.dumps({"query": ["a", "list"]}), json.dumps({"query": "Tell me a joke"})])
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match=rf"{src} line 2.*--skip-bad-rows"):
        swiftune.infer(model=str(model), input=str(src), output=str(out), **GEN)
    with caplog.at_level(logging.WARNING, logger="swiftune"):
        rows = swiftune.infer(model=str(model), input=str(src), output=str(out), skip_bad_rows=True, **GEN)
    assert [r["query"] for r in rows] == ["Hello", "Tell me a joke"] == [r["query"] for r in read_jsonl(out)]
    report = caplog.text
    assert "skipped 3 bad row(s)" in report, report
    for line in (2, 3, 4):
        assert f"{src} line {line}" in report, report
    assert "field 'query'" in report


@pytest.mark.parametrize("bad", [{"foo": 1}, {"query": ["a", "list"]}, {"messages": []}])
def test_a_row_error_without_skipping_names_the_line(model, tmp_path, bad) -> None:
    src = write(tmp_path / "in.jsonl", [json.dumps({"query": "Hello"}), json.dumps(bad)])
    with pytest.raises(DataError, match=rf"{src} line 2"):
        swiftune.infer(model=str(model), input=str(src), output=str(tmp_path / "out.jsonl"), **GEN)


def test_the_cli_accepts_skip_bad_rows() -> None:
    args = parse_command(InferArguments, ["--model", "m", "--input", "a", "--output", "b", "--skip-bad-rows"],
                         prog="swiftune infer")
    assert args.skip_bad_rows is True
