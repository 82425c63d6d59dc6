"""The agent's database connection. When PostgreSQL goes away, operations raise `DbDown` at once
(the agent keeps its tasks running and its results in memory) while a background task reconnects
with backoff; `up` is set again when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

import psycopg

from control.core import db, intake
from control.core.errors import ContentctlError, SchemaBehind
from control.core.queue import Queue
from control.core.tasktypes import TypePolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
SCHEMA_WAIT_MAX_S = 30.0


class DbDown(Exception):
    """The database is not reachable right now."""


class AgentDb:
    def __init__(
        self,
        url: str,
        policies: dict[str, TypePolicy] | None = None,
        *,
        resolve: Callable[[], str | None] | None = None,
    ) -> None:
        self.url = url
        self._resolve = resolve  # where the server is now (None: where it was)
        self._policies = policies or {}
        self.up = asyncio.Event()
        self._conn: db.AsyncConn | None = None
        self._queue: Queue | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        # one operation at a time on the connection: two coroutines' transactions would
        # otherwise nest (the heartbeat's schedule tick inside a completion's transaction) and
        # commit out of order
        self._turn = asyncio.Lock()
        self.outages = 0
        # the session key this connection holds (db.hold_session_key): the agent is alive, and
        # its leases held, while the server sees it; a new one after every reconnect
        self.session_key: int | None = None
        self.on_new_session: Callable[[], object] = lambda: None

    async def open(self) -> None:
        """First connection: errors here are the operator's to fix (one line, exit 2). A
        schema older than this code waits for `contentctl db migrate` (a rollout migrating
        the head while agents restart) instead of exiting into its service's restart loop."""
        delay = BACKOFF_MIN_S
        while True:
            try:
                conn = await db.open_url(self.url, migrate_fresh=True, agent=True)
            except SchemaBehind as exc:
                log.warning("%s; waiting for it (retrying in %.0f s)", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, SCHEMA_WAIT_MAX_S)
                continue
            try:
                key = await db.hold_session_key(conn)
            except BaseException:
                await conn.close()
                raise
            self._set(conn, key)
            return

    def _set(self, conn: db.AsyncConn, session_key: int) -> None:
        # An agent runs the same few statements all day: prepare them on first use, so the
        # server plans each once per connection (planning was most of a heartbeat's cost).
        conn.prepare_threshold = 0
        # a claim's types, limit and caps are in its text (one statement per number of free
        # slots, mostly): room for them all next to the rest, so none is evicted and prepared
        # again
        conn.prepared_max = 512
        self._conn = conn
        self.session_key = session_key
        # successes of pipeline stages enqueue the next stage in the same transaction
        self._queue = Queue(
            conn, self._policies, on_complete=intake.on_complete, session=session_key
        )
        self.up.set()
        self.on_new_session()

    @property
    def queue(self) -> Queue:
        if self._queue is None or not self.up.is_set():
            raise DbDown("the database is away")
        return self._queue

    async def run(
        self, op: Callable[Concatenate[Queue, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`op(queue, *args, **kwargs)`; DbDown if the connection is lost (or already down)."""
        queue = self.queue
        try:
            async with self._turn:
                return await op(queue, *args, **kwargs)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if self._conn is not None and not self._conn.broken and not self._conn.closed:
                raise  # a real error on a healthy connection (a timeout, a bad query)
            self._lost(exc)
            raise DbDown(str(exc)) from exc

    async def sql(
        self,
        op: Callable[Concatenate[db.AsyncConn, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`op(connection, *args, **kwargs)` for the fleet functions, with the same care."""

        async def on_conn(queue: Queue) -> T:
            return await op(queue.conn, *args, **kwargs)

        return await self.run(on_conn)

    def _lost(self, exc: BaseException) -> None:
        if not self.up.is_set():
            return
        self.up.clear()
        self.outages += 1
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("database connection lost (%s): tasks keep running, retrying", reason)
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(self._reconnect(), name="db-reconnect")

    async def _reconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        delay = BACKOFF_MIN_S
        while True:
            await self._follow()
            try:
                conn = await db.connect(self.url, timeout_s=5, agent=True)
            except ContentctlError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            try:
                key = await db.hold_session_key(conn)
            except psycopg.Error:  # gone again at once
                with contextlib.suppress(Exception):
                    await conn.close()
                await asyncio.sleep(delay)
                continue
            self._set(conn, key)
            log.info("database connection back")
            return

    async def _follow(self) -> None:
        """Ask where the server is now (an embedded server restarted on another port)."""
        if self._resolve is None:
            return
        try:
            now = await asyncio.to_thread(self._resolve)
        except Exception as exc:
            log.debug("where is the database now? %s", exc)
            return
        if now and now != self.url:
            log.info("the database moved: reconnecting to its new address")
            self.url = now

    async def close(self) -> None:
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self.up.clear()
