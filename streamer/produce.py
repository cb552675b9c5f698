"""``newsstream produce --file articles.jsonl``: publish each non-empty line as one message, as is.

Lines are sent byte for byte (bad ones too: that is how the dead-letter path gets demonstrated); the key is
the article's ``id`` when the line parses. ``--rate N`` paces to N messages/second for replays. Every send is
checked: a line the broker (or the client) refuses is counted and reported with the first error, the other
lines still go out, and the exit code says so.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.settings import Settings

#: Exit code of ``produce`` and ``tail`` when no broker answers at the bootstrap address.
EXIT_UNREACHABLE = 3


class BrokerUnreachable(Exception):
    """The client could not bootstrap: nothing (or nothing that speaks Kafka to us) at the address."""


def cannot_reach(command: str, settings: Settings, cause: BaseException | None = None) -> str:
    """The one line a user sees instead of kafka-python's traceback."""
    from kafka.errors import KafkaTimeoutError

    # A bootstrap timeout says nothing beyond "unreachable"; anything else (an authentication failure…) is worth
    # its own words.
    detail = "" if cause is None or isinstance(cause, KafkaTimeoutError) else f": {describe_error(cause)}"
    return (f"newsstream {command}: cannot reach a Kafka broker at {settings.bootstrap_servers} (check "
            "NEWSSTREAM_BOOTSTRAP_SERVERS / --bootstrap-servers, that the broker is up, and the security "
            f"settings){detail}")


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return text if name in text else f"{name}: {text}" if text else name


def key_of(line: bytes) -> bytes | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("id"), str | int) and not isinstance(obj.get("id"), bool):
        return str(obj["id"]).encode()
    return None


@dataclass(frozen=True)
class Published:
    """What one ``publish`` achieved: ``total`` messages attempted, ``failed`` of them not acknowledged."""

    total: int
    failed: int
    first_error: str | None = None
    #: index (into the attempted sequence) of the first failed message
    first_failed: int | None = None

    @property
    def published(self) -> int:
        return self.total - self.failed


def publish(settings: Settings, topic: str, lines: list[bytes], rate: float = 0.0, repeat: int = 1) -> Published:
    """Send ``lines`` (``repeat`` times), wait for every acknowledgement and count what failed.

    Raises :class:`BrokerUnreachable` when the producer cannot bootstrap.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError, KafkaTimeoutError
    from kafka.future import Future

    kw = {**settings.producer_kwargs(), "linger_ms": 20}
    # send() blocks this long for metadata (kafka-python's default is 60 s); a user at a terminal should hear
    # about a missing topic or a lost broker in seconds.
    kw["max_block_ms"] = min(int(kw.get("max_block_ms", 10_000)), 10_000)
    try:
        producer = KafkaProducer(**kw)
    except KafkaError as exc:
        raise BrokerUnreachable(describe_error(exc)) from exc
    total = len(lines) * repeat
    futures: list[tuple[int, Future]] = []
    failed = 0
    first: tuple[int, str] | None = None

    def fail(index: int, exc: BaseException) -> None:
        nonlocal failed, first
        failed += 1
        if first is None or index < first[0]:
            first = (index, describe_error(exc))

    started = time.monotonic()
    try:
        index = 0
        for _ in range(repeat):
            for line in lines:
                try:
                    futures.append((index, producer.send(topic, key=key_of(line), value=line)))
                except KafkaTimeoutError as exc:
                    # Metadata did not come within max_block_ms (topic missing, broker gone): every later send
                    # would wait as long again, so the rest is counted as failed instead of sent.
                    fail(index, exc)
                    failed += total - index - 1
                    index = total
                    break
                except KafkaError as exc:  # this record only, e.g. larger than max_request_size
                    fail(index, exc)
                index += 1
                if rate > 0:
                    ahead = index / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            if index >= total:
                break
        # delivery_timeout_ms bounds every record already; the margin only covers the last in-flight request.
        # Whatever is still pending after it is counted as failed below.
        with contextlib.suppress(KafkaTimeoutError):
            producer.flush(timeout=kw.get("delivery_timeout_ms", 120_000) / 1000 + 5)
    finally:
        producer.close(timeout=5)
    for i, future in futures:
        if not future.is_done:
            fail(i, KafkaTimeoutError("not acknowledged before the producer closed"))
        elif future.exception is not None:
            fail(i, future.exception)
    return Published(total, failed, first[1] if first else None, first[0] if first else None)


def run(file: Path, topic: str | None, rate: float, bootstrap_servers: str | None, repeat: int) -> int:
    overrides: dict[str, Any] = {"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}
    settings = Settings(**overrides)
    topic = topic or settings.input_topic
    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        print(f"newsstream produce: {exc}", file=sys.stderr)
        return 2
    numbered = [(n, line.rstrip(b"\r")) for n, line in enumerate(raw.split(b"\n"), 1) if line.strip()]
    lines = [line for _, line in numbered]
    started = time.monotonic()
    try:
        result = publish(settings, topic, lines, rate, max(1, repeat))
    except BrokerUnreachable as exc:
        print(cannot_reach("produce", settings, exc.__cause__), file=sys.stderr)
        return EXIT_UNREACHABLE
    elapsed = time.monotonic() - started
    print(f"published {result.published} of {result.total} message(s) to {topic} on {settings.bootstrap_servers} "
          f"in {elapsed:.2f}s", file=sys.stderr)
    if result.failed:
        where = ""
        if result.first_failed is not None and numbered:
            where = f" (line {numbered[result.first_failed % len(numbered)][0]} of {file})"
        print(f"newsstream produce: {result.failed} message(s) failed; first error{where}: {result.first_error}",
              file=sys.stderr)
        return 1
    return 0
