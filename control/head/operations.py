"""The head's long-running duties, in `contentctl metrics serve`: the Prometheus endpoint, the
alert rules every `alerts.every_s` (30 s), and the daily prune (claimed once per day fleet-wide,
so two heads never both run it). Each duty's failure is logged and retried on its next turn;
none stops the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from control.core import db, retention
from control.core.inventory import Inventory
from control.core.redact import first_line
from control.head import alerts

log = logging.getLogger(__name__)

PRUNE_CHECK_S = 3600.0  # the day's prune is tried hourly (it runs once a day)


async def duties(
    connect: Callable[[], Awaitable[db.AsyncConn]],
    inventory: Inventory,
    storage_root: Path | None,
    stop: asyncio.Event,
    *,
    run_alerts: bool = True,
    run_prune: bool = True,
) -> None:
    every = float(alerts.config(inventory)["every_s"])
    conn: db.AsyncConn | None = None
    next_prune = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():

        async def turn() -> None:
            nonlocal conn, next_prune
            if conn is None or conn.closed or conn.broken:
                conn = await connect()
            if run_alerts:
                await alerts.evaluate(conn, inventory)
                await alerts.deliver(conn, inventory)
            if run_prune and loop.time() >= next_prune:
                next_prune = loop.time() + PRUNE_CHECK_S
                rep = await retention.run_daily(conn, inventory.retention, storage_root)
                if rep is not None:
                    log.info("daily prune: %s", rep.as_dict())

        # a turn races the stop: a signal ends the process within seconds, whatever a
        # webhook or a prune batch is doing (the turn is cancelled; what it wrote is its own)
        work = asyncio.create_task(turn(), name="head-duties")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([work, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            break
        exc = work.exception()
        if exc is not None:  # a duty's failure waits for its next turn
            log.warning("head duties: %s: %s", type(exc).__name__, first_line(exc))
            if conn is not None and (conn.closed or conn.broken):
                conn = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
    if conn is not None:
        await conn.close()
