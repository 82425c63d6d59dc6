"""pgqueuer as a benchmark peer (run with the peer venv's python, not contentctl's).

setup DSN JOBS             install pgqueuer's schema, enqueue JOBS noop jobs
work DSN DEQUEUERS BATCH   drain the queue; print {"jobs": N}
"""

from __future__ import annotations

import asyncio
import json
import sys

import psycopg
from pgqueuer import PsycopgDriver, QueueManager
from pgqueuer.models import Job
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode


async def setup(dsn: str, jobs: int) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    q = Queries(PsycopgDriver(conn))
    await q.install()
    for start in range(0, jobs, 1000):
        n = min(1000, jobs - start)
        await q.enqueue(["noop"] * n, [None] * n, [0] * n)
    await conn.close()


async def dequeuer(dsn: str, batch: int, counter: list[int]) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    qm = QueueManager(Queries(PsycopgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        counter[0] += 1

    await qm.run(batch_size=batch, mode=QueueExecutionMode.drain)
    await conn.close()


async def work(dsn: str, dequeuers: int, batch: int) -> None:
    counter = [0]
    await asyncio.gather(*(dequeuer(dsn, batch, counter) for _ in range(dequeuers)))
    print(json.dumps({"jobs": counter[0]}))


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        asyncio.run(setup(sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run(work(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
