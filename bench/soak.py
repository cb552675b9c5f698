"""Soak: one worker at half its maximum rate for a long time; memory must not creep, latency must not drift.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate MSGS_PER_S] [--model DIR] [--label TEXT]

1. An embedded broker and a worker subprocess (default model, default settings) like a deployment's.
2. Unless ``--rate`` is given, the maximum rate is measured first: 4,000 full-length articles produced at
   once, drained, timed from the first send to the last committed batch; the soak runs at half that.
3. A paced producer sends articles (Guardian texts read at run time, else synthetic), each stamped with its
   send time; a reader of the output topic measures end-to-end latency (sent → enriched event read).
4. Every minute: the worker's RSS (``/proc/<pid>/status``) and CPU time, records done, consumer lag, p50/p99
   end-to-end latency of that minute, and p99 of ``newsstream_message_processing_seconds`` (poll → commit)
   from that minute's histogram buckets.

Pass: RSS at the end within 5 % of RSS after the first (warm-up) minute; p99 stable — the median per-minute
p99 of the last third of the run at most 1.5x that of the first third; the backlog drained at the end.
Writes ``bench/results/soak.json`` and ``bench/SOAK.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reliability_harness import REPO, Broker, Worker, buckets_of, histogram_quantile, produce, texts

RSS_GROWTH_LIMIT = 0.05
P99_DRIFT_LIMIT = 1.5


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Tail(threading.Thread):
    """Reads the output topic; end-to-end latency of every soak record, bucketed by the minute it was read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True, name="tail")
        self.bootstrap, self.topic = bootstrap, topic
        self.latencies: list[tuple[float, float]] = []  # (read at, latency seconds)
        self.seen = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        tps = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while not self.stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                now = time.time()
                for rec in records:
                    self.seen += 1
                    sent = json.loads(rec.value).get("sent_at")
                    if sent is not None:
                        self.latencies.append((now, now - sent))
        consumer.close()


class Pacer(threading.Thread):
    def __init__(self, bootstrap: str, topic: str, rate: float, docs: list[tuple[str, str]]) -> None:
        super().__init__(daemon=True, name="pacer")
        self.bootstrap, self.topic, self.rate, self.docs = bootstrap, topic, rate, docs
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, batch_size=1 << 20,
                                 max_request_size=4 << 20)
        started = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due:
                title, text = self.docs[self.sent % len(self.docs)]
                value = json.dumps({"id": f"s-{self.sent}", "title": title, "text": text, "sent_at": time.time()})
                producer.send(self.topic, key=f"s-{self.sent}".encode(), value=value.encode())
                self.sent += 1
            time.sleep(0.02)
        producer.flush()
        producer.close()


def _done(worker: Worker, s: dict[str, Any] | None = None) -> float:
    s = s or worker.samples()
    return worker.total("newsstream_messages_produced_total", s) + worker.total(
        "newsstream_messages_dead_lettered_total", s)


