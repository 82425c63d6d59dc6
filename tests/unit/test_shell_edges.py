"""The edges shells and scripts meet: completion and flags never open the dashboard, and
nothing waits for a terminal that is not there (issue: shell completion froze the prompt)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(
    *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[bytes]:
    """`contentctl ARGS` with no terminal anywhere (stdin /dev/null, stdout and stderr piped)."""
    full = {**os.environ, "CONTENTCTL_HOME": "/nonexistent/contentctl-home", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tui.launcher", *args],
        env=full,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        **kw,
    )


def test_completion_answers_and_never_starts_the_dashboard(tmp_path: Path) -> None:
    """What bash's `complete -F` does on Tab after `contentctl ag`: argcomplete writes the
    candidates to fd 8 and exits; no escape code, no dashboard."""
    out = tmp_path / "candidates"
    with out.open("wb") as fd8:
        env = {
            "_ARGCOMPLETE": "1",
            "COMP_LINE": "contentctl ag",
            "COMP_POINT": "13",
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        }
        done = _run(env=env, pass_fds=(fd8.fileno(),))
    assert done.returncode == 0, done.stderr
    assert b"\x1b" not in done.stdout + done.stderr
    assert "agent" in out.read_text()


@pytest.mark.parametrize("flags", [["--json"], ["-v"], ["--verbose"], ["--bogus", "x"]])
def test_flags_without_a_command_are_a_usage_error(flags: list[str]) -> None:
    done = _run(*flags)
    assert done.returncode == 2
    assert done.stdout == b""
    err = done.stderr.decode()
    assert "\x1b" not in err
    assert err.strip().splitlines()[-1].startswith("contentctl: error:")


@pytest.mark.parametrize("args", [[], ["--inventory", "inventory.yaml"], ["--debug"]])
def test_no_terminal_no_dashboard(args: list[str]) -> None:
    """`contentctl </dev/null | cat` in a script: one line and exit 2, not a hidden app."""
    done = _run(*args)
    assert done.returncode == 2
    assert done.stdout == b""
    err = done.stderr.decode()
    assert "needs a terminal" in err and "\x1b" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_command_group_without_its_verb_is_one_line_on_stderr() -> None:
    done = _run("agent")
    assert done.returncode == 2
    assert done.stdout == b""
    assert "error:" in done.stderr.decode().strip().splitlines()[-1]
