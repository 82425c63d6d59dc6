"""`contentctl inventory import config.yaml`: the existing fleet's config into an inventory.

The old `config.yaml` keeps the fleet under `processing.distributed`: `worker_limits` (per task
type: `tasks_per_run`, `cooldown`, ...) and `workers` keyed by IP address (`enabled`,
`enabled_tasks`, `max_concurrent_tasks`, and sometimes their own `tasks_per_run` / `cooldown`
per type). Settings common to every worker become a `defaults:` block, so a 50-host file stays
short; what the inventory cannot say per host (a per-worker cooldown that differs from the
fleet's) is reported, not silently dropped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from control.errors import UsageError
from control.tasktypes import ALL_TYPES

HOST_KEYS = ("enabled", "enabled_tasks", "max_concurrent_tasks")
LIMIT_KEYS = ("tasks_per_run", "cooldown", "daily_limit")


def _name(address: str, raw: dict[str, Any]) -> str:
    for key in ("name", "hostname", "host"):
        if isinstance(raw.get(key), str) and raw[key]:
            return re.sub(r"[^A-Za-z0-9_.-]", "-", raw[key])
    return "worker-" + re.sub(r"[^0-9A-Za-z]", "-", address)


def convert(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The inventory (as a mapping) and the notes about what could not be carried over."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror}): give the old config.yaml") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc}): fix it first") from exc
    dist = (data.get("processing") or {}).get("distributed")
    if not isinstance(dist, dict):
        raise UsageError(f"{path}: no processing.distributed section: is this the fleet's config?")
    notes: list[str] = []
    limits: dict[str, dict[str, Any]] = {}
    for task_type, raw in (dist.get("worker_limits") or {}).items():
        if task_type not in ALL_TYPES:
            notes.append(f"worker_limits.{task_type}: unknown task type, left out")
            continue
        limits[task_type] = {k: v for k, v in (raw or {}).items() if k in LIMIT_KEYS}
    hosts: dict[str, dict[str, Any]] = {}
    for address, raw in (dist.get("workers") or {}).items():
        raw = raw or {}
        name = _name(str(address), raw)
        host: dict[str, Any] = {"address": str(address)}
        for key in HOST_KEYS:
            if key in raw:
                host[key] = raw[key]
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
