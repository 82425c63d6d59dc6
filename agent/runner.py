"""The agent's main loop: claim, run, heartbeat, stop (procrastinate's worker shape).

One asyncio loop with named side tasks (heartbeat, notification listener, claim loop) and one
stop event; signals set it. Shutdown is a state, not an exception: claiming stops, running
tasks get a grace period, then whatever still runs is handed back to the queue without
burning an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from agent.completion import GroupCommitter
from agent.handlers import HANDLERS, Handler, TaskError
from control import __version__, db, fleet
from control.queue import ClaimedTask, Failure, Queue
from control.settings import DatabaseTarget
from control.tasktypes import TypePolicy

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    host: str
    enabled_tasks: tuple[str, ...]
    max_concurrent: int = 1
    address: str | None = None
    declared: bool = True
    burst: bool = False
    lease_s: float = 30.0
    heartbeat_s: float = fleet.HEARTBEAT_INTERVAL_S
    poll_s: float = 2.0  # the fallback when a notification is lost (or LISTEN is off)
    listen: bool = True
    grace_s: float = 10.0
    policies: dict[str, TypePolicy] = field(default_factory=dict)


class _Cancelled(Exception):
    """The operator cancelled the task, or its lease was taken over."""


@dataclass
class _Running:
    task: ClaimedTask
    job: asyncio.Task[None]
    lost: bool = False  # the lease went to another attempt: say nothing more about it
    cancel_requested: bool = False


class _Context:
    def __init__(self, queue: Queue, entry: _Running) -> None:
        self._queue = queue
        self._entry = entry

    async def progress(self, fraction: float, stage: str | None = None) -> None:
        state = await self._queue.progress(self._entry.task, fraction, stage)
        if not state.held:
            self._entry.lost = True
            raise _Cancelled("lease lost")
        if state.cancel_requested:
            self._entry.cancel_requested = True
            raise _Cancelled("cancelled by the operator")


def code_hash() -> str:
    """A short hash of the code this agent runs, so the dashboard can spot stale hosts."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for pkg in ("control", "agent"):
        for path in sorted((root / pkg).rglob("*")):
            if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:12]


