"""What the fleet reads, as frozen values: an agent's beat (`HeartbeatBody`), one host as the
head sees it (`HostEntry`), the status snapshot (`FleetSnapshot`). Each is made in one place
(the agent's beat in agent/beat.py, the entries in control/head/status.py) and written out by
one `to_json()`, the shape docs/contract.md gives; the CLI, the dashboard, alerts and metrics
read their attributes. A host's state and whether its beat is fresh are decided here, once.

Writes were typed already (`ClaimedTask`, `LeaseState`); these are the reads. They hold what
the database handed out: a beat written by an older agent, or by a rogue one, is read with what
it lacks left empty and what it adds kept aside (`HeartbeatBody.extra`), never an error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from control.core.storage_health import Health

HEARTBEAT_INTERVAL_S = 5.0
STALE_AFTER_S = 3 * HEARTBEAT_INTERVAL_S  # three missed heartbeats
OFFLINE_AFTER_S = 60.0
HOST_STATES = ("online", "stale", "offline", "draining", "drained", "disabled")
# An agent looks at what it reports every HEARTBEAT_INTERVAL_S and writes its beat when that
# changed; an unchanged beat is written every LIVENESS_EVERY-th look (a touch, once a minute).
# Between two, the agent's database session says it is alive (its session key, migration
# 0014): a host whose session ended is stale three beats after its last write (at once if that
# was longer ago), offline after a minute; one whose session lives but that wrote nothing for
# three touches (a hung agent) is stale.
LIVENESS_EVERY = 12
TOUCH_S = HEARTBEAT_INTERVAL_S * LIVENESS_EVERY
HUNG_AFTER_S = 3 * TOUCH_S
# An idle agent writes its beat every TOUCH_S: a beat younger than that and a little slack is
# simply fresh, unless the host is stale or offline (its agent's session ended: its age is the
# news).
BEAT_FRESH_S = TOUCH_S + 2.0
LATE_STATES = ("stale", "offline")
UP_STATES = ("online", "draining", "drained")  # an agent is there and beating


def host_state(
    agent_state: str | None,
    heartbeat_age_s: float | None,
    enabled: bool = True,
    *,
    session_alive: bool | None = None,
) -> str:
    """What the operator sees: disabled beats all; silence makes a host stale, then offline.
    `session_alive`: whether the agent's database session lives (None: the agent keeps no
    session key, its beats' age alone tells). A living session is an agent that is there: it
    is stale only when it wrote nothing for HUNG_AFTER_S (its loop is stuck)."""
    if not enabled:
        return "disabled"
    if agent_state is None or heartbeat_age_s is None or agent_state == "stopped":
        return "offline"
    if session_alive:
        return "stale" if heartbeat_age_s > HUNG_AFTER_S else agent_state
    if heartbeat_age_s > OFFLINE_AFTER_S:
        return "offline"
    if heartbeat_age_s > STALE_AFTER_S:
        return "stale"
    return agent_state


def beat_fresh(heartbeat_age_s: float | None, state: str | None = None) -> bool:
    """Whether a beat this old is news to nobody: the host is there and beating as it should."""
    return (
        heartbeat_age_s is not None and heartbeat_age_s < BEAT_FRESH_S and state not in LATE_STATES
    )


def _health(doc: Any) -> Health | None:
    if not _is_map(doc) or "ok" not in doc:  # none reported (an older agent)
        return None
    error = doc.get("error")
    return Health(
        ok=doc.get("ok") is True,
        error=None if error is None else str(error),
        checked_at=str(doc.get("checked_at") or ""),
    )


def _is_map(value: Any) -> bool:
    # JSON from the database is a dict: the ABC's check, ten times slower, only otherwise
    # (status reads 500 beats a refresh)
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if _is_map(value) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class RunningTask:
    """A task a host runs: from the tasks table (`running`), stalled when its beat says so."""

    id: int
    type: str
    progress: float | None = None
    stage: str | None = None
    stalled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "progress": self.progress,
            "stage": self.stage,
            "stalled": self.stalled,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunningTask:
        progress = doc.get("progress")
        return cls(
            id=int(doc.get("id") or 0),
            type=str(doc.get("type") or ""),
            progress=float(progress) if isinstance(progress, int | float) else None,
            stage=_text(doc.get("stage")),
            stalled=doc.get("stalled") is True,
        )


# the beat's keys with a field of their own; the others ride in `extra`, written back as read
_BEAT_KEYS = frozenset(
    {"load", "counters", "idle_reason", "idle_until", "storage", "running", "last_restart"}
)


@dataclass(frozen=True, slots=True)
class HeartbeatBody:
    """What an agent reports in its beat (the `heartbeat` column): its load, counters, why it
    is idle, its view of the storage root, the tasks it runs and how its previous run ended.
    `extra`: the figures only the agent's own diagnostics read (uptime, outbox, peers...)."""

    load: Mapping[str, Any] = field(default_factory=dict)
    counters: Mapping[str, Any] = field(default_factory=dict)
    idle_reason: str | None = None
    idle_until: str | None = None
    storage: Health | None = None
    running: tuple[RunningTask, ...] = ()
    last_restart: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stalled(self) -> int:
        return sum(1 for t in self.running if t.stalled)

    @property
    def stalled_ids(self) -> frozenset[int]:
        return frozenset(t.id for t in self.running if t.stalled)

    def to_json(self) -> dict[str, Any]:
        return {
            "load": dict(self.load),
            "counters": dict(self.counters),
            "idle_reason": self.idle_reason,
            "idle_until": self.idle_until,
            "storage": None if self.storage is None else self.storage.to_json(),
            "running": [t.to_json() for t in self.running],
            "last_restart": None if self.last_restart is None else dict(self.last_restart),
            **self.extra,
        }

    @classmethod
    def from_json(cls, doc: Any) -> HeartbeatBody:
        """A beat as the database holds it (None: the host never beat)."""
        if not _is_map(doc) or not doc:
            return EMPTY_BEAT
        get = doc.get
        load, counters, running, last = (
            get("load"),
            get("counters"),
            get("running"),
            get("last_restart"),
        )
        idle_reason, idle_until, storage = get("idle_reason"), get("idle_until"), get("storage")
        return cls(
            load=load if _is_map(load) else _NONE,
            counters=counters if _is_map(counters) else _NONE,
            idle_reason=None if idle_reason is None else str(idle_reason),
            idle_until=None if idle_until is None else str(idle_until),
            storage=None if storage is None else _health(storage),
            running=tuple(RunningTask.from_json(r) for r in running if _is_map(r))
            if running and isinstance(running, list)
            else (),
            last_restart=last if last and _is_map(last) else None,
            extra=_NONE
            if doc.keys() <= _BEAT_KEYS
            else {k: v for k, v in doc.items() if k not in _BEAT_KEYS},
        )


