"""Human-readable output for the CLI: small aligned tables, no dependencies."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from control.core import stages as pipeline_stages
from control.core.redact import scrub_value, shown_text, visible
from control.core.tasktypes import STATES
from control.head.media import media_line, short_state

if TYPE_CHECKING:  # the ORM only where rows are typed: `agent run` never loads it
    from control.core.readmodels import FleetSnapshot, MediaView
    from control.head.models import Task


def clean(text: str) -> str:
    """`text` with secrets masked and its terminal control characters made visible
    (redact.shown_text): everything the CLI prints goes through it."""
    return shown_text(text)


def print_secret(text: str) -> None:
    """The one way to print a secret on purpose (`db url --show-password`): past the filter."""
    raw = sys.stdout.raw if isinstance(sys.stdout, CleanStream) else sys.stdout
    raw.write(visible(text) + "\n")
    raw.flush()


class CleanStream:
    """A text stream that drops terminal control characters from everything written to it."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(clean(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


@contextmanager
def clean_output() -> Iterator[None]:
    """While it lasts, stdout and stderr carry no terminal control characters."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = CleanStream(saved[0]), CleanStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


class LiveProgress:
    """One live bar per item or host on a terminal (rich, as yt-dlp and uv users expect);
    plain lines, each printed when it changes, when stdout is not a terminal. Not `enabled`
    (`--json`: stdout holds the one document), the lines go to stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.live = enabled and sys.stdout.isatty()
        self._lines = sys.stdout if enabled else sys.stderr
        self._bars: dict[str, Any] = {}
        self._said: dict[str, str] = {}
        self._progress: Any = None
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            # rich draws with escape sequences: it writes to the terminal itself (the stream
            # under clean_output's filter); every text it shows is cleaned here instead.
            raw = sys.stdout.raw if isinstance(sys.stdout, CleanStream) else sys.stdout
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                TimeElapsedColumn(),
                console=Console(file=raw),
                transient=False,
            )

    def __enter__(self) -> LiveProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def note(self, text: str) -> None:
        """A message beside the bars (above them on a terminal, on stderr otherwise)."""
        if self._progress is None:
            print(text, file=sys.stderr, flush=True)
            return
        from rich.text import Text

        self._progress.console.print(Text(clean(text), style="yellow"))

    def update(self, key: str, text: str, done: float, total: float) -> None:
        if self._progress is None:
            if self._said.get(key) != text:
                print(text, file=self._lines, flush=True)
                self._said[key] = text
            return
        from rich.text import Text

        label = Text(clean(text))  # text from outside: never markup
        if key not in self._bars:
            self._bars[key] = self._progress.add_task(label, total=total)
        self._progress.update(self._bars[key], description=label, completed=done, total=total)


def _json_default(value: Any) -> Any:
    # the contract's one timestamp shape: ISO 8601 with `T` and an offset (str() has a space)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)


def document(value: Any) -> Any:
    """`value` as JSON holds it: a read model (control/core/readmodels.py) by its `to_json()`,
    in lists and dicts too."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [document(v) for v in value]
    if isinstance(value, dict):
        return {k: document(v) for k, v in value.items()}
    return value


def emit_json(value: Any) -> None:
    value = document(value)
    # secrets masked in every string and secret-named field, then written past the text filter
    # (which would mask inside the JSON text, `"max_tokens": 5` and all); the encoder escapes
    # control characters itself
    raw = sys.stdout.raw if isinstance(sys.stdout, CleanStream) else sys.stdout
    raw.write(json.dumps(scrub_value(value), indent=2, default=_json_default) + "\n")
    raw.flush()


Column = tuple[str, Callable[[Any], Any]]  # a table's header, and its cell of a row


def render(
    args: Any,
    doc: Any,
    columns: Sequence[Column] = (),
    *,
    text: str | Callable[[Any], None] | None = None,
    empty: str = "",
    rows: Iterable[Any] | None = None,
) -> None:
    """How a command reports, both ways at once: with `--json`, `doc` is the one JSON document
    on stdout (read models by their `to_json()`); else `text` (a line, or a function that
    prints `doc`), or a table of `columns` over `doc`'s rows (`rows`: the rows the table shows,
    when not `doc`'s own, or in another order), `empty` when there are none."""
    if getattr(args, "json", False):
        emit_json(doc)
    elif text is not None:
        if callable(text):
            text(doc)
        else:
            print(text)
    else:
        shown = list(doc if rows is None else rows)
        if not shown:
            print(empty)
        else:
            headers = [h for h, _ in columns]
            print(table(headers, [[cell(r) for _, cell in columns] for r in shown]))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def id_list(ids: Sequence[int], most: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (f" (+{len(ids) - most} more)" if len(ids) > most else "")


def print_status(snap: FleetSnapshot) -> None:
    rows = [[t, *(c[s] for s in STATES)] for t, c in snap.by_type.items()]
    rows.append(["total", *(snap.totals[s] for s in STATES)])
    print(f"database: schema v{snap.schema_version}   at {snap.generated_at}")
    print()
    print(table(["type", *STATES], rows))
    print()
    if not snap.hosts:
        print("no hosts: declare them in inventory.yaml, or run `contentctl agent run`")
        return
    hrows = []
    for h in snap.hosts:
        running = ", ".join(
            f"{r.type}#{r.id}" + (f" {r.progress * 100:.0f}%" if r.progress is not None else "")
            for r in h.running
        )
        load = h.load
        hrows.append(
            [
                h.name + ("" if h.declared else " (undeclared)"),
                h.state,
                "" if h.heartbeat_age_s is None else f"{h.heartbeat_age_s:.0f}s",
                "" if "cpu_percent" not in load else f"{load['cpu_percent']:.0f}%",
                "" if "mem_percent" not in load else f"{load['mem_percent']:.0f}%",
                running,
                h.idle_reason or "",
            ]
        )
    print(table(["host", "state", "heartbeat", "cpu", "mem", "running", "idle"], hrows))


def print_tasks(tasks: Sequence[Task]) -> None:
    if not tasks:
        print("no tasks")
        return
    rows = [
        [
            t.id,
            t.type,
            t.display_state,
            t.priority,
            f"{t.attempts}/{t.max_attempts}",
            t.host or "",
            "" if t.progress is None else f"{t.progress * 100:.0f}%",
            t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            (t.error_message or "")[:60],
        ]
        for t in tasks
    ]
    print(
        table(
            ["id", "type", "state", "prio", "attempts", "host", "progress", "created", "error"],
            rows,
        )
    )


def print_task(t: Task) -> None:
    data = t.public()
    error = data.pop("error")
    for key, value in data.items():
        if isinstance(value, dict):
            value = json.dumps(value)
        print(f"{key:>17}: {'' if value is None else value}")
    if error:
        print(f"{'error':>17}: {error['type']}: {error['message']}")
        if error["traceback"]:
            print("traceback (tail):")
            print(error["traceback"])


def log_doc(row: dict[str, Any]) -> dict[str, Any]:
    """A log line for `logs --json` (one JSON object a line)."""
    return {
        "id": row["id"],
        "ts": row["ts"].isoformat(),
        "host": row["host"],
        "level": row["level"],
        "logger": row["logger"],
        "task_id": row.get("task_id"),
        "message": row["message"],
    }


def print_log(row: dict[str, Any], *, with_host: bool) -> None:
    ts = row["ts"].astimezone().strftime("%H:%M:%S")
    host = f"{row['host']} " if with_host else ""
    task = f"[task {row['task_id']}] " if row.get("task_id") else ""
    print(f"{ts} {host}{row['level']:<7} {task}{row['message']}")


def print_media_list(items: Sequence[MediaView]) -> None:
    if not items:
        print("no media items: add one with `contentctl add SOURCE`")
        return
    stages = [(st.name, st.label) for st in pipeline_stages.current()]  # the declared stages
    rows = [
        [
            i.id,
            i.state,
            *(short_state(i.stages.get(s, "")) or "" for s, _ in stages),
            i.name[:50],
        ]
        for i in items
    ]
    print(table(["id", "state", *(label for _, label in stages), "title"], rows))


def print_media_item(item: MediaView) -> None:
    print(f"media {item.id}  {item.state}  ({item.kind}, generation {item.generation})")
    print(f"  source: {item.source}")
    if item.title:
        print(f"  title:  {item.title}" + (f"  ({item.channel})" if item.channel else ""))
    if item.duration_s:
        print(f"  length: {item.duration_s:.1f} s")
    print("  stages: " + media_line(item).split(": ", 1)[1])
    if item.error:
        print(f"  error:  {item.error}")
    outs = item.outputs
    for key in ("audio", "transcript_json", "srt", "vtt", "txt"):
        if outs.get(key):
            print(f"  {key + ':':16} {outs[key]}")
    for lang, p in (outs.get("translations") or {}).items():
        print(f"  {'translation ' + lang + ':':16} {p}")
    for key in (k for st in pipeline_stages.current() if st.custom for _, k in st.files):
        if outs.get(key):
            print(f"  {key + ':':16} {outs[key]}")
