"""An enriched event the broker refuses as too large becomes a dead letter; the partition does not stop.

The output topic's ``max.message.bytes`` may be lower than the worker's own limit (operators set it per topic;
Kafka's default is ~1 MB while the worker allows an enriched event twice ``max_message_bytes``). Re-reading such
a batch would be refused again forever, so the article goes to the dead-letter topic (``output_too_large``)
and the batch goes on. Needs a broker that enforces ``max.message.bytes``: Kafka does, Tansu 0.6 accepts any
size, so there the second test runs the real worker loop in-process on the real broker with one fault injected:
the producer's future for an oversized enriched event fails with the error Kafka's answer produces
(``MessageSizeTooLargeError``), everything else goes to the broker. The first test needs Kafka
(compose's: ``NEWSSTREAM_TEST_BOOTSTRAP_SERVERS=localhost:29092``) and is skipped on Tansu.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import SESSION_TIMEOUT_MS, Topics, article, committed, headers_of, produce, read_all

from streamer.broker import create_topics

LIMIT = 20_000


@pytest.fixture(scope="module")
def broker_enforces_max_message_bytes(broker) -> bool:
    from kafka import KafkaProducer
    from kafka.errors import MessageSizeTooLargeError

    topic = f"probe-size-{uuid.uuid4().hex[:10]}"
    create_topics(broker.bootstrap, {topic: 1}, configs={"max.message.bytes": "1024"})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        producer.send(topic, b"x" * 4096).get(timeout=15)
        return False
    except MessageSizeTooLargeError:
        return True
    finally:
        producer.close()


def _messages(big: set[int]) -> list[tuple[bytes | None, bytes | None]]:
    messages: list[tuple[bytes | None, bytes | None]] = []
    for i in range(150):
        a = article(i)
        if i in big:
            a["text"] = ("A long report on the flood. " * 1500)[: 3 * LIMIT]
        messages.append((a["id"].encode(), json.dumps(a).encode()))
    return messages


def _check(bootstrap: str, t: Topics, big: set[int]) -> None:
    enriched = read_all(bootstrap, t.output, 150 - len(big), timeout_s=30, settle_s=1.0)
    dead = read_all(bootstrap, t.dlq, len(big), timeout_s=30, settle_s=1.0)
    assert sorted(json.loads(r.value)["id"] for r in enriched) == sorted(
        f"art-{i}" for i in range(150) if i not in big)
    assert sorted(r.key for r in dead) == sorted(f"art-{i}".encode() for i in big)
    for r in dead:
        h = headers_of(r)
        assert h["reason"] == "output_too_large", h
        assert "refused" in h["error"] and h["origin-topic"] == t.input
        assert json.loads(r.value)["id"] == r.key.decode()  # the input, untouched


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_refused_enriched_event_is_dead_lettered(broker, broker_enforces_max_message_bytes, unique,
                                                  worker_factory, model_v1: Path, guarantee: str) -> None:
    if not broker_enforces_max_message_bytes:
        pytest.skip("this broker accepts any record size (Tansu 0.6); run against Kafka")
    t = Topics(unique("in"), unique("out"), unique("dlq"), unique("group"), 2)
    create_topics(broker.bootstrap, {t.input: 2, t.dlq: 1})
    create_topics(broker.bootstrap, {t.output: 2}, configs={"max.message.bytes": str(LIMIT)})
    big = {7, 55, 120}
    ends = produce(broker.bootstrap, t.input, _messages(big))

    worker = worker_factory(t, model_v1, batch_max_messages=50, processing_guarantee=guarantee)
    worker.wait_ready(timeout_s=60)
    worker.wait_for(lambda: committed(broker.bootstrap, t.group, t.input, 2) == ends, 120, "every offset committed")
    _check(broker.bootstrap, t, big)
    assert worker.metric("newsstream_messages_dead_lettered_total", reason="output_too_large") == len(big)
    assert worker.proc is not None and worker.proc.poll() is None


def test_refused_enriched_event_is_dead_lettered_fault_injected(broker, topics_factory, model_v1: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from kafka import KafkaProducer, TopicPartition
    from kafka.errors import MessageSizeTooLargeError
    from kafka.producer.future import FutureProduceResult, FutureRecordMetadata
    from prometheus_client import CollectorRegistry

    import streamer.worker
    from streamer.http import Health
    from streamer.metrics import Metrics
    from streamer.model_watch import ModelHolder
    from streamer.settings import Settings

    t = topics_factory(partitions=2)
    refused: list[bytes | None] = []

    class BrokerRefusesLargeOutput(KafkaProducer):  # type: ignore[misc]
        def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None, **kw: Any) -> Any:
            if topic == t.output and value is not None and len(value) > LIMIT:
                refused.append(key)
                result = FutureProduceResult(TopicPartition(topic, 0))
                future = FutureRecordMetadata(result, 0, -1, None, len(key or b""), len(value), 0)
                result.failure(MessageSizeTooLargeError("[Error 10] MessageSizeTooLargeError"))
                return future
            return super().send(topic, value=value, key=key, headers=headers, **kw)

    monkeypatch.setattr(streamer.worker, "KafkaProducer", BrokerRefusesLargeOutput)
    big = {7, 55, 120}
    ends = produce(broker.bootstrap, t.input, _messages(big))
    settings = Settings(bootstrap_servers=broker.bootstrap, input_topic=t.input, output_topic=t.output,
                        dlq_topic=t.dlq, group_id=t.group, session_timeout_ms=SESSION_TIMEOUT_MS,
                        batch_max_messages=50)
    metrics = Metrics(CollectorRegistry())
    worker = streamer.worker.Worker(settings, metrics, ModelHolder(model_v1, metrics), Health())
    loop = threading.Thread(target=worker.run, daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 120
        while committed(broker.bootstrap, t.group, t.input, 2) != ends and time.monotonic() < deadline:
            assert loop.is_alive()
            time.sleep(0.5)
        assert committed(broker.bootstrap, t.group, t.input, 2) == ends
    finally:
        worker.request_stop()
        loop.join(timeout=30)
    assert sorted(refused) == sorted(f"art-{i}".encode() for i in big)  # refused once each, then dead letters
    _check(broker.bootstrap, t, big)
    assert metrics.dead_lettered.labels(reason="output_too_large")._value.get() == len(big)
    assert metrics.broker_errors._value.get() == 0  # no batch failed and was re-read
