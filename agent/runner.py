"""The agent's main loop: claim within limits, run in child processes, heartbeat, obey.

One asyncio loop with named side tasks (heartbeat, notification listener, outbox, log shipper)
and one stop event; signals set it. Shutdown is a state, not an exception: claiming stops,
running tasks get a grace period, then whatever still runs is handed back to the queue without
burning an attempt. When PostgreSQL goes away the tasks keep running, their answers wait in the
outbox, and everything resumes when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from agent import restarts
from agent.bounded import Bounded, Stuck
from agent.dbconn import AgentDb, DbDown
from agent.executor import Executor, Outcome
from agent.limits import Clock, Decision, Limiter, TypeLimits, local_now
from agent.load import LoadSampler
from agent.logs import DatabaseBuffer
from agent.nas import Mounter, NasMount
from agent.outbox import Outbox
from agent.wakeup import Wakeups
from control import __version__
from control.core import codehash, db, fleet, schedules, storage_health, tasktypes
from control.core.errors import ContentctlError
from control.core.queue import (
    CHANNEL,
    LEASE_GRACE_S,
    ClaimedTask,
    Failure,
    LeaseState,
    Queue,
)
from control.core.redact import first_line
from control.core.tasktypes import TypePolicy, known

log = logging.getLogger(__name__)

LOG_SHIP_INTERVAL_S = 1.0
LOG_PRUNE_EVERY = 60  # shipments
# heartbeats between two looks for idle task processes to stop (local, no statement). Due
# schedules, expired leases and the fleet's storage id come back with the written heartbeat.
REAP_EVERY = 60
# An idle agent's longest sleep: new, retried and handed-back work is announced (NOTIFY) and
# delayed work is slept until; this poll only bounds what a lost notification can cost.
IDLE_POLL_S = 30.0
PEERS_EVERY_S = 60.0  # how often a written beat asks which peers are live (agent/wakeup.py)
STORAGE_CHECK_S = 5.0  # a storage check that takes longer reports the storage as unavailable
DISK_PROBE_S = 2.0  # the heartbeat's free-space reading waits this long for the storage root
SIDE_RESTART_MIN_S = 0.5  # a side task that died starts again after this, doubling
SIDE_RESTART_MAX_S = 30.0
SIDE_STOP_S = 5.0  # how long the stop waits for a cancelled side task
# A task's lease: held while the agent's database session lives (a dead agent's leases run out
# a grace after its session ended, see Queue.sweep_expired), so its time is only the backstop
# for an agent that hangs with its session open, or keeps none. Renewed with the minute's touch
# (at least a third of it passed), so that a written beat of a running task carries at most one
# renewal a minute.
LEASE_S = 150.0


@dataclass
class AgentConfig:
    host: str
    enabled_tasks: tuple[str, ...]
    max_concurrent: int = 1
    address: str | None = None
    declared: bool = True
    burst: bool = False
    lease_s: float = LEASE_S
    lease_grace_s: float = LEASE_GRACE_S  # a dead session's leases run out after this
    heartbeat_s: float = fleet.HEARTBEAT_INTERVAL_S
    poll_s: float = fleet.HEARTBEAT_INTERVAL_S  # while not listening, draining, or at capacity
    idle_poll_s: float = IDLE_POLL_S  # nothing to claim, listening: at most this long asleep
    listen: bool = True
    grace_s: float = 10.0
    progress_interval_s: float = 0.5
    policies: dict[str, TypePolicy] = field(default_factory=dict)
    limits: dict[str, TypeLimits] = field(default_factory=dict)
    clock: Clock = local_now
    storage_root: Path = field(default_factory=Path.home)
    nas: NasMount | None = None  # the NAS this agent mounts itself (inventory `nas:`)
    nas_credentials: Path | None = None  # where it writes the cifs credentials (0600)
    task_settings: dict[str, Any] = field(default_factory=dict)  # for handlers (pipeline)
    restart_argv: list[str] | None = None  # how to start again on `restart`
    run_marker: Path | None = None  # says "running" while it runs (agent/restarts.py)
    # where the database is now, asked before each reconnect (the embedded server's socket
    # follows its port: `db serve --port` moves it); None: the URL it started with
    resolve_url: Callable[[], str | None] | None = None


class _Abort(Exception):
    """Stop running this task: cancelled by the operator, or its lease was taken over."""


@dataclass
class _Running:
    task: ClaimedTask
    job: asyncio.Task[None]
    started: float = field(default_factory=time.monotonic)
    progress: float | None = None
    stage: str | None = None
    progress_moved_at: float = field(default_factory=time.monotonic)
    progress_sent_at: float = 0.0
    lost: bool = False
    cancel_requested: bool = False
    handed_back: bool = False
    renewed_at: float = field(default_factory=time.monotonic)  # the claim set the first lease


class Agent:
    def __init__(
        self, config: AgentConfig, url: str, log_buffer: DatabaseBuffer | None = None
    ) -> None:
        self.config = config
        self.db = AgentDb(url, config.policies, resolve=config.resolve_url)
        self.db.on_new_session = self._new_session
        self.limiter = Limiter(config.host, config.limits, config.clock)
        self.executor = Executor(
            settings={
                **config.task_settings,
                "storage_root": str(config.storage_root),
                "host": config.host,
            }
        )
        self.outbox = Outbox(self.db)
        self.stop_event = asyncio.Event()
        self._wake = asyncio.Event()  # the claim loop: work may be there
        # the last claim found nothing more of this agent's types, with no cap or limit in the
        # way, and nothing was announced since: a task's end need not look again
        self._quiet = False
        self._listening = False  # the listener is LISTENing: announced work wakes the loop
        self._poke = asyncio.Event()  # the heartbeat loop: renew/commands now
        # which announcements this agent answers, and when (one agent per task, not all)
        self._wakeups = Wakeups(config.host)
        self._peers_at = float("-inf")  # when a beat last brought the live peers
        self._peers_news = 0  # peers-changed notes heard (one during a beat: ask again)
        self._side_jobs: set[asyncio.Task[None]] = set()  # passes on (held till they end)
        self._running: dict[int, _Running] = {}
        self._log_buffer = log_buffer
        self._load = LoadSampler(config.storage_root)
        # the storage root's probes: a hung NAS holds their own thread, never the loop's pool
        self._disk_probe: Bounded[float | None] = Bounded("disk-free", DISK_PROBE_S)
        self._storage_probe: Bounded[storage_health.Health] = Bounded(
            "storage-check", STORAGE_CHECK_S
        )
        self._beat_gate = fleet.BeatGate()
        self._leases_session: int | None = None  # the session key the leases last got
        self._resweep_at: float | None = None  # when leases it saw orphaned end their grace
        self._last_restart: dict[str, Any] = {}  # how the previous run ended (restarts.begin)
        self._started = time.monotonic()
        self._started_at = datetime.now(UTC)
        self._code_hash = codehash.code_hash()
        self._done_this_run = 0
        self._done_today = 0
        self._today = config.clock().date()
        self._idle_reason: str | None = None
        self._idle_until: datetime | None = None
        self._draining = False
        self._drain_deadline: float | None = None
        self._drain_commands: list[int] = []
        self._restart = False
        self._reregister = False
        self._exit_commands: list[int] = []
        self._commands_job: asyncio.Task[None] | None = None
        self.side_restarts: dict[str, int] = {}  # side task -> times it was started again
        # the storage root's health (NAS mounted, the fleet's marker, writable): checked at
        # start and on every heartbeat; while it is bad, only diagnostic types are claimed
        self.storage = storage_health.Health(True, None, "")
        self._storage_id: str | None = None
        self.mounter = (
            Mounter(config.nas, config.nas_credentials or config.storage_root / ".nas.cred")
            if config.nas is not None
            else None
        )

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self) -> int:
        self._last_restart = restarts.begin(self.config.run_marker)
        await self.db.open()
        await self._load_state()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        side = [self._watched("outbox", self.outbox.run)]
        side.append(self._watched("heartbeat", self._heartbeat_loop))
        if self.config.listen:
            side.append(self._watched("listener", self._listener))
        if self._log_buffer is not None:
            side.append(self._watched("logs", self._ship_logs_loop))
        log.info(
            "agent %s started (pid %s, code %s, types %s, concurrency %s)",
            self.config.host,
            os.getpid(),
            self._code_hash,
            ",".join(self.config.enabled_tasks),
            self.config.max_concurrent,
        )
        try:
            load = await self._sample_load()
            await self.db.sql(fleet.register, self._heartbeat(self._state(), load))
            await self._claim_loop()
            await self._shutdown()
        finally:
            if self._commands_job is not None and not self._commands_job.done():
                # a stop or restart being acknowledged: let the acknowledgement go out first
                await asyncio.wait([self._commands_job], timeout=5.0)
            for t in side:
                t.cancel()
            # a side task that does not end must not keep the agent, and its connection, alive
            _, stuck = await asyncio.wait(side, timeout=SIDE_STOP_S)
            for t in stuck:
                log.error(
                    "side task %s did not stop when cancelled; exiting without it", t.get_name()
                )
            await self.executor.close()
            # the last words, each on its own: one failing must not skip the others
            for what, last in (
                ("last heartbeat", lambda: self._heartbeat_once(state="stopped")),
                (
                    "marking commands done",
                    lambda: self.db.sql(fleet.command_done, self._exit_commands),
                ),
                ("last log shipment", self._ship_logs),
            ):
                try:
                    await last()
                except Exception as exc:
                    log.warning("at exit, %s failed: %s", what, first_line(exc))
            await self.db.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        restarts.end(self.config.run_marker)  # a clean stop, whatever comes next
        if self._restart and self.config.restart_argv:
            log.info("restarting: %s", " ".join(self.config.restart_argv))
            logging.shutdown()
            os.environ[restarts.RESTARTED_BY] = "operator"
            os.execv(sys.executable, [sys.executable, *self.config.restart_argv])
        return 0

    def _watched(self, name: str, loop: Callable[[], Awaitable[Any]]) -> asyncio.Task[None]:
        """A side task that never dies silently: if it raises (or returns), the error is logged
        and it starts again after a backoff, so finished results keep being delivered and
        heartbeats keep going (procrastinate's worker watches its side tasks the same way)."""

        async def keep() -> None:
            delay = SIDE_RESTART_MIN_S
            while True:
                try:
                    await loop()
                    log.error("side task %s ended on its own; starting it again", name)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("side task %s died; starting it again in %.0f s", name, delay)
                self.side_restarts[name] = self.side_restarts.get(name, 0) + 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, SIDE_RESTART_MAX_S)

        return asyncio.create_task(keep(), name=name)

    def request_stop(self) -> None:
        if not self.stop_event.is_set():
            log.info("stop requested: no new claims, %d task(s) running", len(self._running))
        self.stop_event.set()
        self._look()

    async def _check_storage(self) -> None:
        """The storage root's health, off the event loop and bounded in time (a hung NAS
        blocks a thread, never the agent). A NAS the inventory names is mounted (again) when
        it is missing, with backoff."""
        health = await self._storage_health()
        if not health.ok and self.mounter is not None and await self.mounter.ensure() is None:
            health = await self._storage_health()  # mounted (or not due yet): look again
        if health.ok != self.storage.ok:
            if health.ok:
                log.info("storage available again: %s", self.config.storage_root)
            else:
                log.warning("storage unavailable: %s: claiming diagnostic tasks only", health.error)
            self._look()
        self.storage = health

    async def _storage_health(self) -> storage_health.Health:
        root, expected = self.config.storage_root, self._storage_id
        try:
            return await self._storage_probe.run(lambda: storage_health.check(root, expected))
        except Stuck:
            return storage_health.Health(
                False, f"{root} is not answering", datetime.now(UTC).isoformat(timespec="seconds")
            )

    async def _sample_load(self) -> dict[str, Any]:
        """The heartbeat's load: the machine's figures, and the storage root's free space when
        it answers in time (a hung NAS: None, and the beat goes out all the same)."""
        load = await asyncio.to_thread(self._load.sample)
        try:
            load["disk_free_gb"] = await self._disk_probe.run(self._load.disk_free_gb)
        except Stuck:
            load["disk_free_gb"] = None
        return load

    async def _load_state(self) -> None:
        cfg = self.config
        day = cfg.clock().date()
        midnight = cfg.clock().replace(hour=0, minute=0, second=0, microsecond=0)

        async def read(q: Queue) -> tuple[dict[str, int], int, bool, datetime]:
            counts = await fleet.daily_counts(q.conn, cfg.host, day)
            done = await fleet.done_since(q.conn, cfg.host, midnight)
            drained = await fleet.drain_requested(q.conn, cfg.host)
            cur = await q.conn.execute("SELECT now() AS now")
            row = await cur.fetchone()
            return counts, done, drained, row["now"] if row else datetime.now(UTC)  # type: ignore[return-value]

        counts, self._done_today, drained, self._started_at = await self.db.run(read)
        self._storage_id = await self.db.sql(storage_health.fleet_storage_id)
        await self._check_storage()
        self.limiter.load_daily(counts, day)
        if drained:
            log.info("this host is drained (contentctl agent undrain %s to resume)", cfg.host)
            self._draining = True

    # -- claiming -------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        cfg = self.config
        while not self.stop_event.is_set():
            self._wake.clear()
            timeout = cfg.poll_s
            if self._draining:
                self._idle_reason = "draining" if self._running else "drained"
                self._check_drain_deadline()
                timeout = 1.0 if self._drain_deadline else cfg.poll_s
            elif not self.db.up.is_set():
                self._idle_reason = None
                timeout = 1.0
            elif cfg.max_concurrent - len(self._running) <= 0:
                self._idle_reason = "max_concurrency"
            elif (hold := self.executor.hold_s(self._running)) > 0:
                timeout = hold  # only batches of short tasks run: claim when they end
            else:
                types = cfg.enabled_tasks
                if not self.storage.ok:  # the NAS is gone: nothing that reads or writes it
                    types = tuple(t for t in types if not tasktypes.needs_storage(t))
                decision = self.limiter.decide(types)
                self._idle_until = decision.until
                if decision.reason is not None:
                    self._idle_reason = decision.reason
                    timeout = self._sooner(timeout, decision.until)
                else:
                    try:
                        limit = cfg.max_concurrent - len(self._running)
                        claimed = await self.db.run(
                            Queue.claim,
                            cfg.host,
                            decision.allowed,
                            limit=limit,
                            lease_s=cfg.lease_s,
                            caps=decision.caps,
                            count_day=cfg.clock().date(),  # the daily counters, same statement
                            tell=self._wakeups.take(),  # the other ranks may stand down
                        )
                    except DbDown:
                        continue
                    # short of the limit with nothing capped or held back: this agent's types
                    # had nothing more claimable at that moment (an announcement says when
                    # that changes); only while listening, else nothing would say it
                    self._quiet = (
                        len(claimed) < limit
                        and not decision.caps
                        and not decision.blocked
                        and self._listening
                    )
                    if claimed:
                        self._on_claimed(claimed)
                        self._idle_reason = None
                        if len(claimed) == limit:
                            continue  # there may be more: look again while slots are free
                        # fewer than asked: nothing more was claimable then; what comes is
                        # announced, a task's end wakes the loop, and a delayed task wakes it
                        # when due (a second look at once was an empty claim for every task)
                        timeout = await self._until_due(decision.allowed)
                    else:
                        timeout = await self._nothing_claimed(decision, timeout)
                if cfg.burst and not self._running and self._idle_reason is not None:
                    if len(self.outbox):
                        # a success still on its way may enqueue the next stage: look again
                        await self.outbox.flushed(cfg.lease_s)
                        continue
                    log.info("burst: no claimable work left (%s)", self._idle_reason)
                    return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _nothing_claimed(self, decision: Decision, timeout: float) -> float:
        """A claim came back empty: why this agent is idle, and how long it sleeps (until its
        next delayed task comes due, a cooldown or window ends, or an announcement)."""
        cfg = self.config
        self._idle_reason = None if self._running else "no_work"
        if not (cfg.burst and not self._running):  # a burst ends here instead
            timeout = await self._until_due(decision.allowed)
        for _, _, until in decision.blocked:  # a cooldown or window ending
            timeout = self._sooner(timeout, until)
        if decision.blocked and not self._running:
            await self._explain_idle(decision)
        if not self.storage.ok and not self._running:
            self._idle_reason = f"storage unavailable: {self.storage.error}"
        return timeout

    def _sooner(self, timeout: float, until: datetime | None) -> float:
        """The claim loop's wait, cut short to end at `until` (the agent's clock), if any."""
        if until is None:
            return timeout
        return max(0.05, min(timeout, (until - self.config.clock()).total_seconds()))

    async def _until_due(self, types: Sequence[str]) -> float:
        """How long an agent that found nothing to claim sleeps: until its next delayed or
        retrying task comes due, at most idle_poll_s. Every way a task becomes claimable
        announces it (NOTIFY), which wakes it sooner; while its listener is not listening, it
        polls every poll_s."""
        cfg = self.config
        if not self._listening:
            return cfg.poll_s
        try:
            due = await self.db.run(Queue.next_due, types)
        except DbDown:
            return cfg.poll_s
        return cfg.idle_poll_s if due is None else max(0.05, min(cfg.idle_poll_s, due + 0.01))

    async def _explain_idle(self, decision: Decision) -> None:
        """Nothing to do among the allowed types: is the work waiting behind a limit?"""
        try:
            have = await self.db.run(Queue.types_with_work, [t for t, _, _ in decision.blocked])
        except DbDown:
            return
        why = decision.blocked_reason(have)
        if why is not None:
            self._idle_reason, self._idle_until = why

    def _look(self) -> None:
        """Wake the claim loop: work may be there (announced, handed back, a lease ran out, a
        limit or the storage changed...)."""
        self._quiet = False
        self._wake.set()

    def _task_ended(self) -> None:
        """A task ended and its slot is free. Look for work, unless the last look found none
        of this agent's types and nothing was announced since: every way a task becomes
        claimable announces it, and a delayed one ends the claim loop's sleep when due. (Each
        task cost an empty claim and a due-time read at its end.)"""
        if not self._quiet or self.config.burst:
            self._wake.set()
        elif not self._running:  # idle now, for the reason the look would have found
            self._idle_reason = "no_work"
            if not self.storage.ok:
                self._idle_reason = f"storage unavailable: {self.storage.error}"

    def _on_claimed(self, claimed: list[ClaimedTask]) -> None:
        for task in claimed:
            self.limiter.claimed(task.type)
            job = asyncio.create_task(self._run_one(task), name=f"task-{task.id}")
            self._running[task.id] = _Running(task, job)
            job.add_done_callback(lambda _: self._task_ended())

    # -- running --------------------------------------------------------------------------
    async def _run_one(self, task: ClaimedTask) -> None:
        entry = self._running[task.id]
        limits = self.config.limits.get(task.type)
        extra = {"task_id": task.id}
        log.debug(  # one line per task at INFO (its end) is enough: each is shipped to the DB
            "task %s (%s) started, attempt %s/%s",
            task.id,
            task.type,
            task.attempts,
            task.max_attempts,
            extra=extra,
        )
        try:
            outcome = await self.executor.run(
                task,
                timeout_s=task.timeout_s,
                rss_limit_mb=limits.rss_limit_mb if limits else None,
                on_progress=lambda f, s: self._progress(entry, f, s),
            )
        except (asyncio.CancelledError, _Abort):
            if entry.lost:
                log.warning(
                    "task %s abandoned: its lease went to another attempt", task.id, extra=extra
                )
            elif entry.cancel_requested:
                self.outbox.ack_cancel(task)
            else:
                entry.handed_back = True
                self.outbox.release(task)
        except Exception as exc:
            log.exception("task %s could not run", task.id, extra=extra)
            self.outbox.fail(task, Failure(type(exc).__name__, str(exc), traceback.format_exc()))
        else:
            self._record(task, outcome)
        finally:
            # the claim loop is woken by the job's done callback (_on_claimed): waking it here
            # too made it claim twice for every task that ended, the second time for nothing
            self._running.pop(task.id, None)
            self.limiter.finished(task.type)

    def _record(self, task: ClaimedTask, outcome: Outcome) -> None:
        if outcome.kind == "done":
            self.outbox.complete(task, outcome.result, outcome.staged)
            self._done_this_run += 1
            self._count_done_today()
            # DEBUG, like "started": the task row says it; at INFO a busy agent shipped a log
            # row per task to the database
            log.debug("task %s (%s) succeeded", task.id, task.type, extra={"task_id": task.id})
            return
        retryable = outcome.retryable
        self.outbox.fail(
            task,
            Failure(
                outcome.error_type or outcome.kind,
                outcome.message or outcome.kind,
                outcome.traceback,
                retryable,
                outcome.retry_after_s,
            ),
        )

    def _count_done_today(self) -> None:
        today = self.config.clock().date()
        if today != self._today:
            self._today, self._done_today = today, 0
        self._done_today += 1

    async def _progress(self, entry: _Running, fraction: float, stage: str | None) -> None:
        now = time.monotonic()
        if fraction != entry.progress or stage != entry.stage:
            entry.progress_moved_at = now
        entry.progress, entry.stage = fraction, stage
        if fraction < 1.0 and now - entry.progress_sent_at < self.config.progress_interval_s:
            return
        entry.progress_sent_at = now
        try:
            state = await self.db.run(Queue.progress, entry.task, fraction, stage)
        except DbDown:
            return  # keep running; the next report or the heartbeat will tell
        if not state.held:
            entry.lost = True
            raise _Abort("lease lost")
        if state.cancel_requested:
            entry.cancel_requested = True
            raise _Abort("cancelled by the operator")

    # -- obeying --------------------------------------------------------------------------
    async def _check_commands(self) -> None:
        rows = await self.db.sql(fleet.pending_commands, self.config.host)
        if not rows:
            return
        outcomes = []
        for row in rows:
            cid, command, args = int(row["id"]), str(row["command"]), dict(row["args"] or {})
            outcomes.append((cid, command, self._obey(cid, command, args, row["created_at"])))
        # Beat before acknowledging: once the CLI hears "acknowledged", `status` already shows
        # the new state (drained, online, draining, new task types).
        load = await self._sample_load()
        hb = self._heartbeat(self._state(), load)
        if self._reregister:  # the host row shows the new task types
            self._reregister = False
            await self.db.sql(fleet.register, hb)
        else:
            await self.db.sql(fleet.send_heartbeat, hb)
        for cid, command, outcome in outcomes:
            await self.db.sql(fleet.ack_command, cid, outcome)
            log.info("command %s: %s", command, outcome)

    def _obey(self, cid: int, command: str, args: dict[str, Any], created_at: datetime) -> str:
        if command in ("stop", "restart") and created_at < self._started_at:
            return "ignored: sent before this agent started"
        deadline_s = args.get("deadline_s")
        if command == "drain":
            self._start_drain(deadline_s)
            self._drain_commands.append(cid)
            return "draining" + (f" (deadline {deadline_s:g} s)" if deadline_s else "")
        if command == "undrain":
            self._draining = False
            self._drain_deadline = None
            self._look()
            self._exit_commands.append(cid)
            return "online"
        if command == "restart":
            self._restart = True
            self._exit_commands.append(cid)
            self.config.grace_s = float(deadline_s) if deadline_s else self.config.grace_s
            self.request_stop()
            return "restarting"
        if command == "stop":
            self._exit_commands.append(cid)
            self.request_stop()
            return "stopping"
        if command == "configure":
            return self._configure(args)
        return f"ignored: unknown command {command!r}"

    def _configure(self, args: dict[str, Any]) -> str:
        """New enabled task types and/or concurrency, applied at once (running tasks finish)."""

        tasks = args.get("enabled_tasks")
        if tasks is not None:
            unknown = [t for t in tasks if not tasktypes.is_known(t)]
            if unknown:
                return f"ignored: unknown task types {unknown}"
            self.config.enabled_tasks = tuple(tasks)
        conc = args.get("max_concurrent_tasks")
        if conc is not None:
            if int(conc) < 1:
                return "ignored: max_concurrent_tasks must be at least 1"
            self.config.max_concurrent = int(conc)
        self._reregister = True
        self._look()
        return (
            f"configured: {','.join(self.config.enabled_tasks)}; "
            f"max {self.config.max_concurrent} at once"
        )

    def _start_drain(self, deadline_s: float | None) -> None:
        self._draining = True
        self._drain_deadline = time.monotonic() + float(deadline_s) if deadline_s else None
        self._look()

    def _check_drain_deadline(self) -> None:
        if self._drain_deadline is None or time.monotonic() < self._drain_deadline:
            return
        self._drain_deadline = None
        if self._running:
            log.warning(
                "drain deadline passed: handing %d running task(s) back to the queue",
                len(self._running),
            )
            for entry in list(self._running.values()):
                entry.job.cancel()

    # -- side tasks -----------------------------------------------------------------------
    async def _listener(self) -> None:
        """LISTEN for new work, cancels and commands; reconnects on its own after an outage."""
        delay = 0.5
        while True:
            try:
                # an agent's connection: keepalives both ways, so a partition ends it in ~20 s
                conn = await db.connect(self.db.url, timeout_s=5, agent=True)
            except (psycopg.Error, ContentctlError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            try:
                # once listening, anything enqueued while we were not is looked for
                channels = [CHANNEL, fleet.COMMAND_CHANNEL]
                async for note in db.listen(conn, channels, listening=self._now_listening):
                    if note.channel == fleet.COMMAND_CHANNEL:
                        if note.payload == self.config.host:
                            self._poke.set()
                    elif note.payload == "cancel":
                        self._poke.set()
                    else:
                        self._heard(note.payload)
            except psycopg.Error:
                pass
            finally:
                self._listening = False
                with contextlib.suppress(Exception):
                    await conn.close()

    def _heard(self, payload: str) -> None:
        """Work announced: claim now if this agent is first for it, later if it is ranked
        after others (unless they answer first), never for types it does not run."""
        if payload.startswith("c "):
            self._wakeups.answered(payload)
            return
        if payload == "p":  # a peer joined, left or changed its state or types
            self._peers_changed()
            return
        if payload.startswith("x "):  # a first rank passed: this one may be next
            if self._wakeups.passed(payload):
                self._answer_now(payload.split(" ", 2)[1])
            return
        if not payload.startswith("t "):  # an older head's announcement, or a retry
            self._look()
            return
        heard = self._wakeups.heard(payload, self.config.enabled_tasks)
        if heard is None:
            return
        wait, key = heard
        if wait <= 0:
            self._answer_now(payload.split(" ", 2)[1])
        else:
            asyncio.get_running_loop().call_later(wait, self._wake_if_pending, key)

    def _answer_now(self, xid: str) -> None:
        """This agent is first for an announcement: claim, or pass it on at once when it
        cannot (full, draining) so that the next rank need not wait its step."""
        full = len(self._running) >= self.config.max_concurrent
        if (full or self._draining) and self._listening and self.db.up.is_set():
            job = asyncio.create_task(self._pass_on(xid))
            self._side_jobs.add(job)
            job.add_done_callback(self._side_jobs.discard)
        else:
            self._look()

    async def _pass_on(self, xid: str) -> None:
        with contextlib.suppress(DbDown):
            await self.db.sql(fleet.pass_on, xid, self.config.host)

    def _wake_if_pending(self, key: int) -> None:
        if self._wakeups.pending(key):  # nobody ahead answered it: this rank's turn
            self._look()

    def _now_listening(self) -> None:
        self._listening = True
        self._look()
        self._peers_changed()  # peers may have come and gone while it was not listening

    def _peers_changed(self) -> None:
        """Ask who is live at the next beat (forced), and again if this comes during one."""
        self._peers_at = float("-inf")
        self._peers_news += 1

    async def _heartbeat_loop(self) -> None:
        """Every heartbeat_s, or at once when poked (a cancel or a command was announced)."""
        beats = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.heartbeat_s):
                    await self._poke.wait()
            poked = self._poke.is_set()
            self._poke.clear()
            try:
                await self._check_storage()
                # a beat not written learned nothing: nothing to do, the storage id kept
                reply = await self._heartbeat_once(renew_all=poked) or fleet.BeatReply(
                    storage_id=self._storage_id
                )
                self._storage_id = reply.storage_id  # `storage init` may run any time
                if reply.commands_waiting:
                    # its own task: a stop it obeys must not cancel its acknowledgement
                    self._commands_job = asyncio.create_task(self._check_commands())
                    await asyncio.shield(self._commands_job)
                if self._draining and not self._running and self._drain_commands:
                    done, self._drain_commands = self._drain_commands, []
                    await self.db.sql(fleet.command_done, done)
                beats += 1
                if reply.schedules_due:
                    await self.db.sql(schedules.tick)  # due recurring work, once fleet-wide
                if reply.sweep_due or self._resweep_due():
                    await self._sweep()
                if reply.expired_claimable:
                    self._look()  # another host's lease ran out on work we run: take it
                if beats % REAP_EVERY == 1:
                    await self.executor.reap_idle()
            except DbDown:
                continue
            except Exception:
                log.exception("heartbeat failed")

    def _resweep_due(self) -> bool:
        """Leases this agent marked orphaned come to the end of their grace: look again then,
        beat written or not (an idle fleet writes a beat once a minute per agent)."""
        return self._resweep_at is not None and time.monotonic() >= self._resweep_at

    async def _sweep(self) -> None:
        grace = self.config.lease_grace_s
        done = await self.db.run(Queue.sweep, grace_s=grace)
        if done.orphaned:
            self._resweep_at = time.monotonic() + grace + 0.5
        elif self._resweep_due():
            self._resweep_at = None

    def _new_session(self) -> None:
        """A new database session (start-up, or back after an outage): its key must be on the
        host's beat and on every lease at once, before a sweep takes the old key's as dead."""
        self._poke.set()

    def _state(self) -> str:
        if self._draining:
            return "draining" if self._running else "drained"
        return "draining" if self.stop_event.is_set() else "online"

    def _heartbeat(self, state: str, load: dict[str, Any]) -> fleet.Heartbeat:
        cfg = self.config
        now = time.monotonic()
        idle = self._idle_reason
        body: dict[str, Any] = {
            "load": load,
            "counters": {"done_this_run": self._done_this_run, "done_today": self._done_today},
            "idle_reason": None if self._running and idle == "no_work" else idle,
            "idle_until": self._idle_until.isoformat() if self._idle_until else None,
            "storage": self.storage.doc(),
            "uptime_s": round(now - self._started),
            "running": [
                {
                    "id": e.task.id,
                    "type": e.task.type,
                    "progress": e.progress,
                    "stage": e.stage,
                    "stalled": self._stalled(e, now),
                }
                for e in self._running.values()
            ],
            "outbox": len(self.outbox),
            "task_processes": len(self.executor.children()),
            "db_outages": self.db.outages,
            "last_restart": self._last_restart,
            "peers": len(self._wakeups.peers),  # the live agents it ranks itself among
        }
        return fleet.Heartbeat(
            name=cfg.host,
            address=cfg.address,
            agent_state=state,
            agent_version=__version__,
            code_hash=self._code_hash,
            pid=os.getpid(),
            started_at=self._started_at,
            enabled_tasks=list(cfg.enabled_tasks),
            declared=cfg.declared,
            body=body,
            session_key=self.db.session_key,
        )

    async def _heartbeat_once(
        self, state: str | None = None, *, renew_all: bool = False
    ) -> fleet.BeatReply | None:
        """Beat, with the lease renewals that are due on the same round trip; None when
        nothing changed and the last write is fresh (no statement at all)."""
        load = await self._sample_load()
        hb = self._heartbeat(state or self._state(), load)
        if state is not None:  # the last word
            await self.db.sql(fleet.send_heartbeat, hb)
            return None
        now = time.monotonic()
        pending = self.outbox.pending_tokens()  # results not written yet keep their leases
        # leases renewed under an older session (before an outage) carry its key: a sweep
        # would take them for a dead agent's
        renew_all = renew_all or self._leases_session != hb.session_key
        peers = now - self._peers_at >= PEERS_EVERY_S
        news = self._peers_news
        must = renew_all or bool(pending) or bool(self._leases_due(now, ride_along=False))
        must = must or self._peers_at == float("-inf")  # the fleet changed: learn it now
        if not self._beat_gate.due(hb, force=must):
            return None
        due = self._leases_due(now, ride_along=True, renew_all=renew_all)
        reply = await self.db.sql(
            fleet.beat,
            hb,
            renew=[e.task.token for e in due] + pending,
            lease_s=self.config.lease_s,
            peers=peers,
        )
        if reply.peers is not None:
            self._wakeups.set_peers(reply.peers)
            if news == self._peers_news:  # else a peer changed while it was asked: ask again
                self._peers_at = now
        self._leases_answered(due, reply.leases, now)
        self._leases_session = hb.session_key
        return reply

    def _leases_due(
        self, now: float, *, ride_along: bool, renew_all: bool = False
    ) -> list[_Running]:
        """Leases are renewed once half of them has passed (at once when a cancel was
        announced or the session is new), not at every beat: renewals are logged writes,
        heartbeats are not. A beat written anyway takes along the leases of which a third has
        passed, so that renewals seldom cost a round trip of their own: with the defaults (150 s
        lease, a touch every minute) one a minute, riding on the touch, and a renewal can fail
        twice before the lease runs out."""
        part = self.config.lease_s / (3 if ride_along else 2)
        return [e for e in self._running.values() if renew_all or now - e.renewed_at >= part]

    def _leases_answered(
        self, due: list[_Running], states: dict[uuid.UUID, LeaseState], now: float
    ) -> None:
        for e in due:
            st = states.get(e.task.token)
            if st is None:
                continue
            if st.held:
                e.renewed_at = now
            if not st.held and not e.lost and e.task.id in self._running:
                log.warning(
                    "task %s: lease lost; abandoning this attempt",
                    e.task.id,
                    extra={"task_id": e.task.id},
                )
                e.lost = True
                e.job.cancel()
            elif st.cancel_requested and not e.cancel_requested:
                log.info(
                    "task %s: cancelled by the operator", e.task.id, extra={"task_id": e.task.id}
                )
                e.cancel_requested = True
                e.job.cancel()

    def _stalled(self, entry: _Running, now: float) -> bool:
        limits = self.config.limits.get(entry.task.type)
        if limits is None or not limits.stall_after_s:
            return False
        return now - entry.progress_moved_at > limits.stall_after_s

    async def _ship_logs_loop(self) -> None:
        shipments = 0
        while True:
            await asyncio.sleep(LOG_SHIP_INTERVAL_S)
            try:
                if await self._ship_logs():
                    shipments += 1
                    if shipments % LOG_PRUNE_EVERY == 1:
                        await self.db.sql(fleet.prune_logs, self.config.host)
            except DbDown:
                continue
            except Exception:
                logging.getLogger("agent.logs").debug("log shipping failed", exc_info=True)

    async def _ship_logs(self) -> bool:
        if self._log_buffer is None:
            return False
        records = self._log_buffer.take()
        if not records:
            return False
        try:
            await self.db.sql(fleet.insert_logs, self.config.host, records)
        except DbDown:
            self._log_buffer.give_back(records)
            raise
        return True

    # -- shutdown -------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        jobs = [e.job for e in self._running.values()]
        if jobs:
            log.info("waiting up to %.0f s for %d running task(s)", self.config.grace_s, len(jobs))
            _, pending = await asyncio.wait(jobs, timeout=self.config.grace_s)
            for job in pending:
                job.cancel()  # _run_one hands the task back
            await asyncio.gather(*pending, return_exceptions=True)
        if not await self.outbox.flushed(timeout_s=max(5.0, self.config.grace_s)):
            log.error(
                "%d answer(s) could not be delivered before exit; their leases will expire "
                "and the tasks run again",
                len(self.outbox),
            )


