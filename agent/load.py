"""What a heartbeat says about the machine: cpu, memory, load, free disk, GPU where there is one."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

GPU_CACHE_S = 30.0


class LoadSampler:
    def __init__(self, storage_root: Path) -> None:
        self.storage_root = storage_root
        self._nvidia_smi = shutil.which("nvidia-smi")
        self._gpu: list[float] | None = None
        self._gpu_at = 0.0
        psutil.cpu_percent(interval=None)  # the first reading is meaningless: prime it

    def sample(self) -> dict[str, Any]:
        """The machine's own figures (cpu, memory, load; the GPU's through nvidia-smi, bounded
        by its own timeout): blocking, call it in a thread. Never touches the storage root:
        see `disk_free_gb`."""
        mem = psutil.virtual_memory()
        out: dict[str, Any] = {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "mem_percent": mem.percent,
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        }
        gpu = self._gpu_util()
        if gpu is not None:
            out["gpu_percent"] = gpu
        return out

    def disk_free_gb(self) -> float | None:
        """Free space where the storage root is (the home directory while it is missing).
        Blocks as long as a hung network share does: run it in a `Bounded` probe."""
        root = self.storage_root if self.storage_root.exists() else Path.home()
        try:
            return round(psutil.disk_usage(str(root)).free / 1e9, 1)
        except OSError:
            return None

    def _gpu_util(self) -> list[float] | None:
        if self._nvidia_smi is None:
            return None
        if time.monotonic() - self._gpu_at < GPU_CACHE_S:
            return self._gpu
        self._gpu_at = time.monotonic()
        try:
            res = subprocess.run(
                [self._nvidia_smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            )
            self._gpu = [float(x) for x in res.stdout.split()]
        except (OSError, subprocess.SubprocessError, ValueError):
            self._gpu = None
        return self._gpu
