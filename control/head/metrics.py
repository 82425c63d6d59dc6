"""Prometheus metrics of the fleet, read from the database at each scrape by a custom
collector (prometheus-client): a few indexed queries, never a scan of the tasks table.

- contentctl_queue_depth{type,state}: live tasks (queued, scheduled, running)
- contentctl_queue_oldest_age_seconds{type}: how long the oldest claimable task has waited
- contentctl_tasks_finished_total{type,host,state}: tasks finished since this exporter started
  (read incrementally by finished_at; counters restart with the process, as Prometheus expects)
- contentctl_task_duration_seconds{type}: histogram of run time of those tasks
- contentctl_host_state{host,state}, contentctl_host_up{host},
  contentctl_host_heartbeat_age_seconds{host}, contentctl_host_cpu_percent{host},
  contentctl_host_memory_percent{host}, contentctl_host_disk_free_bytes{host},
  contentctl_host_gpu_percent{host}, contentctl_host_tasks_stalled{host},
  contentctl_host_storage_ok{host}: from the agents' heartbeats
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from psycopg.rows import dict_row

from control.core.inventory import Inventory
from control.core.readmodels import HeartbeatBody
from control.core.sql import q
from control.head import status

BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, float("inf"))
LAG = timedelta(seconds=2)  # rows finished this recently may still be committing: next scrape


class FleetCollector(Collector):
    def __init__(self, url: str, inventory: Inventory) -> None:
        self.url = url
        self.inventory = inventory
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._after = datetime.now(UTC) - LAG
        self._finished: dict[tuple[str, str, str], int] = {}
        self._hist: dict[str, list[float]] = {}  # type -> bucket counts..., sum (last)

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self.url, autocommit=True, row_factory=dict_row, connect_timeout=5
            )
        return self._conn

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                conn = self._connection()
                yield from self._read(conn)
            except psycopg.Error:
                self._conn = None
                up = GaugeMetricFamily(
                    "contentctl_database_up", "whether the exporter reached the database"
                )
                up.add_metric([], 0)
                yield up

    def _read(self, conn: psycopg.Connection[dict[str, Any]]) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "contentctl_database_up", "whether the exporter reached the database"
        )
        up.add_metric([], 1)
        depth = GaugeMetricFamily(
            "contentctl_queue_depth", "live tasks by type and state", labels=["type", "state"]
        )
        for r in conn.execute(q("metrics_depth")).fetchall():
            depth.add_metric([r["type"], r["state"]], r["n"])
        oldest = GaugeMetricFamily(
            "contentctl_queue_oldest_age_seconds",
            "age of the oldest claimable queued task",
            labels=["type"],
        )
        for r in conn.execute(q("metrics_oldest")).fetchall():
            oldest.add_metric([r["type"]], float(r["age_s"]))
        self._advance(conn)
        finished = CounterMetricFamily(
            "contentctl_tasks_finished",
            "tasks finished since the exporter started",
            labels=["type", "host", "state"],
        )
        for (t, h, s), n in sorted(self._finished.items()):
            finished.add_metric([t, h, s], n)
        hist = HistogramMetricFamily(
            "contentctl_task_duration_seconds",
            "run time of tasks finished since the exporter started",
            labels=["type"],
        )
        for t, counts in sorted(self._hist.items()):
            cumulative = []
            running = 0.0
            for le, in_bucket in zip(BUCKETS, counts[:-1], strict=True):
                running += in_bucket
                cumulative.append(("+Inf" if le == float("inf") else str(le), running))
            hist.add_metric([t], cumulative, sum_value=counts[-1])
        yield from (up, depth, oldest, finished, hist)
        yield from self._hosts(conn)

    def _advance(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        """Count the rows finished since the last scrape (indexed by finished_at)."""
        until = datetime.now(UTC) - LAG
        rows = conn.execute(
            q("metrics_finished_since"), {"after": self._after, "until": until}
        ).fetchall()
        for r in rows:
            key = (r["type"], r["host"], r["state"])
            self._finished[key] = self._finished.get(key, 0) + 1
            if r["state"] != "succeeded":
                continue
            counts = self._hist.setdefault(r["type"], [0.0] * (len(BUCKETS) + 1))
            run_s = float(r["run_s"] or 0)
            for i, le in enumerate(BUCKETS):
                if run_s <= le:
                    counts[i] += 1
                    break
            counts[-1] += run_s
        self._after = until

    def _hosts(self, conn: psycopg.Connection[dict[str, Any]]) -> Iterator[Metric]:
        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["host"])

        state = GaugeMetricFamily(
            "contentctl_host_state", "1 for the host's state", labels=["host", "state"]
        )
        up = gauge("contentctl_host_up", "1 when the host's agent is heartbeating")
        age = gauge("contentctl_host_heartbeat_age_seconds", "seconds since the last heartbeat")
        cpu = gauge("contentctl_host_cpu_percent", "CPU use from the last heartbeat")
        mem = gauge("contentctl_host_memory_percent", "memory use from the last heartbeat")
        disk = gauge("contentctl_host_disk_free_bytes", "free bytes under the storage root")
        gpu = gauge("contentctl_host_gpu_percent", "GPU use, where the host reports one")
        stalled = gauge("contentctl_host_tasks_stalled", "running tasks making no progress")
        storage = gauge("contentctl_host_storage_ok", "1 when the host sees the storage root")
        rows = {r["name"]: r for r in conn.execute(q("hosts_snapshot")).fetchall()}
        for h in status.entries(rows, {}, self.inventory):
            name = h.name
            state.add_metric([name, h.state], 1)
            up.add_metric([name], 1 if h.up else 0)
            if h.heartbeat_age_s is not None:
                age.add_metric([name], h.heartbeat_age_s)
            load = h.load
            for fam, key, scale in (
                (cpu, "cpu_percent", 1.0),
                (mem, "mem_percent", 1.0),
                (disk, "disk_free_gb", 1e9),
                (gpu, "gpu_percent", 1.0),
            ):
                if isinstance(load.get(key), int | float):
                    fam.add_metric([name], float(load[key]) * scale)
            if h.up:
                beat = HeartbeatBody.from_json(rows[name]["heartbeat"])
                stalled.add_metric([name], beat.stalled)
                if h.storage is not None:
                    storage.add_metric([name], 1 if h.storage.ok else 0)
        yield from (state, up, age, cpu, mem, disk, gpu, stalled, storage)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
