"""Batched tokenization and the tokenized-dataset cache.

The batched path (many rendered chats per tokenizer call) must give exactly the per-row path's
input_ids and labels, truncation and dropping included; the cache must be hit on a rerun with the
same inputs and missed when the data, the template, the max length or the tokenizer change.
"""

from __future__ import annotations

import random

import pytest

from swiftune.data import IGNORE_INDEX, TokenizeStats, encode_chat, get_renderer, tokenize, truncate
from swiftune.data import tokenization
from swiftune.testing.tokenizers import WORDS, tiny_tokenizer


def conversations(n: int, seed: int = 0) -> list[dict]:
    """Chats of 1-3 turns (some with a system prompt) whose lengths vary a lot."""
    rng = random.Random(seed)
    words = [w for w in WORDS if w.isalpha()]

    def text() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))

    out = []
    for _ in range(n):
        messages = [{"role": "system", "content": text()}] if rng.random() < 0.3 else []
        for _ in range(rng.randint(1, 3)):
            messages += [{"role": "user", "content": text()}, {"role": "assistant", "content": text()}]
        out.append({"messages": messages})
    return out


def per_row(examples, tokenizer, template, max_length, truncation):
    """The reference: render, encode and truncate one example at a time."""
    renderer = get_renderer(tokenizer, template)
    ids, labels = [], []
    for example in examples:
        cut = truncate(*encode_chat(tokenizer, renderer.render(example["messages"])), max_length, truncation)
        if cut is None or all(x == IGNORE_INDEX for x in cut[1]):
            continue
        ids.append(cut[0])
        labels.append(cut[1])
    return ids, labels


@pytest.mark.parametrize("template", ["chatml", None])
@pytest.mark.parametrize("truncation", ["right", "left", "drop"])
def test_batched_equals_per_row(monkeypatch, template, truncation) -> None:
    monkeypatch.setattr(tokenization, "BATCH_SIZE", 7)  # several batches and a ragged last one
    tokenizer = tiny_tokenizer("chatml")
    examples = conversations(60)
    stats = TokenizeStats()
    got = tokenize(examples, tokenizer, template, max_length=40, truncation=truncation, stats=stats)
    want_ids, want_labels = per_row(examples, tokenizer, template, 40, truncation)
    assert got["input_ids"] == want_ids and got["labels"] == want_labels
    assert stats.rows == len(want_ids) > 0
    assert stats.tokens == sum(map(len, want_ids))
    assert stats.trained_tokens == sum(sum(1 for t in row if t != IGNORE_INDEX) for row in want_labels) > 0
    if truncation == "drop":
        assert stats.dropped_too_long > 0 and len(want_ids) < len(examples)
    else:
        assert stats.truncated > 0


def test_worker_processes_give_the_same_rows(monkeypatch) -> None:
    """``datasets.map`` over 2 processes (forced on small data) gives the one-process rows and counts."""
    monkeypatch.setattr(tokenization, "BATCH_SIZE", 9)
    tokenizer = tiny_tokenizer("chatml")
    examples = conversations(40, seed=3)
    one, two = TokenizeStats(), TokenizeStats()
    serial = tokenize(examples, tokenizer, None, max_length=40, stats=one, num_proc=1)
    parallel = tokenize(examples, tokenizer, None, max_length=40, stats=two, num_proc=2)
    assert parallel["input_ids"] == serial["input_ids"] and parallel["labels"] == serial["labels"]
    assert one == two and one.truncated > 0
    assert tokenization.processes_for(10) == 1


def test_batched_text_rows_equal_per_row(monkeypatch) -> None:
    monkeypatch.setattr(tokenization, "BATCH_SIZE", 5)
    tokenizer = tiny_tokenizer()
    rows = [{"text": " ".join(WORDS[: 3 + i % 17])} for i in range(23)]
    got = tokenize(rows, tokenizer, max_length=12)
    want = []
    for row in rows:
        ids = list(tokenizer(row["text"])["input_ids"])
        ids = ids if ids[-1] == tokenizer.eos_token_id else ids + [tokenizer.eos_token_id]
        want.append(ids[:12])
    assert got["input_ids"] == want and got["labels"] == want


def cached_folders(root) -> set[str]:
    folder = root / "tokenized"
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")} if folder.is_dir() else set()


def test_cache_hit_on_rerun_and_missed_on_changes(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SWIFTUNE_CACHE", str(tmp_path))
    tokenizer = tiny_tokenizer("chatml")
    examples = conversations(30, seed=1)
    first_stats = TokenizeStats()
    first = tokenize(examples, tokenizer, "chatml", 64, stats=first_stats, cache=True)
    assert len(cached_folders(tmp_path)) == 1

    # A rerun with equal inputs (new objects) never encodes: it reads the cached dataset and stats.
    def no_encoding(*args, **kwargs):
        raise AssertionError("the cache was missed")

    with monkeypatch.context() as patch:
        patch.setattr(tokenization, "_tokenize", no_encoding)
        again_stats = TokenizeStats()
        again = tokenize([dict(e) for e in examples], tiny_tokenizer("chatml"), "chatml", 64, stats=again_stats,
                         cache=True)
    assert again["input_ids"] == first["input_ids"] and again["labels"] == first["labels"]
    assert again_stats == first_stats

    # Each change that changes the tokens is a new entry.
    changed = [dict(e) for e in examples]
    changed[-1] = {"messages": [*examples[-1]["messages"][:-1], {"role": "assistant", "content": "cat dog"}]}
    seen = len(cached_folders(tmp_path))
    for args, kwargs in [
        ((changed, tokenizer, "chatml", 64), {}),  # the data
        ((examples, tokenizer, "alpaca", 64), {}),  # the template
        ((examples, tokenizer, "chatml", 16), {}),  # max_length
        ((examples, tokenizer, "chatml", 64), {"truncation": "left"}),  # truncation
        ((examples, tiny_tokenizer("chatml", extra_words=["zebra"]), "chatml", 64), {}),  # the tokenizer
    ]:
        tokenize(*args, cache=True, **kwargs)
        assert len(cached_folders(tmp_path)) == seen + 1, (args[2:], kwargs)
        seen += 1


def test_cache_off_by_default_and_damaged_entry_is_rebuilt(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SWIFTUNE_CACHE", str(tmp_path))
    tokenizer = tiny_tokenizer("chatml")
    examples = conversations(10, seed=2)
    tokenize(examples, tokenizer, "chatml", 64)
    assert cached_folders(tmp_path) == set()
    first = tokenize(examples, tokenizer, "chatml", 64, cache=True)
    (name,) = cached_folders(tmp_path)
    (tmp_path / "tokenized" / name / "stats.json").write_text("{not json")
    assert tokenize(examples, tokenizer, "chatml", 64, cache=True)["input_ids"] == first["input_ids"]
    with monkeypatch.context() as patch:  # rebuilt in place: the next run is a hit again
        patch.setattr(tokenization, "_tokenize", lambda *a, **k: pytest.fail("the rebuilt entry was missed"))
        assert tokenize(examples, tokenizer, "chatml", 64, cache=True)["input_ids"] == first["input_ids"]
