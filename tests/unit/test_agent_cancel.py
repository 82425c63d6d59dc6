"""An agent's side tasks end when they are cancelled, whatever they were waiting for.

Python 3.11's `asyncio.wait_for` returns the inner result, and drops the cancellation, when
the task is cancelled in the moment the awaited work finishes (CPython gh-86296, fixed in
3.12). The heartbeat's storage check, run every beat, finished in that moment once in CI: the
heartbeat kept beating, the agent's stop waited for it forever and its connection leaked."""

from __future__ import annotations

import asyncio
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
    loop = asyncio.get_running_loop()
    checking: asyncio.Task[Any] | None = None
    real_check = storage_health.check

    def check(*args: Any, **kw: Any) -> Any:  # in the probe's thread
        assert checking is not None
        loop.call_soon_threadsafe(checking.cancel)  # the stop arrives ...
        return real_check(*args, **kw)  # ... as the check finishes

    monkeypatch.setattr(storage_health, "check", check)
    checking = asyncio.create_task(agent._storage_health())
    await asyncio.wait([checking], timeout=5)
    assert checking.cancelled(), f"the cancellation was dropped: {checking.result()}"
