"""Task processes: every task runs in a child process (`agent.child`) the agent can time out and
kill. Children are kept per task type between tasks, so a handler's loaded model stays warm, and
a child that crashed or was killed is simply replaced by a fresh one for the next task.

Each child leads its own process group, so killing it also kills what it started (ffmpeg...).
A watchdog samples the resident memory of that process tree and kills it above the type's limit.

Short tasks run in batches: when a type's tasks take under SHORT_TASK_S on this host (measured
here, never declared), the tasks of that type claimed together go to one child in one write and
run there one after the other, each still with its own timeout and its own answer. A process
round trip per task (two pipe writes, two wake-ups on a busy machine) cost more than a noop
task itself. A batch's answers are handed on together when it ends, so its slots free together
and the next claim is one full claim, not one per answer. A batched task that is cancelled
before its turn still runs (its answer is dropped): batches are for tasks that take
milliseconds. When the child dies mid-batch (a timeout, a crash, a kill), the tasks whose turn
had not come run on their own instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

from control.core import tasktypes
from control.core.queue import ClaimedTask

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
WATCHDOG_INTERVAL_S = 0.5
DEFAULT_IDLE_TTL_S = 60.0  # light types: an idle child goes after a minute
WARM_TYPES_IDLE_TTL_S = 3600.0  # model-heavy types keep their model loaded for an hour
WARM_TYPES = tasktypes.WARM_TYPES  # declared with the type (control/core/tasktypes.py)

# A type whose tasks typically take less than SHORT_TASK_S runs them in batches of at most
# BATCH_BUDGET_S of typical work. A batch gives up running its tasks side by side, which is
# what a task waiting on the network gains from: kept to tasks of a few milliseconds, where
# the process round trip (~1 ms on a busy host) is most of the cost, and to batches that end
# within a tenth of a second.
SHORT_TASK_S = 0.02
BATCH_BUDGET_S = 0.1
TYPICAL_WEIGHT = 0.2  # the weight of the newest run in a type's typical time

ProgressCallback = Callable[[float, str | None], Awaitable[None]]


# What a task process never needs: the database (the agent speaks for it) and anything named
# like a credential. API keys reach handlers through the keychain, not the environment.
_SECRET_ENV = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|_KEY|APIKEY)$|^PGPASS", re.IGNORECASE)
_DROP_ENV = {"CONTENTCTL_DATABASE_URL", "DATABASE_URL", "PGPASSWORD", "PGSERVICEFILE"}


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a task process: the agent's, less the database and secrets."""
    return {k: v for k, v in env.items() if k not in _DROP_ENV and not _SECRET_ENV.search(k)}


@dataclass
class Outcome:
    """How a task's run ended, as the queue needs to know it."""

    kind: str  # done | error | crashed | timeout | memory
    result: dict[str, Any] | None = None
    error_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    retryable: bool = True
    retry_after_s: float | None = None
    # outputs written under temporary names, to publish once the queue accepts the completion
    staged: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Child:
    task_type: str
    proc: asyncio.subprocess.Process
    idle_since: float = field(default_factory=time.monotonic)
    current_task: int | None = None
    kill_reason: str | None = None
    tasks_run: int = 0
    stderr_reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.returncode is None

    def rss_mb(self) -> float:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / (1024 * 1024)

    def kill(self, reason: str) -> None:
        if self.kill_reason is None:
            self.kill_reason = reason
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


@dataclass
class _Probe:
    """The first task of a type whose time is not known here yet. The others claimed with it
    wait until it has run SHORT_TASK_S (or answered sooner) to learn whether to batch: on an
    agent's first claim of a short type, one task process instead of one per task (starting
    fifty processes for fifty noop tasks cost more than running them); a long type's tasks
    start that much later, until its first answer tells."""

    running: asyncio.Event = field(default_factory=asyncio.Event)  # written to its process
    over: asyncio.Event = field(default_factory=asyncio.Event)  # answered, or failed to


class _Rerun(Exception):
    """A batched task whose turn never came (its process died first): run it on its own."""


@dataclass
class _Batched:
    task: ClaimedTask
    timeout_s: float | None
    on_progress: ProgressCallback
    answer: asyncio.Future[Outcome]


@dataclass
class _Batch:
    task_type: str
    size: int  # at most this many tasks
    entries: list[_Batched] = field(default_factory=list)
    child: _Child | None = None
    current: int | None = None  # the task id the child is running now
    job: asyncio.Task[None] | None = None  # the one that sends the batch and reads its answers


