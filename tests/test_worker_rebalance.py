"""Two workers in one group: the second takes half the partitions; SIGTERM drains, commits and leaves."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

from conftest import article, committed, produce, read_all


def test_sigterm_drains_and_second_worker_takes_over(broker, topics_factory, worker_factory,
                                                      model_v1: Path) -> None:
    t = topics_factory(partitions=4)
    total = 3000
    first = worker_factory(t, model_v1, batch_max_messages=50)
    first.wait_ready()
    assert first.metric("newsstream_assigned_partitions") == 4

    # A steady stream while the group changes under it.
    ends: dict[int, int] = {}

    def stream() -> None:
        for chunk in range(30):
            batch = [(f"art-{i}".encode(), json.dumps(article(i)).encode())
                     for i in range(chunk * 100, (chunk + 1) * 100)]
            for p, end in produce(broker.bootstrap, t.input, batch).items():
                ends[p] = max(ends.get(p, 0), end)
            time.sleep(0.1)

    producer = threading.Thread(target=stream)
    producer.start()

    second = worker_factory(t, model_v1, batch_max_messages=50)
    second.wait_for(lambda: second.metric("newsstream_assigned_partitions") == 2
                    and first.metric("newsstream_assigned_partitions") == 2, 45, "a 2 + 2 split")
    assert first.metric("newsstream_rebalances_total", event="revoked") >= 1

    # SIGTERM the first worker mid-stream: it finishes its batch, commits, leaves the group, exits 0 fast.
    sent_at = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait(10) == 0
    assert time.monotonic() - sent_at < 10
    messages = [e.get("msg") for e in first.log_events()]
    assert "stop requested; finishing the batch" in messages and "worker stopped" in messages

    second.wait_for(lambda: second.metric("newsstream_assigned_partitions") == 4, 45, "the survivor owns all 4")
    producer.join()
    assert sum(ends.values()) == total

    # Until every id is there (a count would be fooled by the duplicates a handover may cause).
    out = read_all(broker.bootstrap, t.output, lambda recs: len({r.key for r in recs}) >= total, timeout_s=90)
    ids = {json.loads(r.value)["id"] for r in out}
    assert ids == {f"art-{i}" for i in range(total)}, f"{total - len(ids)} lost"
    second.wait_for(lambda: committed(broker.bootstrap, t.group, t.input, 4) == ends, 30, "final commits")
    # Handover costs at most the batches in flight at the revocation; duplicates stay bounded.
    assert len(out) - total <= 4 * 50
