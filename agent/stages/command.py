"""`command` task types: an operator's program, declared in the inventory, run on the worker.

The argv comes from this worker's own inventory (`settings["commands"]`), never from the task's
payload: whoever can write a task row cannot choose what runs. Each template word is filled
(control/core/commands.py) and stays one argv item; no shell is involved. Files the command
reads are the item's files under the storage root; files it writes go to temporary paths
(`atomic_path`), published only once the queue accepts the attempt, and must be regular files
(a symlink planted as an output would point outside the storage root). The command runs in the
task process's group, so the type's timeout kills it with the process. A stdout line that is a
fraction (`0.4`) or a percentage (`40%`), alone or after `progress`, moves the task's progress;
the last lines of stderr are the failure's message.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import stat
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from agent.handlers import Context, TaskError
from agent.stages import path, rel, storage_root
from control.core import commands
from control.core.storage import PathEscapes, atomic_path, resolve

PROGRESS = re.compile(r"^\s*(?:progress[:\s]\s*)?(\d+(?:\.\d+)?)(%?)\s*$", re.IGNORECASE)
TAIL_LINES = 20
NOT_FOUND_EXIT = 127  # the shell's "command not found", for a program a wrapper could not find


def run_command(task_type: str, payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    spec = (ctx.settings.get("commands") or {}).get(task_type)
    host = ctx.settings.get("host") or "this host"
    if not spec:
        raise TaskError(
            f"{task_type}: host {host}'s inventory declares no command for it: update the "
            "inventory there (contentctl provision)",
            retryable=False,
        )
    argv_template = tuple(spec["argv"])
    with contextlib.ExitStack() as stack:
        outs: dict[str, tuple[Path, Path]] = {}  # name -> (temporary, destination)
        argv = [_fill(word, payload, ctx, stack, outs) for word in commands.parse(argv_template)]
        program = argv[0]
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{task_type}."))
        code, tail = _run(argv, scratch, ctx)
        if code == NOT_FOUND_EXIT and not tail:
            code = -1  # reported below as not found
        if code != 0:
            last = tail[-1] if tail else "no message on stderr"
            raise TaskError(f"{program} exited with status {code}: {last}", retryable=True)
        written: dict[str, str] = {}
        for name, (tmp, dest) in outs.items():
            _check_output(program, name, tmp)
            written[name] = rel(ctx, dest)
    return {"files": written, "command": program}


def _run(argv: list[str], cwd: str, ctx: Context) -> tuple[int, list[str]]:
    """Run the command to its end: progress from stdout, the last lines of stderr kept."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            close_fds=True,
        )
    except FileNotFoundError:
        raise TaskError(
            f"{argv[0]}: command not found on host {ctx.settings.get('host') or '?'}: install it "
            "there or fix the task type's command in the inventory",
            retryable=False,
        ) from None
    except PermissionError:
        raise TaskError(
            f"{argv[0]}: not executable on host {ctx.settings.get('host') or '?'}",
            retryable=False,
        ) from None
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    assert proc.stdout is not None and proc.stderr is not None
    reader = threading.Thread(target=_collect, args=(proc.stderr, tail), daemon=True)
    reader.start()
    for line in proc.stdout:
        m = PROGRESS.match(line)
        if m:
            value = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
            if 0.0 <= value <= 1.0:
                ctx.progress(value, "running")
    code = proc.wait()
    reader.join(timeout=5)
    return code, [t for t in tail if t.strip()]


def _collect(stream: IO[str], tail: collections.deque[str]) -> None:
    for line in stream:
        tail.append(line.rstrip("\n"))


def _fill(
    word: tuple[commands.Part, ...],
    payload: dict[str, Any],
    ctx: Context,
    stack: contextlib.ExitStack,
    outs: dict[str, tuple[Path, Path]],
) -> str:
    pieces: list[str] = []
    for part in word:
        if part.kind is None:
            pieces.append(part.text)
        elif part.kind in ("file", "source"):
            name = part.key or "source"
            pieces.append(str(_input(ctx, payload, name)))
        elif part.kind == "out":
            name = str(part.key)
            if name not in outs:
                dest = path(ctx, payload, "out_dir") / name
                tmp = stack.enter_context(atomic_path(dest))
                tmp.unlink()  # the command makes it: a path left empty means nothing written
                outs[name] = (tmp, dest)
            pieces.append(str(outs[name][0]))
        elif part.kind == "meta":
            pieces.append(_text((payload.get("meta") or {}).get(str(part.key)), part))
        elif part.kind == "payload":
            pieces.append(_text(payload.get(str(part.key)), part))
        elif part.kind == "task_id":
            pieces.append(str(ctx.task_id))
        elif part.kind == "attempt":
            pieces.append(str(ctx.attempt))
        elif part.kind == "media_id":
            pieces.append(_text(payload.get("media_id"), part))
    value = "".join(pieces)
    if "\0" in value:
        raise TaskError("a value for the command holds a NUL character", retryable=False)
    return value


def _input(ctx: Context, payload: dict[str, Any], name: str) -> Path:
    """The item's file `name`, as recorded by the stage that wrote it; it must be there."""
    relpath = (payload.get("files") or {}).get(name)
    if not isinstance(relpath, str):
        raise TaskError(
            f"the item has no {name} recorded: run the stage that writes it first", retryable=False
        )
    try:
        target = resolve(storage_root(ctx), relpath)
    except PathEscapes as exc:
        raise TaskError(str(exc), retryable=False) from exc
    if not target.is_file():
        raise TaskError(f"{name} is missing at {relpath}: contentctl reconcile", retryable=False)
    return target


def _text(value: Any, part: commands.Part) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | float | str):
        return str(value)
    raise TaskError(f"{{{part.kind}:{part.key}}} is not a single value", retryable=False)


def _check_output(program: str, name: str, tmp: Path) -> None:
    """What the command left at an output's path: a regular file it wrote, nothing else."""
    try:
        st = os.lstat(tmp)
    except FileNotFoundError:
        raise TaskError(f"{program} succeeded but wrote no {name}", retryable=True) from None
    if not stat.S_ISREG(st.st_mode):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise TaskError(
            f"{program} left {name} as something other than a regular file (a link or a "
            "directory): refused, outputs stay under the storage root",
            retryable=False,
        )
    if st.st_nlink > 1:
        raise TaskError(f"{program} left {name} as a hard link: refused", retryable=False)
