"""Short tasks run in batches in one task process, each keeping its own timeout and answer.

Real task processes (`python -m agent.child`), no database: the executor is driven directly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent import executor as executor_module
from agent.executor import Executor, Outcome
from control.core.queue import ClaimedTask

_ids = iter(range(1, 10_000))


def task(task_type: str, timeout_s: float | None = 30.0, **payload: Any) -> ClaimedTask:
    return ClaimedTask(next(_ids), task_type, payload, 0, 1, 3, timeout_s, uuid.uuid4(), None)


async def nothing(fraction: float, stage: str | None) -> None:
    return None


# What counts as short here, and how long a batch may hold the next claim: wider than the
# agent's (20 ms, 100 ms), so that a loaded test machine cannot make a 0 s sleep look long.
SHORT_S = 0.5
BUDGET_S = 1.0


@pytest.fixture
async def executor(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Executor]:
    monkeypatch.setattr(executor_module, "SHORT_TASK_S", SHORT_S)
    monkeypatch.setattr(executor_module, "BATCH_BUDGET_S", BUDGET_S)
    ex = Executor()
    yield ex
    await ex.close()  # kills every task process it started


async def run(ex: Executor, *tasks: ClaimedTask) -> list[Outcome]:
    """Run these tasks as one claim does: all started in the same turn of the event loop."""
    return await asyncio.gather(
        *(ex.run(t, timeout_s=t.timeout_s, rss_limit_mb=None, on_progress=nothing) for t in tasks)
    )


async def test_the_short_tasks_of_one_claim_run_in_one_process(executor: Executor) -> None:
    [first] = await run(executor, task("sleep", seconds=0, progress=False))  # learns: short
    outcomes = await run(executor, *(task("sleep", seconds=0, progress=False) for _ in range(6)))
    assert [o.kind for o in outcomes] == ["done"] * 6
    pids = {o.result["pid"] for o in outcomes if o.result}
    assert pids == {first.result["pid"] if first.result else None}, pids  # one warm process
    assert len(executor.children()) == 1


async def test_long_tasks_are_not_batched(executor: Executor) -> None:
    await run(executor, task("sleep", seconds=SHORT_S * 2, progress=False))  # learns: long
    outcomes = await run(
        executor, *(task("sleep", seconds=SHORT_S * 2, progress=False) for _ in range(3))
    )
    assert len({o.result["pid"] for o in outcomes if o.result}) == 3  # side by side


async def test_a_batched_task_that_times_out_fails_alone_and_the_rest_still_run(
    executor: Executor,
) -> None:
    await run(executor, task("sleep", seconds=0, progress=False))
    outcomes = await run(
        executor,
        task("sleep", seconds=0, progress=False),
        task("sleep", timeout_s=0.5, seconds=30, progress=False),
        task("sleep", seconds=0, progress=False),
        task("sleep", seconds=0, progress=False),
    )
    assert [o.kind for o in outcomes] == ["done", "timeout", "done", "done"], outcomes
    assert outcomes[1].message and "timed out after 0.5 s" in outcomes[1].message
    # the tasks after the one that hung ran in other processes (the batch's one was killed)
    assert outcomes[2].result and outcomes[0].result
    assert outcomes[2].result["pid"] != outcomes[0].result["pid"]


async def test_a_crash_mid_batch_is_that_task_s_and_the_rest_still_run(executor: Executor) -> None:
    await run(executor, task("fail"))  # an error is an answer: it teaches the type is short
    outcomes = await run(executor, task("fail"), task("fail", crash=True), task("fail"))
    assert [o.kind for o in outcomes] == ["error", "crashed", "error"], outcomes


async def test_a_batched_task_stopped_while_running_kills_only_its_own_run(
    executor: Executor,
) -> None:
    await run(executor, task("sleep", seconds=0, progress=False))
    slow = task("sleep", seconds=30)
    running = asyncio.Event()

    async def reported(fraction: float, stage: str | None) -> None:
        running.set()

    jobs = [
        asyncio.create_task(
            executor.run(
                t,
                timeout_s=30,
                rss_limit_mb=None,
                on_progress=reported if t is slow else nothing,
            )
        )
        for t in (task("sleep", seconds=0, progress=False), slow, task("sleep", seconds=0))
    ]
    try:
        await asyncio.wait_for(running.wait(), 20)  # its first progress: it runs
        jobs[1].cancel()  # the operator's cancel, a lost lease: the task's job is cancelled
        done = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), 20)
    finally:  # a failure above leaves no job running into the fixture's close
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert isinstance(done[0], Outcome) and done[0].kind == "done"
    assert isinstance(done[2], Outcome) and done[2].kind == "done"


async def test_the_next_claim_waits_for_a_batch_but_never_for_a_hung_one(
    executor: Executor,
) -> None:
    """While only batches run, the agent holds its next claim until they end (one full claim
    instead of one per batch); a batched task that hangs must not hold the agent's free slots
    beyond the batch budget."""
    await run(executor, task("sleep", seconds=0, progress=False))
    tasks = [task("sleep", seconds=30, progress=False), task("sleep", seconds=0)]
    jobs = [
        asyncio.create_task(executor.run(t, timeout_s=30, rss_limit_mb=None, on_progress=nothing))
        for t in tasks
    ]
    await asyncio.sleep(0.05)
    ids = [t.id for t in tasks]
    assert 0 < executor.hold_s(ids) <= BUDGET_S
    assert executor.hold_s([*ids, 999_999]) == 0  # a task run alone: no holding
    await asyncio.sleep(BUDGET_S)
    assert executor.hold_s(ids) == 0  # the first one hangs: claim for the free slots
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)


async def test_an_agent_s_first_claim_of_a_short_type_starts_one_process_not_one_per_task(
    executor: Executor,
) -> None:
    """The first task teaches the others of its claim that the type is short: they wait for
    it (at most SHORT_TASK_S once it runs) and follow in the same process."""
    outcomes = await run(executor, *(task("sleep", seconds=0, progress=False) for _ in range(8)))
    assert [o.kind for o in outcomes] == ["done"] * 8
    assert len({o.result["pid"] for o in outcomes if o.result}) == 1
    assert len(executor.children()) == 1
