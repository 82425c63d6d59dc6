"""The agent's beat (a side task): every heartbeat_s, or at once when poked, it checks the
storage root (bounded: a hung NAS holds a thread, never the loop), writes the heartbeat when
something changed or the last one is getting old, renews the leases that are due on the same
round trip, notices leases lost or cancels asked for, and does what the beat's answer says is
due: commands, the fleet's schedules, the sweep of leases whose agents are gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from agent.bounded import Bounded, Stuck
from agent.dbconn import AgentDb, DbDown
from agent.executor import Executor
from agent.load import LoadSampler
from agent.nas import Mounter
from agent.outbox import Outbox
from agent.state import AgentState, Running
from agent.wakeup import Wakeups
from control import __version__
from control.core import codehash, fleet, schedules, storage_health
from control.core.queue import LeaseState, Queue
from control.core.readmodels import HeartbeatBody, RunningTask

log = logging.getLogger("agent.runner")

# heartbeats between two looks for idle task processes to stop (local, no statement). Due
# schedules, expired leases and the fleet's storage id come back with the written heartbeat.
REAP_EVERY = 60
PEERS_EVERY_S = 60.0  # how often a written beat asks which peers are live (agent/wakeup.py)
STORAGE_CHECK_S = 5.0  # a storage check that takes longer reports the storage as unavailable
DISK_PROBE_S = 2.0  # the heartbeat's free-space reading waits this long for the storage root


class Beat:
    def __init__(
        self,
        state: AgentState,
        db: AgentDb,
        executor: Executor,
        outbox: Outbox,
        wakeups: Wakeups,
        mounter: Mounter | None,
    ) -> None:
        self.s = state
        self.db = db
        self.executor = executor
        self.outbox = outbox
        self.wakeups = wakeups
        self.mounter = mounter
        self.on_commands: Callable[[], Coroutine[Any, Any, None]] | None = None  # obeying.py
        self.commands_job: asyncio.Task[None] | None = None
        self._load = LoadSampler(state.config.storage_root)
        # the storage root's probes: a hung NAS holds their own thread, never the loop's pool
        self._disk_probe: Bounded[float | None] = Bounded("disk-free", DISK_PROBE_S)
        self._storage_probe: Bounded[storage_health.Health] = Bounded(
            "storage-check", STORAGE_CHECK_S
        )
        self._gate = fleet.BeatGate()
        self._leases_session: int | None = None  # the session key the leases last got
        self._resweep_at: float | None = None  # when leases it saw orphaned end their grace
        self._peers_at = float("-inf")  # when a beat last brought the live peers
        self._peers_news = 0  # peers-changed notes heard (one during a beat: ask again)
        self._code_hash = codehash.code_hash()

    @property
    def code_hash(self) -> str:
        return self._code_hash

    async def run(self) -> None:
        """Every heartbeat_s, or at once when poked (a cancel or a command was announced)."""
        s = self.s
        beats = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.config.heartbeat_s):
                    await s.poke.wait()
            poked = s.poke.is_set()
            s.poke.clear()
            try:
                await self.check_storage()
                # a beat not written learned nothing: nothing to do, the storage id kept
                reply = await self.once(renew_all=poked) or fleet.BeatReply(storage_id=s.storage_id)
                s.storage_id = reply.storage_id  # `storage init` may run any time
                if reply.commands_waiting and self.on_commands is not None:
                    # its own task: a stop it obeys must not cancel its acknowledgement
                    self.commands_job = asyncio.create_task(self.on_commands())
                    await asyncio.shield(self.commands_job)
                if s.draining and not s.running and s.drain_commands:
                    done, s.drain_commands = s.drain_commands, []
                    await self.db.sql(fleet.command_done, done)
                beats += 1
                if reply.schedules_due:
                    await self.db.sql(schedules.tick)  # due recurring work, once fleet-wide
                if reply.sweep_due or self._resweep_due():
                    await self._sweep()
                if reply.expired_claimable:
                    s.look()  # another host's lease ran out on work we run: take it
                if beats % REAP_EVERY == 1:
                    await self.executor.reap_idle()
            except DbDown:
                continue
            except Exception:
                log.exception("heartbeat failed")

    # -- the storage root -----------------------------------------------------------------
    async def check_storage(self) -> None:
        """The storage root's health, off the event loop and bounded in time (a hung NAS
        blocks a thread, never the agent). A NAS the inventory names is mounted (again) when
        it is missing, with backoff."""
        health = await self.storage_health()
        if not health.ok and self.mounter is not None and await self.mounter.ensure() is None:
            health = await self.storage_health()  # mounted (or not due yet): look again
        if health.ok != self.s.storage.ok:
            if health.ok:
                log.info("storage available again: %s", self.s.config.storage_root)
            else:
                log.warning("storage unavailable: %s: claiming diagnostic tasks only", health.error)
            self.s.look()
        self.s.storage = health

    async def storage_health(self) -> storage_health.Health:
        root, expected = self.s.config.storage_root, self.s.storage_id
        try:
            return await self._storage_probe.run(lambda: storage_health.check(root, expected))
        except Stuck:
            return storage_health.Health(
                False, f"{root} is not answering", datetime.now(UTC).isoformat(timespec="seconds")
            )

    async def sample_load(self) -> dict[str, Any]:
        """The heartbeat's load: the machine's figures, and the storage root's free space when
        it answers in time (a hung NAS: None, and the beat goes out all the same)."""
        load = await asyncio.to_thread(self._load.sample)
        try:
            load["disk_free_gb"] = await self._disk_probe.run(self._load.disk_free_gb)
        except Stuck:
            load["disk_free_gb"] = None
        return load

    # -- the sweep ------------------------------------------------------------------------
    def _resweep_due(self) -> bool:
        """Leases this agent marked orphaned come to the end of their grace: look again then,
        beat written or not (an idle fleet writes a beat once a minute per agent)."""
        return self._resweep_at is not None and time.monotonic() >= self._resweep_at

    async def _sweep(self) -> None:
        grace = self.s.config.lease_grace_s
        done = await self.db.run(Queue.sweep, grace_s=grace)
        if done.orphaned:
            self._resweep_at = time.monotonic() + grace + 0.5
        elif self._resweep_due():
            self._resweep_at = None

    # -- peers (agent/wakeup.py) ----------------------------------------------------------
    def peers_changed(self) -> None:
        """Ask who is live at the next beat (forced), and again if this comes during one."""
        self._peers_at = float("-inf")
        self._peers_news += 1

    # -- the heartbeat --------------------------------------------------------------------
    def heartbeat(self, state: str, load: dict[str, Any]) -> fleet.Heartbeat:
        s, cfg = self.s, self.s.config
        now = time.monotonic()
        idle = s.idle_reason
        body = HeartbeatBody(
            load=load,
            counters={"done_this_run": s.done_this_run, "done_today": s.done_today},
            idle_reason=None if s.running and idle == "no_work" else idle,
            idle_until=s.idle_until.isoformat() if s.idle_until else None,
            storage=s.storage,
            running=tuple(
                RunningTask(e.task.id, e.task.type, e.progress, e.stage, self._stalled(e, now))
                for e in s.running.values()
            ),
            last_restart=s.last_restart or None,
            extra={
                "uptime_s": round(now - s.started),
                "outbox": len(self.outbox),
                "task_processes": len(self.executor.children()),
                "db_outages": self.db.outages,
                "peers": len(self.wakeups.peers),  # the live agents it ranks itself among
            },
        )
        return fleet.Heartbeat(
            name=cfg.host,
            address=cfg.address,
            agent_state=state,
            agent_version=__version__,
            code_hash=self._code_hash,
            pid=os.getpid(),
            started_at=s.started_at,
            enabled_tasks=list(cfg.enabled_tasks),
            declared=cfg.declared,
            body=body,
            session_key=self.db.session_key,
        )

    async def current(self) -> fleet.Heartbeat:
        """The heartbeat as it stands now (registration, a command's acknowledgement)."""
        return self.heartbeat(self.s.agent_state(), await self.sample_load())

    async def once(
        self, state: str | None = None, *, renew_all: bool = False
    ) -> fleet.BeatReply | None:
        """Beat, with the lease renewals that are due on the same round trip; None when
        nothing changed and the last write is fresh (no statement at all)."""
        load = await self.sample_load()
        hb = self.heartbeat(state or self.s.agent_state(), load)
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
        if not self._gate.due(hb, force=must):
            return None
        due = self._leases_due(now, ride_along=True, renew_all=renew_all)
        reply = await self.db.sql(
            fleet.beat,
            hb,
            renew=[e.task.token for e in due] + pending,
            lease_s=self.s.config.lease_s,
            peers=peers,
        )
        if reply.peers is not None:
            self.wakeups.set_peers(reply.peers)
            if news == self._peers_news:  # else a peer changed while it was asked: ask again
                self._peers_at = now
        self._leases_answered(due, reply.leases, now)
        self._leases_session = hb.session_key
        return reply

    # -- leases ---------------------------------------------------------------------------
    def _leases_due(
        self, now: float, *, ride_along: bool, renew_all: bool = False
    ) -> list[Running]:
        """Leases are renewed once half of them has passed (at once when a cancel was
        announced or the session is new), not at every beat: renewals are logged writes,
        heartbeats are not. A beat written anyway takes along the leases of which a third has
        passed, so that renewals seldom cost a round trip of their own: with the defaults (150 s
        lease, a touch every minute) one a minute, riding on the touch, and a renewal can fail
        twice before the lease runs out."""
        part = self.s.config.lease_s / (3 if ride_along else 2)
        return [e for e in self.s.running.values() if renew_all or now - e.renewed_at >= part]

    def _leases_answered(
        self, due: list[Running], states: dict[uuid.UUID, LeaseState], now: float
    ) -> None:
        for e in due:
            st = states.get(e.task.token)
            if st is None:
                continue
            if st.held:
                e.renewed_at = now
            if not st.held and not e.lost and e.task.id in self.s.running:
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

    def _stalled(self, entry: Running, now: float) -> bool:
        limits = self.s.config.limits.get(entry.task.type)
        if limits is None or not limits.stall_after_s:
            return False
        return now - entry.progress_moved_at > limits.stall_after_s
