from __future__ import annotations

from control.queue import Queue, TaskSpec


async def test_enqueue_claim_complete(queue: Queue) -> None:
    [e] = await queue.enqueue([TaskSpec("noop")])
    [t] = await queue.claim("h1", ["noop"])
    assert t.id == e.id
    assert await queue.complete(t, {"ok": True})
    stats = await queue.stats()
    assert stats["noop"]["succeeded"] == 1
