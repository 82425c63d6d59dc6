"""The agent obeying its commands (drain, undrain, restart, stop, configure): read when the
beat's answer says some wait, each applied to the shared state, then one beat that shows the
new state, then the acknowledgements (so that a CLI that hears "acknowledged" already sees the
host drained, online, or with its new task types)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agent.beat import Beat
from agent.dbconn import AgentDb
from agent.state import AgentState
from control.core import fleet, tasktypes

log = logging.getLogger("agent.runner")  # the agent's lines keep one logger name


class Obey:
    def __init__(
        self, state: AgentState, db: AgentDb, beat: Beat, request_stop: Callable[[], None]
    ) -> None:
        self.s = state
        self.db = db
        self.beat = beat
        self.request_stop = request_stop

    async def check(self) -> None:
        rows = await self.db.sql(fleet.pending_commands, self.s.config.host)
        if not rows:
            return
        outcomes = []
        for row in rows:
            cid, command, args = int(row["id"]), str(row["command"]), dict(row["args"] or {})
            outcomes.append((cid, command, self.obey(cid, command, args, row["created_at"])))
        # Beat before acknowledging: once the CLI hears "acknowledged", `status` already shows
        # the new state (drained, online, draining, new task types).
        hb = await self.beat.current()
        if self.s.reregister:  # the host row shows the new task types
            self.s.reregister = False
            await self.db.sql(fleet.register, hb)
        else:
            await self.db.sql(fleet.send_heartbeat, hb)
        for cid, command, outcome in outcomes:
            await self.db.sql(fleet.ack_command, cid, outcome)
            log.info("command %s: %s", command, outcome)

    def obey(self, cid: int, command: str, args: dict[str, Any], created_at: datetime) -> str:
        s = self.s
        if command in ("stop", "restart") and created_at < s.started_at:
            return "ignored: sent before this agent started"
        deadline_s = args.get("deadline_s")
        if command == "drain":
            self.start_drain(deadline_s)
            s.drain_commands.append(cid)
            return "draining" + (f" (deadline {deadline_s:g} s)" if deadline_s else "")
        if command == "undrain":
            s.draining = False
            s.drain_deadline = None
            s.look()
            s.exit_commands.append(cid)
            return "online"
        if command == "restart":
            s.restart = True
            s.exit_commands.append(cid)
            s.config.grace_s = float(deadline_s) if deadline_s else s.config.grace_s
            self.request_stop()
            return "restarting"
        if command == "stop":
            s.exit_commands.append(cid)
            self.request_stop()
            return "stopping"
        if command == "configure":
            return self.configure(args)
        return f"ignored: unknown command {command!r}"

    def configure(self, args: dict[str, Any]) -> str:
        """New enabled task types and/or concurrency, applied at once (running tasks finish)."""
        cfg = self.s.config
        tasks = args.get("enabled_tasks")
        if tasks is not None:
            unknown = [t for t in tasks if not tasktypes.is_known(t)]
            if unknown:
                return f"ignored: unknown task types {unknown}"
            cfg.enabled_tasks = tuple(tasks)
        conc = args.get("max_concurrent_tasks")
        if conc is not None:
            if int(conc) < 1:
                return "ignored: max_concurrent_tasks must be at least 1"
            cfg.max_concurrent = int(conc)
        self.s.reregister = True
        self.s.look()
        return f"configured: {','.join(cfg.enabled_tasks)}; max {cfg.max_concurrent} at once"

    def start_drain(self, deadline_s: float | None) -> None:
        self.s.draining = True
        self.s.drain_deadline = time.monotonic() + float(deadline_s) if deadline_s else None
        self.s.look()
