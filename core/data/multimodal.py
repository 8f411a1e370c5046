"""Images in chat rows (ms-swift's multimodal layout): checked at load, encoded for a vision-language model.

A row is ``{"messages": [...], "images": ["a.png", ...]}``: the i-th ``<image>`` tag in the
messages is the i-th image. A relative path is resolved against the data file's folder. Rows whose
images are given but whose messages hold no tag get the tags in front of the first user message
(ms-swift does the same). Paths are checked, and each image decoded once, when the rows are loaded,
so a missing or undecodable file is an error naming the row (file and line) and the path.

``encode_image_chat`` renders the conversation with the chat template, expands each tag into the
model's image tokens (``ImageTextProcessor``) and trains on the assistant answers only: prompt,
template and image tokens get label -100.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..loading.vision import IMAGE_TAG  # the processor expands the same tag
from .encode import encode_spans, truncate
from .errors import DataError

#: Columns that hold a row's images (a list, or one image for ``image``).
IMAGE_COLUMNS = ("images", "image")


def image_refs(row: Mapping[str, Any]) -> list[Any] | None:
    """The row's images as a list (paths, ``{"path"|"bytes"}`` dicts or PIL images), None without any."""
    for column in IMAGE_COLUMNS:
        value = row.get(column)
        if value is None or value == []:
            continue
        return list(value) if isinstance(value, (list, tuple)) else [value]
    return None


def _resolve(ref: Any, base: Path | None) -> Any:
    """A path string made absolute against ``base`` (the data file's folder); other kinds unchanged."""
    if isinstance(ref, Mapping) and ref.get("bytes") is None and ref.get("path"):
        ref = ref["path"]
    if isinstance(ref, str):
        if ref.startswith(("http://", "https://")):
            raise DataError(f"image {ref!r}: URLs are not fetched; download the image and give its path")
        path = Path(ref).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        return str(path)
    return ref


def load_image(ref: Any) -> Any:
    """A PIL RGB image from a path, a ``{"bytes": ...}`` dict or a PIL image; errors name the path."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(ref, Image.Image):
        return ref.convert("RGB")
    if isinstance(ref, Mapping) and ref.get("bytes") is not None:
        source, shown = io.BytesIO(ref["bytes"]), "image bytes"
    elif isinstance(ref, str):
        source, shown = ref, f"image {ref}"
        if not Path(ref).is_file():
            raise DataError(f"{shown}: no such file")
    else:
        raise DataError(f"an image must be a path, a {{'bytes': ...}} object or a PIL image, got {type(ref).__name__}")
    try:
        with Image.open(source) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{shown}: cannot decode it as an image ({exc})") from None


def check_image(ref: Any) -> None:
    """Fail (naming the path) when ``ref`` is not an image file PIL can open; cheaper than decoding it."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(ref, str):
        return
    if not Path(ref).is_file():
        raise DataError(f"image {ref}: no such file")
    try:
        with Image.open(ref) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"image {ref}: cannot decode it as an image ({exc})") from None


