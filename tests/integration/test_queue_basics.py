from __future__ import annotations

from control.core.queue import Queue, TaskSpec


async def test_enqueue_claim_complete(queue: Queue) -> None:
    [e] = await queue.enqueue([TaskSpec("noop")])
    [t] = await queue.claim("h1", ["noop"])
    assert t.id == e.id
    assert await queue.complete(t, {"ok": True})
    stats = await queue.stats()
    assert stats["noop"]["succeeded"] == 1


async def test_a_capped_type_takes_its_cap_and_the_other_types_fill_the_claim(
    queue: Queue,
) -> None:
    await queue.enqueue([TaskSpec("download_youtube", priority=10) for _ in range(5)])
    await queue.enqueue([TaskSpec("noop") for _ in range(20)])
    got = await queue.claim(
        "h1", ["download_youtube", "noop"], limit=10, caps={"download_youtube": 1}
    )
    types = [t.type for t in got]
    assert types.count("download_youtube") == 1
    assert types.count("noop") == 9
    assert types[0] == "download_youtube"  # priority order kept across types
    # a cap at or above the limit is no cap
    again = await queue.claim("h2", ["download_youtube"], limit=3, caps={"download_youtube": 5})
    assert len(again) == 3
