"""Where things live under a worker's base_dir (one definition for plans and services)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """Where things live under a worker's base_dir."""

    base: str

    @property
    def app(self) -> str:
        return f"{self.base}/app"

    @property
    def home(self) -> str:
        return f"{self.base}/home"

    @property
    def env_file(self) -> str:
        return f"{self.base}/agent.env"

    @property
    def inventory(self) -> str:
        return f"{self.base}/inventory.yaml"

    @property
    def runner(self) -> str:
        return f"{self.base}/run-agent.sh"

    @property
    def pidfile(self) -> str:
        return f"{self.base}/supervisor.pid"

    @property
    def secrets(self) -> str:
        return f"{self.base}/secrets"

    @property
    def contentctl(self) -> str:
        """The agent's entry point in the synced environment."""
        return f"{self.app}/.venv/bin/contentctl"

    @property
    def service_log(self) -> str:
        """What a service manager keeps of the agent's output (warnings and crashes only)."""
        return f"{self.home}/logs/service.out"
