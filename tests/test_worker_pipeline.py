"""1,000 valid + 50 poison messages through a real worker on the real broker."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

from conftest import article, committed, headers_of, produce, read_all

from streamer.schemas import SCHEMA_VERSION, EnrichedEvent
from streamer.taxonomy import TOPICS

MAX_BYTES = 20_000


def poison() -> list[tuple[bytes | None, bytes | None, str]]:
    """(key, value, expected reason): 50 messages, every reason the input can earn."""
    out: list[tuple[bytes | None, bytes | None, str]] = []
    for i in range(10):
        out.append((f"pj-{i}".encode(), b'{"id": "broken", "text": ' + str(i).encode(), "invalid_json"))
    for i in range(10):
        out.append((f"pu-{i}".encode(), b'{"id": "x", "text": "caf\xe9 ' + str(i).encode() + b'"}', "not_utf8"))
    for i in range(4):
        out.append((f"ps-{i}".encode(), json.dumps({"id": f"ps-{i}", "title": "no text"}).encode(), "invalid_schema"))
    for i in range(3):
        out.append((f"pl-{i}".encode(), json.dumps([i, "a list"]).encode(), "invalid_schema"))
    for i in range(3):
        out.append((f"pi-{i}".encode(), json.dumps({"id": None, "text": "t"}).encode(), "invalid_schema"))
    for i in range(10):
        out.append((f"pe-{i}".encode(), json.dumps({"id": f"pe-{i}", "text": "   "}).encode(), "empty_text"))
    for i in range(5):
        big = json.dumps({"id": f"pb-{i}", "text": "word " * (MAX_BYTES // 4)}).encode()
        out.append((f"pb-{i}".encode(), big, "too_large"))
    for i in range(5):
        out.append((f"pt-{i}".encode(), None, "tombstone"))
    assert len(out) == 50
    return out


def test_thousand_valid_fifty_poison(broker, topics_factory, worker_factory, model_v1: Path) -> None:
    t = topics_factory(partitions=4)
    valid = [(f"art-{i}".encode(), json.dumps(article(i)).encode()) for i in range(1000)]
    bad = poison()
    messages: list[tuple[bytes | None, bytes | None]] = list(valid)
    # Poison interleaved with good records, so each bad one sits inside a batch of good ones.
    for n, (key, value, _) in enumerate(bad):
        messages.insert(n * 20 + 7, (key, value))
    ends = produce(broker.bootstrap, t.input, messages)

    worker = worker_factory(t, model_v1, max_message_bytes=MAX_BYTES, batch_max_messages=200)
    worker.wait_ready()

    enriched = read_all(broker.bootstrap, t.output, 1000, timeout_s=90, settle_s=1.0)
    dead = read_all(broker.bootstrap, t.dlq, 50, timeout_s=30, settle_s=0.5)
    assert len(enriched) == 1000
    assert len(dead) == 50

    # Enriched: schema, key = id, headers, pass-through fields, origin pointing at the input record.
    ids = set()
    for rec in enriched:
        event = EnrichedEvent.model_validate(json.loads(rec.value))
        ids.add(event.id)
        assert rec.key == event.id.encode()
        h = headers_of(rec)
        assert h["schema-version"] == SCHEMA_VERSION and h["model-version"] == "1"
        assert event.model == {"name": "test-model", "version": "1"}
        n = int(event.id.split("-")[1])
        assert event.model_extra is not None and event.model_extra["extra_field"] == {"n": n}
        assert event.origin is not None and event.origin.topic == t.input
        assert len(event.topics) == 3 and event.topics[0] == event.topic
    assert ids == {f"art-{i}" for i in range(1000)}

    # Dead letters: original key and value bytes, reason and origin in headers.
    expected = {key: (value, reason) for key, value, reason in bad}
    seen = Counter()
    for rec in dead:
        value, reason = expected[rec.key]
        h = headers_of(rec)
        assert rec.value == value, rec.key
        assert h["reason"] == reason, (rec.key, h)
        assert h["error"]
        assert h["origin-topic"] == t.input
        assert int(h["origin-partition"]) in range(4) and int(h["origin-offset"]) >= 0
        assert int(h["origin-timestamp"]) > 0
        seen[reason] += 1
    assert seen == Counter(reason for _, _, reason in bad)

    # Offsets committed at the end of every partition (the worker commits after each acknowledged batch).
    worker.wait_for(lambda: committed(broker.bootstrap, t.group, t.input, 4) == ends, 30, "commits at the end")

    # /metrics parses with prometheus-client's parser and its counters equal what this test counted.
    m = worker.metrics()
    assert m["newsstream_messages_consumed_total"][(("topic", t.input),)] == 1050
    assert m["newsstream_messages_produced_total"][(("topic", t.output),)] == 1000
    dl = {dict(k)["reason"]: v for k, v in m["newsstream_messages_dead_lettered_total"].items()}
    assert dl == {reason: float(n) for reason, n in seen.items()}
    classified = m["newsstream_classified_total"]
    topic_series = {dict(k)["label"]: v for k, v in classified.items() if dict(k)["head"] == "topic"}
    # Every label of the bundle's taxonomy has a series from the start (0 until predicted): rate() and
    # absent-label alerts work from the first scrape, and nothing outside the taxonomy ever appears.
    assert set(topic_series) == set(TOPICS)
    topic_counts = {label: v for label, v in topic_series.items() if v}
    assert sum(topic_counts.values()) == 1000
    published_topics = Counter(json.loads(r.value)["topic"]["label"] for r in enriched)
    assert topic_counts == {label: float(n) for label, n in published_topics.items()}
    assert m["newsstream_prediction_confidence_count"][(("head", "incident"),)] == 1000
    assert m["newsstream_batch_size_messages_sum"][()] == 1050
    assert m["newsstream_model_info"][(("name", "test-model"), ("version", "1"))] == 1
    assert m["newsstream_commits_total"][()] >= 1
    assert m["newsstream_commit_failures_total"][()] == 0
    assert m["newsstream_ready"][()] == 1
    lag = m["newsstream_consumer_lag_messages"]
    assert len(lag) == 4 and all(v == 0 for v in lag.values())
    assert m["newsstream_last_processed_timestamp_seconds"][()] > 0
    assert m["newsstream_event_age_seconds_count"][()] == 1050

    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
