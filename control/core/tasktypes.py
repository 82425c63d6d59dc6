"""The task types contentctl knows, and their queue defaults (docs/contract.md, Task types)."""

from __future__ import annotations

import random
from dataclasses import dataclass

STATES = ("queued", "scheduled", "running", "succeeded", "failed", "cancelled")
LIVE_STATES = ("queued", "scheduled", "running")
FINISHED_STATES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class TypePolicy:
    """Per-type queue behaviour. Backoff: base, 2x base, 4x base... plus up to `jitter` of it."""

    max_attempts: int = 4
    timeout_s: float | None = 3600.0
    backoff_base_s: float = 2.0
    backoff_max_s: float = 600.0
    jitter: float = 0.25

    def backoff_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before the retry that follows failed attempt number `attempt` (1-based)."""
        base = min(self.backoff_base_s * 2.0 ** max(attempt - 1, 0), self.backoff_max_s)
        jitter: float = (rng or random).uniform(0, self.jitter)
        return base * (1 + jitter)


DEFAULT_POLICY = TypePolicy()


@dataclass(frozen=True)
class TaskType:
    """A task type, declared once (DECLARED below): the queue's policy, the handler the agent
    runs, whether it touches the storage root, whether its process is kept warm. The type
    lists, the policies, the agent's handlers and warm processes, and `--help` read it."""

    name: str
    handler: str  # "module:function", imported in the agent's task process on first use
    group: str  # "pipeline", "intake" or "diagnostic"
    policy: TypePolicy = DEFAULT_POLICY
    storage: bool = True  # reads or writes the storage root: waits while the NAS is away
    warm: bool = False  # its process keeps a loaded model an hour between tasks
    command: tuple[str, ...] = ()  # a `command` type's argv template (declared in the inventory)
    extra: str | None = None  # the install extra its handler needs (provision installs it)


DECLARED: tuple[TaskType, ...] = (
    TaskType(
        "download_youtube",
        "agent.stages.download:download_youtube",
        "pipeline",
        TypePolicy(backoff_base_s=30, timeout_s=3 * 3600),
    ),
    TaskType(
        "download_podcast",
        "agent.stages.download:download_podcast",
        "pipeline",
        TypePolicy(backoff_base_s=30, timeout_s=3 * 3600),
    ),
    TaskType("extract_audio", "agent.stages.audio:extract_audio", "pipeline", extra="audio"),
    TaskType(
        "transcribe",
        "agent.stages.transcribe:transcribe",
        "pipeline",
        TypePolicy(timeout_s=6 * 3600),
        warm=True,
        extra="transcribe",
    ),
    TaskType("stitch", "agent.stages.stitch:stitch", "pipeline"),
    TaskType(
        "translate",
        "agent.stages.translate:translate",
        "pipeline",
        TypePolicy(backoff_base_s=10),
        warm=True,
    ),
    # reads a source (a feed) and adds what is new
    TaskType("poll_source", "agent.stages.poll:poll_source", "intake", storage=False),
    TaskType("noop", "agent.handlers:noop", "diagnostic", TypePolicy(timeout_s=60), storage=False),
    TaskType(
        "sleep", "agent.handlers:sleep", "diagnostic", TypePolicy(timeout_s=None), storage=False
    ),
    TaskType("fail", "agent.handlers:fail", "diagnostic", TypePolicy(timeout_s=60), storage=False),
)


def _of(group: str) -> tuple[str, ...]:
    return tuple(t.name for t in DECLARED if t.group == group)


PIPELINE_TYPES = _of("pipeline")
INTAKE_TYPES = _of("intake")
DIAGNOSTIC_TYPES = _of("diagnostic")
ALL_TYPES = tuple(t.name for t in DECLARED)
NO_STORAGE_TYPES = tuple(t.name for t in DECLARED if not t.storage)  # runs while the NAS is away
WARM_TYPES = tuple(t.name for t in DECLARED if t.warm)
HANDLERS = {t.name: t.handler for t in DECLARED}
POLICIES: dict[str, TypePolicy] = {t.name: t.policy for t in DECLARED}


COMMAND_HANDLER = "agent.stages.command:run_command"

# The task types the inventory this process loaded declares (`command` types): set by `use`,
# read by the functions below. The module's constants above stay the built-in types.
_custom: tuple[TaskType, ...] = ()


def command_type(name: str, argv: tuple[str, ...], policy: TypePolicy, storage: bool) -> TaskType:
    """A task type an operator declares in the inventory: runs `argv` (a template)."""
    return TaskType(name, COMMAND_HANDLER, "custom", policy, storage=storage, command=argv)


def use(custom: tuple[TaskType, ...]) -> None:
    """Make the inventory's custom types known in this process (the CLI, the dashboard, an
    agent each call it once with the inventory they loaded)."""
    global _custom
    clash = [t.name for t in custom if t.name in ALL_TYPES]
    if clash:
        raise ValueError(f"custom task types {clash} would replace built-in ones")
    _custom = tuple(custom)


def declared() -> tuple[TaskType, ...]:
    """Every task type in force: the built-in ones, then the inventory's."""
    return DECLARED + _custom


def known() -> tuple[str, ...]:
    return tuple(t.name for t in declared())


def custom() -> tuple[TaskType, ...]:
    return _custom


def get(task_type: str) -> TaskType | None:
    return next((t for t in declared() if t.name == task_type), None)


def policy(task_type: str) -> TypePolicy:
    t = get(task_type)
    return t.policy if t is not None else DEFAULT_POLICY


def extras(types: tuple[str, ...]) -> tuple[str, ...]:
    """The install extras a host running these types needs (a downloader gets no Whisper)."""
    return tuple(sorted({t.extra for t in declared() if t.name in types and t.extra}))


def needs_storage(task_type: str) -> bool:
    t = get(task_type)
    return t is None or t.storage


def is_known(task_type: str) -> bool:
    return get(task_type) is not None
