"""procrastinate as a benchmark peer (run with the peer venv's python).

setup DSN JOBS           apply procrastinate's schema, defer JOBS noop jobs
work DSN CONCURRENCY     drain the queue (wait=False); print {"jobs": N}
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import procrastinate

COUNTER = [0]


def make_app(dsn: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop() -> None:
        COUNTER[0] += 1

    return app


async def setup(dsn: str, jobs: int) -> None:
    app = make_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        noop = app.tasks["noop"]
        for start in range(0, jobs, 1000):
            n = min(1000, jobs - start)
            await noop.batch_defer_async(*({} for _ in range(n)))


async def work(dsn: str, concurrency: int) -> None:
    app = make_app(dsn)
    async with app.open_async():
        await app.run_worker_async(
            concurrency=concurrency, wait=False, install_signal_handlers=False
        )
    print(json.dumps({"jobs": COUNTER[0]}))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    if sys.argv[1] == "setup":
        asyncio.run(setup(sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run(work(sys.argv[2], int(sys.argv[3])))
