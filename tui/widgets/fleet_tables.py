"""The Fleet screen's two tables as widgets of their own: the queue by type and state, and the
hosts (one row a host, its cells made only when what they show changed: with 500 hosts the
cells of the hundred that beat each second were most of an idle refresh). The screen hands
them the snapshot's parts (attributes down); they keep their own caches."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from control.core.readmodels import HostEntry
from control.core.tasktypes import STATES
from tui import format as fmt
from tui.widgets.live_table import LiveTable, sync_rows

BLANK = Text("")  # a cell not drawn yet
HISTORY = 12  # heartbeats of CPU/memory kept per host for the mini sparklines

HOST_COLUMNS = (
    ("name", "host"),
    ("state", "state"),
    ("beat", "beat"),
    ("cpu", "cpu"),
    ("running", "running"),
    ("idle", "idle"),
    ("today", "today"),
    ("mem", "mem"),
    ("trend", "cpu trend"),
    ("code", "code"),
)


class QueueTable(DataTable[Any]):
    """The queue: a row a task type, a column a state."""

    def on_mount(self) -> None:
        self.add_column("type", key="type")
        for s in STATES:
            self.add_column(s, key=s)

    def show(self, by_type: Mapping[str, Mapping[str, int]]) -> None:
        rows: dict[str, Sequence[Any]] = {
            t: [t, *(Text(str(c[s]), style=fmt.STATE_STYLES[s] if c[s] else "dim") for s in STATES)]
            for t, c in by_type.items()
        }
        sync_rows(self, rows)


class HostsTable(LiveTable):
    """The hosts: state, beat, load, running task, idle reason, done today, code. Scrolled to
    rows whose news waits (`offscreen_stale`), it asks its screen for the hosts again
    (`RowsDue`)."""

    class RowsDue(Message):
        """Rows came on screen whose cells are older than what the last snapshot says."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.head_hash: str | None = None  # the head's code: another one is `stale`
        self.history: dict[str, tuple[deque[float], deque[float]]] = {}
        self.last_beat: dict[str, Any] = {}  # host -> the time of the beat last sampled
        self.row_cache: dict[str, tuple[tuple[Any, ...], list[Any]]] = {}
        # host -> (its beat, state, freshness, idle reason, code) and its running tasks, load
        # and counters when its cached cells were made: the same again (those three the very
        # objects: the hosts view hands an unchanged host's back) means the same cells, told
        # without working out the row
        self.drawn_from: dict[str, tuple[tuple[Any, ...], Any, Any, Any]] = {}
        # hosts off screen whose news waits until scrolled to (their cells are older than it)
        self.offscreen_stale: set[str] = set()

    def on_mount(self) -> None:
        for key, label in HOST_COLUMNS:
            self.add_column(label, key=key)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.offscreen_stale:
            self.post_message(self.RowsDue())

    def show(self, hosts: Sequence[HostEntry], needle: str = "") -> None:
        """The hosts of a snapshot, filtered by `needle` (name, state or a task type)."""
        rows: dict[str, Sequence[Any]] = {}
        needle = needle.lower()
        # Rows off screen keep their cells until scrolled to (then `_scrolled` shows them):
        # with 500 hosts, building the cells of the hundred that beat each second was most of
        # an idle refresh, and only a tenth of them are on screen.
        table = self
        order = {str(k.value): i for i, k in enumerate(table.rows)}
        top = int(table.scroll_y)
        bottom = top + table.size.height
        for h in hosts:
            name = h.name
            load = h.load
            cpu_hist, mem_hist = self.history.setdefault(
                name, (deque(maxlen=HISTORY), deque(maxlen=HISTORY))
            )
            beat_id = h.last_heartbeat_at
            fresh = beat_id is not None and self.last_beat.get(name) != beat_id
            if fresh and load.get("cpu_percent") is not None:
                # one sample per heartbeat, not one per refresh
                self.last_beat[name] = beat_id
                cpu_hist.append(float(load["cpu_percent"]))
                mem_hist.append(float(load.get("mem_percent") or 0))
            if needle and not h.matches(needle):
                continue
            still = (beat_id, h.state, h.fresh, h.idle_reason, h.idle_until, h.code_hash)
            drawn = self.drawn_from.get(name)
            at = order.get(name)
            if (
                h.fresh
                and drawn is not None
                and drawn[0] == still
                and drawn[1] is h.running
                and drawn[2] is h.load
                and drawn[3] is h.counters
                and name in self.row_cache
                and (
                    name not in self.offscreen_stale
                    or (at is not None and not top - 1 <= at <= bottom)
                )
            ):
                # the same beat, still fresh ("ok"), same state and tasks as last time: the
                # same cells (or, off screen, the same news still waiting to be drawn)
                rows[name] = self.row_cache[name][1]
                continue
            code = ""
            if h.code_hash and self.head_hash:
                code = "ok" if h.code_hash == self.head_hash else "stale"
            beat = fmt.beat_age(h)
            sig = (
                h.state,
                beat.plain,
                load.get("cpu_percent"),
                load.get("mem_percent"),
                tuple((r.id, r.progress, r.stalled) for r in h.running),
                fmt.idle(h),
                h.counters.get("done_today"),
                code,
                tuple(cpu_hist),
            )
            cached = self.row_cache.get(name)
            self.drawn_from[name] = (still, h.running, h.load, h.counters)
            if cached is not None and cached[0] == sig:
                rows[name] = cached[1]  # unchanged: the same cell objects, nothing to do
                self.offscreen_stale.discard(name)
                continue
            if cached is not None and at is not None and not top - 1 <= at <= bottom:
                rows[name] = cached[1]  # off screen: drawn when scrolled to
                self.offscreen_stale.add(name)
                continue
            label = Text(name, style="bold" if h.state in ("stale", "offline") else "")
            if not order and table.size.height and len(rows) > bottom:
                # the first build: rows below the first screenful show their name, state and
                # beat, the rest when scrolled to (building every row's cells took 110-140 ms
                # of the first paint with 500 hosts; this build takes ~20)
                cells: list[Any] = [label, fmt.state(h.state), beat, *[BLANK] * 7]
                self.row_cache[name] = ((), cells)  # matches no row: built on screen
                self.offscreen_stale.add(name)
                rows[name] = cells
                continue
            cells = [
                label,
                fmt.state(h.state),
                beat,
                fmt.bar(load.get("cpu_percent"), 4),
                fmt.running(h),
                fmt.idle(h),
                str(h.counters.get("done_today", "")),
                fmt.bar(load.get("mem_percent"), 4),
                fmt.spark(list(cpu_hist), 100),
                Text(code, style="bold yellow" if code == "stale" else "dim"),
            ]
            self.row_cache[name] = (sig, cells)
            self.offscreen_stale.discard(name)
            rows[name] = cells
        if order and list(rows) != list(order) and self.offscreen_stale:
            # the rows change (a filter, a host came or went): every row is shown anew
            self.offscreen_stale.clear()
            self.row_cache.clear()
            self.drawn_from.clear()
            self.show(hosts, needle)
            return
        sync_rows(table, rows)
