"""``newsstream produce --file articles.jsonl``: publish each non-empty line as one message, as is.

Lines are sent byte for byte (bad ones too: that is how the dead-letter path gets demonstrated); the key is
the article's ``id`` when the line parses. ``--rate N`` paces to N messages/second for replays.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from streamer.settings import Settings


def key_of(line: bytes) -> bytes | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("id"), str | int) and not isinstance(obj.get("id"), bool):
        return str(obj["id"]).encode()
    return None


def publish(settings: Settings, topic: str, lines: list[bytes], rate: float = 0.0, repeat: int = 1) -> int:
    from kafka import KafkaProducer

    producer = KafkaProducer(**{**settings.producer_kwargs(), "linger_ms": 20})
    sent = 0
    started = time.monotonic()
    try:
        for _ in range(repeat):
            for line in lines:
                producer.send(topic, key=key_of(line), value=line)
                sent += 1
                if rate > 0:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        producer.flush()
    finally:
        producer.close(timeout=5)
    return sent


def run(file: Path, topic: str | None, rate: float, bootstrap_servers: str | None, repeat: int) -> int:
    overrides: dict[str, Any] = {"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}
    settings = Settings(**overrides)
    topic = topic or settings.input_topic
    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        print(f"newsstream produce: {exc}", file=sys.stderr)
        return 2
    lines = [line.rstrip(b"\r") for line in raw.split(b"\n") if line.strip()]
    started = time.monotonic()
    sent = publish(settings, topic, lines, rate, max(1, repeat))
    elapsed = time.monotonic() - started
    print(f"published {sent} message(s) to {topic} on {settings.bootstrap_servers} in {elapsed:.2f}s",
          file=sys.stderr)
    return 0
