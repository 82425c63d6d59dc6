"""The agent's listener (a side task): LISTEN for announced work, cancels and commands on a
connection of its own, reconnecting after an outage. Work announced is answered by rank
(agent/wakeup.py): at once when this agent is first for it, after its rank's step otherwise
(unless the claim of one ahead says nothing is left), never for types it does not run."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from agent.beat import Beat
from agent.dbconn import AgentDb, DbDown
from agent.state import AgentState
from agent.wakeup import Wakeups
from control.core import db, fleet
from control.core.errors import ContentctlError
from control.core.queue import CHANNEL

log = logging.getLogger("agent.runner")  # the agent's lines keep one logger name


class Listener:
    def __init__(self, state: AgentState, db: AgentDb, wakeups: Wakeups, beat: Beat) -> None:
        self.s = state
        self.db = db
        self.wakeups = wakeups
        self.beat = beat
        self._side_jobs: set[asyncio.Task[None]] = set()  # passes on (held till they end)

    async def run(self) -> None:
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
                        if note.payload == self.s.config.host:
                            self.s.poke.set()
                    elif note.payload == "cancel":
                        self.s.poke.set()
                    else:
                        self.heard(note.payload)
            except psycopg.Error:
                pass
            finally:
                self.s.listening = False
                with contextlib.suppress(Exception):
                    await conn.close()

    def heard(self, payload: str) -> None:
        """Work announced: claim now if this agent is first for it, later if it is ranked
        after others (unless they answer first), never for types it does not run."""
        if payload.startswith("c "):
            self.wakeups.answered(payload)
            return
        if payload == "p":  # a peer joined, left or changed its state or types
            self.beat.peers_changed()
            return
        if payload.startswith("x "):  # a first rank passed: this one may be next
            if self.wakeups.passed(payload):
                self._answer_now(payload.split(" ", 2)[1])
            return
        if not payload.startswith("t "):  # an older head's announcement, or a retry
            self.s.look()
            return
        heard = self.wakeups.heard(payload, self.s.config.enabled_tasks)
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
        s = self.s
        if (s.full() or s.draining) and s.listening and self.db.up.is_set():
            job = asyncio.create_task(self._pass_on(xid))
            self._side_jobs.add(job)
            job.add_done_callback(self._side_jobs.discard)
        else:
            s.look()

    async def _pass_on(self, xid: str) -> None:
        with contextlib.suppress(DbDown):
            await self.db.sql(fleet.pass_on, xid, self.s.config.host)

    def _wake_if_pending(self, key: int) -> None:
        if self.wakeups.pending(key):  # nobody ahead answered it: this rank's turn
            self.s.look()

    def _now_listening(self) -> None:
        self.s.listening = True
        self.s.look()
        self.beat.peers_changed()  # peers may have come and gone while it was not listening
