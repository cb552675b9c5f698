"""``newsstream tail``: print enriched events or dead letters, one readable line each (``--json`` for raw).

Reads without a consumer group (nothing committed, no rebalance wait). Without ``--from-beginning`` only
messages newer than the start are shown; the time filter also covers brokers whose "latest" offset lags.
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


def run(topic: str | None, from_beginning: bool, max_messages: int, timeout: float, as_json: bool,
        bootstrap_servers: str | None) -> int:
    from kafka import KafkaConsumer, TopicPartition

    overrides: dict[str, Any] = {"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}
    settings = Settings(**overrides)
    topic = topic or settings.output_topic
    consumer = KafkaConsumer(**{**settings.security_kwargs(), "group_id": None, "enable_auto_commit": False})
    # Tansu answers ListOffsets "latest" wrongly, so "only new messages" is decided by timestamp: anything
    # created before this command started is old. No slack: producers on this host share its clock.
    started_ms = int(time.time() * 1000)
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
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        else:
            consumer.seek_to_end(*tps)
        shown = 0
        idle_since = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=500)
            if batch:
                idle_since = time.monotonic()
            for records in batch.values():
                for record in records:
                    if not from_beginning and record.timestamp < started_ms:
                        continue
                    print(record.value.decode("utf-8", "replace") if as_json and record.value else describe(record),
                          flush=True)
                    shown += 1
                    if max_messages and shown >= max_messages:
                        return 0
            if timeout and time.monotonic() - idle_since > timeout:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