class Agent:
    def __init__(self, config: AgentConfig, url: str) -> None:
        self.config = config
        self.url = url
        self.stop_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._running: dict[int, _Running] = {}
        self._started_at = datetime.now(UTC)
        self._code_hash = code_hash()
        self._done_this_run = 0
        self._idle_reason: str | None = None
        self.queue: Queue
        self._committer: GroupCommitter
        self._listen_conn: db.AsyncConn | None = None

    # -- public ---------------------------------------------------------------------------
    async def run(self) -> int:
        conn = await db.open_database(DatabaseTarget(self.url))
        self.queue = Queue(conn, self.config.policies)
        self._committer = GroupCommitter(self.queue)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        side: list[asyncio.Task[None]] = [
            asyncio.create_task(self._committer.run(), name="committer")
        ]
        try:
            if self.config.listen:
                self._listen_conn = await db.connect(self.url)
                await Queue(self._listen_conn).listen()
                side.append(asyncio.create_task(self._listener(), name="listener"))
            await self._heartbeat_once()
            side.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
            await self._claim_loop()
            await self._shutdown()
        finally:
            for t in side:
                t.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._heartbeat_once(state="stopped")
            await conn.close()
            if self._listen_conn is not None:
                await self._listen_conn.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return 0

    def request_stop(self) -> None:
        log.info("stop requested: no new claims, %d task(s) running", len(self._running))
        self.stop_event.set()
        self._wake.set()

    # -- claiming -------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        cfg = self.config
        while not self.stop_event.is_set():
            free = cfg.max_concurrent - len(self._running)
            if free > 0:
                self._wake.clear()
                claimed = await self.queue.claim(
                    cfg.host, cfg.enabled_tasks, limit=free, lease_s=cfg.lease_s
                )
                for task in claimed:
                    self._start(task)
                if claimed:
                    self._idle_reason = None
                    continue
                self._idle_reason = "no_work" if not self._running else None
                if cfg.burst and not self._running:
                    log.info("burst: no claimable work left")
                    return
            else:
                self._idle_reason = "max_concurrency"
                self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=cfg.poll_s)

    def _start(self, task: ClaimedTask) -> None:
        job = asyncio.create_task(self._run_one(task), name=f"task-{task.id}")
        self._running[task.id] = _Running(task, job)
        job.add_done_callback(lambda _: self._wake.set())

    async def _run_one(self, task: ClaimedTask) -> None:
        entry = self._running[task.id]
        handler: Handler | None = HANDLERS.get(task.type)
        try:
            if handler is None:
                raise TaskError(f"this agent has no handler for {task.type} tasks", retryable=True)
            result = await asyncio.wait_for(
                handler(task.payload, _Context(self.queue, entry)), task.timeout_s
            )
        except (_Cancelled, asyncio.CancelledError):
            if entry.cancel_requested and not entry.lost:
                await self.queue.acknowledge_cancel(task)
            elif not entry.lost and self.stop_event.is_set():
                await self.queue.release(task)
            return
        except TimeoutError:
            await self._fail(task, Failure("Timeout", f"timed out after {task.timeout_s:g} s"))
        except TaskError as exc:
            await self._fail(task, Failure("TaskError", str(exc), None, exc.retryable))
        except Exception as exc:
            await self._fail(task, Failure(type(exc).__name__, str(exc), traceback.format_exc()))
        else:
            try:
                if await self._committer.complete(task, result):
                    self._done_this_run += 1
            except Exception:
                # The lease will expire and the task run again: at-least-once, never lost.
                log.exception("task %s: could not record its completion", task.id)
        finally:
            self._running.pop(task.id, None)

    async def _fail(self, task: ClaimedTask, failure: Failure) -> None:
        state = await self.queue.fail(task, failure)
        log.warning("task %s (%s) failed: %s -> %s", task.id, task.type, failure.message, state)

    # -- side tasks -----------------------------------------------------------------------
    async def _listener(self) -> None:
        assert self._listen_conn is not None
        async for note in self._listen_conn.notifies():
            if note.payload == "cancel":
                await self._renew()
            self._wake.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            try:
                await self._renew()
                await self._heartbeat_once()
                await self.queue.sweep_expired()
            except Exception:
                log.exception("heartbeat failed")

    async def _renew(self) -> None:
        entries = list(self._running.values())
        states = await self.queue.renew_leases(
            [e.task.token for e in entries], lease_s=self.config.lease_s
        )
        for e in entries:
            st = states.get(e.task.token)
            if st is None:
                continue
            if not st.held and not e.lost:
                log.warning("task %s: lease lost; abandoning this attempt", e.task.id)
                e.lost = True
                e.job.cancel()
            elif st.cancel_requested and not e.cancel_requested:
                log.info("task %s: cancelled by the operator", e.task.id)
                e.cancel_requested = True
                e.job.cancel()

    async def _heartbeat_once(self, state: str | None = None) -> None:
        cfg = self.config
        mem = psutil.virtual_memory()
        body: dict[str, Any] = {
            "load": {
                "cpu_percent": psutil.cpu_percent(interval=None),
                "mem_percent": mem.percent,
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            },
            "counters": {"done_this_run": self._done_this_run},
            "idle_reason": self._idle_reason,
        }
        await fleet.send_heartbeat(
            self.queue.conn,
            fleet.Heartbeat(
                name=cfg.host,
                address=cfg.address,
                agent_state=state or ("draining" if self.stop_event.is_set() else "online"),
                agent_version=__version__,
                code_hash=self._code_hash,
                pid=os.getpid(),
                started_at=self._started_at,
                enabled_tasks=list(cfg.enabled_tasks),
                declared=cfg.declared,
                body=body,
            ),
        )

    # -- shutdown -------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        jobs = [e.job for e in self._running.values()]
        if not jobs:
            return
        log.info("waiting up to %.0f s for %d running task(s)", self.config.grace_s, len(jobs))
        _, pending = await asyncio.wait(jobs, timeout=self.config.grace_s)
        for job in pending:
            job.cancel()  # _run_one hands the task back (stop is set)
        await asyncio.gather(*pending, return_exceptions=True)
