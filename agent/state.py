"""What the agent's parts share: its settings (`AgentConfig`), the tasks it runs (`Running`)
and one small state object (`AgentState`) that the claim loop, the beat, the command
handling and the listener read and write. Each part lives in a module of its own
(agent/claiming.py, beat.py, obeying.py, listening.py); agent/runner.py builds them and
watches them as side tasks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from agent.limits import Clock, TypeLimits, local_now
from agent.nas import NasMount
from control.core import fleet, storage_health
from control.core.queue import LEASE_GRACE_S, ClaimedTask
from control.core.tasktypes import TypePolicy

# An idle agent's longest sleep: new, retried and handed-back work is announced (NOTIFY) and
# delayed work is slept until; this poll only bounds what a lost notification can cost.
IDLE_POLL_S = 30.0
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


class Abort(Exception):
    """Stop running this task: cancelled by the operator, or its lease was taken over."""


@dataclass
class Running:
    """One task this agent runs now."""

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


@dataclass
class AgentState:
    """What the parts share. Events: `stop` (shutdown is a state: claiming stops), `wake`
    (the claim loop: work may be there), `poke` (the beat: renew and read commands now)."""

    config: AgentConfig
    running: dict[int, Running] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    poke: asyncio.Event = field(default_factory=asyncio.Event)
    # the last claim found nothing more of this agent's types, with no cap or limit in the
    # way, and nothing was announced since: a task's end need not look again
    quiet: bool = False
    listening: bool = False  # the listener is LISTENing: announced work wakes the loop
    draining: bool = False
    drain_deadline: float | None = None
    drain_commands: list[int] = field(default_factory=list)  # done once drained
    exit_commands: list[int] = field(default_factory=list)  # done as the agent exits
    restart: bool = False
    reregister: bool = False  # the host row must show new task types
    idle_reason: str | None = None
    idle_until: datetime | None = None
    done_this_run: int = 0
    done_today: int = 0
    today: date | None = None
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # the storage root's health (NAS mounted, the fleet's marker, writable): checked at start
    # and on every heartbeat; while it is bad, only types that need no storage are claimed
    storage: storage_health.Health = field(
        default_factory=lambda: storage_health.Health(True, None, "")
    )
    storage_id: str | None = None
    last_restart: dict[str, Any] = field(default_factory=dict)  # how the previous run ended

    def look(self) -> None:
        """Wake the claim loop: work may be there (announced, handed back, a lease ran out, a
        limit or the storage changed...)."""
        self.quiet = False
        self.wake.set()

    def agent_state(self) -> str:
        """online, draining, drained: what the host row says."""
        if self.draining:
            return "draining" if self.running else "drained"
        return "draining" if self.stop.is_set() else "online"

    def full(self) -> bool:
        return len(self.running) >= self.config.max_concurrent

    def storage_idle_reason(self) -> str:
        return f"storage unavailable: {self.storage.error}"
