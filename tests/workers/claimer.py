"""A claimer process for concurrency tests: N connections claim and complete until the queue is
empty, then print the ids they completed as JSON. `python -m tests.workers.claimer URL N`."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from control.core import db
from control.core.queue import Queue


async def claimer(url: str, name: str) -> list[int]:
    conn = await db.connect(url)
    done: list[int] = []
    try:
        q = Queue(conn)
        idle = 0
        while idle < 3:  # three empty claims in a row: the queue is drained
            batch = await q.claim(name, ["noop"], limit=5)
            if not batch:
                idle += 1
                await asyncio.sleep(0.02)
                continue
            idle = 0
            for t in batch:
                if await q.complete(t, {"by": name}):
                    done.append(t.id)
    finally:
        await conn.close()
    return done


async def main(url: str, n: int) -> None:
    results = await asyncio.gather(*(claimer(url, f"p{os.getpid()}-c{i}") for i in range(n)))
    print(json.dumps([i for r in results for i in r]))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
