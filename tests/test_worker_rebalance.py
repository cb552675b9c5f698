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

from conftest import article, committed, produce, read_all

SEED = int(os.environ.get("NEWSSTREAM_TEST_SEED", str(int(time.time()) % 100_000)))


def test_join_leave_scale_up_and_down_publish_nothing_twice(broker, topics_factory, worker_factory,
                                                            model_v1: Path) -> None:
    rng = random.Random(SEED)
    t = topics_factory(partitions=4)
    chunks, per_chunk = 60, 100
    total = chunks * per_chunk
    ends: dict[int, int] = {}
    produced = threading.Event()

    def stream() -> None:
        for chunk in range(chunks):
            batch = [(f"art-{i}".encode(), json.dumps(article(i)).encode())
                     for i in range(chunk * per_chunk, (chunk + 1) * per_chunk)]
            for p, end in produce(broker.bootstrap, t.input, batch).items():
                ends[p] = max(ends.get(p, 0), end)
            time.sleep(0.4)
        produced.set()

    a = worker_factory(t, model_v1, batch_max_messages=50)
    a.wait_ready()
    started = time.monotonic()
    producer = threading.Thread(target=stream)
    producer.start()
    # Membership changes at random points of the stream: join, join (scale up), leave, leave (scale down).
    at = sorted(rng.uniform(lo, lo + 4) for lo in (2, 8, 14, 20))

    def wait_until(offset_s: float) -> None:
        time.sleep(max(0.0, started + offset_s - time.monotonic()))

    wait_until(at[0])
    b = worker_factory(t, model_v1, batch_max_messages=50)
    wait_until(at[1])
    c = worker_factory(t, model_v1, batch_max_messages=50)
    wait_until(at[2])
    a.signal(signal.SIGTERM)
    assert a.wait(15) == 0, f"seed {SEED}: {a.log()[-3000:]}"
    messages = [e.get("msg") for e in a.log_events()]
    assert "stop requested; finishing the batch" in messages and "worker stopped" in messages
    wait_until(at[3])
    c.signal(signal.SIGTERM)
    assert c.wait(15) == 0, f"seed {SEED}: {c.log()[-3000:]}"

    producer.join()
    assert produced.is_set() and sum(ends.values()) == total
    b.wait_for(lambda: b.metric("newsstream_assigned_partitions") == 4, 60, "the survivor owns all 4")
    b.wait_for(lambda: committed(broker.bootstrap, t.group, t.input, 4) == ends, 90, "final commits")
    out = read_all(broker.bootstrap, t.output, total, timeout_s=60, settle_s=1.5)
    ids = Counter(json.loads(r.value)["id"] for r in out)
    missing = {f"art-{i}" for i in range(total)} - set(ids)
    twice = {k: n for k, n in ids.items() if n > 1}
    assert not missing, f"seed {SEED} (changes at {at}): {len(missing)} lost"
    assert not twice, f"seed {SEED} (changes at {at}): {len(twice)} published twice, e.g. {list(twice)[:5]}"
    for w in (a, c):
        failed = [e for e in w.log_events() if e.get("msg", "").startswith("commit on revoke failed")]
        assert not failed, f"seed {SEED}: {failed[:2]}"


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
