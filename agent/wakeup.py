"""Who answers an announcement: one idle agent, not the whole fleet.

Every agent LISTENs on one channel, so each enqueue reaches every idle agent. If all of them
claimed at once, one task would cost a claim per idle agent (100 agents: 99 empty claims). The
announcement instead carries what an agent needs to decide alone, with no round trip:

- `t XID N TYPES`: N tasks of TYPES were made claimable by transaction XID (the enqueue, the
  retry, the hand-back, the sweep or the schedule that made them).
- `c SNAPSHOT TYPES`: an agent claimed in answer to announcements and, in the same statement,
  saw no claimable task of TYPES left. Every announcement whose transaction that snapshot
  saw committed is answered for those types.
- `x XID HOST`: HOST was among the first ranks for XID's announcement but cannot claim now
  (at capacity, draining): the next rank claims at once instead of after its step.

An agent ranks itself among its capable peers (the live hosts that run one of the types, as
its heartbeat last learned them) by a hash of the announcement and the host's name, so each
announcement orders the fleet afresh and every agent computes the same order. The first N
ranks claim at once; rank N+k claims `k * step_s` later unless an answer (`c`) arrives first.
An agent's own claim answers whatever it heard before it (a claim that leaves nothing says
so to the others; one that fills the agent leaves the rest to the later ranks). An idle fleet
pays one claim per task; a first rank whose agent is full passes at once (a NOTIFY); one that
is asleep or gone costs the next rank `step_s` of latency, never the task: nobody stands down
without a snapshot that saw the work and saw it all taken. The cost moved here: a NOTIFY per
answered announcement and per pass, and `step_s` when a first rank is frozen or just died.

Pure bookkeeping (no I/O): the runner feeds it notifications and asks when to claim.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

STEP_S = 0.05  # how long a rank waits for the one before it to answer
FORGET_S = 120.0  # an announcement nobody answered is looked for by the idle poll by then


@dataclass(frozen=True)
class Snapshot:
    """A PostgreSQL snapshot as `pg_current_snapshot()` prints it: `xmin:xmax:xip,...`."""

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, xid: int) -> bool:
        """Whether a transaction's work was committed as this snapshot saw the database."""
        return xid < self.xmin or (xid < self.xmax and xid not in self.xip)


@dataclass
class _Heard:
    xid: int
    types: set[str]
    at: float
    key: int
    n: int  # how many tasks it announced: the first n ranks claim at once
    ahead: set[str]  # the capable peers ranked before this agent that have not passed


@dataclass
class Wakeups:
    host: str
    step_s: float = STEP_S
    clock: Callable[[], float] = time.monotonic
    peers: dict[str, frozenset[str]] = field(default_factory=dict)  # host -> enabled types
    _heard: list[_Heard] = field(default_factory=list)
    _seq: int = 0

    def set_peers(self, peers: Mapping[str, Iterable[str]]) -> None:
        self.peers = {str(h): frozenset(t) for h, t in peers.items()}

    def heard(self, payload: str, runs: Iterable[str]) -> tuple[float, int] | None:
        """An announcement (`t ...`): in how many seconds this agent, which `runs` these
        types, claims for it (0: now), and the key to ask `pending` with then; None when it
        runs none of them (it stays asleep) or the payload is not one."""
        try:
            _, xid_s, n_s, types_s = payload.split(" ", 3)
            xid, n = int(xid_s), max(1, int(n_s))
        except ValueError:
            return None
        mine = set(types_s.split(",")) & set(runs)
        if not mine:
            return None
        ahead = self._ahead(xid, mine)
        now = self.clock()
        self._forget(now)
        self._seq += 1
        self._heard.append(_Heard(xid, mine, now, self._seq, n, ahead))
        return max(0, len(ahead) - n + 1) * self.step_s, self._seq

    def passed(self, payload: str) -> list[int]:
        """A peer ranked first cannot take the work (`x XID HOST`: at capacity, draining):
        the keys of announcements this agent now claims for at once, being among the first
        ranks of those left."""
        try:
            _, xid_s, host = payload.split(" ", 2)
            xid = int(xid_s)
        except ValueError:
            return []
        now_first = []
        for h in self._heard:
            if h.xid == xid and host in h.ahead:
                h.ahead.discard(host)
                if len(h.ahead) == h.n - 1:
                    now_first.append(h.key)
        return now_first

    def answered(self, payload: str) -> None:
        """An answer (`c SNAPSHOT TYPES`): announcements it saw, for its types, are served."""
        try:
            _, snap_s, types_s = payload.split(" ", 2)
            snap = Snapshot.parse(snap_s)
        except ValueError:
            return
        served = set(types_s.split(","))
        for h in self._heard:
            if snap.sees(h.xid):
                h.types -= served
        self._heard = [h for h in self._heard if h.types]

    def pending(self, key: int) -> bool:
        """Whether the announcement `heard` gave this key is still unanswered (its rank's
        time came: claim for it)."""
        return any(h.key == key for h in self._heard)

    def take(self) -> bool:
        """This agent claims now: what it heard so far is answered by this claim (a claim that
        leaves nothing says so to the others; one that fills the agent leaves the rest to the
        later ranks), so it forgets it. True when there was any: the claim should tell."""
        self._forget(self.clock())
        had = bool(self._heard)
        self._heard = []
        return had

    def _ahead(self, xid: int, types: set[str]) -> set[str]:
        """The capable peers before this host in this announcement's order. Without peers
        (not learned yet) nobody is ahead: every agent is first."""
        mine = _key(xid, self.host)
        return {
            h for h, t in self.peers.items() if t & types and h != self.host and _key(xid, h) < mine
        }

    def _forget(self, now: float) -> None:
        self._heard = [h for h in self._heard if now - h.at < FORGET_S]


def _key(xid: int, host: str) -> bytes:
    return hashlib.blake2b(f"{xid}\0{host}".encode(), digest_size=8).digest()
