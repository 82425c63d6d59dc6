"""Tasks: filter, sort, page in SQL, details, retry/cancel/priority."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.widgets import (
    DataTable,
    Input,
    Static,
)

from control.head.api import TaskQuery
from tui import format as fmt
from tui.screens.base import STATES, Base
from tui.widgets.footer import Footer
from tui.widgets.live_table import selected_key, sync_rows


@dataclass(frozen=True)
class TaskView:
    """The Tasks screen's query: state filter, free-text/`key:value` search, order, page."""

    state: str | None = None
    search: str = ""
    sort: str = "newest"
    page_start: int = 0


class TasksScreen(Base):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", "retry", "Retry"),
        Binding("c", "cancel", "Cancel"),
        Binding("plus", "priority", "Priority +10"),
        Binding("ctrl+r", "retry_all", "Retry all"),
        Binding("C", "cancel_all", "Cancel all"),
        Binding("s", "cycle_state", "State"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("right_square_bracket", "page(1)", "Next page"),
        Binding("left_square_bracket", "page(-1)", "Prev page"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    PALETTE = (
        ("retry", "Retry task", "move the selected failed task back to the queue"),
        ("cancel", "Cancel task", "cancel the selected task"),
        ("priority", "Raise priority", "priority +10 for the selected queued task"),
        ("retry_all", "Retry all matching", "every failed task the current filter shows"),
        ("cancel_all", "Cancel all matching", "every unfinished task the current filter shows"),
    )
    PAGE = 100
    SORTS = ("newest", "oldest", "priority")

    # What the table shows, as one value: any change reloads (watch_view), so the actions
    # only say what changed.
    view: reactive[TaskView] = reactive(TaskView(), init=False)

    def __init__(self) -> None:
        super().__init__()
        self.shown_detail: int | None = None

    def watch_view(self) -> None:
        self.load()

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="filters", markup=False)
        yield Input(
            placeholder="filter: text, or state:failed type:transcribe host:mac-1", id="filter"
        )
        with Horizontal():
            yield DataTable(id="tasks", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="detail-pane"):
                yield Static("", id="detail", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#tasks", DataTable)
        for key in ("id", "type", "state", "pri", "try", "host", "progress", "error"):
            table.add_column(key, key=key)
        self.query_one("#filter", Input).display = False
        table.focus()

    def task_query(self) -> Any:

        words = {}
        free = []
        for part in self.view.search.split():
            key, sep, value = part.partition(":")
            if sep and key in ("state", "type", "host"):
                words[key] = value
            else:
                free.append(part)
        return TaskQuery(
            state=words.get("state") or self.view.state,
            type=words.get("type"),
            host=words.get("host"),
            text=" ".join(free) or None,
            sort=self.view.sort,
            offset=self.view.page_start,
            limit=self.PAGE,
        )

    def load(self) -> None:
        self.fetch()

    @work(exclusive=True, group="tasks")
    async def fetch(self) -> None:
        q = self.task_query()
        rows = await self.guarded(self.plane.tasks(q), refresh=True)
        if rows is None:
            return
        page = self.view.page_start // self.PAGE + 1
        self.query_one("#filters", Static).update(
            f"state: {q.state or 'any'}   type: {q.type or 'any'}   host: {q.host or 'any'}   "
            f"text: {q.text or '-'}   sort: {self.view.sort}   page {page}"
        )
        table = self.query_one("#tasks", DataTable)
        sync_rows(
            table,
            {
                str(r["id"]): [
                    str(r["id"]),
                    r["type"],
                    fmt.state(r["state"]),
                    str(r["priority"]),
                    f"{r['attempts']}/{r['max_attempts']}",
                    r["host"] or "",
                    fmt.progress(r["progress"], 6) if r["state"] == "running" else "",
                    (r["error_message"] or "")[:60],
                ]
                for r in rows
            },
        )
        self.show_detail()

    @work(exclusive=True, group="task-detail")
    async def show_detail(self) -> None:
        """The selected task in full: read in a worker, so moving the cursor never waits on
        the database (a newer selection cancels the read in flight)."""
        key = selected_key(self.query_one("#tasks", DataTable))
        if key is None:
            self.query_one("#detail", Static).update("no tasks match")
            return
        t = await self.guarded(self.plane.task(int(key)))
        if t is None:
            return
        text = Text()
        text.append(f"task {t['id']}  ", style="bold")
        text.append_text(fmt.state(t["state"]))
        text.append(
            f"\n{t['type']}  priority {t['priority']}  attempts {t['attempts']}/"
            f"{t['max_attempts']}  host {t['host'] or '-'}\n"
        )
        for label, key2 in (
            ("created", "created_at"),
            ("started", "started_at"),
            ("finished", "finished_at"),
            ("run at", "run_at"),
        ):
            text.append(f"{label:>9}: {fmt.when(t.get(key2))}\n", style="dim")
        if t.get("progress") is not None:
            text.append(
                f" progress: {fmt.progress(t['progress'])} {t.get('progress_stage') or ''}\n"
            )
        if t.get("media_id"):
            text.append(f"    media: {t['media_id']}\n")
        text.append("payload:\n", style="bold")
        text.append(json.dumps(t.get("payload"), indent=1)[:1200] + "\n")
        if t.get("result"):
            text.append("result:\n", style="bold")
            text.append(json.dumps(t["result"], indent=1)[:800] + "\n")
        error = t.get("error")
        if error:  # {type, message} (docs/contract.md), shown as a line, not a dict
            kind = (error.get("type") if isinstance(error, dict) else None) or t.get("error_type")
            message = error.get("message") if isinstance(error, dict) else error
            text.append("error:\n", style="bold red")
            text.append(f"{kind or 'error'}: {message}\n", style="red")
        if t.get("error_traceback"):
            tail = "\n".join(str(t["error_traceback"]).strip().splitlines()[-12:])
            text.append(tail + "\n", style="dim")
        self.query_one("#detail", Static).update(text)

    @on(DataTable.RowHighlighted, "#tasks")
    def highlighted(self) -> None:
        self.show_detail()

    def selected(self) -> int | None:
        key = selected_key(self.query_one("#tasks", DataTable))
        return int(key) if key else None

    @work(group="task-actions")
    async def act(self, what: str, task_id: int) -> None:
        if what == "retry":
            moved = await self.guarded(self.plane.retry([task_id]))
            if moved is not None:
                self.notify(
                    f"task {task_id} re-queued"
                    if moved
                    else f"task {task_id} is not failed: nothing to retry",
                    severity="information" if moved else "warning",
                )
        elif what == "cancel":
            done = await self.guarded(self.plane.cancel([task_id]))
            if done is not None:
                self.notify(
                    f"task {task_id}: cancel requested"
                    if done
                    else f"task {task_id} already finished",
                    severity="information",
                )
        elif what == "priority":
            new = await self.guarded(self.plane.raise_priority(task_id))
            self.notify(
                f"task {task_id}: priority {new}"
                if new is not None
                else f"task {task_id} is not waiting: priority unchanged"
            )
        self.load()

    def _act(self, what: str, task_id: int) -> None:
        self.act(what, task_id)

    def action_retry(self) -> None:
        if (task_id := self.selected()) is not None:
            self.act("retry", task_id)

    def action_cancel(self) -> None:
        if (task_id := self.selected()) is not None:
            self.confirm_then(f"Cancel task {task_id}?", lambda: self._act("cancel", task_id))

    def action_priority(self) -> None:
        if (task_id := self.selected()) is not None:
            self.act("priority", task_id)

    def action_retry_all(self) -> None:
        self.bulk("retry", ("failed",))

    def action_cancel_all(self) -> None:
        self.bulk("cancel", ("queued", "scheduled", "running"))

    @work(group="task-actions")
    async def bulk(self, what: str, states: tuple[str, ...]) -> None:
        """Retry or cancel every task the filter matches: count them, ask, then act."""
        query = self.task_query()
        ids = await self.guarded(self.plane.matching_ids(query, states))
        if ids is None:
            return
        kind = "failed" if what == "retry" else "unfinished"
        if not ids:
            self.notify(f"no {kind} tasks match the filter", severity="warning")
            return
        shown = self.query_one("#filters", Static).render()
        question = f"{what.capitalize()} {len(ids)} {kind} task(s) matching: {shown}?"

        async def act() -> None:
            call = self.plane.retry(ids) if what == "retry" else self.plane.cancel(ids)
            done = await self.guarded(call)
            if done is not None:
                self.notify(f"{what}: {len(done)} task(s)")
            self.load()

        self.confirm_then(question, lambda: self.run_worker(act(), group="task-actions"))

    def action_cycle_state(self) -> None:
        order: list[str | None] = [None, *STATES]
        state = order[(order.index(self.view.state) + 1) % len(order)]
        self.view = replace(self.view, state=state, page_start=0)

    def action_cycle_sort(self) -> None:
        sort = self.SORTS[(self.SORTS.index(self.view.sort) + 1) % len(self.SORTS)]
        self.view = replace(self.view, sort=sort, page_start=0)

    def action_page(self, step: int) -> None:
        self.view = replace(self.view, page_start=max(0, self.view.page_start + step * self.PAGE))

    def filter_cleared(self) -> None:
        self.query_one("#tasks", DataTable).focus()
        self.view = replace(self.view, search="", page_start=0)

    @on(Input.Submitted, "#filter")
    def filter_done(self, event: Input.Submitted) -> None:
        self.query_one("#tasks", DataTable).focus()
        self.view = replace(self.view, search=event.value, page_start=0)
