"""The task queue: one manager object, one method per query (the SQL is in sql/queue.sql).

Agents, the CLI and the dashboard talk to `Queue`, never to the SQL. Every answer an agent gives
about a task (progress, completion, failure, hand-back) carries the attempt token it got when it
claimed the task; an answer with a stale token is refused and logged, so a late agent whose lease
was taken over can never overwrite the newer attempt.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row, scalar_row, tuple_row
from psycopg.types.json import Jsonb

from control.core import bounded, db, tasktypes
from control.core.db import AsyncConn
from control.core.errors import UsageError
from control.core.sql import q
from control.core.tasktypes import (
    FINISHED_STATES,
    INTAKE_TYPES,
    STATES,
    TypePolicy,
    is_known,
    policy,
)

log = logging.getLogger(__name__)
# At most one look for leases of ended sessions every SWEEP_TURN_S, fleet-wide (`lapse`): a
# dead agent's tasks are taken over within this, plus the time until some agent writes a beat.
SWEEP_TURN_S = 2.0
# How long a lease whose agent's session ended stays held before it runs out (migration 0016):
# a partition ends the session at the server in ~20 s; an agent whose link comes back within
# about a minute reconnects and re-keys its leases in time, and keeps its work.
LEASE_GRACE_S = 90.0

CHANNEL = "contentctl_tasks"
ROLLUP_TAIL = 20_000  # roll finished rows into task_stats once the live tail is this long
ROLLUP_MARGIN_S = 30  # never roll up the last seconds: a slow commit may still land there
ANALYZE_AFTER = 1000  # tasks in one enqueue: then the claim's statistics are refreshed
BULK_CHUNK = 5000  # rows per INSERT when enqueueing many tasks at once
PAYLOAD_MAX_BYTES = 64 * 1024  # one task's input from the command line (`enqueue --payload`)


@dataclass(frozen=True)
class Sweep:
    """What one sweep did: leases run out (their agent gone past the grace), leases marked
    orphaned (their session just ended: kept for the grace), expired tasks finished."""

    lapsed: int = 0
    orphaned: int = 0
    finished: int = 0


@dataclass(frozen=True)
class TaskSpec:
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    delay_s: float = 0.0
    unique_key: str | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None
    media_id: int | None = None

    def validate(self) -> None:
        if not is_known(self.type):
            raise UsageError(
                f"unknown task type {self.type!r}: use one of {', '.join(tasktypes.known())}"
            )
        if not isinstance(self.payload, dict):
            raise UsageError(f"the payload of a {self.type} task must be a JSON object")
        if self.delay_s < 0:
            raise UsageError(f"delay must be zero or more seconds, not {self.delay_s}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise UsageError(f"max attempts must be at least 1, not {self.max_attempts}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise UsageError(f"timeout must be more than 0 seconds, not {self.timeout_s}")


@dataclass(frozen=True)
class Enqueued:
    id: int
    created: bool  # False: a live task with the same unique key already existed


@dataclass(frozen=True)
class ClaimedTask:
    id: int
    type: str
    payload: dict[str, Any]
    priority: int
    attempts: int
    max_attempts: int
    timeout_s: float | None
    token: uuid.UUID
    media_id: int | None


@dataclass
class StatsMark:
    """The rollup watermark a reader of `Queue.stats` saw last (it only moves forward)."""

    watermark: datetime | None = None


@dataclass(frozen=True)
class Failure:
    error_type: str
    message: str
    traceback: str | None = None
    retryable: bool = True
    retry_after_s: float | None = None  # the service said when to come back (429 Retry-After)


@dataclass(frozen=True)
class LeaseState:
    held: bool
    cancel_requested: bool


def lease_states(
    tokens: Sequence[uuid.UUID], rows: Iterable[Mapping[str, Any]]
) -> dict[uuid.UUID, LeaseState]:
    """The answer to `renew_leases`: a token that did not come back was taken over."""
    held = {r["attempt_token"]: LeaseState(True, bool(r["cancel_requested"])) for r in rows}
    return {t: held.get(t, LeaseState(False, False)) for t in tokens}


TRACEBACK_TAIL_CHARS = 4000


UNFINISHED = ("queued", "scheduled", "running")


# Called inside the transaction that records media tasks' successes, with the accepted ones:
# the pipeline's flow (control.core.pipeline.advance) enqueues each item's next stage. The queue
# itself knows nothing of stages; whoever completes media tasks (the agent) passes the hook.
CompletionHook = Callable[
    ["Queue", list[tuple["ClaimedTask", dict[str, Any] | None]]], Awaitable[None]
]


def _chained(task: ClaimedTask) -> bool:
    """A completion with consequences: a media stage, or a source's poll."""
    return task.media_id is not None or task.type in INTAKE_TYPES