def calibrate(broker: Broker, worker: Worker, topic: str, docs: list[tuple[str, str]], n: int) -> float:
    before = _done(worker)
    started = time.time()
    produce(broker.bootstrap, topic, ((f"c-{i}".encode(), json.dumps(
        {"id": f"c-{i}", "title": docs[i % len(docs)][0], "text": docs[i % len(docs)][1]}).encode())
        for i in range(n)))
    deadline = time.monotonic() + 600
    while _done(worker) < before + n:
        if time.monotonic() > deadline:
            raise RuntimeError("calibration did not drain in 600 s")
        time.sleep(0.2)
    finished = worker.total("newsstream_last_processed_timestamp_seconds")
    return n / (finished - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--rate", type=float, default=None, help="messages per second (default: half the max)")
    parser.add_argument("--calibrate-docs", type=int, default=4000)
    parser.add_argument("--model", default=None, help="bundle or directory of bundles (default: newest in models/)")
    parser.add_argument("--label", default=None, help="e.g. 'short run' (default: from --minutes)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "soak.json")
    parser.add_argument("--md", type=Path, default=REPO / "bench" / "SOAK.md")
    args = parser.parse_args()
    label = args.label or ("full run" if args.minutes >= 30 else f"short run ({args.minutes:g} minutes)")

    docs, source = texts()
    log_dir = Path("/tmp") / f"soak-{int(time.time())}"
    broker = Broker(log_dir)
    topic_in, topic_out, dlq, group = broker.topics()
    worker = Worker(broker.bootstrap, topic_in, topic_out, dlq, group, log_dir / "worker.log",
                    {"model_path": args.model} if args.model else {}).start()
    minutes: list[dict[str, Any]] = []
    try:
        worker.wait_ready()
        max_rate = calibrate(broker, worker, topic_in, docs, args.calibrate_docs) if args.rate is None else None
        rate = args.rate if args.rate is not None else max_rate / 2  # type: ignore[operator]
        print(f"max rate {max_rate and round(max_rate, 1)}/s → soak at {rate:.1f}/s for {args.minutes:g} min, "
              f"texts: {source}", flush=True)
        tail = Tail(broker.bootstrap, topic_out)
        tail.start()
        pacer = Pacer(broker.bootstrap, topic_in, rate, docs)
        pacer.start()
        started = time.time()
        prev = worker.samples()
        prev_cpu, prev_t = worker.cpu_seconds(), time.monotonic()
        for minute in range(1, args.minutes + 1):
            time.sleep(max(0.0, started + 60 * minute - time.time()))
            assert worker.proc is not None and worker.proc.poll() is None, "worker died"
            s = worker.samples()
            cpu, now = worker.cpu_seconds(), time.monotonic()
            hist_now = buckets_of(s, "newsstream_message_processing_seconds")
            hist_prev = buckets_of(prev, "newsstream_message_processing_seconds")
            delta = [(le, hist_now[le] - hist_prev.get(le, 0.0)) for le in hist_now]
            window = [lat for at, lat in tail.latencies if started + 60 * (minute - 1) <= at < started + 60 * minute]
            row = {
                "minute": minute,
                "rss_bytes": worker.rss_bytes(),
                "cpu_share_of_a_core": round((cpu - prev_cpu) / (now - prev_t), 3),
                "sent": pacer.sent,
                "done": _done(worker, s) - _done(worker, prev),
                "lag_messages": worker.total("newsstream_consumer_lag_messages", s),
                "e2e_p50_seconds": _quantile(window, 0.50),
                "e2e_p99_seconds": _quantile(window, 0.99),
                "processing_p99_seconds": histogram_quantile(0.99, delta),
            }
            minutes.append(row)
            print(json.dumps(row), flush=True)
            prev, prev_cpu, prev_t = s, cpu, now
        pacer.stop.set()
        pacer.join(timeout=30)
        target = _done(worker, prev) + (pacer.sent - sum(m["done"] for m in minutes))
        deadline = time.monotonic() + 120
        while _done(worker) < target and time.monotonic() < deadline:
            time.sleep(0.5)
        drained = _done(worker) >= target
        tail.stop.set()
        exit_code = worker.stop()
    finally:
        worker.stop()
        broker.stop()

    baseline = minutes[0]["rss_bytes"]
    rss_growth = (minutes[-1]["rss_bytes"] - baseline) / baseline
    p99s = [m["e2e_p99_seconds"] for m in minutes[1:] if m["e2e_p99_seconds"] is not None] or \
        [m["e2e_p99_seconds"] for m in minutes if m["e2e_p99_seconds"] is not None]
    third = max(1, len(p99s) // 3)
    p99_drift = statistics.median(p99s[-third:]) / statistics.median(p99s[:third])
    report = {
        "label": label,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "minutes": args.minutes,
        "texts": source,
        "max_rate_messages_per_second": max_rate and round(max_rate, 1),
        "rate_messages_per_second": round(rate, 1),
        "sent": pacer.sent,
        "drained_at_end": drained,
        "worker_exit_code": exit_code,
        "rss_baseline_bytes": baseline,
        "rss_final_bytes": minutes[-1]["rss_bytes"],
        "rss_max_bytes": max(m["rss_bytes"] for m in minutes),
        "rss_growth": round(rss_growth, 4),
        "e2e_p99_median_seconds": round(statistics.median(p99s), 4),
        "e2e_p99_max_seconds": round(max(p99s), 4),
        "p99_last_third_over_first_third": round(p99_drift, 3),
        "pass": {"rss_growth_within_5_percent": rss_growth <= RSS_GROWTH_LIMIT,
                 "p99_stable": p99_drift <= P99_DRIFT_LIMIT, "drained": drained, "clean_exit": exit_code == 0},
        "per_minute": minutes,
        "python": platform.python_version(),
        "machine": "2 cores shared with other work",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.md.write_text(_markdown(report))
    print(json.dumps({k: report[k] for k in ("label", "rss_growth", "e2e_p99_median_seconds",
                                             "p99_last_third_over_first_third", "pass")}))
    return 0 if all(report["pass"].values()) else 1


def _markdown(r: dict[str, Any]) -> str:
    mb = 1 << 20
    lines = [
        "# Soak",
        "",
        f"**{r['label']}** — {r['created_at']}, {r['machine']}. `make soak` runs the full 30 minutes "
        "(`bench/soak.py --minutes N` to change it); raw numbers in `bench/results/soak.json`.",
        "",
        f"One worker subprocess (default model) on the embedded broker at {r['rate_messages_per_second']} "
        f"articles/s, half the measured maximum of {r['max_rate_messages_per_second']}/s; texts: {r['texts']}; "
        f"{r['sent']:,} articles sent.",
        "",
        "| check | result | limit |",
        "|---|---|---|",
        f"| RSS growth, minute 1 → end | {r['rss_growth']:+.1%} ({r['rss_baseline_bytes'] / mb:.0f} → "
        f"{r['rss_final_bytes'] / mb:.0f} MiB, max {r['rss_max_bytes'] / mb:.0f}) | ≤ +5 % |",
        f"| end-to-end p99, median of minutes | {r['e2e_p99_median_seconds'] * 1000:.0f} ms "
        f"(worst minute {r['e2e_p99_max_seconds'] * 1000:.0f} ms) | — |",
        f"| p99 drift, last third / first third | {r['p99_last_third_over_first_third']:.2f}x | ≤ 1.5x |",
        f"| backlog drained at the end | {r['drained_at_end']} | yes |",
        f"| worker exit on SIGTERM | {r['worker_exit_code']} | 0 |",
        "",
        "| minute | RSS MiB | CPU (cores) | done | lag | e2e p50 ms | e2e p99 ms | poll→commit p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in r["per_minute"]:
        def ms(v: float | None) -> str:
            return "—" if v is None else f"{v * 1000:.0f}"
        lines.append(f"| {m['minute']} | {m['rss_bytes'] / mb:.1f} | {m['cpu_share_of_a_core']:.2f} | "
                     f"{m['done']:.0f} | {m['lag_messages']:.0f} | {ms(m['e2e_p50_seconds'])} | "
                     f"{ms(m['e2e_p99_seconds'])} | {ms(m['processing_p99_seconds'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
