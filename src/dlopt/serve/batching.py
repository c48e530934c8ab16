"""Concurrent requests answered by one model call: requests wait up to `max_wait` seconds for
others to join, at most `max_batch` examples go into one call, and the call runs in a worker
thread so the server keeps accepting requests meanwhile."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Counts:
    requests: int = 0
    examples: int = 0
    model_calls: int = 0


@dataclass
class _Waiting:
    examples: list
    answer: asyncio.Future
    done: list = field(default_factory=list)


class Batcher:
    def __init__(self, run_batch, max_batch: int = 32, max_wait: float = 0.005):
        """`run_batch(examples) -> answers`, one per example, called in a worker thread."""
        self.run_batch, self.max_batch, self.max_wait = run_batch, max_batch, max_wait
        self.queue: asyncio.Queue | None = None
        self.counts = Counts()
        self._worker = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._serve())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    async def answer(self, examples: list) -> list:
        """The answers to one request's examples (batched with whatever else is waiting)."""
        self.counts.requests += 1
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Waiting(examples, future))
        return await future

    async def _serve(self) -> None:
        while True:
            first = await self.queue.get()
            group, size = [first], len(first.examples)
            deadline = asyncio.get_running_loop().time() + self.max_wait
            while size < self.max_batch:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                group.append(nxt)
                size += len(nxt.examples)
            examples = [example for waiting in group for example in waiting.examples]
            self.counts.model_calls += 1
            self.counts.examples += len(examples)
            try:
                answers = await asyncio.to_thread(self.run_batch, examples)
            except Exception as exc:  # every request of the call gets the reason
                for waiting in group:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(exc)
                continue
            start = 0
            for waiting in group:
                if not waiting.answer.done():
                    waiting.answer.set_result(answers[start : start + len(waiting.examples)])
                start += len(waiting.examples)
