"""The agent stays light: importing it pulls in no dashboard, no SSH, no ORM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_agent_imports_no_heavy_or_forbidden_modules() -> None:
    code = (
        "import sys, json, agent.runner, agent.handlers;"
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    for forbidden in (
        "textual",
        "asyncssh",
        "tui",
        "provisioning",
        "sqlmodel",
        "sqlalchemy",
        "pydantic",
    ):
        assert forbidden not in loaded, f"the agent imports {forbidden}"


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint_imports), "--no-cache"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 broken" in out.stdout and " kept" in out.stdout


def test_the_command_line_loads_no_dashboard_ssh_or_orm_before_a_command_needs_it() -> None:
    """`contentctl agent run` starts through the same entry point as every command: until a
    command asks for them, the dashboard, SSH and the ORM stay unloaded (a worker's agent)."""
    code = (
        "import sys, json, tui.launcher, control.cli.main, control.cli.commands.run, agent.runner;"
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    for heavy in ("textual", "asyncssh", "sqlmodel", "sqlalchemy", "pydantic", "faster_whisper"):
        assert heavy not in loaded, f"the command line imports {heavy} up front"


def test_status_loads_no_orm() -> None:
    """`status --json` is what scripts call in loops: the command's module imports no ORM
    (before: 1.4 s of a 1.4 s run went to importing SQLModel; bench/cli_startup.py)."""
    code = (
        "import sys, json, control.cli.main, control.cli.commands.tasks;"
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert not {"sqlmodel", "sqlalchemy", "textual", "asyncssh"} & loaded
