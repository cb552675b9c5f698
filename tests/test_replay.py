"""``newsstream replay`` against the real broker: the worker's outputs for the input's history, nothing more.

Each replay runs as a subprocess (``python -m newsstream replay``) with the ``NEWSSTREAM_*`` environment a
deployment has, including the live worker's group id, which must end up with no offsets.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Topics, article, committed, headers_of, produce, read_all

from streamer.broker import free_port
from streamer.model_watch import ModelHolder
from streamer.pipeline import Limits, process
from streamer.settings import Settings

POISON: list[tuple[bytes | None, bytes | None, str]] = [
    (b"bad-json", b"{not json", "invalid_json"),
    (b"empty", json.dumps({"id": "empty-1", "text": ""}).encode(), "empty_text"),
    (b"blank", json.dumps({"id": "blank-1", "title": "t", "text": "   "}).encode(), "empty_text"),
]


def _env(bootstrap: str, topics: Topics | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
    env["NEWSSTREAM_BOOTSTRAP_SERVERS"] = bootstrap
    if topics is not None:
        env.update({"NEWSSTREAM_INPUT_TOPIC": topics.input, "NEWSSTREAM_DLQ_TOPIC": topics.dlq,
                    "NEWSSTREAM_GROUP_ID": topics.group})  # the live worker's group: never to be touched
    return env


def _replay(bootstrap: str, topics: Topics | None, *args: str,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsstream", "replay", *args], cwd=ROOT,
                          env=_env(bootstrap, topics), capture_output=True, text=True, timeout=timeout)


def _ends(stderr: str) -> dict[int, int]:
    """partition → the end offset the summary says the replay took at start."""
    return {int(p): int(e) for p, e in re.findall(r"partition (\d+): .*end at start (\d+)", stderr)}


def _origins(records: list[Any]) -> list[tuple[int, int]]:
    """(partition, offset) of the input record each output answers: from the event, or a dead letter's headers."""
    out = []
    for r in records:
        h = headers_of(r)
        if "origin-partition" in h:
            out.append((int(h["origin-partition"]), int(h["origin-offset"])))
        else:
            origin = json.loads(r.value)["origin"]
            out.append((origin["partition"], origin["offset"]))
    return out


def _input(bootstrap: str, topic: str, count: int) -> list[Any]:
    return read_all(bootstrap, topic, count, timeout_s=30, settle_s=0.5)


def _articles(prefix: str, count: int) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"{prefix}-{i}".encode(), json.dumps(article(i, prefix)).encode()) for i in range(count)]


def _no_live_offsets(bootstrap: str, topics: Topics) -> None:
    assert committed(bootstrap, topics.group, topics.input, topics.partitions) == dict.fromkeys(
        range(topics.partitions))


# ---- 1. everything up to the end offsets taken at start, as the worker would publish it ---------------------


def test_replay_from_earliest_publishes_what_the_worker_would_and_stops_at_the_start_ends(
        broker, topics_factory, model_v1: Path) -> None:
    topics = topics_factory(partitions=4)
    good = _articles("a", 40)
    produce(broker.bootstrap, topics.input, good + [(k, v) for k, v, _ in POISON])

    # Articles keep arriving while the replay runs: those after its start must not be replayed.
    stop = threading.Event()
    late = 0

    def keep_producing() -> None:
        nonlocal late
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0)
        try:
            while not stop.is_set():
                producer.send(topics.input, key=f"late-{late}".encode(),
                              value=json.dumps(article(late, "late")).encode()).get(timeout=10)
                late += 1
                time.sleep(0.01)
        finally:
            producer.close()

    thread = threading.Thread(target=keep_producing, daemon=True)
    thread.start()
    try:
        result = _replay(broker.bootstrap, topics, "--from", "earliest", "--output-topic", topics.output,
                         "--model", str(model_v1))
    finally:
        stop.set()
        thread.join(timeout=20)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    ends = _ends(result.stderr)
    assert set(ends) == set(range(topics.partitions)), result.stderr
    replayed_count = sum(ends.values())
    assert replayed_count >= len(good) + len(POISON)
    history = _input(broker.bootstrap, topics.input, len(good) + len(POISON) + late)
    assert len(history) > replayed_count, "nothing arrived after the replay started: the test proves nothing"
    below = sorted((r.partition, r.offset) for r in history if r.offset < ends[r.partition])
    assert len(below) == replayed_count

    # Exactly the records below the start ends, each once: good ones enriched, poison dead-lettered.
    events = read_all(broker.bootstrap, topics.output, replayed_count - len(POISON), timeout_s=30, settle_s=1.0)
    dead = read_all(broker.bootstrap, topics.dlq, len(POISON), timeout_s=30, settle_s=1.0)
    assert sorted(_origins(events) + _origins(dead)) == below
    by_origin = {(r.partition, r.offset): r for r in history}
    assert {by_origin[o].key for o in _origins(dead)} == {k for k, _, _ in POISON}
    for record in dead:
        h = headers_of(record)
        source = by_origin[(int(h["origin-partition"]), int(h["origin-offset"]))]
        assert h["reason"] == next(reason for k, _, reason in POISON if k == source.key)
        assert h["origin-topic"] == topics.input and record.value == source.value and record.key == source.key
    assert f"dead-lettered to {topics.dlq} (empty_text 2, invalid_json 1)" in result.stderr

    # Byte for byte what streamer.pipeline.process makes of the same records (the batch's processed_at aside).
    bundle = ModelHolder(model_v1, _metrics()).current
    limits = _worker_limits()
    by_time: dict[str, list[Any]] = {}
    for e in events:
        by_time.setdefault(json.loads(e.value)["processed_at"], []).append(e)
    for processed_at, group in by_time.items():
        sources = [by_origin[o] for o in _origins(group)]
        expected = process(sources, bundle, limits, topics.output, topics.dlq, processed_at=processed_at)
        assert [(o.key, o.value, o.headers) for o in expected.outputs] == \
            [(e.key, e.value, list(e.headers)) for e in group]

    _no_live_offsets(broker.bootstrap, topics)


