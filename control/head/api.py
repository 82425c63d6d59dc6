"""What the dashboard asks of the control plane, in one object: `ControlPlane`.

The dashboard (tui/) holds no SQL and no SSH: it calls these methods from its async workers.
Every method either answers or raises `Unavailable` with a one-line reason when the database
cannot be reached; the next call reconnects, so the dashboard just keeps asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import psycopg

from control.core import audit, db, fleet, intake, schedules
from control.core.codehash import code_hash
from control.core.errors import ContentctlError
from control.core.inventory import HostSpec, Inventory, load
from control.core.queue import Queue
from control.core.readmodels import FleetSnapshot, MediaView
from control.core.redact import first_line, shown
from control.core.settings import DatabaseTarget, storage_root
from control.core.sql import q
from control.head import agents, database, dbserve, media, status, views
from control.head.inventory_edit import set_host
from provisioning import session
from provisioning.session import agent_over_ssh, ssh_for

log = logging.getLogger(__name__)

THROUGHPUT_MINUTES = 15
# the fleet screen's throughput line moves by the minute: read every few seconds, not each refresh
THROUGHPUT_EVERY_S = 5.0
COMMAND_TIMEOUT_S = 10.0


class Unavailable(ContentctlError):
    """The database cannot be reached right now."""


@dataclass(frozen=True)
class TaskQuery:
    state: str | None = None
    type: str | None = None
    host: str | None = None
    text: str | None = None
    sort: str = "newest"  # newest | oldest | priority
    offset: int = 0
    limit: int = 100


def head_code_hash() -> str:
    """The code hash this machine's agent would report (hosts that differ run stale code)."""

    return code_hash()


P = ParamSpec("P")
T = TypeVar("T")
BULK_MAX = 10_000  # tasks one dashboard bulk action may touch


VIEWER_ROLE = "contentctl_viewer"  # migration 0020: reads everything, writes nothing


class ReadOnly(ContentctlError):
    """An action asked of a read-only session (the dashboard hides them: a bug if seen)."""


