"""contentctl's head-node brain: database, queue, inventory, fleet state and the CLI."""

from __future__ import annotations

__version__ = "0.1.0"
