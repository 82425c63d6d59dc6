"""inventory.yaml: the fleet as the operator declares it (docs/contract.md, inventory.yaml).

Validated when loaded: an unknown key, a wrong type, a task type that does not exist or a
duplicate address is a one-line error naming the file, the line and the key. A `defaults:` block
gives every host its values unless the host says otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from control.core import commands, stages, tasktypes, ytdlp
from control.core.errors import UsageError
from control.core.names import host_name_problem
from control.core.stages import Match, Stage
from control.core.tasktypes import ALL_TYPES, TaskType, TypePolicy
from control.core.urls import literal_address_problem

HOST_KEYS = {
    "address": str,
    "transport": str,
    "user": str,
    "port": int,
    "identity_file": str,
    "enabled": bool,
    "enabled_tasks": list,
    "max_concurrent_tasks": int,
    "base_dir": str,
    "env": dict,
    "transcribe": dict,
    "keyring_backend": str,  # e.g. keyrings.alt.file.PlaintextKeyring on a headless Linux box
    # how the agent is kept running: auto (launchd on macOS, a systemd user unit where the
    # user's systemd runs, else a supervisor script), or launchd, systemd-user, systemd-system
    # (a system unit with User=, when provisioning as root), supervisor
    "service": str,
    "storage_root": str,  # this host's path to the shared storage (Macs: /Volumes/...)
    "nas_mount_point": str,  # where this host mounts the NAS, if not the fleet's
}
TOP_KEYS = {
    "database": str,
    "storage_root": str,
    "nas": dict,
    "known_hosts": str,
    "defaults": dict,
    "worker_limits": dict,
    "task_types": dict,
    "stages": dict,
    "pipeline": dict,
    "retention": dict,
    "alerts": dict,
    "hosts": dict,
}
# days to keep, by kind of row or file (control.core.retention.DEFAULTS); files default: keep
RETENTION_KEYS = {
    "succeeded_days": (int, float),
    "cancelled_days": (int, float),
    "failed_days": (int, float),
    "commands_days": (int, float),
    "daily_counts_days": (int, float),
    "audit_days": (int, float),
    "incidents_days": (int, float),
    "keep_source_days": (int, float),
    "keep_audio_days": (int, float),
    "batch_size": int,
    "pause_ms": (int, float),
}
ALERT_KEYS = {
    "webhooks": list,
    "host_offline_minutes": (int, float),
    "task_stalled": bool,
    "media_failed": bool,
    "queue_age_minutes": (int, float),
    "storage_unavailable": bool,
    "every_s": (int, float),
}
WEBHOOK_KEYS = {"url": str, "format": str}
WEBHOOK_FORMATS = ("json", "ntfy", "slack")
PIPELINE_KEYS = {
    "chunk_s": (int, float),
    "overlap_s": (int, float),
    "langs": list,
    "transcribe": dict,
    "translate": dict,
    # workers may fetch media from private addresses (10/8, 192.168/16, ...): off by default
    "allow_private_networks": bool,
    "ytdlp": dict,  # format, cookies, rate_limit, sleep_s (control.core.ytdlp.FLEET_KEYS)
}
TRANSCRIBE_KEYS = {
    "backend": str,  # auto | faster-whisper | mlx
    "model": str,  # a model directory or name; default: the bundled tiny.en
    "compute_type": str,
    "device": str,
    "cpu_threads": int,
    "language": str,
    "beam_size": int,
    "vad_filter": bool,  # default: on for audio longer than a minute
    "initial_prompt": str,  # names and vocabulary the model should expect
}
TRANSLATE_KEYS = {
    "backend": str,  # deepl | openai
    "url": str,
    "model": str,
    "rate_per_min": (int, float),
    "key_name": str,  # the keychain entry holding the API key
    "timeout_s": (int, float),
}
TRANSCRIBE_BACKENDS = ("auto", "faster-whisper", "mlx")
TRANSLATE_BACKENDS = ("deepl", "openai")
LIMIT_KEYS = {
    "tasks_per_run": int,
    "cooldown": (int, float),
    "daily_limit": int,
    "window": dict,
    "delay": dict,
    "stall_after": (int, float),
    "rss_limit_mb": (int, float),
}
POLICY_KEYS = {
    "max_attempts": int,
    "timeout_s": (int, float),
    "backoff_base_s": (int, float),
    "backoff_max_s": (int, float),
}
# a `command` task type, declared by the operator (control/core/commands.py: the template)
COMMAND_KEYS = {**POLICY_KEYS, "command": list, "storage": bool}
# a stage of the operator's, placed after a built-in (or an earlier such) stage
STAGE_KEYS = {"after": str, "type": str, "match": dict, "label": str}
MATCH_KEYS = {"kind": list, "language": list, "source": list}
MEDIA_KINDS = ("youtube", "podcast", "file")
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
NAS_KEYS = {"url": str, "user": str, "mount_point": (str, dict)}
NAS_PLATFORMS = ("darwin", "linux")
ENV_KEYS = {"manager": str, "name": str}
SERVICES = ("auto", "launchd", "systemd-user", "systemd-system", "supervisor")
WINDOW_KEYS = {"start": str, "end": str, "end_jitter_minutes": (int, float)}
DELAY_KEYS = {"min_s": (int, float), "max_s": (int, float)}
# Inclusive bounds for numbers, by key (the same key means the same thing in every block).
FOREVER = 10**9
BOUNDS: dict[str, tuple[float, float]] = {
    "port": (1, 65535),
    "max_concurrent_tasks": (1, 1024),
    "tasks_per_run": (0, FOREVER),
    "cooldown": (0, FOREVER),
    "daily_limit": (0, FOREVER),
    "stall_after": (0, FOREVER),
    "rss_limit_mb": (0, FOREVER),
    "max_attempts": (1, 1000),
    "timeout_s": (0.001, FOREVER),
    "backoff_base_s": (0, FOREVER),
    "backoff_max_s": (0, FOREVER),
    "chunk_s": (1, FOREVER),
    "overlap_s": (0, FOREVER),
    "rate_per_min": (0.001, FOREVER),
    "cpu_threads": (0, 1024),
    "beam_size": (1, 100),
    "end_jitter_minutes": (0, 24 * 60),
    "min_s": (0, FOREVER),
    "max_s": (0, FOREVER),
    **{k: (0.01, 100 * 365) for k in RETENTION_KEYS if k.endswith("_days")},
    "batch_size": (1, 1_000_000),
    "pause_ms": (0, 60_000),
    "host_offline_minutes": (0.1, FOREVER),
    "queue_age_minutes": (0.1, FOREVER),
    "every_s": (1, 24 * 3600),
}
HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_PLAIN = re.compile(r"[A-Za-z0-9_.-]+")
MAX_BYTES = 1_000_000  # an inventory of a thousand hosts is well under this


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str = "127.0.0.1"
    transport: str = "ssh"
    user: str | None = None
    port: int = 22
    identity_file: str | None = None
    enabled: bool = True
    enabled_tasks: tuple[str, ...] = ALL_TYPES
    max_concurrent_tasks: int = 1
    base_dir: str = "~/contentctl"
    env: dict[str, str] = field(default_factory=lambda: {"manager": "uv"})
    transcribe: dict[str, Any] = field(default_factory=dict)
    keyring_backend: str | None = None
    service: str = "auto"
    storage_root: str | None = None  # this host's view of the shared storage (absolute)
    nas_mount_point: str | None = None  # where this host mounts the NAS (absolute)


@dataclass(frozen=True)
class Inventory:
    path: Path | None
    hosts: dict[str, HostSpec] = field(default_factory=dict)
    database: str | None = None
    storage_root: str | None = None
    # url (smb://server/share), user, mount_point (one path, or per platform: darwin, linux)
    nas: dict[str, Any] = field(default_factory=dict)
    known_hosts: str | None = None
    worker_limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_types: dict[str, TypePolicy] = field(default_factory=dict)
    pipeline: dict[str, Any] = field(default_factory=dict)
    retention: dict[str, Any] = field(default_factory=dict)
    alerts: dict[str, Any] = field(default_factory=dict)
    custom_types: tuple[TaskType, ...] = ()  # `command` types the operator declared
    stages: tuple[Stage, ...] = ()  # the operator's stages (each placed after another)

    def host(self, name: str) -> HostSpec | None:
        return self.hosts.get(name)

    def use(self) -> Inventory:
        """Make this inventory's task types and stages the ones in force in this process."""
        tasktypes.use(self.custom_types)
        stages.use(self.stages)
        return self


