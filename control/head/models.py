"""The schema's tables as SQLModel classes: typed rows for the read side (CLI, dashboard).

The migrations in control/migrations/ create the tables; these classes describe them, and
tests/integration/test_schema.py fails when the two disagree. The agent never imports this
module (it stays free of SQLAlchemy and pydantic; see the import contracts in pyproject.toml).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Column, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class Task(SQLModel, table=True):
    __tablename__ = "tasks"

    id: int | None = Field(default=None, primary_key=True)
    type: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    priority: int = 0
    state: str = "queued"
    run_at: datetime
    attempts: int = 0
    max_attempts: int = 4
    timeout_s: float | None = None
    unique_key: str | None = None
    host: str | None = None
    lease_expires_at: datetime | None = None
    lease_session: int | None = None  # the claiming agent's session key (migration 0014)
    lease_orphaned_at: datetime | None = None  # its session seen gone (migration 0016)
    attempt_token: uuid.UUID | None = None
    progress: float | None = None
    progress_stage: str | None = None
    progress_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    media_id: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """`contentctl task ID --json` (docs/contract.md), plus a few keys scripts find useful."""
        return {
            "id": self.id,
            "type": self.type,
            "state": self.display_state,
            "priority": self.priority,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "host": self.host,
            "payload": self.payload,
            "result": self.result,
            "error": (
                None
                if self.error_type is None
                else {
                    "type": self.error_type,
                    "message": self.error_message,
                    "traceback": self.error_traceback,
                }
            ),
            "progress": self.progress,
            "progress_stage": self.progress_stage,
            "media_id": self.media_id,
            "unique_key": self.unique_key,
            "run_at": _iso(self.run_at),
            "cancel_requested": self.cancel_requested_at is not None,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }

    @property
    def display_state(self) -> str:
        """A scheduled task whose time has come is claimable: it reads as queued."""
        if self.state == "scheduled" and self.run_at <= datetime.now(self.run_at.tzinfo):
            return "queued"
        return self.state


def _iso(at: datetime | None) -> str | None:
    """The contract's one timestamp shape: ISO 8601 with `T` and an explicit offset (pydantic's
    JSON mode writes `Z`, str() a space)."""
    return None if at is None else at.isoformat()


class Host(SQLModel, table=True):
    """A host as its agent registered it (lasting); liveness is in `HostBeat`."""

    __tablename__ = "hosts"

    name: str = Field(primary_key=True)
    address: str | None = None
    agent_version: str | None = None
    code_hash: str | None = None
    pid: int | None = None
    started_at: datetime | None = None
    enabled_tasks: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False)
    )
    declared: bool = True
    drain_requested: bool = False


class HostBeat(SQLModel, table=True):
    """The last heartbeat of a host's agent (an UNLOGGED table: ephemeral by design)."""

    __tablename__ = "host_beats"

    name: str = Field(primary_key=True)
    agent_state: str
    last_heartbeat_at: datetime
    heartbeat: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    session_key: int | None = None  # the agent's session key: alive while it is held