def config_from_inventory(
    host: str,
    inventory: Any,
    *,
    overrides: dict[str, Any] | None = None,
    types: Iterable[str] | None = None,
) -> AgentConfig:
    """The agent's settings from the inventory (its host entry and `worker_limits`); its
    `command` types and stages become the ones this process knows."""

    inventory.use()
    spec = inventory.host(host)
    limits = {t: TypeLimits.from_config(raw) for t, raw in inventory.worker_limits.items()}
    cfg = AgentConfig(
        host=host,
        enabled_tasks=tuple(types) if types else (spec.enabled_tasks if spec else known()),
        max_concurrent=spec.max_concurrent_tasks if spec else 1,
        address=spec.address if spec else None,
        declared=spec is not None,
        policies=dict(inventory.task_types),
        limits=limits,
        task_settings={
            **task_settings(inventory.pipeline, spec.transcribe if spec else {}),
            "commands": {t.name: {"argv": list(t.command)} for t in inventory.custom_types},
        },
    )
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


def task_settings(pipeline: dict[str, Any], host_transcribe: dict[str, Any]) -> dict[str, Any]:
    """What the pipeline handlers need from the inventory: the fleet's `pipeline` block with
    this host's `transcribe` overrides (a bigger model on a GPU box)."""
    return {
        "transcribe": {**(pipeline.get("transcribe") or {}), **host_transcribe},
        "translate": dict(pipeline.get("translate") or {}),
        "allow_private_networks": bool(pipeline.get("allow_private_networks", False)),
        "ytdlp": dict(pipeline.get("ytdlp") or {}),
    }
