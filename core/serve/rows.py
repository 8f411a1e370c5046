"""Per-row bookkeeping inside one batched ``generate`` call.

transformers runs a batch as one loop; these two hooks (its public ``BaseStreamer`` and
``StoppingCriteria`` interfaces) give every row its own life: its own token budget, stop strings,
cancellation and stream of text deltas, so requests with different settings share a batch and a row
that is finished or abandoned stops costing work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from transformers.generation.logits_process import LogitsProcessor
from transformers.generation.stopping_criteria import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

#: Characters a partial decode may end in that a later token can still change.
_UNSTABLE_TAIL = "\ufffd"


@dataclass
class RowState:
    """One request's row: what it generated, and why it stopped."""

    max_new_tokens: int
    stops: list[str]
    cancelled: Callable[[], bool]
    min_tokens: int = 0
    on_delta: Callable[[str], None] | None = None
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None
    sent: str = ""

    @property
    def done(self) -> bool:
        return self.finish is not None


class BatchRows:
    """The rows of one batch: fed by the streamer, consulted by the stopping criterion."""

    def __init__(self, rows: Sequence[RowState], eos_ids: Sequence[int], decode: Callable[[list[int]], str]) -> None:
        self.rows = list(rows)
        self.eos_ids = set(eos_ids)
        self.decode = decode

    def text(self, row: RowState) -> str:
        """The row's answer so far, cut at its first stop string."""
        text = self.decode(row.tokens)
        for stop in row.stops:
            if stop in text:
                text = text.split(stop, 1)[0].rstrip()
                if row.finish is None:
                    row.finish = "stop"
        return text

    def add(self, tokens: torch.Tensor) -> None:
        """One decoding step: a token per row (finished rows get padding, which is ignored)."""
        for row, token in zip(self.rows, tokens.view(-1).tolist()):
            if row.done:
                continue
            text = None
            if token in self.eos_ids:
                row.finish = "stop"
            else:
                row.tokens.append(int(token))
                if row.stops or row.on_delta:
                    text = self.text(row)  # one decode per step; marks the row stopped at a stop string
                if row.finish is None and len(row.tokens) >= row.max_new_tokens:
                    row.finish = "length"
            if row.cancelled():
                row.finish = row.finish or "cancelled"
            self._emit(row, text)

    def _emit(self, row: RowState, text: str | None = None, final: bool = False) -> None:
        if row.on_delta is None:
            return
        text = self.text(row) if text is None else text
        if not final and (text.endswith(_UNSTABLE_TAIL) or self._may_grow_into_stop(row, text)):
            return
        if text.startswith(row.sent) and len(text) > len(row.sent):
            row.on_delta(text[len(row.sent):])
            row.sent = text

    @staticmethod
    def _may_grow_into_stop(row: RowState, text: str) -> bool:
        """Hold back a tail that could be the start of a stop string (it must never be streamed)."""
        if row.done:
            return False
        return any(text.endswith(stop[:k]) for stop in row.stops for k in range(1, len(stop)))

    def finish_all(self) -> None:
        for row in self.rows:
            if row.finish is None:
                row.finish = "length"
            self._emit(row, final=True)


class RowStreamer(BaseStreamer):
    """transformers calls ``put`` with the prompts first, then with each step's new tokens."""

    def __init__(self, rows: BatchRows) -> None:
        self.rows = rows
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.rows.add(value)

    def end(self) -> None:
        self.rows.finish_all()


class RowStops(StoppingCriteria):
    """Each row stops on its own budget, stop strings or cancellation (a bool per row)."""

    def __init__(self, rows: BatchRows) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.tensor([row.done for row in self.rows.rows], dtype=torch.bool, device=input_ids.device)


class RowMinTokens(LogitsProcessor):
    """No end-of-answer token for a row that has not reached its ``min_tokens`` yet."""

    def __init__(self, rows: BatchRows) -> None:
        self.rows = rows
        self.eos = sorted(rows.eos_ids)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        short = [i for i, row in enumerate(self.rows.rows) if len(row.tokens) < row.min_tokens]
        if short and self.eos:
            scores[torch.tensor(short)[:, None], torch.tensor(self.eos)[None, :]] = float("-inf")
        return scores
