"""``newsstream tail``: print enriched events or dead letters, one readable line each (``--json`` for raw).

Reads without a consumer group (nothing committed, no rebalance wait) and ``read_committed``, so an exactly-once
worker's aborted or still-open transactions are not shown as if they were output. Without ``--from-beginning``
only messages at or after each partition's end offset *at start* are shown: "new" is decided by the broker's
offsets, not by timestamps, so a replay carrying old timestamps still shows and nothing depends on clocks.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from streamer.settings import Settings


def describe(record: Any) -> str:
    headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (record.headers or [])}
    where = f"{record.topic}/{record.partition}@{record.offset}"
    if "reason" in headers:
        preview = (record.value or b"")[:80].decode("utf-8", "replace").replace("\n", " ")
        return (f"{where}  DEAD  reason={headers['reason']}  origin={headers.get('origin-topic')}/"
                f"{headers.get('origin-partition')}@{headers.get('origin-offset')}  error={headers.get('error')!r}"
                f"  value={preview!r}")
    try:
        event = json.loads(record.value)
        topic, incident = event["topic"], event["incident"]
    except (ValueError, TypeError, KeyError):
        return f"{where}  {(record.value or b'')[:120]!r}"
    title = (event.get("title") or event.get("text") or "")[:60].replace("\n", " ")
    return (f"{where}  {event.get('id')!s:<20} {topic['label']:<34} {topic['score']:.2f}  "
            f"{incident['label']:<24} {incident['score']:.2f}  {title}")


def start_offsets(consumer: Any, tps: list[Any], timeout_s: float) -> tuple[dict[Any, int], dict[Any, list[Any]]]:
    """Each partition's end offset now, learnt from the high watermark of a fetch; and any newer records.

    ``end_offsets()`` / ``seek_to_end`` ask ListOffsets "latest", which Tansu answers wrongly; every fetch
    response carries the high watermark on Tansu and Kafka alike. The fetch starts at the beginning, so the
    records it brings back are old and dropped; once a partition's watermark is known it is moved there at
    once, so old data is not read past the first fetch. Records of a partition already positioned that arrive
    while the others are still being asked are new: they are returned, not lost.
    """
    consumer.seek_to_beginning(*tps)
    ends: dict[Any, int] = {}
    newer: dict[Any, list[Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(ends) < len(tps) and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=200).items():
            if tp in ends:
                newer.setdefault(tp, []).extend(r for r in records if r.offset >= ends[tp])
        for tp in tps:
            if tp not in ends:
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    ends[tp] = highwater
                    consumer.seek(tp, highwater)
    return ends, newer


def run(topic: str | None, from_beginning: bool, max_messages: int, timeout: float, as_json: bool,
        bootstrap_servers: str | None) -> int:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    from streamer.produce import EXIT_UNREACHABLE, cannot_reach

    overrides: dict[str, Any] = {"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}
    settings = Settings(**overrides)
    topic = topic or settings.output_topic
    try:
        consumer = KafkaConsumer(**{**settings.security_kwargs(), "client_id": f"{settings.client_id}-tail",
                                    "group_id": None, "enable_auto_commit": False,
                                    "isolation_level": "read_committed"})
    except KafkaError as exc:
        print(cannot_reach("tail", settings, exc), file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        deadline = time.monotonic() + 10
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            print(f"newsstream tail: topic {topic} not found on {settings.bootstrap_servers}", file=sys.stderr)
            return 1
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        first: dict[Any, int] = {}
        batch: dict[Any, list[Any]] = {}
        if from_beginning:
            consumer.seek_to_beginning(*tps)
            print(f"tailing {topic} from the beginning", file=sys.stderr, flush=True)
        else:
            first, batch = start_offsets(consumer, tps, timeout_s=15)
            missing = sorted(tp.partition for tp in tps if tp not in first)
            if missing:
                print(f"newsstream tail: no fetch answer for partition(s) {missing} of {topic} within 15s; "
                      "cannot tell where new messages begin", file=sys.stderr)
                return 1
            shown_from = {tp.partition: offset for tp, offset in sorted(first.items())}
            print(f"tailing {topic} from offsets {shown_from}", file=sys.stderr, flush=True)
        shown = 0
        idle_since = time.monotonic()
        while True:
            for tp, records in batch.items():
                for record in records:
                    if record.offset < first.get(tp, 0):
                        continue  # fetched before the seek to the start offset took effect
                    print(record.value.decode("utf-8", "replace") if as_json and record.value else describe(record),
                          flush=True)
                    shown += 1
                    if max_messages and shown >= max_messages:
                        return 0
            if timeout and time.monotonic() - idle_since > timeout:
                return 0
            batch = consumer.poll(timeout_ms=500)
            if batch:
                idle_since = time.monotonic()
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