def count_tags(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(str(m.get("content") or "").count(IMAGE_TAG) for m in messages)


def place_tags(messages: list[dict[str, Any]], n_images: int) -> list[dict[str, Any]]:
    """Messages with one ``<image>`` tag per image: as given, or all in front of the first user turn."""
    tags = count_tags(messages)
    if tags == n_images:
        return messages
    if tags == 0:
        first = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
        if first is not None:
            out = [dict(m) for m in messages]
            out[first]["content"] = IMAGE_TAG * n_images + str(out[first].get("content") or "")
            return out
    raise DataError(f"{tags} {IMAGE_TAG} tag(s) in the messages for {n_images} image(s); give one tag per image")


#: The user turn a caption row becomes (ms-swift's coco-en rows: image + caption).
CAPTION_PROMPT = "Describe the image."


def with_images(row: Mapping[str, Any], example: dict[str, Any], kind: str, origin: str) -> dict[str, Any]:
    """The converted ``example`` of ``row`` with its images checked and their paths made absolute:
    a chat's ``images`` (``attach_images``), an image-caption example's ``image``; others unchanged."""
    if kind == "messages":
        return attach_images(row, example, origin)
    if kind == "image_caption" and isinstance(example.get("image"), str):
        base = Path(origin).parent if Path(origin).is_file() else None
        path = _resolve(example["image"], base)
        try:
            check_image(path)
        except DataError as exc:
            raise DataError(f"image: {exc}") from None
        return {**example, "image": path}
    return example


def caption_chat(example: Mapping[str, Any]) -> dict[str, Any]:
    """An image-caption example (``image``, ``text``) as a chat: "describe the image" -> the caption."""
    if "messages" in example or "image" not in example:
        return dict(example)
    return {"messages": [{"role": "user", "content": IMAGE_TAG + CAPTION_PROMPT},
                         {"role": "assistant", "content": str(example["text"])}], "images": [example["image"]]}


def attach_images(row: Mapping[str, Any], example: dict[str, Any], origin: str) -> dict[str, Any]:
    """A chat example with the row's images (checked and resolved), or unchanged when it has none.

    ``origin`` is the source's name (a file path for local data: relative paths start there)."""
    refs = image_refs(example) or image_refs(row)
    if refs is None:
        return example
    base = Path(origin).parent if Path(origin).is_file() else None
    resolved = []
    for i, ref in enumerate(refs):
        try:
            value = _resolve(ref, base)
            check_image(value)  # a missing or unreadable file fails here, where the row is known
        except DataError as exc:
            raise DataError(f"images[{i}]: {exc}") from None
        resolved.append(value)
    example = {k: v for k, v in example.items() if k not in IMAGE_COLUMNS}
    example["messages"] = place_tags(list(example["messages"]), len(resolved))
    example["images"] = resolved
    return example


def row_image_paths(row: Mapping[str, Any], origin: str) -> list[Any]:
    """A prompt row's images, checked and resolved against ``origin``'s folder ([] without any)."""
    if not image_refs(row):
        return []
    messages = row.get("messages") if isinstance(row.get("messages"), list) else [{"role": "user", "content": ""}]
    return attach_images(row, {"messages": messages}, origin)["images"]


def encode_image_chat(example: Mapping[str, Any], processor: Any, renderer: Any, max_length: int,
                      truncation: str) -> dict[str, Any] | None:
    """input_ids / labels / attention_mask (+ pixel inputs) of one example; None when ``drop`` drops it.

    Truncation never cuts into an image's tokens (the model needs all of them): such an example is
    an error that says to raise --max-length."""
    images = [load_image(ref) for ref in example.get("images") or []]
    rendered = renderer.render(example["messages"])
    pixels, counts = processor.process_images(images)
    text, spans = _expand(rendered.text, rendered.spans, processor, counts)
    ids, labels = encode_spans(processor.tokenizer, text, spans)
    cut = truncate(ids, labels, max_length, truncation)
    if cut is None:
        return None
    image_id = processor.image_token_id
    if sum(1 for t in cut[0] if t == image_id) != sum(1 for t in ids if t == image_id):
        raise DataError(f"{len(ids)} tokens, {sum(counts)} of them image tokens, do not fit --max-length {max_length} "
                        "without cutting an image; raise --max-length")
    ids, labels = cut
    out: dict[str, Any] = {"input_ids": ids, "labels": labels, "attention_mask": [1] * len(ids), **pixels}
    types = processor.token_types(ids)
    if types is not None:
        out["mm_token_type_ids"] = types
    return out


def _expand(text: str, spans: Sequence[tuple[int, int]], processor: Any,
            counts: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """Expand the tags and move the trained character spans by what the expansion added before them."""
    expanded = processor.expand(text, counts)
    if not counts:
        return expanded, list(spans)
    starts, pos = [], 0
    for _ in counts:
        pos = text.index(IMAGE_TAG, pos)
        starts.append(pos)
        pos += len(IMAGE_TAG)
    growth = [len(processor.expand(IMAGE_TAG, [c])) - len(IMAGE_TAG) for c in counts]

    def moved(offset: int) -> int:
        return offset + sum(g for s, g in zip(starts, growth) if s < offset)

    return expanded, [(moved(a), moved(b)) for a, b in spans]


def prompt_inputs(messages: Sequence[Mapping[str, Any]], images: Sequence[Any], processor: Any,
                  renderer: Any) -> tuple[list[int], dict[str, Any]]:
    """(prompt ids for the next assistant turn, pixel inputs) of a conversation with images."""
    loaded = [load_image(ref) for ref in images]
    messages = place_tags([dict(m) for m in messages], len(loaded)) if loaded else list(messages)
    pixels, counts = processor.process_images(loaded)
    text = processor.expand(renderer.prompt(messages), counts)
    return list(processor.tokenizer(text, add_special_tokens=False)["input_ids"]), pixels
