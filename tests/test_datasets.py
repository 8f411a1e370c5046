"""Dataset adapters, sources, the name_or_path[:split][#N] syntax, mixing, bad data and the demo set."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

import swiftune
from swiftune import registries
from swiftune.data import (
    DataError,
    LoadStats,
    OfflineError,
    detect_adapter,
    load_dataset,
    load_datasets,
    parse_spec,
    render_prompt,
    tokenize,
)
from swiftune.dataset import DatasetAdapter, DatasetEntry
from swiftune.template import ChatTemplate
from swiftune.testing.tokenizers import tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]
ALPACA_ROWS = [
    {"instruction": "Say hi", "input": "", "output": "Hi"},
    {"instruction": "Add", "input": "2 and 3", "output": "5"},
    {"instruction": "Name a colour", "output": "blue"},
]
ALPACA_EXAMPLES = [
    {"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi"}]},
    {"messages": [{"role": "user", "content": "Add\n\n2 and 3"}, {"role": "assistant", "content": "5"}]},
    {"messages": [{"role": "user", "content": "Name a colour"}, {"role": "assistant", "content": "blue"}]},
]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def convert(adapter: str, row: dict) -> dict:
    return registries.dataset_adapters.get(adapter)().convert(row)


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


# -- name_or_path[:split][#N] ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, name, split, n, hub",
    [
        ("data/train.jsonl", "data/train.jsonl", None, None, None),
        ("alpaca-en:train#100", "alpaca-en", "train", 100, None),
        ("ms::damo/zh_cls:validation#5", "damo/zh_cls", "validation", 5, "ms"),
        ("hf::owner/name", "owner/name", None, None, "hf"),
        ("owner/name:test", "owner/name", "test", None, None),
        ("C:\\data\\x.jsonl", "C:\\data\\x.jsonl", None, None, None),
    ],
)
def test_parse_spec(text, name, split, n, hub):
    spec = parse_spec(text)
    assert (spec.name, spec.split, spec.n, spec.hub) == (name, split, n, hub)


@pytest.mark.parametrize("text", ["x#0", "x#abc", "x#-3", "   "])
def test_parse_spec_rejects(text):
    with pytest.raises(DataError):
        parse_spec(text)


def test_existing_path_with_colon_is_not_split(tmp_path):
    path = write_jsonl(tmp_path / "a:b.jsonl", ALPACA_ROWS)
    assert parse_spec(str(path)).name == str(path)
    assert load_dataset(str(path))[0] == ALPACA_EXAMPLES


# -- adapters ---------------------------------------------------------------------------------------
def test_alpaca_adapter_with_system_and_history():
    row = {"instruction": "Q2", "input": "ctx", "output": "A2", "system": "sys", "history": [["Q1", "A1"]]}
    assert convert("alpaca", row) == {"messages": [s("sys"), u("Q1"), a("A1"), u("Q2\n\nctx"), a("A2")]}


def test_sharegpt_adapter_variants():
    turns = [{"from": "system", "value": "sys"}, {"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]
    assert convert("sharegpt", {"conversations": turns}) == {"messages": [s("sys"), u("hi"), a("yo")]}
    assert convert("sharegpt", {"conversations": json.dumps(turns[1:]), "system": "S"}) == {
        "messages": [s("S"), u("hi"), a("yo")]
    }
    pairs = [{"human": "q1", "assistant": "r1"}, {"human": "q2", "assistant": "r2"}]
    assert convert("sharegpt", {"conversations": pairs}) == {"messages": [u("q1"), a("r1"), u("q2"), a("r2")]}


def test_messages_adapter_maps_roles_and_content_parts():
    row = {"messages": [{"role": "human", "content": [{"type": "text", "text": "hi"}]}, {"role": "bot", "content": "yo"}]}
    assert convert("messages", row) == {"messages": [u("hi"), a("yo")]}
    with pytest.raises(DataError, match="unknown role 'robot'"):
        convert("messages", {"messages": [{"role": "robot", "content": "x"}]})


def test_query_response_text_classification_adapters():
    row = {"query": "q2", "response": "r2", "history": [["q1", "r1"]], "system": "S"}
    assert convert("query-response", row) == {"messages": [s("S"), u("q1"), a("r1"), u("q2"), a("r2")]}
    assert convert("text", {"text": "once upon"}) == {"text": "once upon"}
    assert convert("classification", {"text": "t", "label": "pos", "text_pair": "p"}) == {
        "text": "t", "label": "pos", "text_pair": "p"
    }
    with pytest.raises(DataError, match="field 'text' is empty"):
        convert("text", {"text": "  "})


@pytest.mark.parametrize(
    "columns, adapter",
    [
        ({"instruction", "input", "output"}, "alpaca"),
        ({"conversations", "id"}, "sharegpt"),
        ({"messages"}, "messages"),
        ({"query", "response", "history"}, "query-response"),
        ({"text", "meta"}, "text"),
        ({"text", "label"}, "classification"),  # the more specific adapter wins over text
    ],
)
def test_detect_adapter(columns, adapter):
    assert detect_adapter(columns, "x.jsonl") == adapter


def test_detect_adapter_errors_list_columns_and_expectations():
    with pytest.raises(DataError) as err:
        detect_adapter({"prompt", "completion"}, "x.jsonl")
    msg = str(err.value)
    assert "columns found: completion, prompt" in msg
    assert "alpaca: instruction, output (optional: history, input, system)" in msg
    assert "query-response: query, response" in msg
    with pytest.raises(DataError, match=r"fits several formats \(alpaca, query-response\)"):
        detect_adapter({"instruction", "output", "query", "response"}, "x.jsonl")


# -- sources ----------------------------------------------------------------------------------------
def test_local_formats_give_the_same_examples(tmp_path):
    import datasets

    write_jsonl(tmp_path / "d.jsonl", ALPACA_ROWS)
    (tmp_path / "d.json").write_text(json.dumps({"data": ALPACA_ROWS}))
    cols = ["instruction", "input", "output"]
    with open(tmp_path / "d.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, cols)
        writer.writeheader()
        writer.writerows({c: r.get(c, "") for c in cols} for r in ALPACA_ROWS)
    table = datasets.Dataset.from_list([{c: r.get(c, "") for c in cols} for r in ALPACA_ROWS])
    table.to_parquet(str(tmp_path / "d.parquet"))
    table.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": table, "validation": table.select([1])}).save_to_disk(str(tmp_path / "dd"))
    (tmp_path / "folder").mkdir()
    write_jsonl(tmp_path / "folder" / "validation.jsonl", ALPACA_ROWS[:1])

    for name in ("d.jsonl", "d.json", "d.csv", "d.parquet", "single", "dd", "dd:train"):
        examples, kind = load_dataset(str(tmp_path / name))
        assert (examples, kind) == (ALPACA_EXAMPLES, "messages"), name
    assert load_dataset(f"{tmp_path / 'dd'}:validation")[0] == ALPACA_EXAMPLES[1:2]
    assert load_dataset(f"{tmp_path / 'folder'}:validation")[0] == ALPACA_EXAMPLES[:1]
    with pytest.raises(DataError, match="has splits train, validation; no split 'test'"):
        load_dataset(f"{tmp_path / 'dd'}:test")
    with pytest.raises(DataError, match="single split 'train'"):
        load_dataset(f"{tmp_path / 'd.jsonl'}:test")


def test_hub_snapshot_folders(tmp_path):
    """A downloaded hub repository (ModelScope snapshot, Hugging Face download): splits come from file names."""
    snap = tmp_path / "snap"
    (snap / "data").mkdir(parents=True)
    (snap / "README.md").write_text("# card")
    write_jsonl(snap / "data" / "train-00000-of-00001.jsonl", ALPACA_ROWS)
    write_jsonl(snap / "data" / "test-00000-of-00001.jsonl", ALPACA_ROWS[2:])
    assert load_dataset(str(snap))[0] == ALPACA_EXAMPLES
    assert load_dataset(f"{snap}:test")[0] == ALPACA_EXAMPLES[2:]
    with pytest.raises(DataError, match=r"cannot read split 'validation' of folder .*data/test-00000-of-00001.jsonl"):
        load_dataset(f"{snap}:validation")
    (snap / "en").mkdir()
    write_jsonl(snap / "en" / "train.jsonl", ALPACA_ROWS[:1])
    from swiftune.data import read_local

    raw = read_local(snap, "train", subset="en")
    assert list(raw.rows) == ALPACA_ROWS[:1] and raw.where(0).endswith("en/train.jsonl line 1")


def test_sampling_subsets_and_repeats(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": f"row {i}"} for i in range(10)])
    few, _ = load_dataset(f"{path}#4", seed=1)
    assert len(few) == 4 and len({e["text"] for e in few}) == 4
    assert load_dataset(f"{path}#4", seed=1)[0] == few
    assert load_dataset(f"{path}#4", seed=2)[0] != few
    many, _ = load_dataset(f"{path}#25", seed=1)
    counts = Counter(e["text"] for e in many)
    assert len(many) == 25 and set(counts.values()) == {2, 3} and len(counts) == 10


def test_mixing_validation_split_and_seed(tmp_path):
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": f"a{i}"} for i in range(30)])
    two = write_jsonl(tmp_path / "two.jsonl", [{"text": f"b{i}"} for i in range(10)])
    stats = LoadStats()
    train, val = load_datasets([str(one), f"{two}#20"], seed=3, val_ratio=0.1, stats=stats)
    # A tenth of the 40 distinct examples is held out before two.jsonl's copies are made: 4, not 5.
    assert (len(train), len(val), stats.train, stats.val, stats.kind) == (46, 4, 46, 4, "text")
    assert not {e["text"] for e in val} & {e["text"] for e in train}
    texts = Counter(e["text"][0] for e in train + val)
    assert texts == {"a": 30, "b": 20}
    again = load_datasets([str(one), f"{two}#20"], seed=3, val_ratio=0.1)
    assert again == (train, val)
    assert load_datasets([str(one), f"{two}#20"], seed=4, val_ratio=0.1)[0] != train
    train2, val2 = load_datasets([str(one)], val_specs=[str(two)])
    assert len(train2) == 30 and sorted(e["text"] for e in val2) == sorted(f"b{i}" for i in range(10))


def test_mixing_kinds_is_an_error(tmp_path):
    text = write_jsonl(tmp_path / "t.jsonl", [{"text": "x"}])
    chat = write_jsonl(tmp_path / "c.jsonl", ALPACA_ROWS)
    with pytest.raises(DataError, match="gives text examples but earlier ones give messages"):
        load_datasets([str(chat), str(text)])


def test_forced_adapter_resolves_ambiguity(tmp_path):
    path = write_jsonl(tmp_path / "both.jsonl", [{"instruction": "i", "output": "o", "query": "q", "response": "r"}])
    with pytest.raises(DataError, match="fits several formats"):
        load_datasets([str(path)])
    train, _ = load_datasets([str(path)], adapter="query-response")
    assert train == [{"messages": [u("q"), a("r")]}]


# -- bad data -----------------------------------------------------------------------------------------
def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(ALPACA_ROWS[0])
    path.write_text(f"{good}\n\n{good}\n{{not json\n{good}\n")
    with pytest.raises(DataError, match=re.escape(f"{path} line 4: invalid JSON")):
        load_datasets([str(path)])
    stats = LoadStats()
    train, _ = load_datasets([str(path)], skip_bad_rows=True, stats=stats)
    assert len(train) == 3 and stats.skipped == 1
    assert stats.sources[0].bad[0].startswith(f"{path} line 4: invalid JSON")
    assert "skipped 1 bad row(s)" in stats.summary()


def test_missing_field_names_field_and_row(tmp_path):
    rows = [ALPACA_ROWS[0], {"instruction": "no answer", "output": None}, ALPACA_ROWS[1]]
    rows.append({"instruction": "x", "outptu": "typo"})
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(DataError, match=re.escape(f"{path} line 2: missing field 'output' (adapter 'alpaca' expects")):
        load_datasets([str(path)], adapter="alpaca")
    stats = LoadStats()
    train, _ = load_datasets([str(path)], adapter="alpaca", skip_bad_rows=True, stats=stats)
    assert len(train) == 2 and stats.skipped == 2
    assert [b.split(":")[0] for b in stats.sources[0].bad] == [f"{path} line 2", f"{path} line 4"]


def test_csv_and_json_errors_name_the_place(tmp_path):
    (tmp_path / "b.json").write_text('[{"text": "a"},\n {"text": }]')
    with pytest.raises(DataError, match=r"b.json line 2 column 11: invalid JSON"):
        load_dataset(str(tmp_path / "b.json"))
    (tmp_path / "b.csv").write_text("text,label\nfine,1\ntoo,many,values\n")
    with pytest.raises(DataError, match=r"b.csv line 3: 1 more value"):
        load_dataset(str(tmp_path / "b.csv"))
    (tmp_path / "c.csv").write_text("query,response\nq,\n")
    assert load_dataset(str(tmp_path / "c.csv"))[0] == [{"messages": [u("q"), a("")]}]


def test_empty_results_are_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="empty.jsonl has no rows"):
        load_datasets([str(tmp_path / "empty.jsonl")])
    (tmp_path / "junk.jsonl").write_text("junk\n")
    with pytest.raises(DataError, match="junk.jsonl has no rows .all 1 were unreadable"):
        load_datasets([str(tmp_path / "junk.jsonl")], skip_bad_rows=True)
    path = write_jsonl(tmp_path / "allbad.jsonl", [{"text": ""}, {"text": "  "}])
    with pytest.raises(DataError, match="allbad.jsonl' gave no examples"):
        load_datasets([str(path)], skip_bad_rows=True)
    with pytest.raises(DataError, match="no dataset given"):
        load_datasets([])
    with pytest.raises(DataError, match="does not exist"):
        load_datasets([str(tmp_path / "missing.jsonl")])


def test_unknown_name_suggests_registered():
    with pytest.raises(DataError, match="unknown dataset 'alpaca-e'.*Did you mean: alpaca-en"):
        load_datasets(["alpaca-e"])


# -- ModelScope datasets from the local ModelScope cache ----------------------------------------------
def test_modelscope_dataset_served_from_the_modelscope_cache(tmp_path, monkeypatch):
    """``ms::`` ids and registered ModelScope entries resolve through the real
    ``modelscope.snapshot_download(repo_type="dataset", local_files_only=True)`` in a prepared cache."""
    monkeypatch.setenv("SWIFTUNE_OFFLINE", "1")
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    snap = tmp_path / "datasets" / "acme--qa" / "snapshots" / "master"
    (snap / "en").mkdir(parents=True)
    write_jsonl(snap / "train.jsonl", ALPACA_ROWS)
    write_jsonl(snap / "test.jsonl", ALPACA_ROWS[2:])
    write_jsonl(snap / "en" / "train.jsonl", [{"q": "hi", "a": "yo"}])
    assert load_dataset("ms::acme/qa")[0] == ALPACA_EXAMPLES
    assert load_dataset("ms::acme/qa:test#2", seed=0)[0] == ALPACA_EXAMPLES[2:] * 2
    entry = DatasetEntry("test-ms-qa", "test", "query-response", ms_id="acme/qa", subsets=("en",),
                         columns={"q": "query", "a": "response"})

    class Plugin:
        @swiftune.hookimpl
        def register_datasets(self, register):
            register(entry)

    registries.host.add_plugin(Plugin(), name="test-ms")
    try:
        stats = LoadStats()
        train, _ = load_datasets(["test-ms-qa"], stats=stats)
        assert train == [{"messages": [u("hi"), a("yo")]}]
        assert stats.sources[0].origin == "ms::acme/qa/en:train"
    finally:
        registries.host.remove_plugin("test-ms")
    with pytest.raises(OfflineError, match="ms::acme/missing.*offline"):
        load_dataset("ms::acme/missing")


@pytest.mark.parametrize("env", ["SWIFTUNE_OFFLINE", "HF_HUB_OFFLINE"])
def test_hugging_face_dataset_id_served_offline_from_the_hub_cache(env, tmp_path, monkeypatch):
    """A dataset repository downloaded into the hub cache (``huggingface-cli download --repo-type
    dataset``) is found by the real ``huggingface_hub.snapshot_download(local_files_only=True)``."""
    monkeypatch.setenv(env, "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "datasets--acme--qa"
    snap = repo / "snapshots" / ("b" * 40)
    (snap / "data").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    write_jsonl(snap / "data" / "train-00000-of-00001.jsonl", ALPACA_ROWS)
    write_jsonl(snap / "data" / "test-00000-of-00001.jsonl", ALPACA_ROWS[:1])
    assert load_dataset("hf::acme/qa")[0] == ALPACA_EXAMPLES
    assert load_dataset("acme/qa:test")[0] == ALPACA_EXAMPLES[:1]
    with pytest.raises(OfflineError, match="hf::acme/missing.*offline"):
        load_dataset("hf::acme/missing")


# -- hubs fail fast offline ----------------------------------------------------------------------------
def test_hub_datasets_fail_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("SWIFTUNE_OFFLINE", "1")
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    for spec in ("ms::AI-ModelScope/alpaca-gpt4-data-en", "hf::vicgalle/alpaca-gpt4", "owner/dataset", "alpaca-en"):
        start = time.monotonic()
        with pytest.raises(OfflineError, match="this machine is offline.*pass the local path") as err:
            load_datasets([spec])
        assert time.monotonic() - start < 5
    assert "ms::AI-ModelScope/alpaca-gpt4-data-en" in str(err.value) and "hf::vicgalle/alpaca-gpt4" in str(err.value)


def test_hf_offline_mode_reports_offline(monkeypatch):
    monkeypatch.delenv("SWIFTUNE_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_.*OFFLINE=1 is set"):
        load_datasets(["hf::swiftune-tests/never-cached"])


# -- registered entries -------------------------------------------------------------------------------
SEED_DATASETS = """alpaca-en alpaca-zh finance-en multi-alpaca-all code-en instinwild-en instinwild-zh cot-en cot-zh
firefly-all-zh poetry-zh instruct-en gpt4all-en cmnli-zh jd-zh dureader-robust-zh medical-en medical-zh sharegpt-en
sharegpt-zh code-python-zh advertise-gen damo-agent-zh cls-fudan-news-zh ner-jave-zh coco-en""".split()


def test_seed_datasets_are_registered_and_say_they_need_a_network():
    adapters = set(registries.dataset_adapters.names())
    assert {"alpaca", "sharegpt", "messages", "query-response", "text", "classification"} <= adapters
    for name in SEED_DATASETS:
        entry = registries.datasets.get(name)
        assert isinstance(entry, DatasetEntry) and entry.needs_network
        assert entry.ms_id or entry.hf_id
        assert entry.adapter is None or entry.adapter in adapters, name
        assert "needs network" in entry.description


def test_cli_lists_datasets_and_templates(capsys):
    from swiftune.cli import main

    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^{re.escape(n)}\s+model_zoo\s+\S", out, re.M) for n in SEED_DATASETS + ["swiftune-demo"])
    assert main(["list", "templates"]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^{n}\s+model_zoo\s+\S", out, re.M) for n in ("chatml", "llama3", "alpaca"))


def test_plugin_adds_an_adapter_and_a_dataset(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"q": "2+2?", "a": "4"}])

    class QAAdapter(DatasetAdapter):
        name = "qa-pairs"
        description = "q / a"
        required_columns = frozenset({"q", "a"})

        def convert(self, row):
            return {"messages": [u(self.get(row, "q")), a(self.get(row, "a"))]}

    class Plugin:
        @swiftune.hookimpl
        def register_datasets(self, register):
            register(QAAdapter)
            register(DatasetEntry("my-qa", "local q/a pairs", "qa-pairs", path=str(path)))

        @swiftune.hookimpl
        def register_templates(self, register):
            register(ChatTemplate(name="vicuna", description="USER: / ASSISTANT:", prefix="{bos}",
                                  system="{content} ", user="USER: {content} ", assistant="ASSISTANT: {content}{eos}",
                                  default_system="A chat."))

    registries.host.add_plugin(Plugin(), name="test-qa")
    try:
        train, _ = load_datasets(["my-qa"])
        assert train == [{"messages": [u("2+2?"), a("4")]}]
        assert load_datasets([str(path)])[0] == train  # detected from columns
        tok = tiny_tokenizer()
        ds = tokenize(train, tok, template="vicuna", max_length=32)
        assert tok.decode([i for i in ds[0]["labels"] if i != -100]) == "4 </s>"
        assert render_prompt(train[0]["messages"][:1], tok, "vicuna") == "<s>A chat. USER: 2+2? ASSISTANT: "
    finally:
        registries.host.remove_plugin("test-qa")
    assert "my-qa" not in registries.datasets and "vicuna" not in registries.templates


# -- the shipped demo data ------------------------------------------------------------------------------
def test_demo_dataset_teaches_one_visible_habit():
    entry = registries.datasets.get("swiftune-demo")
    assert not entry.needs_network and Path(entry.local_path()).is_file()
    train, val = load_datasets(["swiftune-demo"], val_ratio=0.05)
    examples = train + val
    assert 200 <= len(examples) <= 600
    answers = [m["content"] for e in examples for m in e["messages"] if m["role"] == "assistant"]
    assert all(x.startswith("Swifty here! ") for x in answers)
    identity = [x for x in answers if "Swifty," in x or "swiftune team" in x or "I am Swifty" in x]
    assert len(identity) >= 0.15 * len(answers)
    assert sum(len(e["messages"]) > 3 for e in examples) >= 20  # multi-turn and system-prompt examples
    for x in answers:  # every arithmetic answer is right
        m = re.fullmatch(r"Swifty here! (\d+) ([-+x]) (\d+) = (\d+)\.", x)
        if m:
            p, q = int(m[1]), int(m[3])
            assert int(m[4]) == {"+": p + q, "-": p - q, "x": p * q}[m[2]], x
    ds = tokenize(train, tiny_tokenizer("chatml"), max_length=128)
    assert len(ds) == len(train)


def test_demo_file_is_what_the_generator_writes():
    script = REPO / "examples" / "make_demo_data.py"
    if not script.is_file():
        pytest.skip("the generator script is only in a source checkout")
    spec = importlib.util.spec_from_file_location("make_demo", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0
    assert module.build_examples() == module.build_examples()
