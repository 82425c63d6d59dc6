"""Task handlers the agent runs. The diagnostic types live here; pipeline stages join them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class TaskError(Exception):
    """A failure the handler understands: its message is kept, `retryable` decides the path."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Context(Protocol):
    """What a handler may do while it runs."""

    async def progress(self, fraction: float, stage: str | None = None) -> None: ...


Handler = Callable[[dict[str, Any], Context], Awaitable[dict[str, Any]]]


async def noop(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {}


async def sleep(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    try:
        seconds = float(payload.get("seconds", 1))
    except (TypeError, ValueError) as exc:
        raise TaskError(
            f"sleep: seconds must be a number, not {payload.get('seconds')!r}", retryable=False
        ) from exc
    if seconds < 0:
        raise TaskError(f"sleep: seconds must not be negative, not {seconds}", retryable=False)
    steps = max(1, min(100, int(seconds * 4)))
    for i in range(steps):
        await asyncio.sleep(seconds / steps)
        await ctx.progress((i + 1) / steps, "sleeping")
    return {"slept_s": seconds}


async def fail(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    retryable = bool(payload.get("retryable", True))
    raise TaskError(
        str(payload.get("message", "failed on purpose (fail task)")), retryable=retryable
    )


HANDLERS: dict[str, Handler] = {"noop": noop, "sleep": sleep, "fail": fail}
