"""No input of any size or content stops a partition, in either guarantee; every dead letter fits.

Sizes straddle every limit the worker keeps to — ``max_message_bytes`` (input), the dead-letter topic's
``max.message.bytes`` (``dlq_max_message_bytes``) and the producer's ``max_request_size`` (which kafka-python
enforces at ``send()``) — plus offsets drawn at random around each (the seed is in every assertion message),
a 3 MB value that is not UTF-8 and a 2 MB key, on every partition, with good articles around them. Expected:
every good article enriched exactly once, every bad record exactly one dead letter, bounded (prefix, size,
sha256, origin) exactly when it is over the dead-letter limit.

Tansu accepts records of any size, so the dead-letter topic's own refusal is injected in-process (the real loop
on the real broker, the producer's future failing as Kafka's answer would): a refused dead letter shrinks; a
topic that refuses even a dead letter with no value is a misconfiguration — the worker backs off, reports
not-ready with the reason, counts it and keeps its clients; when the topic is fixed it goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import SESSION_TIMEOUT_MS, Topics, article, committed, headers_of, produce, read_all

MAX_MESSAGE = 20_000
PREFIX = 4096
SEED = int(os.environ.get("NEWSSTREAM_TEST_SEED", str(int(time.time()) % 100_000)))


def sized(key: str, n: int) -> bytes:
    """A valid article of exactly ``n`` bytes (n ≥ 200)."""
    a = article(0)
    a["id"] = key
    a["text"] = ""
    base = len(json.dumps(a).encode())
    a["text"] = ("Flood waters rose in the valley. " * (n // 30 + 1))[: n - base]
    value = json.dumps(a).encode()
    assert len(value) == n, (len(value), n)
    return value


def _produce(bootstrap: str, topic: str, messages: list[tuple[int, bytes | None, bytes | None]]) -> dict[int, int]:
    return produce(bootstrap, topic, [(k, v) for _p, k, v in messages], [p for p, _k, _v in messages],
                   max_request_size=32 * 2**20)


def workload(partitions: int, limits: list[int]) -> tuple[list[tuple[int, bytes | None, bytes | None]],
                                                           set[str], dict[bytes, int]]:
    """(partition, key, value) messages; the ids of good articles; bad keys → value size."""
    rng = random.Random(SEED)
    sizes = [MAX_MESSAGE - 1, MAX_MESSAGE, MAX_MESSAGE + 1]
    for limit in limits:
        sizes += [limit - 700, limit - 1, limit, limit + 1, limit + 700]
        sizes += [limit + rng.randint(-900, 900) for _ in range(2)]
    sizes = sorted({*sizes, 2 * 2**20, 6 * 2**20})  # limits may coincide: one record per size
    messages: list[tuple[int, bytes | None, bytes | None]] = []
    good: set[str] = set()
    bad: dict[bytes, int] = {}
    n = 0
    for p in range(partitions):
        for size in [*sizes, "not-utf8", "huge-key"]:
            for _ in range(3):  # good articles around every bad one
                a = article(n, prefix=f"good-p{p}")
                good.add(a["id"])
                messages.append((p, a["id"].encode(), json.dumps(a).encode()))
                n += 1
            key = f"sized-p{p}-{size}".encode()
            if size == "not-utf8":
                value = b"\xff\xfe" + os.urandom(3 * 2**20)
            elif size == "huge-key":
                key, value = f"p{p}".encode() + b"k" * (2 * 2**20), b"{not json"
            else:
                assert isinstance(size, int)
                value = sized(key.decode(), size)
                if size <= MAX_MESSAGE:  # a valid article within the input limit: enriched, not dead
                    good.add(key.decode())
                    messages.append((p, key, value))
                    continue
            bad[key] = len(value)
            messages.append((p, key, value))
    return messages, good, bad


@pytest.mark.parametrize("guarantee,dlq_max", [("at_least_once", 50_000), ("exactly_once", 5_000_000)])
def test_every_size_passes_and_every_dead_letter_fits(broker, topics_factory, worker_factory, model_v1: Path,
                                                       guarantee: str, dlq_max: int) -> None:
    t = topics_factory(partitions=3)
    max_request = max(1_048_576, MAX_MESSAGE * 2 + 65_536)  # the worker's producer limit for these settings
    dead_letter_limit = min(max_request, dlq_max)
    messages, good, bad = workload(t.partitions, [dead_letter_limit, max_request])
    ends = _produce(broker.bootstrap, t.input, messages)
    worker = worker_factory(t, model_v1, batch_max_messages=40, processing_guarantee=guarantee,
                            max_message_bytes=MAX_MESSAGE, dlq_max_message_bytes=dlq_max,
                            dead_letter_prefix_bytes=PREFIX)
    worker.wait_for(lambda: committed(broker.bootstrap, t.group, t.input, t.partitions) == ends, 180,
                    f"every offset committed (seed {SEED})")

    enriched = read_all(broker.bootstrap, t.output, len(good), timeout_s=60, settle_s=1.0,
                        isolation_level="read_committed")
    ids = [json.loads(r.value)["id"] for r in enriched]
    assert sorted(ids) == sorted(good), f"seed {SEED}: missing {sorted(good - set(ids))[:5]}, or duplicates"
    dead = read_all(broker.bootstrap, t.dlq, len(bad), timeout_s=60, settle_s=1.0, isolation_level="read_committed")
    by_key: dict[bytes, Any] = {}
    by_sha = {hashlib.sha256(k).hexdigest(): k for k in bad}
    for r in dead:
        h = headers_of(r)
        original_key = r.key if "original-key-sha256" not in h else by_sha[h["original-key-sha256"]]
        assert original_key not in by_key, f"seed {SEED}: two dead letters for {original_key[:40]!r}"
        by_key[original_key] = r
    assert set(by_key) == set(bad), f"seed {SEED}"
    originals = {k: v for _p, k, v in messages}
    bounded = 0
    for key, r in by_key.items():
        h = headers_of(r)
        value = originals[key]
        assert value is not None
        assert h["origin-topic"] == t.input and int(h["origin-partition"]) in range(t.partitions)
        assert h["reason"] in ("too_large", "not_utf8", "invalid_json"), h
        size = len(key) + len(value) + 1000  # what the record needs with our headers, roughly
        if h.get("truncated") == "true":
            bounded += 1
            assert int(h["original-value-bytes"]) == len(value)
            assert h["original-value-sha256"] == hashlib.sha256(value).hexdigest()
            assert r.value == value[:PREFIX]
            assert len(r.value) + len(r.key or b"") < dead_letter_limit
        else:
            assert r.value == value and r.key == key  # whole: key and value untouched
            assert size - 1000 < dead_letter_limit, f"seed {SEED}: {len(value)} bytes should have been bounded"
    assert bounded >= 3 * t.partitions  # 2 MiB, 6 MiB and the 3 MB non-UTF-8 value at least, on each partition
    assert worker.metric("newsstream_dead_letters_bounded_total") == bounded
    assert worker.metric("newsstream_broker_errors_total") == 0  # nothing failed and was re-read
    assert worker.proc is not None and worker.proc.poll() is None


# ---- the dead-letter topic refuses (injected: Tansu takes any size) ----------------------------------------


def _in_process_worker(broker: Any, t: Topics, model: Path, monkeypatch: pytest.MonkeyPatch,
                       refuse_over: list[int | None], constructed: list[int]) -> Any:
    """The real loop on the real broker; DLQ records larger than ``refuse_over[0]`` fail like Kafka refuses them."""
    from kafka import KafkaProducer, TopicPartition
    from kafka.errors import MessageSizeTooLargeError
    from kafka.producer.future import FutureProduceResult, FutureRecordMetadata

    import streamer.worker
    from streamer.app import App
    from streamer.settings import Settings

    class DlqTopicLimit(KafkaProducer):  # type: ignore[misc]
        def __init__(self, **kw: Any) -> None:
            constructed.append(1)
            super().__init__(**kw)

        def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None, **kw: Any) -> Any:
            limit = refuse_over[0]
            size = len(value or b"") + len(key or b"")
            if topic == t.dlq and limit is not None and size > limit:
                result = FutureProduceResult(TopicPartition(topic, 0))
                future = FutureRecordMetadata(result, 0, -1, None, len(key or b""), len(value or b""), 0)
                result.failure(MessageSizeTooLargeError("[Error 10] MessageSizeTooLargeError"))
                return future
            return super().send(topic, value=value, key=key, headers=headers, **kw)

    monkeypatch.setattr(streamer.worker, "KafkaProducer", DlqTopicLimit)
    settings = Settings(bootstrap_servers=broker.bootstrap, input_topic=t.input, output_topic=t.output,
                        dlq_topic=t.dlq, group_id=t.group, session_timeout_ms=SESSION_TIMEOUT_MS,
                        batch_max_messages=30, model_path=model, metrics_port=0, model_watch_interval_s=0)
    return App.build(settings).start()


def _readyz(app: Any) -> tuple[int, dict[str, Any]]:
    host, port = app.server.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_refused_dead_letters_shrink_until_they_fit(broker, topics_factory, model_v1: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    t = topics_factory(partitions=2)
    bad_sizes = [6_000, 12_000, 30_000, 200_000]  # fits whole; fits at half; 30k+ only with no value
    messages: list[tuple[int, bytes | None, bytes | None]] = []
    for p in range(2):
        for i in range(40):
            a = article(i, prefix=f"p{p}")
            messages.append((p, a["id"].encode(), json.dumps(a).encode()))
            if i % 10 == 5:
                size = bad_sizes[i // 10]
                messages.append((p, f"bad-{p}-{size}".encode(), b"{" + b"x" * (size - 1)))
    ends = _produce(broker.bootstrap, t.input, messages)
    constructed: list[int] = []
    app = _in_process_worker(broker, t, model_v1, monkeypatch, [10_000], constructed)
    try:
        deadline = time.monotonic() + 120
        while committed(broker.bootstrap, t.group, t.input, 2) != ends and time.monotonic() < deadline:
            time.sleep(0.3)
        assert committed(broker.bootstrap, t.group, t.input, 2) == ends
    finally:
        app.stop()
    dead = read_all(broker.bootstrap, t.dlq, 8, timeout_s=30, settle_s=1.0)
    forms = {}
    for r in dead:
        h = headers_of(r)
        assert r.key not in forms, "one dead letter per bad record"
        forms[r.key] = (len(r.value or b""), h.get("truncated"), h.get("original-value-bytes"))
    assert set(forms) == {f"bad-{p}-{s}".encode() for p in range(2) for s in bad_sizes}
    for p in range(2):
        assert forms[f"bad-{p}-6000".encode()] == (6000, None, None)  # under the topic's limit: whole
        size, truncated, original = forms[f"bad-{p}-12000".encode()]  # whole refused → about half
        assert 0 < size < 10_000 and (truncated, original) == ("true", "12000")
        assert forms[f"bad-{p}-30000".encode()] == (0, "true", "30000")  # half still refused → no value
        assert forms[f"bad-{p}-200000".encode()] == (0, "true", "200000")
    assert app.metrics.dead_lettered.labels(reason="invalid_json")._value.get() == 8
    assert len(constructed) == 1  # never rebuilt
    enriched = read_all(broker.bootstrap, t.output, 80, timeout_s=30, settle_s=1.0)
    assert len(enriched) == len({r.key for r in enriched}) == 80


def test_dead_letter_topic_refusing_everything_is_reported_not_looped(broker, topics_factory, model_v1: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    t = topics_factory(partitions=2)
    messages: list[tuple[int, bytes | None, bytes | None]] = []
    for p in range(2):
        for i in range(20):
            a = article(i, prefix=f"p{p}")
            messages.append((p, a["id"].encode(), json.dumps(a).encode()))
        messages.append((p, b"poison", b"not json"))
    ends = _produce(broker.bootstrap, t.input, messages)
    refuse: list[int | None] = [0]  # every dead letter refused, even one with no value: a misconfigured topic
    constructed: list[int] = []
    app = _in_process_worker(broker, t, model_v1, monkeypatch, refuse, constructed)
    try:
        deadline = time.monotonic() + 60
        while app.metrics.dead_letters_refused._value.get() < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert app.metrics.dead_letters_refused._value.get() >= 2
        status, detail = _readyz(app)
        assert status == 503 and "dead-letter topic" in detail.get("problem", ""), detail
        assert app.metrics.ready._value.get() == 0
        assert len(constructed) == 1  # clients kept: a topic setting is not fixed by reconnecting
        # the lag gauge stays current while the batch waits
        lag = {s.labels["partition"]: s.value for f in app.registry.collect() for s in f.samples
               if s.name == "newsstream_consumer_lag_messages"}
        assert lag and sum(lag.values()) > 0, lag
        assert committed(broker.bootstrap, t.group, t.input, 2) != ends
        refuse[0] = None  # the operator fixes the topic
        deadline = time.monotonic() + 90  # the back-off doubles up to 60 s; two or three waits at this point
        while committed(broker.bootstrap, t.group, t.input, 2) != ends and time.monotonic() < deadline:
            time.sleep(0.3)
        assert committed(broker.bootstrap, t.group, t.input, 2) == ends
        assert app.wait_ready(10), _readyz(app)
    finally:
        app.stop()
    dead = read_all(broker.bootstrap, t.dlq, 2, timeout_s=30, settle_s=1.0)
    assert sorted(r.key for r in dead) == [b"poison", b"poison"]