def _metrics() -> Any:
    from prometheus_client import CollectorRegistry

    from streamer.metrics import Metrics

    return Metrics(CollectorRegistry())


def _worker_limits() -> Limits:
    s = Settings()
    max_request = int(s.producer_kwargs()["max_request_size"])
    return Limits(max_message_bytes=s.max_message_bytes,
                  max_output_bytes=min(max_request, s.output_max_message_bytes),
                  dead_letter_bytes=min(max_request, s.dlq_max_message_bytes),
                  dead_letter_prefix_bytes=s.dead_letter_prefix_bytes)


def test_a_transactional_input_ends_past_its_commit_markers(broker, topics_factory, model_v1: Path) -> None:
    """The last offset of a transactionally written partition is a commit marker no reader is given: the
    replay ends on the consumer's position, not on the last record it saw, so it finishes instead of stalling."""
    from kafka import KafkaProducer

    topics = topics_factory(partitions=2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"{topics.input}-tx",
                             enable_idempotence=True)
    try:
        producer.init_transactions()
        for n in range(2):
            producer.begin_transaction()
            for key, value in _articles(f"tx{n}", 5):
                producer.send(topics.input, key=key, value=value)
            producer.commit_transaction()
    finally:
        producer.close()

    started = time.monotonic()
    result = _replay(broker.bootstrap, topics, "--from", "earliest", "--output-topic", topics.output,
                     "--model", str(model_v1))
    assert result.returncode == 0, result.stderr
    assert "replay done: 10 read" in result.stderr and time.monotonic() - started < 30
    assert sum(_ends(result.stderr).values()) > 10  # the markers take offsets too
    events = read_all(broker.bootstrap, topics.output, 10, timeout_s=30, settle_s=0.5)
    assert sorted(json.loads(e.value)["id"] for e in events) == sorted(f"tx{n}-{i}" for n in range(2) for i in range(5))


# ---- 2. --from / --until by record timestamps -----------------------------------------------------------


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def test_from_and_until_replay_exactly_the_records_between(broker, topics_factory, model_v1: Path) -> None:
    from kafka import KafkaProducer

    topics = topics_factory(partitions=3)
    base = int(time.time() * 1000) - 3_600_000  # an hour ago, so "now" is no boundary here
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    batches = {"A": 0, "B": 100_000, "C": 200_000}  # ms after base
    try:
        for name, offset_ms in batches.items():
            for i in range(12):
                producer.send(topics.input, key=f"{name}-{i}".encode(),
                              value=json.dumps(article(i, name)).encode(), timestamp_ms=base + offset_ms + i)
            producer.send(topics.input, key=f"{name}-bad".encode(), value=b"{oops", timestamp_ms=base + offset_ms + 50)
            producer.flush()
    finally:
        producer.close()

    # t1 between A and B, t2 exactly at C's first timestamp: C's first record is >= until, so not replayed.
    result = _replay(broker.bootstrap, topics, "--from", _iso(base + 50_000), "--until", _iso(base + 200_000),
                     "--output-topic", topics.output, "--model", str(model_v1))

    assert result.returncode == 0, result.stderr
    events = read_all(broker.bootstrap, topics.output, 12, timeout_s=30, settle_s=1.0)
    assert sorted(json.loads(e.value)["id"] for e in events) == sorted(f"B-{i}" for i in range(12))
    dead = read_all(broker.bootstrap, topics.dlq, 1, timeout_s=30, settle_s=1.0)
    assert [d.key for d in dead] == [b"B-bad"]
    assert "13 read" in result.stderr and "12 enriched" in result.stderr
    assert "13 records before --from were read and skipped" in result.stderr, result.stderr  # all of A
    assert len(re.findall(r"stopped at \d+ by --until", result.stderr)) >= 1
    _no_live_offsets(broker.bootstrap, topics)


