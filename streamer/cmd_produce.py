"""``newsstream produce --file articles.jsonl``: publish each non-empty line as one message, as is.

Lines are sent byte for byte (bad ones too: that is how the dead-letter path gets demonstrated); the key is
the article's ``id`` when the line parses. ``--rate N`` paces to N messages/second for replays.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from streamer.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, required=True, help="JSONL file, one article a line (- for stdin)")
    parser.add_argument("--topic", default=None, help="target topic (default: NEWSSTREAM_INPUT_TOPIC)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (default: as fast as possible)")
    parser.add_argument("--bootstrap-servers", default=None, help="default: NEWSSTREAM_BOOTSTRAP_SERVERS")
    parser.add_argument("--repeat", type=int, default=1, help="send the file this many times (load tests)")


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


def run(args: argparse.Namespace) -> int:
    overrides = {"bootstrap_servers": args.bootstrap_servers} if args.bootstrap_servers else {}
    settings = Settings(**overrides)
    topic = args.topic or settings.input_topic
    try:
        raw = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    except OSError as exc:
        print(f"newsstream produce: {exc}", file=sys.stderr)
        return 2
    lines = [line.rstrip(b"\r") for line in raw.split(b"\n") if line.strip()]
    started = time.monotonic()
    sent = publish(settings, topic, lines, args.rate, max(1, args.repeat))
    elapsed = time.monotonic() - started
    print(f"published {sent} message(s) to {topic} on {settings.bootstrap_servers} in {elapsed:.2f}s",
          file=sys.stderr)
    return 0
