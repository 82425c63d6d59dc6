"""The task types contentctl knows, and their queue defaults (docs/contract.md, Task types)."""

from __future__ import annotations

import random
from dataclasses import dataclass

PIPELINE_TYPES = (
    "download_youtube",
    "download_podcast",
    "extract_audio",
    "transcribe",
    "stitch",
    "translate",
)
INTAKE_TYPES = ("poll_source",)  # reads a source (a feed) and adds what is new
DIAGNOSTIC_TYPES = ("noop", "sleep", "fail")
ALL_TYPES = PIPELINE_TYPES + INTAKE_TYPES + DIAGNOSTIC_TYPES
NO_STORAGE_TYPES = INTAKE_TYPES + DIAGNOSTIC_TYPES  # what runs while the NAS is away

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
POLICIES: dict[str, TypePolicy] = {
    "noop": TypePolicy(timeout_s=60),
    "sleep": TypePolicy(timeout_s=None),
    "fail": TypePolicy(timeout_s=60),
    "download_youtube": TypePolicy(backoff_base_s=30, timeout_s=3 * 3600),
    "download_podcast": TypePolicy(backoff_base_s=30, timeout_s=3 * 3600),
    "transcribe": TypePolicy(timeout_s=6 * 3600),
    "translate": TypePolicy(backoff_base_s=10),
}


def policy(task_type: str) -> TypePolicy:
    return POLICIES.get(task_type, DEFAULT_POLICY)


def is_known(task_type: str) -> bool:
    return task_type in ALL_TYPES
