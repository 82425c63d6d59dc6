"""The agent: one asyncio loop, its parts watched as side tasks, one stop event.

The parts share one small state object (agent/state.py): the claim loop and the tasks it runs
(agent/claiming.py), the beat (agent/beat.py: heartbeat, lease renewal, stall and storage
checks, schedules and the sweep), the commands it obeys (agent/obeying.py), the listener
(agent/listening.py), the outbox (agent/outbox.py) and the log shipper (here). Signals set the
stop; shutdown is a state, not an exception: claiming stops, running tasks get a grace period,
then whatever still runs is handed back to the queue without burning an attempt. When
PostgreSQL goes away the tasks keep running, their answers wait in the outbox, and everything
resumes when it is back. A side task that dies is logged and started again (procrastinate's
worker watches its side tasks the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from agent import restarts
from agent.beat import Beat
from agent.claiming import Claimer
from agent.dbconn import AgentDb, DbDown
from agent.executor import Executor
from agent.limits import Limiter, TypeLimits
from agent.listening import Listener
from agent.logs import DatabaseBuffer
from agent.nas import Mounter
from agent.obeying import Obey
from agent.outbox import Outbox
from agent.state import LEASE_S, AgentConfig, AgentState
from agent.wakeup import Wakeups
from control.core import fleet, storage_health
from control.core.queue import Queue
from control.core.redact import first_line
from control.core.tasktypes import known

__all__ = ["LEASE_S", "Agent", "AgentConfig", "config_from_inventory", "task_settings"]

log = logging.getLogger(__name__)

LOG_SHIP_INTERVAL_S = 1.0
LOG_PRUNE_EVERY = 60  # shipments
SIDE_RESTART_MIN_S = 0.5  # a side task that died starts again after this, doubling
SIDE_RESTART_MAX_S = 30.0
SIDE_STOP_S = 5.0  # how long the stop waits for a cancelled side task


class Agent:
    def __init__(
        self, config: AgentConfig, url: str, log_buffer: DatabaseBuffer | None = None
    ) -> None:
        self.config = config
        self.state = AgentState(config)
        self.db = AgentDb(url, config.policies, resolve=config.resolve_url)
        self.db.on_new_session = self.state.poke.set  # the new key on the beat and the leases
        self.limiter = Limiter(config.host, config.limits, config.clock)
        self.executor = Executor(
            settings={
                **config.task_settings,
                "storage_root": str(config.storage_root),
                "host": config.host,
            }
        )
        self.outbox = Outbox(self.db)
        # which announcements this agent answers, and when (one agent per task, not all)
        wakeups = Wakeups(config.host)
        self.mounter = (
            Mounter(config.nas, config.nas_credentials or config.storage_root / ".nas.cred")
            if config.nas is not None
            else None
        )
        self.beat = Beat(self.state, self.db, self.executor, self.outbox, wakeups, self.mounter)
        self.obey = Obey(self.state, self.db, self.beat, self.request_stop)
        self.beat.on_commands = self.obey.check
        self.claimer = Claimer(
            self.state, self.db, self.limiter, self.executor, self.outbox, wakeups
        )
        self.listening = Listener(self.state, self.db, wakeups, self.beat)
        self._listener: Callable[[], Awaitable[None]] = self.listening.run
        self._storage_health = self.beat.storage_health
        self._log_buffer = log_buffer
        self.side_restarts: dict[str, int] = {}  # side task -> times it was started again

    @property
    def stop_event(self) -> asyncio.Event:
        return self.state.stop

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self) -> int:
        s = self.state
        s.last_restart = restarts.begin(self.config.run_marker)
        await self.db.open()
        await self._load_state()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        side = [self._watched("outbox", self.outbox.run)]
        side.append(self._watched("heartbeat", self.beat.run))
        if self.config.listen:
            side.append(self._watched("listener", self._listener))
        if self._log_buffer is not None:
            side.append(self._watched("logs", self._ship_logs_loop))
        log.info(
            "agent %s started (pid %s, code %s, types %s, concurrency %s)",
            self.config.host,
            os.getpid(),
            self.beat.code_hash,
            ",".join(self.config.enabled_tasks),
            self.config.max_concurrent,
        )
        try:
            await self.db.sql(fleet.register, await self.beat.current())
            await self.claimer.run()
            await self._shutdown()
        finally:
            job = self.beat.commands_job
            if job is not None and not job.done():
                # a stop or restart being acknowledged: let the acknowledgement go out first
                await asyncio.wait([job], timeout=5.0)
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
                ("last heartbeat", lambda: self.beat.once(state="stopped")),
                (
                    "marking commands done",
                    lambda: self.db.sql(fleet.command_done, s.exit_commands),
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
        if s.restart and self.config.restart_argv:
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
        s = self.state
        if not s.stop.is_set():
            log.info("stop requested: no new claims, %d task(s) running", len(s.running))
        s.stop.set()
        s.look()

    async def _load_state(self) -> None:
        s, cfg = self.state, self.config
        day = cfg.clock().date()
        midnight = cfg.clock().replace(hour=0, minute=0, second=0, microsecond=0)

        async def read(q: Queue) -> tuple[dict[str, int], int, bool, datetime]:
            counts = await fleet.daily_counts(q.conn, cfg.host, day)
            done = await fleet.done_since(q.conn, cfg.host, midnight)
            drained = await fleet.drain_requested(q.conn, cfg.host)
            cur = await q.conn.execute("SELECT now() AS now")
            row = await cur.fetchone()
            return counts, done, drained, row["now"] if row else datetime.now(UTC)  # type: ignore[return-value]

        s.today = day
        counts, s.done_today, drained, s.started_at = await self.db.run(read)
        s.storage_id = await self.db.sql(storage_health.fleet_storage_id)
        await self.beat.check_storage()
        self.limiter.load_daily(counts, day)
        if drained:
            log.info("this host is drained (contentctl agent undrain %s to resume)", cfg.host)
            s.draining = True

    # -- the log shipper (a side task) ----------------------------------------------------
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
        jobs = [e.job for e in self.state.running.values()]
        if jobs:
            log.info("waiting up to %.0f s for %d running task(s)", self.config.grace_s, len(jobs))
            _, pending = await asyncio.wait(jobs, timeout=self.config.grace_s)
            for job in pending:
                job.cancel()  # the task is handed back (agent/claiming.py)
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
