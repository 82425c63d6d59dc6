"""Task handlers: what runs inside a task's child process.

A handler is a plain (blocking) function `handler(payload, ctx) -> result dict`, run in a child
process the agent can time out and kill, so it may block, call tools or load models freely.
Handlers are looked up by type through `HANDLERS` (module paths), so a child that only ever runs
`noop` never imports the transcription stack.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol

from control.core import tasktypes


class TaskError(Exception):
    """A failure the handler understands: its message is kept, `retryable` decides the path."""

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class Context(Protocol):
    """What a handler may do while it runs."""

    task_id: int
    attempt: int
    settings: dict[str, Any]  # storage_root, transcribe, translate: from the agent's inventory

    def progress(self, fraction: float, stage: str | None = None) -> None: ...


Handler = Callable[[dict[str, Any], Context], dict[str, Any]]


def noop(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {}


def sleep(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Sleep `seconds`, reporting progress (unless `progress` is false). `allocate_mb` holds
    that much memory meanwhile (to exercise the memory watchdog). `out`, a path under the
    storage root, gets a small JSON file saying which attempt wrote it (published like a
    stage's output: only the attempt the queue accepts puts it in place). Answers with its
    pid, which shows whether task processes are reused."""
    try:
        seconds = float(payload.get("seconds", 1))
        allocate_mb = float(payload.get("allocate_mb", 0))
    except (TypeError, ValueError) as exc:
        raise TaskError(
            f"sleep: seconds must be a number, not {payload.get('seconds')!r}", retryable=False
        ) from exc
    if seconds < 0:
        raise TaskError(f"sleep: seconds must not be negative, not {seconds}", retryable=False)
    ballast = bytearray(int(allocate_mb * 1024 * 1024))
    for i in range(len(ballast) // 4096):
        ballast[i * 4096] = 1  # touch every page so it counts as resident
    report = bool(payload.get("progress", True))  # false: a task that looks stuck
    steps = max(1, min(100, int(seconds * 4)))
    for i in range(steps):
        time.sleep(seconds / steps)
        if report:
            ctx.progress((i + 1) / steps, "sleeping")
    if payload.get("out") is not None:
        from agent.stages import path
        from control.core.storage import atomic_write

        with atomic_write(path(ctx, payload, "out")) as fh:
            json.dump({"task": ctx.task_id, "attempt": ctx.attempt, "pid": os.getpid()}, fh)
    return {"slept_s": seconds, "pid": os.getpid()}


def fail(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Fail on purpose. `{"crash": true}` kills the child process instead of raising."""
    if payload.get("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    retryable = bool(payload.get("retryable", True))
    raise TaskError(
        str(payload.get("message", "failed on purpose (fail task)")), retryable=retryable
    )


# type -> "module:function", declared with the type (control/core/tasktypes.py); imported in
# the child on first use.
HANDLERS: dict[str, str] = tasktypes.HANDLERS


def resolve(task_type: str, settings: dict[str, Any] | None = None) -> Handler:
    target = HANDLERS.get(task_type)
    if target is None and task_type in ((settings or {}).get("commands") or {}):
        from agent.stages.command import run_command  # a `command` type of the inventory's

        return lambda payload, ctx: run_command(task_type, payload, ctx)
    if target is None:
        raise TaskError(f"this agent has no handler for {task_type} tasks", retryable=True)
    module, _, name = target.partition(":")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler
