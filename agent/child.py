"""`python -m agent.child`: a task process. It runs the tasks the agent sends it, one at a time,
over a JSON-lines pipe (stdin in, the original stdout out; what handlers print goes to stderr),
and stays alive between tasks so models loaded by a handler stay warm."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any

from agent.handlers import TaskError, resolve
from control.core.storage import staged


class ChildContext:
    def __init__(self, task_id: int, attempt: int, out: IO[str], settings: dict[str, Any]) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.settings = settings
        self._out = out

    def progress(self, fraction: float, stage: str | None = None) -> None:
        _send(
            self._out,
            {"event": "progress", "id": self.task_id, "fraction": fraction, "stage": stage},
        )


def _send(out: IO[str], msg: dict[str, Any]) -> None:
    out.write(json.dumps(msg) + "\n")
    out.flush()


def run_one(msg: dict[str, Any], out: IO[str]) -> None:
    task_id = int(msg["id"])
    ctx = ChildContext(task_id, int(msg.get("attempt", 1)), out, dict(msg.get("settings") or {}))
    try:
        # outputs stay under temporary names: the agent publishes them once the queue accepts
        with staged() as files:
            handler = resolve(str(msg["type"]), ctx.settings)
            result = handler(dict(msg.get("payload") or {}), ctx)
        encoded = json.dumps(
            {
                "event": "done",
                "id": task_id,
                "result": result or {},
                "staged": [[str(tmp), str(dest)] for tmp, dest in files],
            }
        )
    except TaskError as exc:
        _send(
            out,
            {
                "event": "error",
                "id": task_id,
                "error_type": "TaskError",
                "message": str(exc),
                "traceback": None,
                "retryable": exc.retryable,
                "retry_after_s": exc.retry_after_s,
            },
        )
        return
    except Exception as exc:
        _send(
            out,
            {
                "event": "error",
                "id": task_id,
                "error_type": type(exc).__name__,
                "message": str(exc) or type(exc).__name__,
                "traceback": traceback.format_exc(),
                "retryable": True,
            },
        )
        return
    except BaseException as exc:  # SystemExit from a handler: still an answer, then go
        _send(
            out,
            {
                "event": "error",
                "id": task_id,
                "error_type": type(exc).__name__,
                "message": f"handler exited ({exc})",
                "traceback": None,
                "retryable": True,
            },
        )
        raise
    out.write(encoded + "\n")
    out.flush()


def _die_with_parent(parent: int) -> None:
    """If the agent dies (kill -9), take this task process and what it started down too."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            with contextlib.suppress(OSError):
                os.killpg(os.getpgid(0), signal.SIGKILL)
            os._exit(1)


def main() -> int:
    threading.Thread(target=_die_with_parent, args=(os.getppid(),), daemon=True).start()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a handler prints lands on stderr, never in the protocol
    _send(out, {"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if line.strip():
            run_one(json.loads(line), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
