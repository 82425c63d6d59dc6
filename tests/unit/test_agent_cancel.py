"""An agent's side tasks end when they are cancelled, whatever they were waiting for.

Python 3.11's `asyncio.wait_for` returns the inner result, and drops the cancellation, when
the task is cancelled in the moment the awaited work finishes (CPython gh-86296, fixed in
3.12). The heartbeat's storage check, run every beat, finished in that moment once in CI: the
heartbeat kept beating, the agent's stop waited for it forever and its connection leaked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.runner import Agent, AgentConfig
from control.core import storage_health


async def test_a_storage_check_finishing_as_the_heartbeat_is_cancelled_still_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = Agent(
        AgentConfig(host="w1", enabled_tasks=["noop"], storage_root=tmp_path),
        "postgresql://nowhere.invalid/none",  # never connected to
    )
    checking: asyncio.Task[Any] | None = None
    real_to_thread = asyncio.to_thread

    async def to_thread(fn: Callable[..., Any], /, *args: Any, **kw: Any) -> Any:
        if fn is not storage_health.check:
            return await real_to_thread(fn, *args, **kw)
        assert checking is not None
        checking.cancel()  # the stop arrives ...
        return storage_health.check(*args, **kw)  # ... as the check finishes

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    checking = asyncio.create_task(agent._storage_health())
    await asyncio.wait([checking], timeout=5)
    assert checking.cancelled(), f"the cancellation was dropped: {checking.result()}"
