"""The Fleet screen's two tables as widgets of their own: the queue by type and state, and the
hosts (one row a host, its cells made only when what they show changed: with 500 hosts the
cells of the hundred that beat each second were most of an idle refresh). The screen hands
them the snapshot's parts (attributes down); they keep their own caches."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

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
    """The hosts: state, beat, load, running task, idle reason, done today, code."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.head_hash: str | None = None  # the head's code: another one is `stale`
        self.history: dict[str, tuple[deque[float], deque[float]]] = {}
        self.last_beat: dict[str, Any] = {}  # host -> the time of the beat last sampled
        self.row_cache: dict[str, tuple[tuple[Any, ...], list[Any]]] = {}
        # host -> (its beat, state, freshness) and running list when its cached cells were
        # made: the same again means the same cells, told without working out the row
        self.drawn_from: dict[str, tuple[tuple[Any, ...], Any]] = {}
        # host -> the entry its row was last worked out from: the hosts view hands an unchanged
        # host's entry back as the same object (its age set in place)
        self.shown_entry: dict[str, dict[str, Any]] = {}
        # hosts off screen whose news waits until scrolled to (their cells are older than it)
        self.offscreen_stale: set[str] = set()

    def on_mount(self) -> None:
        for key, label in HOST_COLUMNS:
            self.add_column(label, key=key)

    def show(self, hosts: Sequence[dict[str, Any]], needle: str = "") -> None:
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
            name = h["name"]
            age = h.get("heartbeat_age_s")
            state = h["state"]
            if (
                h is self.shown_entry.get(name)
                and not needle
                and fmt.beat_fresh(age, state)
                and name not in self.offscreen_stale
                and (kept := self.row_cache.get(name)) is not None
                and (drawn := self.drawn_from.get(name)) is not None
                and drawn[0][2]
            ):
                # the very entry its row was drawn from, drawn fresh and still fresh: the same
                # cells, told without a look at the host (most of 500 hosts, every second)
                rows[name] = kept[1]
                continue
            self.shown_entry[name] = h
            load = h.get("load") or {}
            cpu_hist, mem_hist = self.history.setdefault(
                h["name"], (deque(maxlen=HISTORY), deque(maxlen=HISTORY))
            )
            beat_id = h.get("last_heartbeat_at")
            fresh = beat_id is not None and self.last_beat.get(h["name"]) != beat_id
            if load.get("cpu_percent") is not None and fresh:
                # one sample per heartbeat, not one per refresh
                self.last_beat[h["name"]] = beat_id
                cpu_hist.append(float(load["cpu_percent"]))
                mem_hist.append(float(load.get("mem_percent") or 0))
            if needle and not any(
                needle in str(v).lower()
                for v in (h["name"], h["state"], *(h.get("enabled_tasks") or []))
            ):
                del self.shown_entry[name]  # not drawn: its cells may fall behind its entry
                continue
            still = (beat_id, h["state"], fmt.beat_fresh(age, h["state"]))
            drawn = self.drawn_from.get(h["name"])
            at = order.get(h["name"])
            if (
                still[2]
                and drawn is not None
                and drawn[0] == still
                and drawn[1] is h.get("running")
                and h["name"] in self.row_cache
                and (
                    h["name"] not in self.offscreen_stale
                    or (at is not None and not top - 1 <= at <= bottom)
                )
            ):
                # the same beat, still fresh ("ok"), same state and tasks as last time: the
                # same cells (or, off screen, the same news still waiting to be drawn)
                rows[h["name"]] = self.row_cache[h["name"]][1]
                continue
            code = ""
            if h.get("code_hash") and self.head_hash:
                code = "ok" if h["code_hash"] == self.head_hash else "stale"
            beat = fmt.beat_age(age, h["state"])
            sig = (
                h["state"],
                beat.plain,
                load.get("cpu_percent"),
                load.get("mem_percent"),
                tuple(
                    (r.get("id"), r.get("progress"), r.get("stalled"))
                    for r in h.get("running") or ()
                ),
                fmt.idle(h),
                (h.get("counters") or {}).get("done_today"),
                code,
                tuple(cpu_hist),
            )
            cached = self.row_cache.get(h["name"])
            self.drawn_from[h["name"]] = (still, h.get("running"))
            if cached is not None and cached[0] == sig:
                rows[h["name"]] = cached[1]  # unchanged: the same cell objects, nothing to do
                self.offscreen_stale.discard(h["name"])
                continue
            if cached is not None and at is not None and not top - 1 <= at <= bottom:
                rows[h["name"]] = cached[1]  # off screen: drawn when scrolled to
                self.offscreen_stale.add(h["name"])
                continue
            name = Text(h["name"], style="bold" if h["state"] in ("stale", "offline") else "")
            if not order and table.size.height and len(rows) > bottom:
                # the first build: rows below the first screenful show their name, state and
                # beat, the rest when scrolled to (building every row's cells took 110-140 ms
                # of the first paint with 500 hosts; this build takes ~20)
                cells: list[Any] = [name, fmt.state(h["state"]), beat, *[BLANK] * 7]
                self.row_cache[h["name"]] = ((), cells)  # matches no row: built on screen
                self.offscreen_stale.add(h["name"])
                rows[h["name"]] = cells
                continue
            cells = [
                name,
                fmt.state(h["state"]),
                beat,
                fmt.bar(load.get("cpu_percent"), 4),
                fmt.running(h),
                fmt.idle(h),
                str((h.get("counters") or {}).get("done_today", "")),
                fmt.bar(load.get("mem_percent"), 4),
                fmt.spark(list(cpu_hist), 100),
                Text(code, style="bold yellow" if code == "stale" else "dim"),
            ]
            self.row_cache[h["name"]] = (sig, cells)
            self.offscreen_stale.discard(h["name"])
            rows[h["name"]] = cells
        if order and list(rows) != list(order) and self.offscreen_stale:
            # the rows change (a filter, a host came or went): every row is shown anew
            self.offscreen_stale.clear()
            self.row_cache.clear()
            self.drawn_from.clear()
            self.shown_entry.clear()
            self.show(hosts, needle)
            return
        sync_rows(table, rows)
