"""Graceful membership changes publish nothing twice: join, leave on SIGTERM, scale up and down.

A steady stream flows while workers join and leave a group at seeded random points (the seed is in every
assertion message; ``NEWSSTREAM_TEST_SEED`` replays one). Each revocation waits for the batch in flight and
commits it before the partitions go (kafka-python 3.0 runs the listener on its network thread, so the commit
is awaited there), and SIGTERM drains, commits and leaves. No tolerance: 0 missing and 0 duplicates. (A kill -9
is not graceful: its bound, at most one batch, is tested in tests/reliability/test_rel_crash.py.)

Idle replicas (more workers than partitions) are ready: they are members of the group, with no partitions.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from conftest import WorkerProcess, article, committed, produce, read_all

SEED = int(os.environ.get("NEWSSTREAM_TEST_SEED", str(int(time.time()) % 100_000)))


DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "newsstream-1.1.0"
FILLER = " ".join(f"Council officials said river levels in district {i % 37} would be checked again."
                  for i in range(30))  # ~2.5 KB a text: the shipped model takes real time on each batch


def test_join_leave_scale_up_and_down_publish_nothing_twice(broker, topics_factory, worker_factory) -> None:
    # A backlog keeps every worker busy, so each revocation finds a batch in flight (the case that used to be
    # re-published); the shipped model makes a batch take real time. The stream goes on during the changes.
    rng = random.Random(SEED)
    t = topics_factory(partitions=4)
    backlog, chunks, per_chunk = 12_000, 20, 200
    total = backlog + chunks * per_chunk

    def message(i: int) -> tuple[bytes, bytes]:
        a = article(i)
        a["text"] += " " + FILLER
        return f"art-{i}".encode(), json.dumps(a).encode()

    ends: dict[int, int] = {}

    def send(batch: list[tuple[bytes | None, bytes | None]]) -> None:
        for p, end in produce(broker.bootstrap, t.input, batch).items():
            ends[p] = max(ends.get(p, 0), end)

    for lo in range(0, backlog, 2000):
        send([message(i) for i in range(lo, lo + 2000)])

    def stream() -> None:
        for chunk in range(chunks):
            send([message(backlog + i) for i in range(chunk * per_chunk, (chunk + 1) * per_chunk)])
            time.sleep(0.5)

    a = worker_factory(t, DEFAULT_MODEL, batch_max_messages=100)
    a.wait_for(lambda: a.metric("newsstream_commits_total") > 0, 60, "the first worker under way")
    started = time.monotonic()
    producer = threading.Thread(target=stream)
    producer.start()
    # Membership changes at random points: join, join (scale up), leave, leave (scale down).
    at = sorted(rng.uniform(lo, lo + 2.5) for lo in (0.5, 3.5, 6.5, 9.5))

    def wait_until(offset_s: float) -> None:
        time.sleep(max(0.0, started + offset_s - time.monotonic()))

    def settled(live: list[WorkerProcess]) -> None:
        # Each change starts once the group has settled from the previous one. Tansu 0.6 mishandles a member
        # leaving while a rebalance is under way (seen once in a full run: its LeaveGroup timed out and the
        # survivor's rejoin never completed); Kafka completes it. Where in the stream and in the batch each
        # change lands stays random.
        live[0].wait_for(lambda: all(w.metric("newsstream_assigned_partitions") > 0 for w in live)
                         and sum(w.metric("newsstream_assigned_partitions") for w in live) == 4, 60,
                         f"the group settled on {len(live)} members (seed {SEED})")

    wait_until(at[0])
    b = worker_factory(t, DEFAULT_MODEL, batch_max_messages=100)
    settled([a, b])
    wait_until(at[1])
    c = worker_factory(t, DEFAULT_MODEL, batch_max_messages=100)
    settled([a, b, c])
    wait_until(at[2])
    a.signal(signal.SIGTERM)
    assert a.wait(15) == 0, f"seed {SEED}: {a.log()[-3000:]}"
    messages = [e.get("msg") for e in a.log_events()]
    assert "stop requested; finishing the batch" in messages and "worker stopped" in messages
    settled([b, c])
    wait_until(at[3])
    c.signal(signal.SIGTERM)
    assert c.wait(15) == 0, f"seed {SEED}: {c.log()[-3000:]}"

    producer.join()
    assert sum(ends.values()) == total
    b.wait_for(lambda: b.metric("newsstream_assigned_partitions") == 4, 60, "the survivor owns all 4")
    b.wait_for(lambda: committed(broker.bootstrap, t.group, t.input, 4) == ends, 180, "final commits")
    out = read_all(broker.bootstrap, t.output, total, timeout_s=90, settle_s=1.5)
    ids = Counter(json.loads(r.value)["id"] for r in out)
    missing = {f"art-{i}" for i in range(total)} - set(ids)
    twice = {k: n for k, n in ids.items() if n > 1}
    handovers = [e for w in (a, b, c) for e in w.log_events() if e.get("msg", "").startswith("handed over")]
    where = f"seed {SEED}, changes at {[round(x, 1) for x in at]} s, {len(handovers)} handovers with a batch"
    assert not missing, f"{where}: {len(missing)} lost"
    assert not twice, f"{where}: {len(twice)} published twice, e.g. {list(twice)[:5]}"
    for w in (a, b, c):
        failed = [e for e in w.log_events() if e.get("msg", "").startswith("commit on revoke failed")]
        assert not failed, f"{where}: {failed[:2]}"
    # the changes really met batches in flight (else this test would prove nothing about handing them over)
    assert handovers, where
    print(f"\n{where}; {total} articles, 0 duplicates")


def test_idle_replicas_are_ready(broker, topics_factory, worker_factory, model_v1: Path) -> None:
    t = topics_factory(partitions=2)
    workers = [worker_factory(t, model_v1) for _ in range(3)]
    for w in workers:
        w.wait_ready(timeout_s=60)
    # once the group settles: 2 partitions among 3 replicas, every replica ready, the idle one included
    workers[0].wait_for(lambda: sum(w.metric("newsstream_assigned_partitions") for w in workers) == 2, 60,
                        "two partitions assigned in all")
    details = []
    for w in workers:
        status, body = w.get("/readyz")
        detail = json.loads(body)
        details.append(detail)
        assert status == 200, detail
        assert detail["group_member"] is True
        assert w.metric("newsstream_ready") == 1
    assert sorted(d["partitions_assigned"] for d in details) == [0, 1, 1]