class Executor:
    def __init__(
        self,
        idle_ttl_s: Mapping[str, float] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._idle: dict[str, list[_Child]] = {}
        self._busy: dict[int, _Child] = {}
        self._idle_ttl = dict(idle_ttl_s or {})
        self.settings = dict(settings or {})  # handed to handlers with every task
        self._typical: dict[str, float] = {}  # seconds a task of the type takes, smoothed
        self._forming: dict[str, _Batch] = {}  # the batch each type is gathering this turn
        self._probes: dict[str, _Probe] = {}  # per type whose time is being learned
        self._in_batch: dict[int, float] = {}  # the task ids in a batch now: when it began

    # -- public ---------------------------------------------------------------------------
    async def run(
        self,
        task: ClaimedTask,
        *,
        timeout_s: float | None,
        rss_limit_mb: float | None,
        on_progress: ProgressCallback,
    ) -> Outcome:
        """Run one task in a child. Cancelling the caller kills the child (cancel, lost lease,
        drain deadline) and re-raises."""
        typical = self._typical.get(task.type)
        if rss_limit_mb is None and typical is None:
            probe = self._probes.get(task.type)
            if probe is None:  # the first of its type: it runs alone and teaches the others
                probe = self._probes[task.type] = _Probe()
                try:
                    return await self._run_alone(task, timeout_s, rss_limit_mb, on_progress, probe)
                finally:
                    probe.running.set()
                    probe.over.set()
                    self._probes.pop(task.type, None)
            await probe.running.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHORT_TASK_S):
                    await probe.over.wait()
            typical = self._typical.get(task.type)
        if rss_limit_mb is None and typical is not None and typical < SHORT_TASK_S:
            with contextlib.suppress(_Rerun):
                return await self._run_batched(task, timeout_s, on_progress, typical)
        return await self._run_alone(task, timeout_s, rss_limit_mb, on_progress)

    async def _run_alone(
        self,
        task: ClaimedTask,
        timeout_s: float | None,
        rss_limit_mb: float | None,
        on_progress: ProgressCallback,
        probe: _Probe | None = None,
    ) -> Outcome:
        child = await self._checkout(task.type)
        child.current_task = task.id
        self._busy[task.id] = child
        watchdog = (
            asyncio.create_task(self._watch(child, rss_limit_mb), name=f"watchdog-{task.id}")
            if rss_limit_mb
            else None
        )
        outcome: Outcome | None = None
        try:
            assert child.proc.stdin is not None
            child.proc.stdin.write(self._message(task).encode())
            await child.proc.stdin.drain()
            if probe is not None:
                probe.running.set()
            outcome = await self._answer(child, task, timeout_s, on_progress)
            return outcome
        except (ConnectionError, BrokenPipeError):
            outcome = await self._crashed(child)
            return outcome
        finally:
            if watchdog is not None:
                watchdog.cancel()
            self._busy.pop(task.id, None)
            child.current_task = None
            if outcome is not None and outcome.kind in ("done", "error") and child.alive():
                child.tasks_run += 1
                child.idle_since = time.monotonic()
                self._idle.setdefault(task.type, []).append(child)
            else:
                await self._dispose(child, "task ended without an answer")

    def _message(self, task: ClaimedTask) -> str:
        """The line that hands a task to its process (agent.child reads one per task)."""
        msg = {
            "id": task.id,
            "type": task.type,
            "payload": task.payload,
            "attempt": task.attempts,
            "settings": self.settings,
        }
        return json.dumps(msg) + "\n"

    async def _answer(
        self,
        child: _Child,
        task: ClaimedTask,
        timeout_s: float | None,
        on_progress: ProgressCallback,
    ) -> Outcome:
        """The child's answer to the task it is running now, within the task's timeout; the
        time it took teaches the type's typical time."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):  # no task per run, unlike wait_for
                outcome = await self._converse(child, task, on_progress)
        except TimeoutError:
            child.kill("timeout")
            await child.proc.wait()
            return Outcome(
                "timeout",
                error_type="Timeout",
                message=f"timed out after {timeout_s:g} s; the task process was killed",
            )
        if outcome.kind in ("done", "error"):
            took = time.monotonic() - started
            before = self._typical.get(task.type, took)
            self._typical[task.type] = before + TYPICAL_WEIGHT * (took - before)
        return outcome

    # -- batches of short tasks -----------------------------------------------------------
    async def _run_batched(
        self,
        task: ClaimedTask,
        timeout_s: float | None,
        on_progress: ProgressCallback,
        typical: float,
    ) -> Outcome:
        """Join the batch this type is gathering in this turn of the event loop (the tasks of
        one claim start together) and wait for this task's answer. Raises _Rerun when the task
        is to run on its own after all."""
        batch = self._forming.get(task.type)
        if batch is None or len(batch.entries) >= batch.size:
            size = max(2, int(BATCH_BUDGET_S / max(typical, 1e-4)))
            batch = self._forming[task.type] = _Batch(task.type, size)
            batch.job = asyncio.create_task(
                self._dispatch(batch), name=f"batch-{task.type}-{task.id}"
            )
        entry = _Batched(task, timeout_s, on_progress, asyncio.get_running_loop().create_future())
        batch.entries.append(entry)
        self._in_batch[task.id] = time.monotonic()
        try:
            return await entry.answer
        except asyncio.CancelledError:
            if batch.current == task.id and batch.child is not None:
                batch.child.kill("the task was stopped")  # as for a task run alone
            raise
        finally:
            self._in_batch.pop(task.id, None)

    async def _dispatch(self, batch: _Batch) -> None:
        await asyncio.sleep(0)  # the rest of the claim joins during this turn
        if self._forming.get(batch.task_type) is batch:
            del self._forming[batch.task_type]
        entries = [e for e in batch.entries if not e.answer.done()]
        if len(entries) < 2:  # alone after all: the usual way
            for e in entries:
                e.answer.set_exception(_Rerun())
            return
        try:
            child = await self._checkout(batch.task_type)
        except Exception as exc:  # no process to run them: each task learns why
            for e in entries:
                if not e.answer.done():
                    e.answer.set_exception(exc)
            return
        batch.child = child
        for e in entries:
            self._busy[e.task.id] = child
        answers: list[Outcome] = []  # held until the batch ends: its slots free together
        try:
            assert child.proc.stdin is not None
            child.proc.stdin.write("".join(self._message(e.task) for e in entries).encode())
            await child.proc.stdin.drain()
            for e in entries:
                batch.current = child.current_task = e.task.id
                outcome = await self._answer(child, e.task, e.timeout_s, self._relay(e, child))
                answers.append(outcome)
                if outcome.kind not in ("done", "error"):
                    break  # the process is gone (timeout, crash, kill)
        except (ConnectionError, BrokenPipeError):
            if len(answers) < len(entries):
                answers.append(await self._crashed(child))
        finally:
            done = len(answers)
            for e, outcome in zip(entries, answers, strict=False):
                if not e.answer.done():
                    e.answer.set_result(outcome)
            for e in entries[done:]:
                if not e.answer.done():
                    e.answer.set_exception(_Rerun())
            for e in entries:
                self._busy.pop(e.task.id, None)
            batch.current = child.current_task = None
            if done == len(entries) and child.alive() and child.kill_reason is None:
                child.tasks_run += done
                child.idle_since = time.monotonic()
                self._idle.setdefault(batch.task_type, []).append(child)
            else:
                await self._dispose(child, "a batch ended without every answer")

    @staticmethod
    def _relay(entry: _Batched, child: _Child) -> ProgressCallback:
        """Progress to the task's own callback; what that raises (a lost lease, a cancel) ends
        this task as it would a task run alone: its caller gets the error, its process dies."""

        async def relay(fraction: float, stage: str | None) -> None:
            try:
                await entry.on_progress(fraction, stage)
            except Exception as exc:
                if not entry.answer.done():
                    entry.answer.set_exception(exc)
                child.kill("the task was stopped")

        return relay

    def hold_s(self, task_ids: Iterable[int]) -> float:
        """How long to hold the next claim for these running tasks: while all of them run in
        batches that began less than BATCH_BUDGET_S ago (they end within milliseconds, all
        their slots at once, and one full claim then beats a small claim per batch); 0 when
        any runs alone or a batch is taking longer than it should."""
        began = [self._in_batch.get(t) for t in task_ids]
        if not began or None in began:
            return 0.0
        return max(0.0, min(b for b in began if b is not None) + BATCH_BUDGET_S - time.monotonic())

    def kill_task(self, task_id: int, reason: str) -> None:
        child = self._busy.get(task_id)
        if child is not None:
            child.kill(reason)

    def child_pid(self, task_id: int) -> int | None:
        child = self._busy.get(task_id)
        return child.pid if child else None

    async def reap_idle(self) -> int:
        """Stop children idle longer than their type's time to live."""
        now = time.monotonic()
        reaped = 0
        for task_type, children in self._idle.items():
            ttl = self._idle_ttl.get(
                task_type, WARM_TYPES_IDLE_TTL_S if task_type in WARM_TYPES else DEFAULT_IDLE_TTL_S
            )
            keep = []
            for c in children:
                if now - c.idle_since > ttl or not c.alive():
                    await self._dispose(c, "idle")
                    reaped += 1
                else:
                    keep.append(c)
            children[:] = keep
        return reaped

    async def close(self) -> None:
        busy = {c.pid: c for c in self._busy.values()}.values()
        for c in [*busy, *(c for cs in self._idle.values() for c in cs)]:
            await self._dispose(c, "agent stopping")
        self._busy.clear()
        self._idle.clear()

    def children(self) -> list[int]:
        busy = {c.pid: c for c in self._busy.values()}  # a batch's child runs several tasks
        return [*busy, *(c.pid for cs in self._idle.values() for c in cs)]

    # -- internals ------------------------------------------------------------------------
    async def _checkout(self, task_type: str) -> _Child:
        pool = self._idle.get(task_type, [])
        while pool:
            child = pool.pop()
            if child.alive():
                return child
            await self._dispose(child, "died while idle")
        return await self._spawn(task_type)

    async def _spawn(self, task_type: str) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=child_env(os.environ),
        )
        child = _Child(task_type, proc)
        child.stderr_reader = asyncio.create_task(self._forward_stderr(child))
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(START_TIMEOUT_S):
                line = await proc.stdout.readline()
            if json.loads(line or b"{}").get("event") != "ready":
                raise RuntimeError("no ready message")
        except (TimeoutError, RuntimeError, ValueError) as exc:
            await self._dispose(child, "failed to start")
            raise RuntimeError(f"the task process for {task_type} did not start ({exc})") from exc
        log.debug("started task process %s for %s", child.pid, task_type)
        return child

    async def _converse(
        self, child: _Child, task: ClaimedTask, on_progress: ProgressCallback
    ) -> Outcome:
        assert child.proc.stdout is not None
        while True:
            line = await child.proc.stdout.readline()
            if not line:
                return await self._crashed(child)
            try:
                event = json.loads(line)
            except ValueError:
                log.warning("task %s: unreadable line from its process: %r", task.id, line[:200])
                continue
            kind = event.get("event")
            if kind == "progress":
                await on_progress(float(event.get("fraction", 0)), event.get("stage"))
            elif kind == "done":
                staged = [(str(t), str(d)) for t, d in event.get("staged") or []]
                return Outcome("done", result=dict(event.get("result") or {}), staged=staged)
            elif kind == "error":
                return Outcome(
                    "error",
                    error_type=str(event.get("error_type") or "Error"),
                    message=str(event.get("message") or ""),
                    traceback=event.get("traceback"),
                    retryable=bool(event.get("retryable", True)),
                    retry_after_s=event.get("retry_after_s"),
                )

    async def _crashed(self, child: _Child) -> Outcome:
        code = await child.proc.wait()
        if child.kill_reason and child.kill_reason.startswith("memory"):
            return Outcome("memory", error_type="MemoryLimit", message=child.kill_reason)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return Outcome(
            "crashed",
            error_type="ProcessCrashed",
            message=f"the task process {how} before answering",
        )

    async def _watch(self, child: _Child, limit_mb: float) -> None:
        while child.alive():
            rss = await asyncio.to_thread(child.rss_mb)
            if rss > limit_mb:
                log.warning(
                    "task %s: %.0f MB resident, above the %.0f MB limit: killing it",
                    child.current_task,
                    rss,
                    limit_mb,
                )
                child.kill(
                    f"memory: the task process used {rss:.0f} MB, above the "
                    f"{limit_mb:.0f} MB limit (worker_limits.{child.task_type}.rss_limit_mb)"
                )
                return
            await asyncio.sleep(WATCHDOG_INTERVAL_S)

    async def _forward_stderr(self, child: _Child) -> None:
        assert child.proc.stderr is not None
        while True:
            line = await child.proc.stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if text:
                log.info("%s", text, extra={"task_id": child.current_task, "child_pid": child.pid})

    async def _dispose(self, child: _Child, why: str) -> None:
        if child.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await child.proc.wait()
        if child.stderr_reader is not None:
            # its last lines, for up to 2 s (the timeout cancels the reader; a cancel of this
            # task goes through, and cancels the reader with it)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await child.stderr_reader
        log.debug("task process %s (%s) gone: %s", child.pid, child.task_type, why)
