"""The agent's claim loop and the tasks it runs: claim within limits and free slots, sleep
until work is announced, comes due or a limit ends, run each claimed task in a task process
(agent/executor.py) and hand its answer to the outbox; say why the host is idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Sequence
from datetime import datetime

from agent.dbconn import AgentDb, DbDown
from agent.executor import Executor, Outcome
from agent.limits import Decision, Limiter
from agent.outbox import Outbox
from agent.state import Abort, AgentState, Running
from agent.wakeup import Wakeups
from control.core import tasktypes
from control.core.queue import ClaimedTask, Failure, Queue

log = logging.getLogger("agent.runner")  # the agent's lines keep one logger name


class Claimer:
    def __init__(
        self,
        state: AgentState,
        db: AgentDb,
        limiter: Limiter,
        executor: Executor,
        outbox: Outbox,
        wakeups: Wakeups,
    ) -> None:
        self.s = state
        self.db = db
        self.limiter = limiter
        self.executor = executor
        self.outbox = outbox
        self.wakeups = wakeups

    async def run(self) -> None:
        """Until the stop: one look per wake-up, then sleep (`_sleep_for` says how long)."""
        s = self.s
        while not s.stop.is_set():
            s.wake.clear()
            timeout = await self._look_once()
            if timeout is None:
                return  # a burst with nothing left
            if timeout == 0:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await s.wake.wait()

    async def _look_once(self) -> float | None:
        """One look: claim what it may. Returns how long to sleep (0: look again at once;
        None: the burst is over)."""
        s, cfg = self.s, self.s.config
        if s.draining:
            s.idle_reason = "draining" if s.running else "drained"
            self._check_drain_deadline()
            return 1.0 if s.drain_deadline else cfg.poll_s
        if not self.db.up.is_set():
            s.idle_reason = None
            return 1.0
        if cfg.max_concurrent - len(s.running) <= 0:
            s.idle_reason = "max_concurrency"
            return cfg.poll_s
        if (hold := self.executor.hold_s(s.running)) > 0:
            return hold  # only batches of short tasks run: claim when they end
        types = cfg.enabled_tasks
        if not s.storage.ok:  # the NAS is gone: nothing that reads or writes it
            types = tuple(t for t in types if not tasktypes.needs_storage(t))
        decision = self.limiter.decide(types)
        s.idle_until = decision.until
        if decision.reason is not None:
            s.idle_reason = decision.reason
            timeout = self._sooner(cfg.poll_s, decision.until)
        else:
            claimed = await self._claim(decision)
            if claimed is None:
                return 0  # the database went away: the loop waits for it
            timeout = claimed
            if timeout == 0:
                return 0
        if cfg.burst and not s.running and s.idle_reason is not None:
            if len(self.outbox):
                # a success still on its way may enqueue the next stage: look again
                await self.outbox.flushed(cfg.lease_s)
                return 0
            log.info("burst: no claimable work left (%s)", s.idle_reason)
            return None
        return timeout

    async def _claim(self, decision: Decision) -> float | None:
        """Claim into the free slots; how long to sleep then (0: more may be there; None:
        the database went away)."""
        s, cfg = self.s, self.s.config
        limit = cfg.max_concurrent - len(s.running)
        try:
            claimed = await self.db.run(
                Queue.claim,
                cfg.host,
                decision.allowed,
                limit=limit,
                lease_s=cfg.lease_s,
                caps=decision.caps,
                count_day=cfg.clock().date(),  # the daily counters, same statement
                tell=self.wakeups.take(),  # the other ranks may stand down
            )
        except DbDown:
            return None
        # short of the limit with nothing capped or held back: this agent's types had nothing
        # more claimable at that moment (an announcement says when that changes); only while
        # listening, else nothing would say it
        s.quiet = (
            len(claimed) < limit and not decision.caps and not decision.blocked and s.listening
        )
        if not claimed:
            return await self._nothing_claimed(decision, cfg.poll_s)
        self._on_claimed(claimed)
        s.idle_reason = None
        if len(claimed) == limit:
            return 0  # there may be more: look again while slots are free
        # fewer than asked: nothing more was claimable then; what comes is announced, a task's
        # end wakes the loop, and a delayed task wakes it when due (a second look at once was
        # an empty claim for every task)
        return await self._until_due(decision.allowed)

    async def _nothing_claimed(self, decision: Decision, timeout: float) -> float:
        """A claim came back empty: why this agent is idle, and how long it sleeps (until its
        next delayed task comes due, a cooldown or window ends, or an announcement)."""
        s = self.s
        s.idle_reason = None if s.running else "no_work"
        if not (s.config.burst and not s.running):  # a burst ends here instead
            timeout = await self._until_due(decision.allowed)
        for _, _, until in decision.blocked:  # a cooldown or window ending
            timeout = self._sooner(timeout, until)
        if decision.blocked and not s.running:
            await self._explain_idle(decision)
        if not s.storage.ok and not s.running:
            s.idle_reason = s.storage_idle_reason()
        return timeout

    def _sooner(self, timeout: float, until: datetime | None) -> float:
        """The claim loop's wait, cut short to end at `until` (the agent's clock), if any."""
        if until is None:
            return timeout
        return max(0.05, min(timeout, (until - self.s.config.clock()).total_seconds()))

    async def _until_due(self, types: Sequence[str]) -> float:
        """How long an agent that found nothing to claim sleeps: until its next delayed or
        retrying task comes due, at most idle_poll_s. Every way a task becomes claimable
        announces it (NOTIFY), which wakes it sooner; while its listener is not listening, it
        polls every poll_s."""
        cfg = self.s.config
        if not self.s.listening:
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
            self.s.idle_reason, self.s.idle_until = why

    def _check_drain_deadline(self) -> None:
        s = self.s
        if s.drain_deadline is None or time.monotonic() < s.drain_deadline:
            return
        s.drain_deadline = None
        if s.running:
            log.warning(
                "drain deadline passed: handing %d running task(s) back to the queue",
                len(s.running),
            )
            for entry in list(s.running.values()):
                entry.job.cancel()

    # -- running --------------------------------------------------------------------------
    def _task_ended(self) -> None:
        """A task ended and its slot is free. Look for work, unless the last look found none
        of this agent's types and nothing was announced since: every way a task becomes
        claimable announces it, and a delayed one ends the claim loop's sleep when due. (Each
        task cost an empty claim and a due-time read at its end.)"""
        s = self.s
        if not s.quiet or s.config.burst:
            s.wake.set()
        elif not s.running:  # idle now, for the reason the look would have found
            s.idle_reason = "no_work" if s.storage.ok else s.storage_idle_reason()

    def _on_claimed(self, claimed: list[ClaimedTask]) -> None:
        for task in claimed:
            self.limiter.claimed(task.type)
            job = asyncio.create_task(self._run_one(task), name=f"task-{task.id}")
            self.s.running[task.id] = Running(task, job)
            job.add_done_callback(lambda _: self._task_ended())

    async def _run_one(self, task: ClaimedTask) -> None:
        entry = self.s.running[task.id]
        limits = self.s.config.limits.get(task.type)
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
                on_progress=lambda f, st: self._progress(entry, f, st),
            )
        except (asyncio.CancelledError, Abort):
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
            self.s.running.pop(task.id, None)
            self.limiter.finished(task.type)

    def _record(self, task: ClaimedTask, outcome: Outcome) -> None:
        if outcome.kind == "done":
            self.outbox.complete(task, outcome.result, outcome.staged)
            self.s.done_this_run += 1
            self._count_done_today()
            # DEBUG, like "started": the task row says it; at INFO a busy agent shipped a log
            # row per task to the database
            log.debug("task %s (%s) succeeded", task.id, task.type, extra={"task_id": task.id})
            return
        self.outbox.fail(
            task,
            Failure(
                outcome.error_type or outcome.kind,
                outcome.message or outcome.kind,
                outcome.traceback,
                outcome.retryable,
                outcome.retry_after_s,
            ),
        )

    def _count_done_today(self) -> None:
        today = self.s.config.clock().date()
        if today != self.s.today:
            self.s.today, self.s.done_today = today, 0
        self.s.done_today += 1

    async def _progress(self, entry: Running, fraction: float, stage: str | None) -> None:
        now = time.monotonic()
        if fraction != entry.progress or stage != entry.stage:
            entry.progress_moved_at = now
        entry.progress, entry.stage = fraction, stage
        if fraction < 1.0 and now - entry.progress_sent_at < self.s.config.progress_interval_s:
            return
        entry.progress_sent_at = now
        try:
            state = await self.db.run(Queue.progress, entry.task, fraction, stage)
        except DbDown:
            return  # keep running; the next report or the heartbeat will tell
        if not state.held:
            entry.lost = True
            raise Abort("lease lost")
        if state.cancel_requested:
            entry.cancel_requested = True
            raise Abort("cancelled by the operator")
