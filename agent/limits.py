"""Per-type claiming limits from the inventory's `worker_limits` (the old fleet's config.yaml).

Pure logic over an injectable clock: which types may be claimed now, and if none, why and until
when. The agent asks before every claim and tells it what it claimed and finished.

- tasks_per_run, then a cooldown pause for that type (a cooldown alone: after every task);
- daily_limit per host and type (the day's count comes from the database at start);
- window: claim only between start and end; the end moves by a fresh random amount (up to
  end_jitter_minutes) each day, the same all day for a host and type, so restarts agree;
- delay: a random pause between min_s and max_s after each task of the type finishes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

Clock = Callable[[], datetime]

# When nothing can be claimed, the reason shown is the most telling one.
REASON_ORDER = ("outside_window", "daily_limit", "cooldown")


def local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True)
class Window:
    start: time
    end: time
    end_jitter_minutes: float = 0.0

    def end_on(self, day: date, salt: str) -> datetime:
        """This day's end: the configured end plus a jitter fixed for (salt, day)."""
        seed = int.from_bytes(hashlib.sha256(f"{salt}|{day.isoformat()}".encode()).digest()[:8])
        jitter = random.Random(seed).uniform(0, self.end_jitter_minutes)
        return datetime.combine(day, self.end) + timedelta(minutes=jitter)

    def status(self, now: datetime, salt: str) -> tuple[bool, datetime]:
        """(inside now, when that changes). Handles windows that cross midnight."""
        tz = now.tzinfo
        naive = now.replace(tzinfo=None)
        today = naive.date()
        candidates = []
        for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
            start = datetime.combine(day, self.start)
            end = self.end_on(day, salt)
            if end <= start:  # overnight window: it ends the next day
                end = self.end_on(day + timedelta(days=1), salt)
            candidates.append((start, end))
        for start, end in candidates:
            if start <= naive < end:
                return True, end.replace(tzinfo=tz)
        upcoming = min(start for start, _ in candidates if start > naive)
        return False, upcoming.replace(tzinfo=tz)


@dataclass(frozen=True)
class TypeLimits:
    tasks_per_run: int | None = None
    cooldown_s: float = 0.0
    daily_limit: int | None = None
    window: Window | None = None
    delay_min_s: float = 0.0
    delay_max_s: float = 0.0
    stall_after_s: float | None = None
    rss_limit_mb: float | None = None

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> TypeLimits:
        window = None
        if raw.get("window"):
            w = raw["window"]
            window = Window(
                start=_parse_time(str(w.get("start", "00:00"))),
                end=_parse_time(str(w.get("end", "23:59"))),
                end_jitter_minutes=float(w.get("end_jitter_minutes", 0)),
            )
        delay = raw.get("delay") or {}
        cooldown = float(raw.get("cooldown", 0))
        per_run = raw.get("tasks_per_run")
        return cls(
            tasks_per_run=int(per_run) if per_run else (1 if cooldown else None),
            cooldown_s=cooldown,
            daily_limit=int(raw["daily_limit"]) if raw.get("daily_limit") is not None else None,
            window=window,
            delay_min_s=float(delay.get("min_s", 0)),
            delay_max_s=float(delay.get("max_s", delay.get("min_s", 0))),
            stall_after_s=float(raw["stall_after"]) if raw.get("stall_after") else None,
            rss_limit_mb=float(raw["rss_limit_mb"]) if raw.get("rss_limit_mb") else None,
        )


def _parse_time(text: str) -> time:
    hours, _, minutes = text.partition(":")
    return time(int(hours) % 24, int(minutes or 0))


