"""Real-broker fixtures: ONE embedded Tansu per session; unique topics and groups per test.

Workers that a test must kill run as subprocesses (``python -m newsstream worker``) configured through the
same ``NEWSSTREAM_*`` environment a deployment uses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bundles import build_bundle

from streamer.broker import EmbeddedBroker, create_topics, free_port

ROOT = Path(__file__).resolve().parents[1]
#: Tansu's first group join waits session_timeout/2; 6 s keeps that at 3 s.
SESSION_TIMEOUT_MS = 6000


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3.0 loads its protocol schemas with a deprecated importlib API: noise, not our bug.
    config.addinivalue_line("filterwarnings", "ignore:read_text is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:open_text is deprecated:DeprecationWarning")


@dataclass
class ExternalBroker:
    bootstrap: str


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker | ExternalBroker]:
    """The embedded Tansu, or a broker you run (``NEWSSTREAM_TEST_BOOTSTRAP_SERVERS``, e.g. compose's Kafka)."""
    external = os.environ.get("NEWSSTREAM_TEST_BOOTSTRAP_SERVERS")
    if external:
        yield ExternalBroker(external)
        return
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as b:
        yield b


@pytest.fixture(scope="session")
def broker_hides_aborted(broker: EmbeddedBroker | ExternalBroker) -> bool:
    """Does a ``read_committed`` reader on this broker skip records of an aborted transaction?

    Kafka does (the fetch response lists aborted transactions). Tansu 0.6 does not: it answers with an empty
    list, so aborted records reach every reader. Tests of exactly-once output adapt their claim to this.
    """
    from kafka import KafkaProducer

    topic = f"probe-{uuid.uuid4().hex[:10]}"
    create_topics(broker.bootstrap, {topic: 1})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"{topic}-tx",
                             enable_idempotence=True)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"aborted")
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(topic, b"committed")
    producer.commit_transaction()
    producer.close()
    values = [r.value for r in read_all(broker.bootstrap, topic, lambda recs: b"committed" in [r.value for r in recs],
                                        timeout_s=10, isolation_level="read_committed")]
    assert b"committed" in values
    return b"aborted" not in values


@pytest.fixture
def unique() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@dataclass
class Topics:
    input: str
    output: str
    dlq: str
    group: str
    partitions: int


@pytest.fixture
def topics_factory(broker: EmbeddedBroker | ExternalBroker, unique: Callable[[str], str]) -> Callable[..., Topics]:
    def make(partitions: int = 4) -> Topics:
        t = Topics(unique("in"), unique("out"), unique("dlq"), unique("group"), partitions)
        create_topics(broker.bootstrap, {t.input: partitions, t.output: partitions, t.dlq: 1})
        return t

    return make


@pytest.fixture(scope="session")
def model_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of bundles holding version 1 (shared, read-only)."""
    models = tmp_path_factory.mktemp("models")
    build_bundle(models / "test-model-1", "1", created_at="2026-01-01T00:00:00+00:00")
    return models


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """A private directory of bundles with version 1, for tests that add versions."""
    models = tmp_path / "models"
    build_bundle(models / "test-model-1", "1", created_at="2026-01-01T00:00:00+00:00")
    return models


# ---- producing and reading -------------------------------------------------------------------------------


def article(i: int, prefix: str = "art") -> dict[str, Any]:
    return {"id": f"{prefix}-{i}", "title": f"Flood warning {i}",
            "text": f"River levels rose overnight in district {i}; residents were moved to shelters.",
            "source": "tests", "extra_field": {"n": i}}


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]],
            partitions: list[int] | None = None, **config: Any) -> dict[int, int]:
    """Send (key, value) pairs, acks=all, to the ``partitions`` given (default: by key); partition → end offset."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **config)
    where = partitions if partitions is not None else [None] * len(messages)
    futures = [producer.send(topic, key=k, value=v, partition=p) for (k, v), p in zip(messages, where, strict=True)]
    producer.flush()
    ends: dict[int, int] = {}
    for f in futures:
        md = f.get(timeout=10)
        ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    producer.close()
    return ends


def read_all(bootstrap: str, topic: str, until: int | Callable[[list[Any]], bool], timeout_s: float = 60.0,
             isolation_level: str = "read_uncommitted", settle_s: float = 0.0) -> list[Any]:
    """Every record of ``topic`` (group-less) until ``until`` records (or predicate) or timeout.

    ``settle_s`` keeps reading that long after the goal is met, so duplicates would show up.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             isolation_level=isolation_level)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        done = until if callable(until) else (lambda recs: len(recs) >= until)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not done(out):
            for records in consumer.poll(timeout_ms=300).values():
                out.extend(records)
        settle_deadline = time.monotonic() + settle_s
        while time.monotonic() < settle_deadline:
            for records in consumer.poll(timeout_ms=300).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        consumer.close()


def headers_of(record: Any) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in record.headers or []}


# ---- worker subprocesses -----------------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    env: dict[str, str]
    log_path: Path
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    def start(self) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "newsstream", "worker"], env=self.env, cwd=ROOT,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def get(self, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=timeout_s) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode} waiting for {what}:\n{self.log()}")
            try:
                if predicate():
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}:\n{self.log()[-4000:]}")

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        self.wait_for(lambda: self.get("/readyz")[0] == 200, timeout_s, "/readyz")

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        from prometheus_client.parser import text_string_to_metric_families

        status, body = self.get("/metrics")
        assert status == 200
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return out

    def metric(self, metric_name: str, /, **labels: str) -> float:
        return self.metrics().get(metric_name, {}).get(tuple(sorted(labels.items())), 0.0)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=10)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def worker_factory(broker: EmbeddedBroker | ExternalBroker, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def make(topics: Topics, model_path: Path, **settings: Any) -> WorkerProcess:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
        env.update({
            "NEWSSTREAM_BOOTSTRAP_SERVERS": broker.bootstrap,
            "NEWSSTREAM_INPUT_TOPIC": topics.input,
            "NEWSSTREAM_OUTPUT_TOPIC": topics.output,
            "NEWSSTREAM_DLQ_TOPIC": topics.dlq,
            "NEWSSTREAM_GROUP_ID": topics.group,
            "NEWSSTREAM_MODEL_PATH": str(model_path),
            "NEWSSTREAM_METRICS_PORT": str(port),
            "NEWSSTREAM_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "NEWSSTREAM_LOG_FORMAT": "json",
        })
        env.update({f"NEWSSTREAM_{k.upper()}": str(v) for k, v in settings.items()})
        w = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log", port)
        started.append(w)
        return w.start()

    yield make
    for w in started:
        w.stop()
