"""The generation engine behind the server: one base model, many adapters, batched requests.

Requests wait in a bounded queue. One worker thread owns the model; it takes the oldest request and
every waiting request that can share its batch (the same adapter and the same sampling settings),
activates that adapter, and runs one left-padded ``generate`` in which each row keeps its own token
budget, stop strings and stream (``rows.py``). Rows of different adapters never share a batch, so a
row can only ever see its own adapter. A seeded sampling request runs alone: its answer then depends
on its seed only.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..recipes.adapter_choice import only_adapter
from ..recipes.arguments import GenerationArguments
from ..recipes.generation import Generator
from .rows import BatchRows, RowMinTokens, RowState, RowStops, RowStreamer


class QueueFull(Exception):
    """Too many requests are waiting: the client should retry later (HTTP 429)."""


class EngineClosed(Exception):
    """The server is shutting down and takes no new requests (HTTP 503)."""


@dataclass
class Job:
    """One request on its way through the queue; events go back to the request's event loop."""

    prompt: list[int]
    adapter: str | None
    max_new_tokens: int
    min_tokens: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stops: list[str] = field(default_factory=list)
    stream: bool = False
    loop: asyncio.AbstractEventLoop | None = None
    events: asyncio.Queue | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    serial: int = 0

    def batch_key(self) -> tuple:
        """Requests with equal keys can share one ``generate`` call."""
        if self.temperature == 0:
            return (self.adapter, "greedy")
        if self.seed is not None:
            return (self.adapter, "seeded", self.serial)  # alone, so the seed alone decides
        return (self.adapter, "sample", self.temperature, self.top_p)

    def send(self, *event: Any) -> None:
        if self.loop is not None and self.events is not None:
            try:
                self.loop.call_soon_threadsafe(self.events.put_nowait, event)
            except RuntimeError:  # the request's event loop is closed: nobody is waiting for this answer
                pass


class Engine:
    """Owns the model; ``submit`` queues a job, the worker thread answers it through ``job.events``."""

    def __init__(self, generator: Generator, *, max_batch_size: int = 8, max_queue: int = 64,
                 batch_wait_s: float = 0.005) -> None:
        self.generator = generator
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.batch_wait_s = batch_wait_s
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._serials = itertools.count()
        self._thread = threading.Thread(target=self._work, name="swiftune-engine", daemon=True)
        self.batches_run = 0
        self.largest_batch = 0
        self.rows_cancelled = 0  # rows stopped early because their client went away

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Take no new jobs, finish the queued and running ones, stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- queue ------------------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closing:
                raise EngineClosed("the server is shutting down")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"{len(self._pending)} requests are waiting (--max_queue {self.max_queue}); retry later")
            job.serial = next(self._serials)
            self._pending.append(job)
            self._cond.notify()

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def _next_batch(self) -> list[Job]:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending:
                return []
        if self.batch_wait_s:
            time.sleep(self.batch_wait_s)  # requests arriving together join one batch
        with self._cond:
            live = [j for j in self._pending if not j.cancelled.is_set()]
            if not live:
                self._pending.clear()
                return []
            key = live[0].batch_key()
            batch = [j for j in live if j.batch_key() == key][: self.max_batch_size]
            chosen = {id(j) for j in batch}
            self._pending = deque(j for j in live if id(j) not in chosen)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                with self._cond:
                    if self._closing and not self._pending:
                        return
                continue
            try:
                self.run_batch(batch)
            except Exception as exc:  # noqa: BLE001 - a failed batch answers its requests, the server lives on
                for job in batch:
                    job.send("error", f"{type(exc).__name__}: {exc}")

    # -- generation -------------------------------------------------------------------------------
    def run_batch(self, batch: list[Job]) -> None:
        gen = self.generator
        first = batch[0]
        settings = GenerationArguments(
            max_new_tokens=max(j.max_new_tokens for j in batch),
            do_sample=first.temperature > 0,
            temperature=first.temperature if first.temperature > 0 else 1.0,
            top_p=first.top_p,
        )
        rows = BatchRows(
            [RowState(max_new_tokens=j.max_new_tokens, stops=j.stops, min_tokens=j.min_tokens, cancelled=j.cancelled.is_set,
                      on_delta=_delta_sender(j) if j.stream else None) for j in batch],
            gen.eos_ids, gen.decode,
        )
        width = max(len(j.prompt) for j in batch)
        ids = torch.full((len(batch), width), gen.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, job in enumerate(batch):
            ids[i, width - len(job.prompt):] = torch.tensor(job.prompt, dtype=torch.long)
            mask[i, width - len(job.prompt):] = 1
        device = next(gen.model.parameters()).device
        if first.seed is not None:
            torch.manual_seed(first.seed)
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        with only_adapter(gen.model, first.adapter), torch.no_grad():
            gen.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                               streamer=RowStreamer(rows), stopping_criteria=[RowStops(rows)],
                               logits_processor=[RowMinTokens(rows)],
                               **gen.generation_kwargs(settings))
        self.rows_cancelled += sum(row.finish == "cancelled" for row in rows.rows)
        for job, row in zip(batch, rows.rows):
            text = rows.text(row).strip()
            job.send("done", text, row.finish if row.finish != "cancelled" else "stop", len(job.prompt), len(row.tokens))


def _delta_sender(job: Job) -> Callable[[str], None]:
    return lambda text: job.send("delta", text)
