"""Padding tokenized rows into a batch: ``input_ids`` with the pad id, ``labels`` with -100,
``attention_mask`` with 0. Right padding for training (a causal LM's positions then match the
unpadded sequence); left padding is for batched generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .encode import IGNORE_INDEX
from .errors import DataError


@dataclass
class DataCollator:
    """A callable for ``torch.utils.data.DataLoader(collate_fn=...)`` / ``Trainer(data_collator=...)``."""

    pad_token_id: int
    padding_side: str = "right"
    label_pad_id: int = IGNORE_INDEX
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        if self.padding_side not in ("right", "left"):
            raise DataError(f"padding_side must be 'right' or 'left', got {self.padding_side!r}")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, padding_side: str = "right", **kwargs: Any) -> "DataCollator":
        """Pad with the tokenizer's pad token, or its eos token when it has none (common for LMs)."""
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise DataError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
        return cls(pad_token_id=pad, padding_side=padding_side, **kwargs)

    def _pad(self, seq: Sequence[int], length: int, value: int) -> list[int]:
        fill = [value] * (length - len(seq))
        return [*seq, *fill] if self.padding_side == "right" else [*fill, *seq]

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        if not features:
            raise DataError("cannot collate an empty batch")
        length = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            "input_ids": [self._pad(f["input_ids"], length, self.pad_token_id) for f in features],
            "attention_mask": [
                self._pad(f.get("attention_mask") or [1] * len(f["input_ids"]), length, 0) for f in features
            ],
        }
        if "labels" in features[0]:
            first = features[0]["labels"]
            if isinstance(first, (list, tuple)):
                batch["labels"] = [self._pad(f["labels"], length, self.label_pad_id) for f in features]
            else:  # classification: one class index per row
                batch["labels"] = [f["labels"] for f in features]
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}


@dataclass
class FlatCollator:
    """Padding-free batching: the examples of a micro-batch side by side in one row, no padding.

    ``position_ids`` restart at 0 at each example; transformers models that build their masks
    with ``masking_utils`` read those restarts as separate sequences (no attention across them),
    which ``swiftune.recipes.padding_free.honours_restarts`` checks on the real model. The first
    label of each example is ignored: in one row it would be predicted from the previous
    example's last token (in a padded batch it is never predicted either). So the loss and its
    gradients are those of the padded batch, computed without the padding.
    """

    label_pad_id: int = IGNORE_INDEX

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        if not features:
            raise DataError("cannot collate an empty batch")
        ids: list[int] = []
        positions: list[int] = []
        labels: list[int] = []
        for f in features:
            mask = f.get("attention_mask")
            if mask is not None and 0 in mask:
                raise DataError("padding-free batching needs unpadded rows (an attention_mask holds zeros)")
            ids.extend(f["input_ids"])
            positions.extend(range(len(f["input_ids"])))
            if "labels" in f:
                if not isinstance(f["labels"], (list, tuple)):
                    raise DataError("padding-free batching is for token labels, not one class per row")
                labels.extend([self.label_pad_id, *f["labels"][1:]])
        batch = {"input_ids": [ids], "position_ids": [positions]}
        if labels:
            batch["labels"] = [labels]
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
