"""Broker away: the worker retries, logs it, keeps serving /metrics and /healthz, reports not-ready; recovers."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from conftest import article, produce, read_all

from streamer.broker import EmbeddedBroker, create_topics, free_port


def test_worker_waits_for_the_broker_and_recovers_after_it_restarts(topics_factory, worker_factory, model_v1: Path,
                                                                      tmp_path: Path) -> None:
    t = topics_factory(partitions=2)  # names only; this test runs its own broker on a port of its own
    port = free_port()
    worker = worker_factory(t, model_v1)
    worker.env["NEWSSTREAM_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
    worker.stop()
    worker.start()

    # No broker yet: alive, serving metrics, not ready, saying why.
    worker.wait_for(lambda: worker.metric("newsstream_broker_errors_total") >= 1, 30, "a logged broker error")
    assert worker.get("/healthz")[0] == 200
    status, body = worker.get("/readyz")
    assert status == 503 and json.loads(body)["broker_connected"] is False
    assert any(e.get("msg", "").startswith("broker unavailable") for e in worker.log_events())

    def serve_once(broker: EmbeddedBroker, start: int) -> None:
        create_topics(broker.bootstrap, {t.input: 2, t.output: 2, t.dlq: 1})
        produce(broker.bootstrap, t.input, [(None, json.dumps(article(i)).encode()) for i in range(start, start + 50)])
        out = read_all(broker.bootstrap, t.output, 50, timeout_s=60)
        assert {json.loads(r.value)["id"] for r in out} == {f"art-{i}" for i in range(start, start + 50)}
        worker.wait_ready(timeout_s=30)

    broker = EmbeddedBroker(port=port, log_path=tmp_path / "tansu-1.log").start()
    try:
        serve_once(broker, 0)
    finally:
        broker.stop()

    # Broker gone mid-run: not ready, still healthy.
    worker.wait_for(lambda: worker.get("/readyz")[0] == 503, 30, "not ready after the broker stopped")
    assert worker.get("/healthz")[0] == 200

    # Back (memory-only, so empty): the worker carries on without a restart.
    broker = EmbeddedBroker(port=port, log_path=tmp_path / "tansu-2.log").start()
    try:
        serve_once(broker, 1000)
        worker.signal(signal.SIGTERM)
        assert worker.wait(10) == 0
    finally:
        broker.stop()