class Queue:
    def __init__(
        self,
        conn: AsyncConn,
        policies: dict[str, TypePolicy] | None = None,
        *,
        on_complete: CompletionHook | None = None,
        session: int | None = None,
    ) -> None:
        self.conn = conn
        self._policies = policies or {}
        self._on_complete = on_complete
        # the session key this connection holds (an agent's, db.hold_session_key): the leases
        # it claims and renews live as long as the session, their time is the backstop
        self.session = session

    def policy(self, task_type: str) -> TypePolicy:
        return self._policies.get(task_type) or policy(task_type)

    # -- producers ------------------------------------------------------------------------
    async def enqueue(self, specs: Sequence[TaskSpec]) -> list[Enqueued]:
        """Insert tasks in one transaction with one NOTIFY; unique keys de-duplicate."""
        for spec in specs:
            spec.validate()
        results: list[Enqueued | None] = [None] * len(specs)
        plain = [i for i, s in enumerate(specs) if s.unique_key is None]
        keyed = [i for i, s in enumerate(specs) if s.unique_key is not None]
        async with self.conn.transaction():
            for start in range(0, len(plain), BULK_CHUNK):
                chunk = plain[start : start + BULK_CHUNK]
                rows = await self._insert_bulk([specs[i] for i in chunk])
                for i, task_id in zip(chunk, rows, strict=True):
                    results[i] = Enqueued(task_id, True)
            for i in keyed:
                results[i] = await self._insert_keyed(specs[i])
            created = [specs[i].type for i, r in enumerate(results) if r and r.created]
            if created:
                await self.announce(created)  # delivered at commit
        if len(plain) >= ANALYZE_AFTER:
            await self._analyze()
        return [r for r in results if r is not None]

    async def _analyze(self) -> None:
        """Fresh statistics after a bulk enqueue. Until autovacuum gets to it (a minute or
        more), the planner guesses a handful of claimable rows, and every claim then reads and
        sorts the whole backlog instead of walking the claim index for `limit` rows: measured
        on 10,000 fresh tasks, 380 against 160 us of server CPU per claimed task. Only the
        table's owner may analyze; for anyone else this is a no-op."""
        try:
            async with self.conn.transaction():
                await self.conn.execute("ANALYZE tasks")
        except psycopg.Error as exc:
            log.debug("ANALYZE tasks after a bulk enqueue: %s", exc)

    async def _insert_bulk(self, specs: Sequence[TaskSpec]) -> list[int]:
        params = {
            "types": [s.type for s in specs],
            "payloads": [Jsonb(s.payload) for s in specs],
            "priorities": [s.priority for s in specs],
            "delays": [float(s.delay_s) for s in specs],
            "max_attempts": [s.max_attempts or self.policy(s.type).max_attempts for s in specs],
            "timeouts": [_timeout(s, self.policy(s.type)) for s in specs],
            "media_ids": [s.media_id for s in specs],
        }
        return await db.ids(self.conn, q("insert_tasks_bulk"), params)

    async def _insert_keyed(self, spec: TaskSpec) -> Enqueued:
        params = {
            "type": spec.type,
            "payload": Jsonb(spec.payload),
            "priority": spec.priority,
            "delay_s": float(spec.delay_s),
            "max_attempts": spec.max_attempts or self.policy(spec.type).max_attempts,
            "timeout_s": _timeout(spec, self.policy(spec.type)),
            "unique_key": spec.unique_key,
            "media_id": spec.media_id,
        }
        # The existing task may finish between our conflict and our look-up: then try again.
        for _ in range(5):
            if new := await db.ids(self.conn, q("insert_task"), params):
                return Enqueued(new[0], True)
            key = {"unique_key": spec.unique_key}
            if live := await db.ids(self.conn, q("live_task_by_unique_key"), key):
                return Enqueued(live[0], False)
        raise RuntimeError(f"unique key {spec.unique_key!r} kept changing under enqueue")

    # -- consumers ------------------------------------------------------------------------
    async def claim(
        self,
        host: str,
        types: Iterable[str],
        *,
        limit: int = 1,
        lease_s: float = 30.0,
        caps: Mapping[str, int] | None = None,
        count_day: date | None = None,
        tell: bool = False,
    ) -> list[ClaimedTask]:
        """Up to `limit` tasks of `types`; a type in `caps` takes at most its cap of them (a
        worker limit), the other types fill the rest. With `count_day`, the same statement adds
        the claims to the host's daily counters (`host_daily_counts`) for that day. With
        `tell` (a claim in answer to announcements), the same statement announces when it
        leaves nothing of `types` claimable, so that other agents need not look
        (agent/wakeup.py)."""
        type_list = tuple(types)
        if not type_list or limit < 1:
            return []
        capped = tuple((t, n) for t, n in (caps or {}).items() if t in type_list and n < limit)
        query = _claim_sql(type_list, capped, limit, tell)
        params = {"host": host, "lease_s": lease_s, "day": count_day, "session": self.session}
        return await db.fetch(self.conn, class_row(ClaimedTask), query, params)

    async def types_with_work(self, types: Iterable[str]) -> set[str]:
        """Which of these types have claimable tasks now (the agent explaining its idleness)."""
        cur = await self.conn.execute(q("types_with_work"), {"types": list(types)})
        return {str(r["type"]) for r in await cur.fetchall()}

    async def media_waiting_types(self, media_ids: Sequence[int]) -> list[str]:
        """The types of these media items' tasks that could run now but wait for a host."""
        cur = await self.conn.execute(q("media_waiting_types"), {"ids": list(media_ids)})
        return sorted(str(r["type"]) for r in await cur.fetchall())

    async def complete(self, task: ClaimedTask, result: dict[str, Any] | None = None) -> bool:
        return task.id in await self.complete_many([(task, result)])

    async def complete_many(
        self,
        done: Sequence[tuple[ClaimedTask, dict[str, Any] | None]],
        *,
        publish: Callable[[set[int]], Awaitable[None]] | None = None,
    ) -> set[int]:
        """Record several completions in one statement; returns the ids accepted. A pipeline
        stage's success enqueues the item's next stage in the same transaction. `publish(ids)`
        runs in that transaction too, after the accepted rows are written (and locked): it puts
        the accepted attempts' outputs in place, and if it raises, nothing is recorded."""
        if not done:
            return set()
        hook = self._on_complete
        chains = hook is not None and any(_chained(t) for t, _ in done)
        if publish is None and not chains:
            return await self._complete_many(done)
        async with self.conn.transaction():
            accepted = await self._complete_many(done)
            if publish is not None and accepted:
                await publish(accepted)
            if hook is not None and chains:
                chained = [(t, r) for t, r in done if t.id in accepted and _chained(t)]
                await hook(self, chained)
        return accepted

    async def _complete_many(
        self, done: Sequence[tuple[ClaimedTask, dict[str, Any] | None]]
    ) -> set[int]:
        params = {
            "ids": [t.id for t, _ in done],
            "tokens": [t.token for t, _ in done],
            "results": [Jsonb(r or {}) for _, r in done],
        }
        accepted = set(await db.ids(self.conn, q("complete_many"), params))
        for t, _ in done:
            if t.id not in accepted:
                self._accepted(None, "completion", t)
        return accepted

    async def fail(self, task: ClaimedTask, failure: Failure) -> str | None:
        """Record a failed attempt. Returns the new state, or None if the answer was refused."""
        cur = await self.conn.execute(
            q("fail"),
            {
                "id": task.id,
                "token": task.token,
                "retryable": failure.retryable,
                "backoff_s": max(
                    self.policy(task.type).backoff_s(task.attempts), failure.retry_after_s or 0
                ),
                "error_type": failure.error_type,
                "error_message": failure.message,
                "error_traceback": (failure.traceback or "")[-TRACEBACK_TAIL_CHARS:] or None,
            },
        )
        row = await cur.fetchone()
        return str(row["state"]) if self._accepted(row, "failure", task) and row else None

    async def release(self, task: ClaimedTask) -> bool:
        """Hand a running task back to the queue without burning an attempt."""
        cur = await self.conn.execute(q("release"), {"id": task.id, "token": task.token})
        return self._accepted(await cur.fetchone(), "hand-back", task)

    async def announce(self, types: Iterable[str]) -> None:
        """Wake the listening agents: tasks of `types` are claimable, or will be (an idle
        agent sleeps until its next task comes due, so every way a task becomes claimable
        announces it: enqueues, retries, hand-backs, requeued leases)."""
        made = list(types)
        types_csv = ",".join(sorted(set(made)))
        await self.conn.execute(q("announce"), {"n": len(made), "types": types_csv})

    async def next_due(self, types: Iterable[str]) -> float | None:
        """Seconds until the next delayed or retrying task of `types` comes due, or None."""
        return await db.fetch_one(self.conn, scalar_row, q("next_due"), {"types": list(types)})

    async def acknowledge_cancel(self, task: ClaimedTask) -> bool:
        cur = await self.conn.execute(q("acknowledge_cancel"), {"id": task.id, "token": task.token})
        return self._accepted(await cur.fetchone(), "cancel acknowledgement", task)

    async def progress(
        self, task: ClaimedTask, fraction: float, stage: str | None = None
    ) -> LeaseState:
        cur = await self.conn.execute(
            q("progress"),
            {
                "id": task.id,
                "token": task.token,
                "progress": max(0.0, min(1.0, fraction)),
                "stage": stage,
            },
        )
        row = await cur.fetchone()
        if not self._accepted(row, "progress", task) or row is None:
            return LeaseState(held=False, cancel_requested=False)
        return LeaseState(held=True, cancel_requested=bool(row["cancel_requested"]))

    async def renew_leases(
        self, tokens: Sequence[uuid.UUID], *, lease_s: float = 30.0
    ) -> dict[uuid.UUID, LeaseState]:
        """Extend the leases still held. Tokens missing from the answer were lost."""
        if not tokens:
            return {}
        cur = await self.conn.execute(
            q("renew_leases"),
            {"tokens": list(tokens), "lease_s": lease_s, "session": self.session},
        )
        return lease_states(tokens, await cur.fetchall())

    async def sweep_expired(
        self, *, turn_s: float = SWEEP_TURN_S, grace_s: float = LEASE_GRACE_S
    ) -> int:
        """`sweep`; returns how many tasks it lapsed or finished."""
        done = await self.sweep(turn_s=turn_s, grace_s=grace_s)
        return done.lapsed + done.finished

    async def sweep(self, *, turn_s: float = SWEEP_TURN_S, grace_s: float = LEASE_GRACE_S) -> Sweep:
        """Look for leases whose agent's session is gone (at most one look every `turn_s`
        fleet-wide): one seen gone for the first time is marked orphaned, one orphaned for
        `grace_s` runs out (announced: idle agents take it over now); then finish expired
        tasks that must not run again. One round trip. Any agent may call it; none must."""
        async with self.conn.pipeline():
            lapsing = await self.conn.execute(q("lapse"), {"turn_s": turn_s, "grace_s": grace_s})
            sweeping = await self.conn.execute(q("sweep_expired"))
        looked = await lapsing.fetchall()
        rows = await sweeping.fetchall()
        lapsed = [r for r in looked if r["lapsed"]]
        for r in looked:
            if r["lapsed"]:
                log.warning(
                    "task %s: the agent of host %s is gone (its database session ended over "
                    "%g s ago); its lease runs out now",
                    r["id"],
                    r["host"],
                    grace_s,
                )
            else:
                log.info(
                    "task %s: the database session of host %s ended; its lease is kept "
                    "%g s for it to come back",
                    r["id"],
                    r["host"],
                    grace_s,
                )
        if lapsed:
            await self.announce(str(r["type"]) for r in lapsed)
        for r in rows:
            log.warning("task %s: lease expired, now %s", r["id"], r["state"])
        return Sweep(lapsed=len(lapsed), orphaned=len(looked) - len(lapsed), finished=len(rows))

    @staticmethod
    def _accepted(row: Any, what: str, task: ClaimedTask) -> bool:
        if row is None:
            log.warning(
                "task %s: %s refused: attempt %s no longer holds the task (lease taken over, "
                "cancelled or finished)",
                task.id,
                what,
                task.attempts,
            )
            return False
        return True

    # -- operators ------------------------------------------------------------------------
    async def cancel(
        self,
        ids: Sequence[int] | None,
        *,
        types: Sequence[str] | None = None,
        states: Sequence[str] = UNFINISHED,
    ) -> list[dict[str, Any]]:
        """Cancel queued/scheduled tasks now; ask the agents running the others to abort. By
        ids, or every unfinished task of `types` in `states`."""
        params = {
            "ids": list(ids) if ids is not None else None,
            "types": list(types) if types else None,
            "states": [s for s in states if s in UNFINISHED],
        }
        async with self.conn.transaction():
            cur = await self.conn.execute(q("cancel"), params)
            rows = await cur.fetchall()
            if any(r["state"] == "running" for r in rows):
                await self.conn.execute(q("notify"), {"payload": "cancel"})
        return [dict(r) for r in rows]

    async def retry(
        self, ids: Sequence[int] | None = None, task_type: str | None = None
    ) -> list[int]:
        """Move failed tasks back to the queue (by id, or every failed task [of a type])."""
        async with self.conn.transaction():
            await self.conn.execute(q("lock_stats_meta_shared"))
            moved = await db.ids(
                self.conn,
                q("retry_failed"),
                {"ids": list(ids) if ids is not None else None, "type": task_type},
            )
            if moved:
                await self.conn.execute(q("notify"), {"payload": "retry"})
        return moved

    # -- counting -------------------------------------------------------------------------
    async def stats(self, mark: StatsMark | None = None) -> dict[str, dict[str, int]]:
        """Counts by type and state: live states counted, finished states rolled up.

        One statement reads them all (`stats` in queue.sql), the finished tail from the
        watermark a read before this one saw: with a `mark` that holds one (a dashboard asks
        every second), that is its only round trip, and the mark is moved to the current
        watermark; without, the watermark is read first."""
        watermark = mark.watermark if mark is not None else None
        if watermark is None:
            watermark = await db.fetch_one(self.conn, scalar_row, q("stats_watermark"), {})
        async with self.conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(q("stats").encode(), {"watermark": watermark})
            rows = await cur.fetchall()
        counts: dict[str, dict[str, int]] = {}
        tail = 0
        for part, task_type, state, n, done_tail, current in rows:
            if part == "mark":
                if mark is not None and current is not None:
                    mark.watermark = current
            elif part == "live" or state in FINISHED_STATES:
                counts.setdefault(task_type, dict.fromkeys(STATES, 0))[state] += n
                tail += done_tail
        if tail >= ROLLUP_TAIL:
            await self.rollup()
        return counts

    async def rollup(self) -> bool:
        """Fold finished rows older than a margin into task_stats; skip if another is at it."""
        try:
            async with self.conn.transaction():
                cur = await self.conn.execute(
                    q("lock_stats_meta_nowait"), {"margin_s": ROLLUP_MARGIN_S}
                )
                row = await cur.fetchone()
                if row is None or row["new_watermark"] <= row["watermark"]:  # type: ignore[operator]
                    return False
                params = {"old": row["watermark"], "new": row["new_watermark"]}
                await self.conn.execute(q("rollup"), params)
                await self.conn.execute(q("set_watermark"), params)
        except psycopg.errors.LockNotAvailable:
            return False
        return True

    # -- waiting --------------------------------------------------------------------------
    async def listen(self) -> None:
        await self.conn.execute(f"LISTEN {CHANNEL}")

    async def wait_for_notification(self, timeout_s: float) -> bool:
        """After `listen()`: True if a notification arrived within the timeout."""
        gen = self.conn.notifies(timeout=timeout_s, stop_after=1)
        got = False
        async for _ in gen:
            got = True
        return got


