"""Names that come in from outside (hosts, schedules, sources), checked once, here, for every
way they come in: the inventory, `agent run --host`, `db url --host`, `schedule add`,
`source add`. A host's name becomes a PostgreSQL role (`agent_<host>`, 63 bytes at most) and a
metric label; a schedule's or source's name is shown in terminals."""

from __future__ import annotations

import re
import unicodedata

from control.core.errors import UsageError

HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
ROLE_PREFIX = "agent_"
# PostgreSQL truncates longer role names, so two long hosts would share one role
HOST_NAME_MAX = 63 - len(ROLE_PREFIX)
LABEL_MAX = 200


def host_name_problem(name: str) -> str | None:
    """Why `name` cannot be a host's name, or None."""
    if not HOST_NAME.fullmatch(name):
        return (
            f"host name {name!r} is not allowed: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    if len(name.encode()) > HOST_NAME_MAX:
        return (
            f"host name {name[:20]!r}... is {len(name)} characters: at most {HOST_NAME_MAX} "
            f"(it names the host's database role, {ROLE_PREFIX}<host>)"
        )
    return None


def host_name(name: str) -> str:
    problem = host_name_problem(name)
    if problem is not None:
        raise UsageError(problem)
    return name


def label(name: str, what: str) -> str:
    """A schedule's or source's name: printable text, no control characters, not blank."""
    if not name.strip() or name != name.strip():
        raise UsageError(f"{what} {name!r} is blank or has spaces at its ends")
    if len(name) > LABEL_MAX:
        raise UsageError(f"{what} is {len(name)} characters: at most {LABEL_MAX}")
    for ch in name:
        if unicodedata.category(ch).startswith("C"):
            raise UsageError(
                f"{what} {name!r} holds a control character (U+{ord(ch):04X}): use printable text"
            )
    return name
