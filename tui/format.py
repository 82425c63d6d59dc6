"""Pure formatting for the dashboard: ages, bars, sparklines, states, idle reasons."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.text import Text

from control.core.readmodels import HostEntry

TICKS = "▁▂▃▄▅▆▇█"
IDLE_WIDTH = 32  # an idle reason's width in the hosts table (the detail says it whole)
STATE_STYLES = {
    "online": "green",
    "stale": "bold yellow",
    "offline": "bold red",
    "draining": "cyan",
    "drained": "bold cyan",
    "disabled": "dim",
    "queued": "yellow",
    "scheduled": "dim yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "pending": "dim",
}
IDLE_TEXT = {
    "no_work": "no work",
    "cooldown": "cooldown",
    "outside_window": "outside window",
    "daily_limit": "daily limit",
    "draining": "draining",
    "drained": "drained",
    "max_concurrency": "at max concurrency",
}


def state(value: str | None) -> Text:
    value = value or "-"
    return Text(value, style=STATE_STYLES.get(value, ""))


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def beat_age(host: HostEntry) -> Text:
    """Fresh heartbeats read `ok` (the column stays still while all is well); late ones show
    their age, in yellow, then red."""
    seconds = host.heartbeat_age_s
    if seconds is None:
        return Text("-", style="dim")
    if host.fresh:
        return Text("ok", style="green")
    return Text(age(seconds), style="yellow" if seconds < 60 else "bold red")


def bar(percent: float | None, width: int = 8) -> Text:
    """`[████    ] 52%` coloured by load."""
    if percent is None:
        return Text("-", style="dim")
    p = max(0.0, min(100.0, float(percent)))
    filled = round(p / 100 * width)
    style = "green" if p < 60 else ("yellow" if p < 85 else "red")
    out = Text()
    out.append("█" * filled, style=style)
    out.append("·" * (width - filled), style="dim")
    out.append(f" {p:3.0f}%")
    return out


def spark(values: Sequence[float], top: float | None = None) -> str:
    if not values:
        return ""
    hi = top if top else max(values)
    if hi <= 0:
        return TICKS[0] * len(values)
    return "".join(TICKS[min(len(TICKS) - 1, int(v / hi * (len(TICKS) - 1)))] for v in values)


def progress(value: float | None, width: int = 10) -> str:
    if value is None:
        return ""
    p = max(0.0, min(1.0, float(value)))
    filled = round(p * width)
    return "━" * filled + "╌" * (width - filled) + f" {p * 100:3.0f}%"


def idle(host: HostEntry) -> str:
    reason = host.idle_reason
    if not reason:
        return ""
    text = str(IDLE_TEXT.get(reason, reason))
    if len(text) > IDLE_WIDTH:  # one long reason (a storage path) must not widen the table
        text = text[: IDLE_WIDTH - 1] + "…"
    until = host.idle_until
    if until:
        with contextlib.suppress(ValueError):
            text += f" until {datetime.fromisoformat(until).strftime('%H:%M')}"
    return text


def running(host: HostEntry) -> Text:
    tasks = host.running
    if not tasks:
        return Text("")
    t = tasks[0]
    out = Text(f"{t.type} ")
    out.append(progress(t.progress, 4), style="cyan")
    if t.stalled:
        out.append(" STALLED", style="bold red")
    if len(tasks) > 1:
        out.append(f" +{len(tasks) - 1}")
    return out


def when(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