@dataclass
class _TypeState:
    run_count: int = 0
    cooldown_until: datetime | None = None
    next_allowed_at: datetime | None = None
    daily: dict[date, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: tuple[str, ...]
    # per limited type, the most tasks one claim may take of it without overshooting its
    # limit; types not named here are bounded by free capacity only
    caps: dict[str, int]
    reason: str | None  # why nothing may be claimed (None when something may)
    until: datetime | None  # when the reason ends (the agent wakes up then)
    blocked: tuple[tuple[str, str, datetime | None], ...] = ()  # (type, reason, until)

    def blocked_reason(self, types_with_work: Iterable[str]) -> tuple[str, datetime | None] | None:
        """Why the agent idles when the only work there is belongs to blocked types."""
        have = set(types_with_work)
        hits = [(r, u) for t, r, u in self.blocked if t in have]
        if not hits:
            return None
        reason = min((r for r, _ in hits), key=REASON_ORDER.index)
        untils = [u for r, u in hits if r == reason and u is not None]
        return reason, (min(untils) if untils else None)


class Limiter:
    def __init__(
        self,
        host: str,
        limits: Mapping[str, TypeLimits],
        clock: Clock = local_now,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.limits = dict(limits)
        self.clock = clock
        self._rng = rng or random.Random()
        self._state: dict[str, _TypeState] = {}

    def _st(self, task_type: str) -> _TypeState:
        return self._state.setdefault(task_type, _TypeState())

    def load_daily(self, counts: Mapping[str, int], day: date) -> None:
        """Today's claims per type, as the database remembers them."""
        for task_type, n in counts.items():
            self._st(task_type).daily[day] = n

    def decide(self, types: Iterable[str]) -> Decision:
        now = self.clock()
        allowed: list[str] = []
        caps: dict[str, int] = {}
        blocked: list[tuple[str, str, datetime | None]] = []
        for t in types:
            lim = self.limits.get(t)
            if lim is None:
                allowed.append(t)
                continue
            why = self._blocked(t, lim, now)
            if why is None:
                allowed.append(t)
                if budgets := self._budgets(t, lim, now):
                    caps[t] = min(budgets)
            else:
                blocked.append((t, *why))
        if allowed:
            return Decision(tuple(allowed), caps, None, None, tuple(blocked))
        if not blocked:
            return Decision((), {}, None, None)
        reason = min((r for _, r, _ in blocked), key=REASON_ORDER.index)
        untils = [u for _, _, u in blocked if u is not None]
        return Decision((), {}, reason, min(untils) if untils else None, tuple(blocked))

    def _blocked(
        self, t: str, lim: TypeLimits, now: datetime
    ) -> tuple[str, datetime | None] | None:
        st = self._st(t)
        if lim.window is not None:
            inside, change = lim.window.status(now, f"{self.host}|{t}")
            if not inside:
                return "outside_window", change
        if lim.daily_limit is not None and st.daily.get(now.date(), 0) >= lim.daily_limit:
            tomorrow = datetime.combine(now.date() + timedelta(days=1), time(0), now.tzinfo)
            return "daily_limit", tomorrow
        if st.cooldown_until is not None and now < st.cooldown_until:
            return "cooldown", st.cooldown_until
        if st.next_allowed_at is not None and now < st.next_allowed_at:
            return "cooldown", st.next_allowed_at
        return None

    def _budgets(self, t: str, lim: TypeLimits, now: datetime) -> list[int]:
        st = self._st(t)
        out = []
        if lim.tasks_per_run is not None:
            out.append(lim.tasks_per_run - st.run_count)
        if lim.daily_limit is not None:
            out.append(lim.daily_limit - st.daily.get(now.date(), 0))
        if lim.delay_max_s > 0:
            out.append(1)  # one at a time, with a pause after each
        return [max(1, b) for b in out]

    def claimed(self, task_type: str) -> None:
        now = self.clock()
        st = self._st(task_type)
        st.daily[now.date()] = st.daily.get(now.date(), 0) + 1
        lim = self.limits.get(task_type)
        if lim is None:
            return
        if st.cooldown_until is not None and now >= st.cooldown_until:
            st.cooldown_until = None
        st.run_count += 1
        if lim.tasks_per_run is not None and st.run_count >= lim.tasks_per_run:
            st.run_count = 0
            if lim.cooldown_s > 0:
                st.cooldown_until = now + timedelta(seconds=lim.cooldown_s)
        if lim.delay_max_s > 0:
            # Until this one finishes, the next one waits (finished() sets the real pause).
            st.next_allowed_at = now + timedelta(days=365)

    def finished(self, task_type: str) -> None:
        lim = self.limits.get(task_type)
        if lim is None or lim.delay_max_s <= 0:
            return
        pause = self._rng.uniform(lim.delay_min_s, lim.delay_max_s)
        self._st(task_type).next_allowed_at = self.clock() + timedelta(seconds=pause)

    def daily_count(self, task_type: str) -> int:
        return self._st(task_type).daily.get(self.clock().date(), 0)
