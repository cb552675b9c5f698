"""Shared by ``bench/soak.py`` and ``bench/poison_overhead.py``: an embedded broker, a worker *subprocess*
(``python -m newsstream worker``, configured like a deployment), its /metrics, and article texts.

Texts are Guardian articles read at run time from ``../shared/datasets/guardian/articles.jsonl`` (research
licence: never committed) when present, else synthetic ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamer.broker import EmbeddedBroker, create_topics, free_port  # noqa: E402

GUARDIAN = REPO.parent / "shared" / "datasets" / "guardian" / "articles.jsonl"


def texts(limit: int = 3000) -> tuple[list[tuple[str, str]], str]:
    """(title, text) pairs and where they came from."""
    if GUARDIAN.is_file():
        out = []
        with GUARDIAN.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                body = row.get("text") or ""
                if body.strip():
                    out.append((body.split(".")[0][:120], body))
                if len(out) >= limit:
                    break
        return out, f"guardian ({len(out)} articles, read at run time)"
    out = [(f"Flood warning {i}", f"River levels rose overnight in district {i}; residents were moved. " * 40)
           for i in range(limit)]
    return out, f"synthetic ({len(out)} articles)"


@dataclass
class Worker:
    bootstrap: str
    input_topic: str
    output_topic: str
    dlq_topic: str
    group: str
    log_path: Path
    settings: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
        env.update({"NEWSSTREAM_BOOTSTRAP_SERVERS": self.bootstrap, "NEWSSTREAM_INPUT_TOPIC": self.input_topic,
                    "NEWSSTREAM_OUTPUT_TOPIC": self.output_topic, "NEWSSTREAM_DLQ_TOPIC": self.dlq_topic,
                    "NEWSSTREAM_GROUP_ID": self.group, "NEWSSTREAM_METRICS_PORT": str(self.port),
                    "NEWSSTREAM_SESSION_TIMEOUT_MS": "6000", "NEWSSTREAM_LOG_FORMAT": "json"})
        env.update({f"NEWSSTREAM_{k.upper()}": str(v) for k, v in self.settings.items()})
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "newsstream", "worker"], cwd=REPO, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-2000:]}")
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("worker not ready")

    def samples(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(self.get("/metrics")[1].decode()):
            for s in family.samples:
                out.setdefault(s.name, []).append((dict(s.labels), s.value))
        return out

    def total(self, name: str, samples: dict[str, list[tuple[dict[str, str], float]]] | None = None) -> float:
        return sum(v for _, v in (samples or self.samples()).get(name, []))

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile on cumulative (upper bound, count) pairs, +Inf last."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / max(count - prev_count, 1e-12)
        prev_bound, prev_count = bound, count
    return prev_bound


def buckets_of(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> dict[float, float]:
    return {float(labels["le"]): v for labels, v in samples.get(f"{name}_bucket", [])}


class Broker:
    """An embedded broker with unique topic names."""

    def __init__(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(log_path=log_dir / "tansu.log").start()
        self.bootstrap = self.broker.bootstrap
        self._n = 0

    def topics(self, partitions: int = 4) -> tuple[str, str, str, str]:
        self._n += 1
        names = (f"in-{self._n}", f"out-{self._n}", f"dlq-{self._n}", f"group-{self._n}")
        create_topics(self.bootstrap, {names[0]: partitions, names[1]: partitions, names[2]: 1})
        return names

    def stop(self) -> None:
        self.broker.stop()


def produce(bootstrap: str, topic: str, messages: Iterator[tuple[bytes | None, bytes | None]],
            compression_type: str | None = None) -> int:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=1 << 20,
                             max_request_size=4 << 20, compression_type=compression_type)
    n = 0
    for key, value in messages:
        producer.send(topic, key=key, value=value)
        n += 1
    producer.flush()
    producer.close()
    return n