class ControlPlane:
    def __init__(
        self,
        target: DatabaseTarget,
        inventory: Inventory,
        *,
        read_only: bool = False,
        via: str = "dashboard",
        client: str | None = None,
    ) -> None:
        """`read_only`: no action at all, and the connection runs as the viewer role (the
        database refuses any write too). `via` and `client` go into every action's audit row
        (`web` and the browser's address for a session served by `contentctl web`)."""
        self.read_only = read_only
        self.via = via
        self.client = client
        self.target = target
        self.inventory = inventory.use()  # its command types and stages: the dashboard's too
        self.storage_root: Path | None = None
        self._conn: db.AsyncConn | None = None
        self._lock = asyncio.Lock()
        self.label = (db.redact(target.url) if target.url else "embedded") + (
            " (read-only)" if read_only else ""
        )
        self.code_hash: str | None = head_code_hash()
        self.hosts_view = status.HostsView()  # the fleet screen reads only what changed
        self._throughput: tuple[list[int], float] | None = None  # per minute, and when read

    async def _connection(self) -> db.AsyncConn:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = await database.open_database(self.target, declare=not self.read_only)
            if self.read_only:
                await self._become_viewer(conn)
        except (psycopg.Error, OSError, ContentctlError) as exc:
            raise Unavailable(f"database unreachable: {first_line(exc)}") from None
        self._conn = conn
        return conn

    @staticmethod
    async def _become_viewer(conn: db.AsyncConn) -> None:
        try:
            await conn.execute(f"SET ROLE {VIEWER_ROLE}")
        except psycopg.Error as exc:
            await conn.close()
            raise ContentctlError(
                f"read-only session: cannot become {VIEWER_ROLE} ({first_line(exc)}): run "
                "`contentctl db migrate` as a role that may create roles"
            ) from None

    async def _run(
        self,
        fn: Callable[Concatenate[db.AsyncConn, P], Awaitable[T]],
        *args: P.args,
        **kw: P.kwargs,
    ) -> T:
        """Call `fn(conn, ...)`; a broken connection is dropped and reported as Unavailable.
        What it returns reaches a screen: every string in it is made visible (`shown`), so no
        title, error, name or log line from outside can drive the operator's terminal."""
        async with self._lock:
            conn = await self._connection()
            try:
                return cast(T, shown(await fn(conn, *args, **kw)))
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                await self._drop()
                raise Unavailable(f"database unreachable: {first_line(exc)}") from None
            except psycopg.Error as exc:
                # anything else the server said (a deadlock, a lock timeout, a statement
                # cancelled): the dashboard reports it and asks again; it never crashes on it
                if conn.broken or conn.closed:
                    await self._drop()
                raise Unavailable(f"database error: {first_line(exc)}") from None

    async def _drop(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close()
            except Exception:  # already broken
                log.debug("closing a broken connection", exc_info=True)
        self._conn = None

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    # -- reading -------------------------------------------------------------------------
    async def fleet(self) -> FleetSnapshot:
        """The fleet screen: status snapshot plus throughput per minute (oldest first)."""

        async def read(conn: db.AsyncConn) -> FleetSnapshot:
            snap = await status.snapshot(conn, self.inventory, self.hosts_view)
            clock = time.monotonic()
            if self._throughput is None or clock - self._throughput[1] >= THROUGHPUT_EVERY_S:
                found = await db.rows(conn, q("throughput"), {"minutes": THROUGHPUT_MINUTES})
                per_minute = {int(r["ago"]): int(r["n"]) for r in found}
                self._throughput = (
                    [per_minute.get(m, 0) for m in range(THROUGHPUT_MINUTES - 1, -1, -1)],
                    clock,
                )
            return dataclasses.replace(snap, throughput=tuple(self._throughput[0]))

        return await self._run(read)

    async def tasks(self, query: TaskQuery) -> list[dict[str, Any]]:
        async def read(conn: db.AsyncConn) -> list[dict[str, Any]]:
            cur = await conn.execute(
                q("tasks_page"),
                {
                    "state": query.state,
                    "type": query.type,
                    "host": query.host,
                    "text": f"%{query.text}%" if query.text else None,
                    "sort": query.sort,
                    "offset": query.offset,
                    "limit": query.limit,
                },
            )
            return [dict(r) for r in await cur.fetchall()]

        rows: list[dict[str, Any]] = await self._run(read)
        return rows

    async def matching_ids(self, query: TaskQuery, states: tuple[str, ...]) -> list[int]:
        """Every task the query matches (all pages, up to BULK_MAX) that is in `states`: what a
        bulk retry or cancel from the dashboard acts on."""
        rows = await self.tasks(dataclasses.replace(query, offset=0, limit=BULK_MAX))
        return [int(r["id"]) for r in rows if r["state"] in states]

    async def task(self, task_id: int) -> dict[str, Any] | None:
        async def read(conn: db.AsyncConn) -> dict[str, Any] | None:
            t = await views.task(conn, task_id)
            if t is None:
                return None
            out = t.public()
            out.update(
                error_type=t.error_type,
                error_traceback=t.error_traceback,
                progress_stage=t.progress_stage,
                run_at=t.run_at.isoformat(),
                timeout_s=t.timeout_s,
            )
            return out

        found: dict[str, Any] | None = await self._run(read)
        return found

    async def logs(
        self, host: str | None, after_id: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._run(
            fleet.recent_logs, host, after_id=after_id, limit=limit
        )
        return rows

    async def media(self, limit: int = 200, source_id: int | None = None) -> list[MediaView]:
        """The latest items (of one source when given), with their stages."""
        root = self.storage_root or storage_root(self.inventory.storage_root)
        self.storage_root = root
        return await self._run(media.items, root, limit=limit, source_id=source_id)

    async def transcript_head(self, item: MediaView, lines: int = 8) -> list[str]:
        """The first lines of an item's plain-text transcript (empty when there is none yet)."""
        path = item.transcript
        if not path:
            return []

        def read() -> list[str]:
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    return [line.rstrip("\n") for _, line in zip(range(lines), fh, strict=False)]
            except OSError:
                return []

        return cast(list[str], shown(await asyncio.to_thread(read)))

    async def sources(self) -> list[dict[str, Any]]:
        """Every source with its schedule's next poll and whether it is paused."""
        rows: list[dict[str, Any]] = await self._run(db.rows, q("sources_all"))
        return rows

    async def audit(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest operator actions, newest first."""
        rows: list[dict[str, Any]] = await self._run(audit.recent, None, limit)
        return rows

    # -- acting (each action is one audit row: who, what, on what, how it ended) ----------
    @contextlib.asynccontextmanager
    async def _acting(
        self, action: str, targets: Sequence[Any], **detail: Any
    ) -> AsyncIterator[None]:
        if self.read_only:
            raise ReadOnly(f"{action}: this is a read-only session")
        if self.client is not None:
            detail = {**detail, "client": self.client}
        outcome = "ok"
        try:
            yield
        except BaseException as exc:
            outcome = f"failed: {first_line(exc)}"
            raise
        finally:
            with contextlib.suppress(Unavailable):
                await self._run(audit.record, action, targets, outcome, via=self.via, detail=detail)

    async def poll_source(self, name: str) -> int:
        async with self._acting("source poll", [name]):
            task: int = await self._run(intake.poll_now, name)
        return task

    async def pause_source(self, name: str, paused: bool) -> None:
        async def act(conn: db.AsyncConn) -> None:
            src = await intake.by_name(conn, name)
            await schedules.pause(conn, intake.schedule_name(src["name"]), paused)

        async with self._acting("source pause" if paused else "source resume", [name]):
            await self._run(act)

    async def retry(self, ids: list[int]) -> list[int]:
        async with self._acting("retry", ids):
            moved: list[int] = await self._run(lambda c: Queue(c).retry(ids))
        return moved

    async def cancel(self, ids: list[int]) -> list[dict[str, Any]]:
        async with self._acting("cancel", ids):
            done: list[dict[str, Any]] = await self._run(lambda c: Queue(c).cancel(ids))
        return done

    async def raise_priority(self, task_id: int, by: int = 10) -> int | None:
        async def bump(conn: db.AsyncConn) -> int | None:
            row = await db.row(conn, q("raise_priority"), {"id": task_id, "by": by})
            return int(row["priority"]) if row else None

        async with self._acting("priority", [task_id], by=by):
            new: int | None = await self._run(bump)
        return new

    async def configure_host(
        self, host: str, enabled_tasks: list[str], max_concurrent_tasks: int
    ) -> str:
        """Change a host's task types and concurrency: written back to the inventory (comments
        and order kept) and applied to its running agent at once. Returns what happened."""

        async with self._acting(
            "agent configure",
            [host],
            enabled_tasks=enabled_tasks,
            max_concurrent_tasks=max_concurrent_tasks,
        ):
            return await self._configure(host, enabled_tasks, max_concurrent_tasks)

    async def _configure(
        self, host: str, enabled_tasks: list[str], max_concurrent_tasks: int
    ) -> str:
        said: list[str] = []
        path = self.inventory.path
        if path is not None and self.inventory.host(host) is not None:
            await asyncio.to_thread(
                set_host,
                path,
                host,
                enabled_tasks=enabled_tasks,
                max_concurrent_tasks=max_concurrent_tasks,
            )

            self.inventory = (await asyncio.to_thread(load, path)).use()
            said.append(f"saved to {path.name}")
        result = await self._send(
            host,
            "configure",
            {"enabled_tasks": enabled_tasks, "max_concurrent_tasks": max_concurrent_tasks},
        )
        if result.acknowledged:
            said.append(str(result.outcome))
        else:
            said.append("agent not answering: applies when it next starts")
        return "; ".join(said)

    def ssh_hosts(self) -> list[dict[str, Any]]:
        """The hosts provisioning can reach (transport ssh), as the Provision screen lists them."""
        return [
            {
                "name": h.name,
                "address": f"{h.address}:{h.port}",
                "user": h.user or "",
                "base_dir": h.base_dir,
                "env": h.env.get("manager", "uv")
                + (f" ({h.env['name']})" if h.env.get("name") else ""),
                "enabled": h.enabled,
            }
            for h in self.inventory.hosts.values()
            if h.transport == "ssh"
        ]

    async def start_agent(self, host: str) -> str:
        """Start a provisioned host's agent over SSH (it is not running, so the database
        cannot reach it)."""

        spec = self.inventory.host(host)
        if spec is None or spec.transport != "ssh":
            raise ContentctlError(f"{host} is not an ssh host in the inventory: start it there")
        ssh = ssh_for(self.inventory)
        try:
            async with self._acting("agent start", [host]):
                return await agent_over_ssh(ssh, spec, "start")
        finally:
            await ssh.close()

    async def provision(
        self, host: str, *, dry_run: bool, on_step: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Provision (or plan, with dry_run) one host, calling `on_step` as each step ends.
        Uses its own database connection: a provisioning run takes minutes."""

        spec = self.inventory.host(host)
        if self.read_only:
            raise ReadOnly("provision: this is a read-only session")
        if spec is None or spec.transport != "ssh":
            raise ContentctlError(f"{host} is not an ssh host in the inventory")
        try:
            conn = await database.open_database(self.target)
        except (psycopg.Error, OSError) as exc:
            raise Unavailable(f"database unreachable: {first_line(exc)}") from None
        try:
            if dry_run:  # a plan changes nothing, and plans even before `db serve`
                url = await asyncio.to_thread(dbserve.planned_url, self.target)
            else:
                url = await asyncio.to_thread(dbserve.agent_url, self.target, True)

            async def host_url(h: HostSpec) -> str:
                if dry_run:
                    return await asyncio.to_thread(dbserve.planned_url, self.target, h.name)
                return await asyncio.to_thread(dbserve.host_agent_url, self.target, h.name)

            prov = await session.build(
                self.inventory,
                url,
                conn,
                host_url=host_url,
                dry_run=dry_run,
                on_step=lambda _h, step: on_step(asdict(step)),
            )
            try:
                if dry_run:
                    report = await prov.provision(spec)
                else:
                    async with self._acting("provision", [host]):
                        report = await prov.provision(spec)
            finally:
                await prov.ssh.close()
        finally:
            await conn.close()
        return {"host": host, "failed": report.failed, "changed": report.changed}

    async def command(
        self, host: str, command: str, args: dict[str, Any] | None = None
    ) -> agents.CommandResult:
        """Send drain/undrain/restart/stop and wait (briefly) for the agent's acknowledgement.
        The wait polls without holding the connection lock, so the screen keeps refreshing."""
        async with self._acting(f"agent {command}", [host]):
            return await self._send(host, command, args)

    async def _send(
        self, host: str, command: str, args: dict[str, Any] | None = None
    ) -> agents.CommandResult:
        cid: int = await self._run(fleet.send_command, host, command, args or {})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMAND_TIMEOUT_S
        while True:
            states: dict[int, dict[str, Any]] = await self._run(fleet.command_states, [cid])
            st = states.get(cid, {})
            if st.get("acked_at") is not None:
                return agents.CommandResult(host, True, st.get("outcome"))
            if loop.time() >= deadline:
                return agents.CommandResult(host, False, None)
            await asyncio.sleep(0.2)
