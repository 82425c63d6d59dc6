"""The dashboard's screens, one per module. Each refreshes itself from the control plane while
it is shown, updating its tables in place; none holds SQL or SSH (they call `control.api`)."""

from __future__ import annotations

from tui.screens.audit import AuditScreen
from tui.screens.base import Base, Plane
from tui.screens.fleet import FleetScreen
from tui.screens.logs import LogsScreen
from tui.screens.media import MediaScreen
from tui.screens.provision import ProvisionScreen
from tui.screens.sources import SourcesScreen
from tui.screens.tasks import TasksScreen

__all__ = [
    "AuditScreen",
    "Base",
    "FleetScreen",
    "LogsScreen",
    "MediaScreen",
    "Plane",
    "ProvisionScreen",
    "SourcesScreen",
    "TasksScreen",
]