class _Marks:
    """Line numbers of mapping keys, by path, from the YAML node tree."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[tuple[str, ...], int] = {}

    def build(self, node: yaml.Node, path: tuple[str, ...] = ()) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in out:
                    where = ".".join((*path, key))
                    raise UsageError(
                        f"{self.path}:{key_node.start_mark.line + 1}: {where}: duplicate key "
                        f"(also on line {self.lines[(*path, key)]}): keep one"
                    )
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*path, str(i))) for i, v in enumerate(node.value)]
        return yaml.safe_load(yaml.serialize(node))


def load(path: Path | None) -> Inventory:
    """The inventory at `path`; an empty one when there is none."""
    if path is None:
        return Inventory(path=None)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(
            f"cannot read inventory {path} ({exc.strerror}): check --inventory"
        ) from exc
    return parse(text, path)


def parse(text: str, path: Path) -> Inventory:
    marks = _Marks(path)
    try:
        refuse_hazards(text, path)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{where}: not valid YAML ({problem}): fix the syntax") from exc
    data = marks.build(node) if node is not None else {}
    return _Validator(path, marks).inventory(data)


YAML_DEPTH_MAX = 64


def refuse_hazards(text: str, path: Path) -> None:
    """What a YAML file from outside may not hold, refused from the parser's events before
    anything is built: more than MAX_BYTES; anchors and aliases (a few lines of nested aliases,
    a "billion laughs", expand to more values than the machine holds); nesting deeper than
    YAML_DEPTH_MAX (building is recursive: 20,000 levels end in RecursionError)."""
    if len(text.encode()) > MAX_BYTES:
        raise UsageError(f"{path}:1: larger than {MAX_BYTES:,} bytes: is this the right file?")
    depth = 0
    for event in yaml.parse(text):
        line = event.start_mark.line + 1 if event.start_mark else 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise UsageError(
                f"{path}:{line}: YAML anchors and aliases are not "
                "accepted: write the values out (the defaults: block shares host settings)"
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > YAML_DEPTH_MAX:
                raise UsageError(
                    f"{path}:{line}: nested deeper than {YAML_DEPTH_MAX} levels: is this the "
                    "right file?"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _Validator:
    def __init__(self, path: Path, marks: _Marks) -> None:
        self.path = path
        self.marks = marks
        self.known: tuple[str, ...] = ALL_TYPES  # and the file's own `command` types

    def error(self, keypath: tuple[str, ...], message: str) -> UsageError:
        line = None
        for n in range(len(keypath), -1, -1):
            line = self.marks.lines.get(keypath[:n])
            if line is not None:
                break
        key = ".".join(k if _PLAIN.fullmatch(k) else repr(k) for k in keypath) or "(top level)"
        return UsageError(f"{self.path}:{line or 1}: {key}: {message}")

    def mapping(self, value: Any, keypath: tuple[str, ...], spec: dict[str, Any]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(keypath, "must be a mapping")
        for key, item in value.items():
            if key not in spec:
                raise self.error((*keypath, key), f"unknown key: use one of {', '.join(spec)}")
            expected = spec[key]
            ok = isinstance(item, expected) and not (
                isinstance(item, bool) and expected is not bool
            )
            if expected is bool:
                ok = isinstance(item, bool)
            if not ok:
                names = (expected,) if isinstance(expected, type) else expected
                want = " or ".join(t.__name__ for t in names)
                raise self.error((*keypath, key), f"must be {want}, not {type(item).__name__}")
            if isinstance(item, float) and not math.isfinite(item):
                raise self.error((*keypath, key), f"must be a finite number, not {item}")
            if key in BOUNDS and isinstance(item, int | float) and not isinstance(item, bool):
                lo, hi = BOUNDS[key]
                if not lo <= item <= hi:
                    raise self.error((*keypath, key), f"must be between {lo:g} and {hi:g}")
        return value

    def task_types(self, value: list[Any], keypath: tuple[str, ...]) -> tuple[str, ...]:
        for i, item in enumerate(value):
            if item not in self.known:
                raise self.error(
                    (*keypath, str(i)),
                    f"unknown task type {item!r}: use one of {', '.join(self.known)}",
                )
        return tuple(value)

    def limits(self, value: Any, keypath: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for task_type, limits in self.mapping(
            value, keypath, dict.fromkeys(self.known, dict)
        ).items():
            kp = (*keypath, task_type)
            out[task_type] = self.mapping(limits, kp, LIMIT_KEYS)
            if "window" in out[task_type]:
                self.window(out[task_type]["window"], (*kp, "window"))
            if "delay" in out[task_type]:
                delay = self.mapping(out[task_type]["delay"], (*kp, "delay"), DELAY_KEYS)
                if delay.get("max_s", math.inf) < delay.get("min_s", 0):
                    raise self.error((*kp, "delay", "max_s"), "must not be less than min_s")
        return out

    def window(self, value: Any, keypath: tuple[str, ...]) -> None:
        w = self.mapping(value, keypath, WINDOW_KEYS | {"start": object, "end": object})
        for key in ("start", "end"):
            if key not in w:
                raise self.error(keypath, f"a window needs {key}: {{start: HH:MM, end: HH:MM}}")
            if not isinstance(w[key], str) or not HHMM.fullmatch(w[key]):
                raise self.error(
                    (*keypath, key),
                    f'must be a time HH:MM in quotes ("07:00"), not {w[key]!r}',
                )

    def inventory(self, data: Any) -> Inventory:
        top = self.mapping(data, (), TOP_KEYS)
        policies, custom = self.types(top.get("task_types"))
        self.known = ALL_TYPES + tuple(t.name for t in custom)
        declared_stages = self.stages(top.get("stages"), custom)
        defaults = self.mapping(top.get("defaults"), ("defaults",), HOST_KEYS)
        hosts: dict[str, HostSpec] = {}
        seen_addresses: dict[tuple[str, int], str] = {}
        for name, raw in (self.mapping(top.get("hosts"), ("hosts",), _AnyKeys(dict)) or {}).items():
            problem = host_name_problem(name)
            if problem is not None:
                raise self.error(("hosts", name), problem)
            merged = {**defaults, **self.mapping(raw, ("hosts", name), HOST_KEYS)}
            host = self.host(name, merged)
            addr = (host.address, host.port)
            if host.transport == "ssh" and addr in seen_addresses:
                raise self.error(
                    ("hosts", name, "address"),
                    f"duplicate address {host.address}:{host.port} (also host "
                    f"{seen_addresses[addr]!r}): give each host its own address",
                )
            seen_addresses[addr] = name
            hosts[name] = host
        nas = self.nas(top.get("nas"))
        pipeline = self.pipeline(top.get("pipeline"))
        retention = dict(self.mapping(top.get("retention"), ("retention",), RETENTION_KEYS))
        alerts = self.alerts(top.get("alerts"))
        return Inventory(
            path=self.path,
            hosts=hosts,
            database=top.get("database"),
            storage_root=top.get("storage_root"),
            nas=nas,
            known_hosts=top.get("known_hosts"),
            worker_limits=self.limits(top.get("worker_limits"), ("worker_limits",)),
            task_types=policies,
            pipeline=pipeline,
            retention=retention,
            alerts=alerts,
            custom_types=custom,
            stages=declared_stages,
        )

    def types(self, value: Any) -> tuple[dict[str, TypePolicy], tuple[TaskType, ...]]:
        """`task_types:`: policies of built-in types, and `command` types of the operator's."""
        kp = ("task_types",)
        policies: dict[str, TypePolicy] = {}
        custom: list[TaskType] = []
        for name, raw in self.mapping(value, kp, _AnyKeys(dict)).items():
            if name in ALL_TYPES:
                policies[name] = TypePolicy(**self.mapping(raw, (*kp, name), POLICY_KEYS))
                continue
            spec = dict(self.mapping(raw, (*kp, name), COMMAND_KEYS))
            if "command" not in spec:
                raise self.error(
                    (*kp, name),
                    f"unknown task type {name!r}: declare it with command: [program, args...], "
                    f"or use one of {', '.join(ALL_TYPES)}",
                )
            if not _TYPE_NAME.fullmatch(name):
                raise self.error((*kp, name), "a task type's name is lower-case letters, digits, _")
            argv = spec.pop("command")
            for i, word in enumerate(argv):
                if not isinstance(word, str) or "\0" in word:
                    raise self.error((*kp, name, "command", str(i)), "must be a string")
                try:
                    commands.parse_word(word)
                except commands.BadTemplate as exc:
                    raise self.error((*kp, name, "command", str(i)), str(exc)) from None
            try:
                commands.parse(tuple(argv))
            except commands.BadTemplate as exc:
                raise self.error((*kp, name, "command"), str(exc)) from None
            storage = spec.pop("storage", True)
            policy = TypePolicy(**spec)
            policies[name] = policy
            custom.append(tasktypes.command_type(name, tuple(argv), policy, storage))
        return policies, tuple(custom)

    def stages(self, value: Any, custom: tuple[TaskType, ...]) -> tuple[Stage, ...]:
        """`stages:`: the operator's stages, each a `command` type placed after another stage,
        reading files that earlier stages write."""
        kp = ("stages",)
        by_type = {t.name: t for t in custom}
        declared: list[Stage] = []
        for name, raw in self.mapping(value, kp, _AnyKeys(dict)).items():
            at = (*kp, name)
            spec = self.mapping(raw, at, STAGE_KEYS)
            if not _TYPE_NAME.fullmatch(name):
                raise self.error(at, "a stage's name is lower-case letters, digits, _")
            if "after" not in spec:
                raise self.error(at, f"a stage needs after: one of {', '.join(stages.stages())}")
            ttype = spec.get("type", name)
            if ttype not in by_type:
                raise self.error(
                    (*at, "type") if "type" in spec else at,
                    f"runs {ttype!r}, which is not a command type: declare it under task_types "
                    "with command: [...]",
                )
            argv = by_type[ttype].command
            outs = commands.uses(argv, "out")
            if not outs:
                raise self.error(
                    at, f"{ttype}'s command writes no {{out:NAME}}: a stage makes a file"
                )
            match = self.mapping(spec.get("match"), (*at, "match"), MATCH_KEYS)
            for key, values in match.items():
                if not all(isinstance(v, str) for v in values):
                    raise self.error((*at, "match", key), "must be a list of strings")
            if bad := [k for k in match.get("kind", []) if k not in MEDIA_KINDS]:
                raise self.error((*at, "match", "kind"), f"unknown kinds {bad}: use {MEDIA_KINDS}")
            declared.append(
                Stage(
                    name,
                    (ttype,),
                    (),
                    tuple(f"{name}:{f}" for f in outs),
                    str(spec.get("label", name)),
                    files=tuple((f, f"{name}:{f}") for f in outs),
                    after=str(spec["after"]),
                    match=Match(**{k: tuple(v) for k, v in match.items()}),
                    reads=tuple((f, "") for f in commands.uses(argv, "file")),
                )
            )
        try:
            order = stages.place(tuple(declared))
        except ValueError as exc:
            name = str(exc).split("'")[1]
            raise self.error((*kp, name, "after"), str(exc)) from None
        return self.wired(order, argv_of=by_type)

    def wired(self, order: tuple[Stage, ...], argv_of: dict[str, TaskType]) -> tuple[Stage, ...]:
        """The operator's stages with what each reads tied to the stage that writes it: a file
        no earlier stage writes is refused with the stage's line."""
        files: dict[str, str] = {}  # file name -> output key, of the stages placed so far
        out: list[Stage] = []
        for st in order:
            if st.custom:
                kp = ("stages", st.name)
                reads = []
                for fname, _ in st.reads:
                    if fname not in files:
                        raise self.error(
                            kp,
                            f"reads {{file:{fname}}}, which no stage before it writes "
                            f"(before it: {', '.join(sorted(files)) or 'none'})",
                        )
                    reads.append((fname, files[fname]))
                needs = [k for _, k in reads]
                if "source" in commands.uses(argv_of[st.types[0]].command, "source"):
                    needs.insert(0, "source")
                if clash := [f for f, _ in st.files if f in files]:
                    raise self.error(kp, f"writes {clash}, which an earlier stage writes")
                st = dataclasses.replace(st, needs=tuple(needs), reads=tuple(reads))
                out.append(st)
            files.update(dict(st.files))
        return tuple(out)

    def alerts(self, value: Any) -> dict[str, Any]:
        kp = ("alerts",)
        out = dict(self.mapping(value, kp, ALERT_KEYS))
        hooks = []
        for i, raw in enumerate(out.get("webhooks") or []):
            hook = dict(self.mapping(raw, (*kp, "webhooks", str(i)), WEBHOOK_KEYS))
            url = hook.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise self.error((*kp, "webhooks", str(i), "url"), "must be an http(s) URL")
            problem = literal_address_problem(url, allow_private=True)
            if problem is not None:
                raise self.error((*kp, "webhooks", str(i), "url"), f"is {problem}: never called")
            if hook.setdefault("format", "json") not in WEBHOOK_FORMATS:
                raise self.error(
                    (*kp, "webhooks", str(i), "format"),
                    f"must be one of {', '.join(WEBHOOK_FORMATS)}",
                )
            hooks.append(hook)
        out["webhooks"] = hooks
        return out

    def absolute(self, value: Any, keypath: tuple[str, ...]) -> str:
        if not isinstance(value, str) or not (value.startswith("/") or value.startswith("~")):
            raise self.error(keypath, f"must be an absolute path, not {value!r}")
        return value

    def nas(self, value: Any) -> dict[str, Any]:
        kp = ("nas",)
        nas = dict(self.mapping(value, kp, NAS_KEYS))
        if not nas:
            return {}
        for key in ("url", "user"):
            if not nas.get(key):
                raise self.error(kp, f"the NAS needs {key}: {{url: smb://server/share, user: ...}}")
        if not str(nas["url"]).startswith("smb://") or "/" not in str(nas["url"])[6:]:
            raise self.error((*kp, "url"), f"must be smb://server/share, not {nas['url']!r}")
        mount = nas.get("mount_point")
        if isinstance(mount, dict):
            nas["mount_point"] = {
                str(k): self.absolute(v, (*kp, "mount_point", str(k)))
                for k, v in self.mapping(
                    mount, (*kp, "mount_point"), dict.fromkeys(NAS_PLATFORMS, str)
                ).items()
            }
        elif mount is not None:
            nas["mount_point"] = self.absolute(mount, (*kp, "mount_point"))
        return nas

    def pipeline(self, value: Any) -> dict[str, Any]:
        kp = ("pipeline",)
        out = dict(self.mapping(value, kp, PIPELINE_KEYS))
        if "transcribe" in out:
            out["transcribe"] = self.transcribe(out["transcribe"], (*kp, "transcribe"))
        tr = self.mapping(out.get("translate"), (*kp, "translate"), TRANSLATE_KEYS)
        if tr.get("backend", "deepl") not in TRANSLATE_BACKENDS:
            raise self.error((*kp, "translate", "backend"), "must be deepl or openai")
        if "ytdlp" in out:
            try:
                out["ytdlp"] = ytdlp.check(out["ytdlp"], ytdlp.FLEET_KEYS)
            except ytdlp.BadOption as exc:
                raise self.error((*kp, "ytdlp", exc.key), str(exc)) from None
        for i, lang in enumerate(out.get("langs") or []):
            if not isinstance(lang, str) or not lang.isalpha():
                raise self.error((*kp, "langs", str(i)), f"not a language code: {lang!r}")
        return out

    def transcribe(self, value: Any, keypath: tuple[str, ...]) -> dict[str, Any]:
        out = self.mapping(value, keypath, TRANSCRIBE_KEYS)
        if out.get("backend", "auto") not in TRANSCRIBE_BACKENDS:
            raise self.error(
                (*keypath, "backend"), f"must be one of {', '.join(TRANSCRIBE_BACKENDS)}"
            )
        return dict(out)

    def host(self, name: str, raw: dict[str, Any]) -> HostSpec:
        kp = ("hosts", name)
        transport = raw.get("transport", "ssh")
        if transport not in ("ssh", "local"):
            raise self.error((*kp, "transport"), f"must be ssh or local, not {transport!r}")
        env = self.mapping(raw.get("env", {"manager": "uv"}), (*kp, "env"), ENV_KEYS)
        if env.get("manager", "uv") not in ("uv", "conda"):
            raise self.error((*kp, "env", "manager"), "must be uv or conda")
        if env.get("manager") == "conda" and not env.get("name"):
            raise self.error((*kp, "env"), "a conda env needs a name: {manager: conda, name: ...}")
        service = raw.get("service", "auto")
        if service not in SERVICES:
            raise self.error((*kp, "service"), f"must be one of {', '.join(SERVICES)}")
        max_conc = raw.get("max_concurrent_tasks", 1)
        if max_conc < 1:
            raise self.error((*kp, "max_concurrent_tasks"), "must be at least 1")
        tasks = raw.get("enabled_tasks")
        return HostSpec(
            name=name,
            address=raw.get("address", "127.0.0.1"),
            transport=transport,
            user=raw.get("user"),
            port=raw.get("port", 22),
            identity_file=raw.get("identity_file"),
            enabled=raw.get("enabled", True),
            enabled_tasks=self.known
            if tasks is None
            else self.task_types(tasks, (*kp, "enabled_tasks")),
            max_concurrent_tasks=max_conc,
            base_dir=raw.get("base_dir", "~/contentctl"),
            env={str(k): str(v) for k, v in env.items()},
            transcribe=self.transcribe(raw.get("transcribe"), (*kp, "transcribe")),
            keyring_backend=raw.get("keyring_backend"),
            service=service,
            storage_root=(
                self.absolute(raw["storage_root"], (*kp, "storage_root"))
                if "storage_root" in raw
                else None
            ),
            nas_mount_point=(
                self.absolute(raw["nas_mount_point"], (*kp, "nas_mount_point"))
                if "nas_mount_point" in raw
                else None
            ),
        )


class _AnyKeys(dict[str, Any]):
    """A spec that accepts any key with values of one type (host names)."""

    def __init__(self, value_type: type) -> None:
        super().__init__()
        self.value_type = value_type

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        return self.value_type
