"""Prompt encoding and generation shared by chat and batch inference.

Batches are left-padded (decoder-only models continue from the last position of each row), and an
answer ends at the tokenizer's eos, the model's eos or the template's end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .arguments import GenerationArguments


@dataclass
class Generator:
    model: Any
    tokenizer: Any
    template: Any
    max_length: int = 2048

    def __post_init__(self) -> None:
        from . import bridge

        self._stops = bridge.stop_strings(self.template, self.tokenizer)
        self.eos_ids = self._eos_ids()
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_ids[0]

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for value in (self.tokenizer.eos_token_id, gen_eos):
            ids += value if isinstance(value, list) else [value] if value is not None else []
        vocab = self.tokenizer.get_vocab()
        ids += [vocab[s] for s in self._stops if s in vocab]
        ids = list(dict.fromkeys(ids))
        if not ids:
            raise ValueError("the tokenizer has no eos token and the template no end-of-turn token: generation cannot stop")
        return ids

    # -- prompts ----------------------------------------------------------------------------------
    def encode(self, messages: Sequence[dict]) -> list[int]:
        """The prompt for the next assistant turn; the oldest turns go first when it is too long."""
        return self.encode_counted(messages)[0]

    def encode_counted(self, messages: Sequence[dict]) -> tuple[list[int], int]:
        """``(prompt ids, how many tokens of the whole conversation were dropped to fit max_length)``.

        Whole older turns go first (the system prompt and the last turn stay), then the start of
        what is left: callers that must not lose text silently (batch infer) report the count."""
        from . import bridge

        messages = list(messages)
        ids = bridge.encode_prompt(messages, self.tokenizer, self.template)
        full = len(ids)
        keep_system = 1 if messages and messages[0].get("role") == "system" else 0
        while len(ids) > self.max_length and len(messages) > keep_system + 1:
            del messages[keep_system]
            ids = bridge.encode_prompt(messages, self.tokenizer, self.template)
        ids = ids[-self.max_length :]
        return ids, full - len(ids)

    # -- generation -------------------------------------------------------------------------------
    def generation_kwargs(self, gen: GenerationArguments) -> dict[str, Any]:
        """``generate`` keyword arguments for these settings (greedy keeps sampling knobs unset)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": gen.max_new_tokens,
            "do_sample": gen.do_sample and gen.temperature > 0,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.pad_id,
            "repetition_penalty": gen.repetition_penalty,
        }
        if gen.do_sample and gen.temperature > 0:  # temperature 0 is greedy (ms-swift's spelling)
            kwargs.update(temperature=gen.temperature, top_p=gen.top_p)
            if gen.top_k is not None:
                kwargs["top_k"] = gen.top_k
        else:  # greedy: keep the model's own sampling defaults out of the way
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def left_padded(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` of the prompts padded on the left to the longest (the
        answers then start at the same column)."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            if p:
                ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
                mask[i, width - len(p) :] = 1
        return ids, mask

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], gen: GenerationArguments, streamer: Any = None) -> list[str]:
        """Answers for a batch of encoded prompts (left-padded together)."""
        ids, mask = self.left_padded(prompts)
        width = ids.shape[1]
        device = self._device()
        out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), streamer=streamer,
                                  **self.generation_kwargs(gen))
        return [self.decode(row[width:]) for row in out.cpu()]

    def decode(self, ids: torch.Tensor) -> str:
        ids = [int(t) for t in ids]
        for i, t in enumerate(ids):
            if t in self.eos_ids:
                ids = ids[:i]
                break
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for stop in self._stops:
            text = text.split(stop, 1)[0]
        return text.strip()

    def streamer(self) -> Any:
        from transformers import TextStreamer

        return TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
