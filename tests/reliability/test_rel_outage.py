"""Broker outage of 30 s in the middle of a stream, on a broker of the test's own.

``tests/test_worker_broker_down.py`` covers a worker started before its broker and a broker stopped while
the worker idles. This one stops the broker while records are being processed, keeps it away for 30 s, and
measures what operators care about: not-ready while away and ready again after, no restart (same process,
never exited), a log of it, no crash loop (reconnect attempts back off) and no busy loop (the worker's CPU
time while the broker is away, from /proc/<pid>/stat).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import article, produce, read_all

from streamer.broker import EmbeddedBroker, create_topics, free_port
from streamer.settings import Settings

OUTAGE_S = 30.0
CPU_BOUND = 0.30  # of one core, generous: an idle backoff loop measures ~1-3 %


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # after the command: state is field 3, utime and stime are fields 14 and 15 (1-based, man 5 proc)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_thirty_second_outage_mid_stream(topics_factory, worker_factory, model_v1: Path, tmp_path: Path) -> None:
    t = topics_factory(partitions=2)  # names only: this test runs its own broker
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    first = EmbeddedBroker(port=port, log_path=tmp_path / "tansu-1.log").start()
    second: EmbeddedBroker | None = None
    try:
        create_topics(bootstrap, {t.input: 2, t.output: 2, t.dlq: 1})
        worker = worker_factory(t, model_v1, batch_max_messages=50)
        worker.stop()
        worker.env["NEWSSTREAM_BOOTSTRAP_SERVERS"] = bootstrap
        worker.start()
        worker.wait_ready(timeout_s=60)
        assert worker.proc is not None
        pid = worker.proc.pid

        produce(bootstrap, t.input, [(None, json.dumps(article(i)).encode()) for i in range(100)])
        assert len(read_all(bootstrap, t.output, 100, timeout_s=60)) == 100
        # mid-stream: a backlog the worker is working through when the broker goes
        produce(bootstrap, t.input, [(None, json.dumps(article(i)).encode()) for i in range(100, 3100)])
        read_all(bootstrap, t.output, 300, timeout_s=60)
        stopped_at = time.monotonic()
        first.stop()

        worker.wait_for(lambda: worker.get("/readyz")[0] == 503, 30, "not ready after the broker stopped")
        not_ready_after = time.monotonic() - stopped_at
        cpu_start, wall_start = _cpu_seconds(pid), time.monotonic()
        health = []
        while time.monotonic() - stopped_at < OUTAGE_S:
            health.append(worker.get("/healthz")[0])
            assert worker.get("/readyz")[0] == 503
            time.sleep(1.0)
        cpu_share = (_cpu_seconds(pid) - cpu_start) / (time.monotonic() - wall_start)
        assert set(health) == {200}, health
        assert worker.proc.poll() is None, "the worker exited during the outage"

        restarted_at = time.monotonic()
        second = EmbeddedBroker(port=port, log_path=tmp_path / "tansu-2.log").start()
        create_topics(bootstrap, {t.input: 2, t.output: 2, t.dlq: 1})  # memory-only: the topics are gone
        worker.wait_ready(timeout_s=90)
        ready_after = time.monotonic() - restarted_at
        produce(bootstrap, t.input, [(f"new-{i}".encode(), json.dumps(article(i, "new")).encode())
                                     for i in range(200)])
        out = read_all(bootstrap, t.output, 200, timeout_s=90)
        flowing_after = time.monotonic() - restarted_at
        assert {json.loads(r.value)["id"] for r in out} == {f"new-{i}" for i in range(200)}
        assert worker.proc.poll() is None and worker.proc.pid == pid  # recovered without a restart

        events = worker.log_events()
        trouble = [e for e in events if e.get("level") == "warning"
                   and str(e.get("logger", "")).startswith("streamer")
                   and ("broker" in e.get("msg", "") or "batch not committed" in e.get("msg", ""))]
        connects = [e for e in events if e.get("msg") == "connected"]
        print(f"\noutage {OUTAGE_S:.0f}s: not ready after {not_ready_after:.1f}s, worker CPU {cpu_share:.1%} of a "
              f"core while away, ready {ready_after:.1f}s and output flowing {flowing_after:.1f}s after the "
              f"broker came back; {len(trouble)} warnings, {len(connects)} client (re)builds")
        assert trouble, "the outage was not logged"
        assert worker.metric("newsstream_broker_errors_total") >= 1
        assert cpu_share < CPU_BOUND, f"busy loop: {cpu_share:.1%} of a core while the broker was away"
        # backoff doubles to 10 s: a 30 s outage is a handful of attempts, not a crash loop
        assert len(connects) <= 15, len(connects)
        # kafka-python's default reconnect backoff grows to 30 s, which held recovery back by 21-26 s
        assert Settings().consumer_kwargs()["reconnect_backoff_max_ms"] <= 5000
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0
    finally:
        first.stop()
        if second is not None:
            second.stop()
