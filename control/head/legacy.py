"""`contentctl inventory import config.yaml`: the existing fleet's config into an inventory.

The old `config.yaml` keeps `worker_limits` (per task type: `tasks_per_run`, `cooldown`, ...)
under `processing.distributed`, and the workers keyed by IP address under `processing.workers`
(older files: `processing.distributed.workers`; both are read): `enabled`, `enabled_tasks`,
`max_concurrent_tasks`, sometimes their own `tasks_per_run` / `cooldown` per type, or just a
list of task types. A worker is named by its `name:`, else by the comment beside its address
(`10.0.0.209:  # s4-head`), else `worker-10-0-0-209`.

Settings common to every worker become a `defaults:` block, so a 50-host file stays short;
what the inventory cannot say per host (a per-worker cooldown that differs from the fleet's)
is reported, not silently dropped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from control.core.errors import UsageError
from control.core.inventory import refuse_hazards
from control.core.names import host_name_problem
from control.core.tasktypes import ALL_TYPES

HOST_KEYS = ("enabled", "enabled_tasks", "max_concurrent_tasks")
LIMIT_KEYS = ("tasks_per_run", "cooldown", "daily_limit")


def _plain_name(text: str) -> str | None:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", text.strip()).strip("-.")
    return name if name and host_name_problem(name) is None else None


def _comment(workers: Any, address: Any) -> str | None:
    """The comment on the same line as a worker's address (`10.0.0.209:  # s4-head`)."""
    if not isinstance(workers, CommentedMap):
        return None
    tokens = workers.ca.items.get(address) or []
    token = tokens[2] if len(tokens) > 2 else None
    if token is None:
        return None
    key_line = workers.lc.key(address)[0]
    if getattr(token.start_mark, "line", None) != key_line:
        return None  # a comment of its own on a later line, not beside this address
    words = str(token.value).split("\n")[0].lstrip("#").split()
    return words[0] if words else None


def _name(address: str, raw: dict[str, Any], comment: str | None) -> str:
    for key in ("name", "hostname", "host"):
        if isinstance(raw.get(key), str) and (name := _plain_name(raw[key])):
            return name
    if comment and (name := _plain_name(comment)):
        return name
    return "worker-" + re.sub(r"[^0-9A-Za-z]", "-", address)


def _at(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _workers(path: Path, data: Any, commented: Any) -> list[tuple[Any, Any, str | None]]:
    """(address, settings, comment) for every worker, from both places old configs used:
    values from the plain load, comments from ruamel's round-trip load of the same text."""
    out: dict[str, tuple[Any, Any, str | None]] = {}
    for keys in (("processing", "distributed", "workers"), ("processing", "workers")):
        where = _at(data, *keys)
        if where is None:
            continue
        if not isinstance(where, dict):
            raise UsageError(f"{path}: {'.'.join(keys)} must map addresses to settings")
        with_comments = _at(commented, *keys)
        for address, raw in where.items():
            out[str(address)] = (address, raw, _comment(with_comments, address))
    return list(out.values())


def convert(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The inventory (as a mapping) and the notes about what could not be carried over."""
    try:
        text = path.read_text()
        refuse_hazards(text, path)  # aliases, depth, size: before anything is built
        data = yaml.safe_load(text) or {}
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror}): give the old config.yaml") from exc
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"{path}: not valid YAML ({first}): fix it first") from exc
    try:
        commented = YAML(typ="rt", pure=True).load(text)
    except YAMLError:
        commented = None  # names then come from `name:` or the address
    processing = data.get("processing") if isinstance(data, dict) else None
    if not isinstance(processing, dict) or not (
        "workers" in processing or isinstance(processing.get("distributed"), dict)
    ):
        raise UsageError(
            f"{path}: no processing.workers or processing.distributed section: "
            "is this the fleet's config?"
        )
    dist = processing.get("distributed") or {}
    notes: list[str] = []
    limits: dict[str, dict[str, Any]] = {}
    for task_type, spec in (dist.get("worker_limits") or {}).items():
        if task_type not in ALL_TYPES:
            notes.append(f"worker_limits.{task_type}: unknown task type, left out")
            continue
        limits[task_type] = {k: v for k, v in (spec or {}).items() if k in LIMIT_KEYS}
    hosts: dict[str, dict[str, Any]] = {}
    for address, value, comment in _workers(path, data, commented):
        raw: dict[str, Any]
        if value is None:
            raw = {}
        elif isinstance(value, list):  # a bare list of the worker's task types
            raw = {"enabled_tasks": list(value)}
        elif isinstance(value, bool):
            raw = {"enabled": value}
        elif isinstance(value, dict):
            raw = dict(value)
        else:
            raise UsageError(
                f"{path}: workers.{address}: {value!r} is not a worker's settings: "
                "give a mapping (enabled, enabled_tasks, ...) or a list of task types"
            )
        name = _name(str(address), raw, comment)
        host: dict[str, Any] = {"address": str(address)}
        for key in HOST_KEYS:
            if key in raw:
                host[key] = list(raw[key]) if isinstance(raw[key], list) else raw[key]
        unknown = [t for t in host.get("enabled_tasks") or [] if t not in ALL_TYPES]
        if unknown:
            notes.append(f"workers.{address}: unknown task types {unknown}, left out")
            host["enabled_tasks"] = [t for t in host["enabled_tasks"] if t in ALL_TYPES]
        for key in ("tasks_per_run", "cooldown"):
            per_type = raw.get(key)
            if isinstance(per_type, dict):
                for task_type, value in per_type.items():
                    if task_type not in ALL_TYPES:
                        notes.append(f"workers.{address}.{key}.{task_type}: unknown task type")
                        continue
                    fleet = limits.setdefault(task_type, {})
                    if key not in fleet:
                        fleet[key] = value
                    elif fleet[key] != value:
                        notes.append(
                            f"workers.{address}.{key}.{task_type}: {value} differs from the "
                            f"fleet's {fleet[key]}; the inventory has fleet-wide limits only"
                        )
            elif per_type is not None:
                notes.append(f"workers.{address}.{key}: {per_type} (not per task type), left out")
        if name in hosts:
            raise UsageError(f"{path}: two workers would be named {name!r}: give them names")
        hosts[name] = host
    if not hosts:
        raise UsageError(
            f"{path}: no workers under processing.workers or processing.distributed.workers: "
            "nothing to import"
        )
    defaults: dict[str, Any] = {}
    if hosts:
        for key in HOST_KEYS:
            values = [h.get(key) for h in hosts.values()]
            if all(key in h for h in hosts.values()) and all(v == values[0] for v in values):
                defaults[key] = values[0]
        for h in hosts.values():
            for key in defaults:
                h.pop(key, None)
    out: dict[str, Any] = {}
    if limits:
        out["worker_limits"] = limits
    if defaults:
        out["defaults"] = defaults
    out["hosts"] = hosts
    return out, notes


def render(inventory: dict[str, Any], source: Path) -> str:
    head = f"# Imported from {source} by `contentctl inventory import`.\n"
    return head + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=None)
