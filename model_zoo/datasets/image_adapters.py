"""Adapters for image rows: an image file (path relative to the data file) with a caption, for
text-to-image, or with a label, for image classification (see ``swiftune.data.images``)."""

from __future__ import annotations

from typing import Any, Mapping

from swiftune.data.errors import DataError
from swiftune.dataset import DatasetAdapter


class _ImageAdapter(DatasetAdapter):
    def image(self, row: Mapping[str, Any]) -> str:
        value = self.get(row, "image")
        if isinstance(value, Mapping) and isinstance(value.get("path"), str):  # datasets' Image feature, decoded off
            value = value["path"]
        if not isinstance(value, str) and (hasattr(value, "getpixel") or isinstance(value, Mapping) and value.get("bytes")):
            raise DataError("field 'image' holds the image itself (a decoded or embedded image, as hub datasets with an "
                            "Image column give); swiftune reads image files: save the images and give their paths")
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"field 'image' must be a path to an image file, got {value!r:.40}")
        return value


class ImageCaptionAdapter(_ImageAdapter):
    """image + caption -> a text-to-image example."""

    name = "image-caption"
    description = "image (file path), caption -> text-to-image (diffusion) training"
    required_columns = frozenset({"image", "caption"})
    produces = "image_caption"
    #: The column the caption is read from.
    caption_column = "caption"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"image": self.image(row), "text": self.text(row, self.caption_column)}


class ImageTextAdapter(ImageCaptionAdapter):
    """image + text -> a text-to-image example (the caption under the name ``text``)."""

    name = "image-text"
    description = "image (file path), text -> text-to-image (diffusion) training"
    required_columns = frozenset({"image", "text"})
    caption_column = "text"


class ImageLabelAdapter(_ImageAdapter):
    """image + label (a class name or index) -> an image-classification example."""

    name = "image-label"
    description = "image (file path), label -> image classification"
    required_columns = frozenset({"image", "label"})
    produces = "image_classification"

    def convert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        label = self.get(row, "label")
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise DataError(f"field 'label' must be a class name or index, got {label!r}")
        return {"image": self.image(row), "label": label}


IMAGE_ADAPTERS: tuple[type[DatasetAdapter], ...] = (ImageCaptionAdapter, ImageTextAdapter, ImageLabelAdapter)
