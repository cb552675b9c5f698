"""Logging: kafka-python's warnings and errors reach the log, each repeat at most once per 30 s (with a count).

The filter is pure logic and gets a fake clock; the last test runs a real kafka-python client against a port with
nothing listening and reads what `configure_logging` wrote.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer
from kafka.errors import KafkaTimeoutError

from streamer.broker import free_port
from streamer.logs import JsonFormatter, RepeatFilter, TextFormatter, configure_logging


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, "x.py", 1, msg, args or None, None)


def passes(f: RepeatFilter, rec: logging.LogRecord) -> bool:
    return bool(f.filter(rec))


def test_first_passes_then_one_per_interval_with_the_count_dropped_meanwhile() -> None:
    clock = FakeClock()
    f = RepeatFilter(interval_s=30.0, clock=clock)
    first = record("kafka.conn", "%s: Connection lost: %s", "node-1", "ECONNREFUSED")
    assert passes(f, first) and not hasattr(first, "repeated")
    # Same template, other arguments (node, backoff): repeats, dropped for 30 s.
    dropped = 0
    for i in range(50):
        clock.now += 0.5
        dropped += not passes(f, record("kafka.conn", "%s: Connection lost: %s", f"node-{i}", "ECONNREFUSED"))
    assert dropped == 50
    clock.now = 1000.0 + 30.0
    again = record("kafka.conn", "%s: Connection lost: %s", "node-1", "ECONNREFUSED")
    assert passes(f, again) and again.repeated == 50  # type: ignore[attr-defined]
    # The window restarts from the record let through; the count restarts too.
    clock.now += 29.0
    assert not passes(f, record("kafka.conn", "%s: Connection lost: %s", "n", "e"))
    clock.now += 1.0
    third = record("kafka.conn", "%s: Connection lost: %s", "n", "e")
    assert passes(f, third) and third.repeated == 1  # type: ignore[attr-defined]
    # After a quiet spell with nothing dropped, no count is added.
    clock.now += 100.0
    fourth = record("kafka.conn", "%s: Connection lost: %s", "n", "e")
    assert passes(f, fourth) and not hasattr(fourth, "repeated")


def test_the_key_is_logger_level_and_template() -> None:
    clock = FakeClock()
    f = RepeatFilter(interval_s=30.0, clock=clock)
    assert passes(f, record("kafka.conn", "Connection failed: %s", "a"))
    assert not passes(f, record("kafka.conn", "Connection failed: %s", "b"))
    assert passes(f, record("kafka.conn", "Connection failed: %s", "a", level=logging.ERROR))  # other level
    assert passes(f, record("kafka.net.manager", "Connection failed: %s", "a"))  # other logger
    assert passes(f, record("kafka.conn", "Bootstrap %s not ready", "a"))  # other template
    # Pre-formatted messages (f-strings in kafka-python) differ only in numbers: one key.
    assert passes(f, record("kafka.net.manager", "Bootstrap attempt to bootstrap-0 failed: 111 (backoff 0.43 secs)"))
    assert not passes(f, record("kafka.net.manager",
                                "Bootstrap attempt to bootstrap-1 failed: 111 (backoff 1.73 secs)"))


def test_only_kafka_loggers_are_limited() -> None:
    f = RepeatFilter(interval_s=30.0, clock=FakeClock())
    for name in ("streamer.worker", "kafkaesque", "root"):
        assert all(passes(f, record(name, "broker unavailable; retrying")) for _ in range(5)), name
    assert passes(f, record("kafka", "x")) and not passes(f, record("kafka", "x"))


def test_the_number_of_keys_is_bounded() -> None:
    clock = FakeClock()
    f = RepeatFilter(interval_s=30.0, clock=clock, max_keys=3)
    for name in ("kafka.a", "kafka.b", "kafka.c", "kafka.d"):
        assert passes(f, record(name, "m"))
    assert not passes(f, record("kafka.d", "m"))
    assert passes(f, record("kafka.a", "m"))  # the oldest key was evicted: seen as new
    assert len(f) == 3


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_the_count_reaches_both_formats(formatter: logging.Formatter) -> None:
    clock = FakeClock()
    f = RepeatFilter(interval_s=30.0, clock=clock)
    recs = [record("kafka.conn", "Connection failed: %s", i) for i in range(4)]
    kept = [r for r in recs[:3] if passes(f, r)]
    clock.now += 31.0
    assert passes(f, recs[3])
    kept.append(recs[3])
    lines = [formatter.format(r) for r in kept]
    assert len(lines) == 2 and "repeated" not in lines[0]
    if isinstance(formatter, JsonFormatter):
        entry = json.loads(lines[1])
        assert entry["repeated"] == 2 and entry["logger"] == "kafka.conn" and entry["msg"] == "Connection failed: 3"
    else:
        assert lines[1].endswith("kafka.conn: Connection failed: 3  repeated=2"), lines[1]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, kafka = logging.getLogger(), logging.getLogger("kafka")
    saved = root.handlers[:], root.level, kafka.level
    try:
        yield
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        kafka.setLevel(saved[2])


@pytest.mark.parametrize(("level", "kafka_level", "limited"), [
    ("DEBUG", logging.DEBUG, False),  # DEBUG keeps everything
    ("INFO", logging.WARNING, True),
    ("WARNING", logging.WARNING, True),
    ("ERROR", logging.ERROR, True),
])
def test_configure_logging_levels(restore_logging: None, level: str, kafka_level: int, limited: bool) -> None:
    stream = io.StringIO()
    configure_logging(level, "json", stream=stream)
    assert logging.getLogger("kafka").getEffectiveLevel() == kafka_level
    (handler,) = logging.getLogger().handlers
    assert any(isinstance(f, RepeatFilter) for f in handler.filters) == limited
    for _ in range(3):
        logging.getLogger("kafka.conn").error("Connection failed: %s", "ECONNREFUSED")
    assert len(stream.getvalue().splitlines()) == (1 if limited else 3)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"%[-#0 +]*\d*(?:\.\d+)?[sdrfi]", template)
    return re.compile(".*".join(re.escape(p) for p in parts), re.S)


def test_a_real_client_failing_to_bootstrap_is_logged_once_per_kind(restore_logging: None) -> None:
    """Nothing listens on the port: kafka-python retries and logs each attempt; each kind reaches the log once."""
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    raw: Counter[tuple[str, str, str]] = Counter()

    class Tally(logging.Handler):  # what kafka-python logged, before the handler's filter
        def emit(self, rec: logging.LogRecord) -> None:
            raw[(rec.name, rec.levelname.lower(), str(rec.msg))] += 1

    tally = Tally()
    logging.getLogger("kafka").addHandler(tally)
    try:
        with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            KafkaConsumer(bootstrap_servers=f"127.0.0.1:{free_port()}", bootstrap_timeout_ms=2000)
    finally:
        logging.getLogger("kafka").removeHandler(tally)

    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    kafka = [e for e in entries if e["logger"].startswith("kafka.")]
    assert kafka, f"no kafka-python record reached the log: {entries}"
    assert {e["level"] for e in kafka} <= {"warning", "error", "critical"}  # INFO stays out
    assert any("ECONNREFUSED" in e["msg"] or "bootstrap" in e["msg"].lower() for e in kafka), kafka
    repeated = {key: n for key, n in raw.items() if n >= 2}
    assert repeated, f"kafka-python did not repeat itself in this run: {raw}"
    for (name, level, template), n in repeated.items():
        shown = [e for e in kafka if e["logger"] == name and e["level"] == level
                 and _template_regex(template).fullmatch(e["msg"])]
        assert len(shown) == 1, (template, n, shown)
    assert len(kafka) < sum(raw.values())
