"""Who answers an announcement (agent/wakeup.py): the ranks, the snapshots, the stand-down."""

from __future__ import annotations

from agent.wakeup import Snapshot, Wakeups

PEERS = {f"w{i:02}": ["noop", "download"] for i in range(20)} | {"gpu": ["transcribe"]}


def fleet() -> dict[str, Wakeups]:
    out = {}
    for host in PEERS:
        w = Wakeups(host, step_s=0.05)
        w.set_peers(PEERS)
        out[host] = w
    return out


def test_snapshot_sees_what_committed_before_it() -> None:
    s = Snapshot.parse("100:105:101,103")
    assert s.sees(99) and s.sees(100) and s.sees(102) and s.sees(104)
    assert not s.sees(101) and not s.sees(103) and not s.sees(105) and not s.sees(200)
    assert Snapshot.parse("7:7:").sees(6) and not Snapshot.parse("7:7:").sees(7)


def test_one_task_wakes_one_agent_and_the_others_are_ranked_after_it() -> None:
    agents = fleet()
    heard = {h: w.heard("t 500 1 noop", PEERS[h]) for h, w in agents.items()}
    assert heard["gpu"] is None  # it runs no noop: it stays asleep
    ranked = sorted(v[0] for v in heard.values() if v is not None)
    assert ranked[0] == 0 and ranked[1] > 0  # exactly one at once
    assert ranked == [i * 0.05 for i in range(20)]  # then one a step, never two together
    # another announcement orders the fleet afresh: not always the same host first
    firsts = {
        min(agents, key=lambda h: (agents[h].heard(f"t {x} 1 noop", PEERS[h]) or (0.0,))[0])
        for x in range(600, 640)
    }
    assert len(firsts) > 5


def test_n_tasks_wake_n_agents_at_once() -> None:
    agents = fleet()
    heard = [w.heard("t 9 3 noop,download", PEERS[h]) for h, w in agents.items()]
    assert sorted(v[0] for v in heard if v is not None)[:4] == [0, 0, 0, 0.05]


def test_an_answer_whose_snapshot_saw_the_announcement_stands_the_others_down() -> None:
    w = Wakeups("w05")
    w.set_peers(PEERS)
    a = w.heard("t 500 1 noop", PEERS["w05"])
    b = w.heard("t 510 1 download", PEERS["w05"])
    assert a is not None and b is not None
    w.answered("c 499:499: noop")  # a claim that could not see 500: not an answer to it
    assert w.pending(a[1])
    w.answered("c 500:511:500,510 noop,download")  # both still running then: no answer
    assert w.pending(a[1]) and w.pending(b[1])
    w.answered("c 505:511:507 noop")  # saw 500 committed, took the last noop
    assert not w.pending(a[1]) and w.pending(b[1])  # 510's download is still unanswered
    w.answered("c 512:512: noop,download")
    assert not w.pending(b[1])


def test_an_agents_own_claim_answers_what_it_heard() -> None:
    w = Wakeups("w05")
    w.set_peers(PEERS)
    assert not w.take()  # nothing heard: the claim need not tell
    heard = w.heard("t 500 1 noop", PEERS["w05"])
    assert heard is not None
    assert w.take() and not w.pending(heard[1]) and not w.take()


def test_an_agent_without_peers_yet_is_first_and_a_hostile_payload_is_ignored() -> None:
    w = Wakeups("w1")
    heard = w.heard("t 5 1 noop", ["noop"])
    assert heard is not None and heard[0] == 0
    for bad in ("t", "t x 1 noop", "t 5 one noop", "t 5 1"):
        assert w.heard(bad, ["noop"]) is None
    for bad in ("c", "c 1:2 noop", "c a:b: noop"):
        w.answered(bad)  # nothing raised, nothing answered
    assert w.pending(heard[1])


def test_a_full_first_rank_passes_and_the_next_claims_at_once() -> None:
    agents = fleet()
    heard: dict[str, tuple[float, int]] = {}
    for h, w in agents.items():
        if (got := w.heard("t 77 1 noop", PEERS[h])) is not None:
            heard[h] = got
    order = sorted(heard, key=lambda h: heard[h][0])
    first, second, third = order[:3]
    assert agents[second].passed(f"x 77 {third}") == []  # not ahead of it: nothing changes
    assert agents[third].passed(f"x 77 {first}") == []  # one is still ahead of the third
    key = heard[second][1]
    assert agents[second].passed(f"x 77 {first}") == [key]  # now first: claims at once
    assert agents[third].passed(f"x 77 {second}") == [heard[third][1]]
    assert agents[second].passed("x 78 nobody") == [] and agents[second].passed("x y z") == []