# ---- 3. --group: progress committed on the replay's own group, a rerun continues -------------------------


def test_group_resumes_where_the_last_run_committed(broker, topics_factory, unique, model_v1: Path) -> None:
    topics = topics_factory(partitions=3)
    group = unique("replay-group")
    first = _articles("g", 40)
    first.insert(17, (b"bad", b"not json at all"))
    produce(broker.bootstrap, topics.input, first)
    args = ("--from", "earliest", "--output-topic", topics.output, "--model", str(model_v1), "--group", group)

    limited = _replay(broker.bootstrap, topics, *args, "--limit", "15")
    assert limited.returncode == 0, limited.stderr
    assert "replay stopped at --limit: 15 read" in limited.stderr, limited.stderr
    after_limit = committed(broker.bootstrap, group, topics.input, topics.partitions)
    assert sum(o or 0 for o in after_limit.values()) == 15  # each partition starts at 0: offsets = records

    rest = _replay(broker.bootstrap, topics, *args)
    assert rest.returncode == 0, rest.stderr
    assert f"{len(first) - 15} read" in rest.stderr, rest.stderr
    assert "resumed at" in rest.stderr

    later = _articles("h", 10)
    ends = produce(broker.bootstrap, topics.input, later)
    again = _replay(broker.bootstrap, topics, *args)
    assert again.returncode == 0, again.stderr
    assert "replay done: 10 read" in again.stderr, again.stderr

    total = len(first) + len(later)
    outputs = (read_all(broker.bootstrap, topics.output, total - 1, timeout_s=30, settle_s=1.0)
               + read_all(broker.bootstrap, topics.dlq, 1, timeout_s=30, settle_s=1.0))
    origins = _origins(outputs)
    assert len(origins) == total and not [o for o, n in Counter(origins).items() if n > 1]  # none lost, none twice
    history = _input(broker.bootstrap, topics.input, total)
    assert sorted(origins) == sorted((r.partition, r.offset) for r in history)
    final = committed(broker.bootstrap, group, topics.input, topics.partitions)
    assert all(final[p] == end for p, end in ends.items())  # ends: each partition's end after the last produce
    _no_live_offsets(broker.bootstrap, topics)


def test_the_live_group_is_refused(broker, topics_factory, model_v1: Path) -> None:
    topics = topics_factory(partitions=1)
    result = _replay(broker.bootstrap, topics, "--from", "earliest", "--output-topic", topics.output,
                     "--model", str(model_v1), "--group", topics.group)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("newsstream replay: --group") and "live worker" in result.stderr


# ---- 4. one clear line when it cannot run ------------------------------------------------------------


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("newsstream replay: ") and not lines[0].startswith("newsstream replay: newsstream")
    assert result.stdout == ""
    return lines[0]


def test_unreachable_broker_is_one_line_and_exit_3(model_v1: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens here
    started = time.monotonic()
    result = _replay(address, None, "--from", "earliest", "--output-topic", "o", "--model", str(model_v1),
                     timeout=60)
    assert result.returncode == 3, result.stderr
    line = _one_line(result)
    assert address in line and "NEWSSTREAM_BOOTSTRAP_SERVERS" in line
    assert time.monotonic() - started < 20


def test_a_bundle_that_does_not_verify_is_exit_3(broker, topics_factory, tmp_path: Path) -> None:
    from bundles import corrupt_bundle

    topics = topics_factory(partitions=1)
    bad = corrupt_bundle(tmp_path / "models" / "bad-1", "1")
    result = _replay(broker.bootstrap, topics, "--from", "earliest", "--output-topic", topics.output,
                     "--model", str(bad.parent))
    assert result.returncode == 3, result.stderr
    assert "sha256" in _one_line(result)


@pytest.mark.parametrize("which", ["input", "output", "dlq"])
def test_a_missing_topic_is_one_line_and_exit_1(broker, topics_factory, unique, model_v1: Path,
                                                 which: str) -> None:
    topics = topics_factory(partitions=1)
    output = topics.output
    if which == "input":
        topics.input = unique("missing-input")
    elif which == "output":
        output = unique("missing-output")
    else:
        topics.dlq = unique("missing-dlq")
    result = _replay(broker.bootstrap, topics, "--from", "earliest", "--output-topic", output,
                     "--model", str(model_v1))
    assert result.returncode == 1, result.stderr
    assert "missing-" in _one_line(result)