_NONE: Mapping[str, Any] = MappingProxyType({})
EMPTY_BEAT = HeartbeatBody()


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One host in the status snapshot (docs/contract.md, `status --json`'s `hosts`): what the
    inventory declares of it and what its agent last reported, with its state decided.
    `agent_state` is what the agent said (`stopped`, say, where `state` says `offline`): not in
    the contract's document, read by alerts."""

    name: str
    state: str
    address: str | None = None
    declared: bool = False
    heartbeat_age_s: float | None = None
    last_heartbeat_at: str | None = None
    session_alive: bool | None = None
    load: Mapping[str, Any] = field(default_factory=dict)
    running: tuple[RunningTask, ...] = ()
    enabled_tasks: tuple[str, ...] = ()
    max_concurrent_tasks: int | None = None
    idle_reason: str | None = None
    idle_until: str | None = None
    counters: Mapping[str, Any] = field(default_factory=dict)
    storage: Health | None = None
    agent_version: str | None = None
    code_hash: str | None = None
    last_restart: Mapping[str, Any] | None = None
    agent_state: str | None = None

    @property
    def fresh(self) -> bool:
        """Its beat is as recent as a healthy agent's: the dashboard shows `ok`, not an age."""
        return beat_fresh(self.heartbeat_age_s, self.state)

    @property
    def up(self) -> bool:
        return self.state in UP_STATES

    @property
    def stalled(self) -> int:
        return sum(1 for t in self.running if t.stalled)

    @property
    def storage_failing(self) -> bool:
        """Its agent reports the storage root unavailable."""
        return self.storage is not None and not self.storage.ok

    def silent_for(self, seconds: float) -> bool:
        """Silent longer than `seconds` although it was not told to stop: an agent whose
        database session lives is there, silent only when it is hung (HUNG_AFTER_S)."""
        age = self.heartbeat_age_s
        if age is None or age <= seconds or self.agent_state == "stopped":
            return False
        return not (self.session_alive and age <= HUNG_AFTER_S)

    def matches(self, needle: str) -> bool:
        """`needle` (lower case) in its name, its state or one of its task types."""
        return any(needle in v.lower() for v in (self.name, self.state, *self.enabled_tasks))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "state": self.state,
            "declared": self.declared,
            "heartbeat_age_s": self.heartbeat_age_s,
            "last_heartbeat_at": self.last_heartbeat_at,
            "session_alive": self.session_alive,
            "load": dict(self.load),
            "running": [t.to_json() for t in self.running],
            "enabled_tasks": list(self.enabled_tasks),
            "max_concurrent_tasks": self.max_concurrent_tasks,
            "idle_reason": self.idle_reason,
            "idle_until": self.idle_until,
            "counters": dict(self.counters),
            "storage": None if self.storage is None else self.storage.to_json(),
            "agent_version": self.agent_version,
            "code_hash": self.code_hash,
            "last_restart": None if self.last_restart is None else dict(self.last_restart),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HostEntry:
        """An entry from its document (a saved `status --json`, a test's fixture)."""
        age = doc.get("heartbeat_age_s")
        conc = doc.get("max_concurrent_tasks")
        last = doc.get("last_restart")
        return cls(
            name=str(doc["name"]),
            state=str(doc["state"]),
            address=_text(doc.get("address")),
            declared=doc.get("declared") is True,
            heartbeat_age_s=float(age) if isinstance(age, int | float) else None,
            last_heartbeat_at=_text(doc.get("last_heartbeat_at")),
            session_alive=doc.get("session_alive"),
            load=_mapping(doc.get("load")),
            running=tuple(RunningTask.from_json(r) for r in doc.get("running") or ()),
            enabled_tasks=tuple(str(t) for t in doc.get("enabled_tasks") or ()),
            max_concurrent_tasks=int(conc) if isinstance(conc, int) else None,
            idle_reason=_text(doc.get("idle_reason")),
            idle_until=_text(doc.get("idle_until")),
            counters=_mapping(doc.get("counters")),
            storage=_health(doc.get("storage")),
            agent_version=_text(doc.get("agent_version")),
            code_hash=_text(doc.get("code_hash")),
            last_restart=last if _is_map(last) and last else None,
        )


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """`contentctl status`: the database, the queue by type and state, the hosts; for the
    dashboard also the tasks finished per minute (oldest first), not in `status --json`."""

    generated_at: str
    schema_version: str
    by_type: Mapping[str, Mapping[str, int]]
    totals: Mapping[str, int]
    hosts: tuple[HostEntry, ...]
    throughput: tuple[int, ...] = ()

    def by_state(self) -> dict[str, int]:
        """How many hosts are in each state."""
        out: dict[str, int] = {}
        for h in self.hosts:
            out[h.state] = out.get(h.state, 0) + 1
        return out

    def host(self, name: str) -> HostEntry | None:
        return next((h for h in self.hosts if h.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "database": {"reachable": True, "schema_version": self.schema_version},
            "queue": {
                "by_type": {t: dict(c) for t, c in self.by_type.items()},
                "totals": dict(self.totals),
            },
            "hosts": [h.to_json() for h in self.hosts],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], throughput: Sequence[int] = ()) -> FleetSnapshot:
        return cls(
            generated_at=str(doc["generated_at"]),
            schema_version=str(doc["database"]["schema_version"]),
            by_type=doc["queue"]["by_type"],
            totals=doc["queue"]["totals"],
            hosts=tuple(HostEntry.from_json(h) for h in doc["hosts"]),
            throughput=tuple(throughput),
        )


def names(hosts: Iterable[HostEntry]) -> list[str]:
    return [h.name for h in hosts]


@dataclass(frozen=True, slots=True)
class MediaTask:
    """A running task of a media item, with the host that runs it."""

    id: int
    type: str
    host: str | None
    progress: float | None
    stage: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "host": self.host,
            "progress": self.progress,
            "stage": self.stage,
        }