def _timeout(spec: TaskSpec, pol: TypePolicy) -> float | None:
    # always a float: a bulk insert's array of them may not mix ints and floats (psycopg)
    timeout = spec.timeout_s if spec.timeout_s is not None else pol.timeout_s
    return None if timeout is None else float(timeout)


def parse_payload(text: str | None) -> dict[str, Any]:
    """A payload given on the command line: a JSON object, or a one-line usage error."""
    if text is None or text == "":
        return {}

    def refuse(constant: str) -> None:
        raise UsageError(f"--payload holds {constant}, which is not JSON: give a number")

    try:
        bounded.loads(text, "--payload", max_bytes=PAYLOAD_MAX_BYTES)  # size, depth, NUL
        value = json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--payload is not valid JSON ({exc.msg} at column {exc.colno}): "
            "pass an object such as '{\"seconds\": 2}'"
        ) from exc
    if not isinstance(value, dict):
        raise UsageError("--payload must be a JSON object such as '{\"seconds\": 2}'")
    return value


@lru_cache(maxsize=256)
def _claim_sql(
    types: tuple[str, ...], capped: tuple[tuple[str, int], ...], limit: int, tell: bool = False
) -> str:
    """The claim statement for these types, caps and limit, with them written in as literals
    (quoted by psycopg; the host, lease and day stay parameters).

    As parameters, the server planned every claim afresh: a generic plan cannot tell a claim of
    5 from one of 5,000, nor how many tasks the types have, and it looked dearer than planning
    each time (and was: it sorted the backlog). Written in, each distinct claim is planned a
    few times on a connection and then kept (the agent's psycopg prepares it): server CPU per
    claimed task 139 -> 80 us without caps, 195 -> 95 us with. An agent has few distinct
    claims: its types, its caps (usually constant), and at most `max_concurrent` limits."""
    literal = {
        "types": list(types),
        "limit": limit,
        "capped": [t for t, _ in capped],
        "caps": [n for _, n in capped],
        "tell": tell,
    }
    text = q("claim_capped" if capped else "claim")
    for name, value in literal.items():
        # `%` doubled: the text still goes through psycopg's placeholders (host, lease, day)
        text = text.replace(f"%({name})s", sql.Literal(value).as_string(None).replace("%", "%%"))
    return text
