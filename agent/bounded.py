"""Blocking calls that may never return, run where they cannot stop the agent.

A network share whose server stops answering blocks `stat()`, `statvfs()` and `open()` in
uninterruptible sleep: the thread that made the call is gone until the link comes back, and no
timeout or signal frees it. Run in asyncio's shared thread pool, each such call takes one of
its few threads; a few heartbeats later every `to_thread` in the agent waits behind them. A
`Bounded` probe has one thread of its own, at most one call in flight, and a time limit: while
a call is stuck, the next ones answer at once that it is (`Stuck`), and no new thread is lost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Stuck(Exception):
    """The call did not return in time (or an earlier one still has not)."""


class Bounded(Generic[T]):
    def __init__(self, name: str, timeout_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._inflight: asyncio.Future[T] | None = None

    @property
    def stuck(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` in this probe's thread, waited for at most `timeout_s`; Stuck otherwise."""
        if self.stuck:
            raise Stuck(f"{self.name}: an earlier call has not returned")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.run_in_executor(self._pool, fn)
        self._inflight = fut
        try:
            async with asyncio.timeout(self.timeout_s):
                return await asyncio.shield(fut)
        except TimeoutError:
            # the thread stays where the kernel holds it; its answer, if any, is dropped
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise Stuck(f"{self.name}: no answer within {self.timeout_s:g} s") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