@dataclass(frozen=True, slots=True)
class MediaView:
    """One media item as `contentctl media ID --json` shows it (docs/contract.md): its state
    and each stage's, its files (absolute paths under the storage root), its transcription's
    chunks and running tasks. Made in control/head/media.py (`view`)."""

    id: int
    source: str
    kind: str
    state: str
    generation: int
    stages: Mapping[str, str]
    outputs: Mapping[str, Any]
    chunks_done: int = 0
    chunks: int = 0
    running: tuple[MediaTask, ...] = ()
    title: str | None = None
    channel: str | None = None
    duration_s: float | None = None
    source_id: int | None = None
    error: str | None = None
    created_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    @property
    def name(self) -> str:
        """Its title, or its source when it has none yet."""
        return self.title or self.source

    @property
    def transcript(self) -> str | None:
        """The plain-text transcript's path, once there is one."""
        txt = self.outputs.get("txt")
        return str(txt) if txt else None

    def chunk_count(self, stage: str) -> str:
        """` 3/8` beside a stage that runs in chunks (transcribe), else nothing."""
        return (
            f" {self.chunks_done}/{self.chunks}"
            if stage == "transcribe" and self.chunks > 1
            else ""
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "kind": self.kind,
            "title": self.title,
            "channel": self.channel,
            "duration_s": self.duration_s,
            "source_id": self.source_id,
            "state": self.state,
            "generation": self.generation,
            "stages": dict(self.stages),
            "outputs": dict(self.outputs),
            "progress": {
                "chunks_done": self.chunks_done,
                "chunks": self.chunks,
                "running": [t.to_json() for t in self.running],
            },
            "error": self.error,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> MediaView:
        """An item from its document (a saved `media ID --json`, a test's fixture)."""
        progress = _mapping(doc.get("progress"))
        return cls(
            id=int(doc["id"]),
            source=str(doc["source"]),
            kind=str(doc["kind"]),
            state=str(doc["state"]),
            generation=int(doc.get("generation") or 1),
            stages=_mapping(doc.get("stages")),
            outputs=_mapping(doc.get("outputs")),
            chunks_done=int(progress.get("chunks_done") or 0),
            chunks=int(progress.get("chunks") or 0),
            running=tuple(
                MediaTask(
                    int(t["id"]), str(t["type"]), t.get("host"), t.get("progress"), t.get("stage")
                )
                for t in progress.get("running") or ()
            ),
            title=_text(doc.get("title")),
            channel=_text(doc.get("channel")),
            duration_s=doc.get("duration_s"),
            source_id=doc.get("source_id"),
            error=_text(doc.get("error")),
            created_at=_text(doc.get("created_at")),
        )
