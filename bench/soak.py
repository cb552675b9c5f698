"""Soak: one worker at half its maximum rate for a long time; memory must not creep, latency must not drift.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate MSGS_PER_S] [--model DIR] [--label TEXT]
    .venv/bin/python bench/soak.py --bootstrap localhost:29092 --tick-ms 20   # against Kafka (docker compose)

1. An embedded broker and a worker subprocess (default model, default settings) like a deployment's.
2. Unless ``--rate`` is given, the maximum rate is measured first: 4,000 full-length articles produced at
   once, drained, timed from the first send to the last committed batch; the soak runs at half that.
3. A paced producer sends articles (Guardian texts read at run time, else synthetic), each stamped with its
   send time; a reader of the output topic measures end-to-end latency (sent → enriched event read).
4. Every minute: the worker's RSS (``/proc/<pid>/status``) and CPU time, records done, consumer lag, p50/p99
   end-to-end latency of that minute, and p99 of ``newsstream_message_processing_seconds`` (poll → commit)
   from that minute's histogram buckets.

Also every minute: the broker's RSS and CPU share. Tansu's memory engine keeps every record and honours no
retention (``retention.ms``/``retention.bytes`` are ignored, DeleteRecords drops the connection), so the broker
grows by both topics' bytes for the whole run and its cost per fetch may grow with it; the column tells a
broker slowdown apart from drift in the worker.

Tansu's fetch gets slower with every batch a partition holds (``bench/broker_scaling.py``: a fetch of the last
records of 4 partitions takes 2 ms empty, 27 ms at 2,500 one-record batches per partition, 75 ms at 6,250;
Kafka finds an offset through its index and does not slow down). A producer pacing 500 articles a second in
20 ms steps writes batches of one record, about 200,000 per partition in 30 minutes, and the broker, not the
worker, sets the latency after a few minutes (``bench/results/soak_smooth_pacing.json``). So the pacer sends a
burst every ``--tick-ms`` (default 1 s: one batch of ~125 articles per partition, under 2,000 batches per partition
in 30 minutes): the same average rate, latency measured from each article's own send time, the broker's fetch
cost kept nearly flat. ``--tick-ms 20`` gives the smooth pacing back; with ``--bootstrap`` (a real Kafka, e.g.
``docker compose up -d kafka``) that is the run to make, and the broker columns stay empty.

Full articles at ~700/s are ~680 MiB a minute uncompressed, more
than this machine holds for 30 minutes, so by default the producers (the pacer and the worker) compress with lz4,
as a production deployment would (``--compression none`` for the uncompressed path); the broker stores the
compressed batches as they are. The run stops early, and says so, if the machine's available
memory falls under ``--min-available-mib``.

Pass: worker RSS growth ≤ 5 % — the median RSS of the last five minutes against the median of minutes 2–6
(minute 1 is warm-up; a single sample moves ±3 % with the allocator, so one sample against one sample cannot
hold a 5 % line; the single-sample figure is reported too); p99 stable — the median per-minute p99 of the
last third of the run at most 1.5x that of the first third; the backlog drained at the end.
Writes ``bench/results/soak.json`` and ``bench/SOAK.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reliability_harness import REPO, Broker, Worker, buckets_of, histogram_quantile, produce, texts

from streamer.broker import create_topics  # reliability_harness put the repository on sys.path

RSS_GROWTH_LIMIT = 0.05
RSS_WINDOW_MINUTES = 5
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
    """Sends ``rate`` articles a second in one burst per ``tick_ms``: each tick's records go as one batch per
    partition (``linger_ms`` holds them, ``flush`` closes the tick), each stamped with its send time."""

    def __init__(self, bootstrap: str, topic: str, rate: float, docs: list[tuple[str, str]],
                 compression_type: str | None, tick_ms: int) -> None:
        super().__init__(daemon=True, name="pacer")
        self.bootstrap, self.topic, self.rate, self.docs = bootstrap, topic, rate, docs
        self.compression_type = compression_type
        self.tick_s = tick_ms / 1000
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                 linger_ms=max(5, int(self.tick_s * 1000)), batch_size=1 << 20,
                                 max_request_size=4 << 20, compression_type=self.compression_type)
        started = time.monotonic()
        tick = 0
        while not self.stop.is_set():
            tick += 1
            due = int(tick * self.tick_s * self.rate)
            while self.sent < due:
                title, text = self.docs[self.sent % len(self.docs)]
                value = json.dumps({"id": f"s-{self.sent}", "title": title, "text": text, "sent_at": time.time()})
                producer.send(self.topic, key=f"s-{self.sent}".encode(), value=value.encode())
                self.sent += 1
            producer.flush()
            self.stop.wait(max(0.0, started + tick * self.tick_s - time.monotonic()))
        producer.flush()
        producer.close()


def _proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ExternalBroker:
    """A Kafka cluster the soak does not own: fresh topic names per run, nothing stopped at the end."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def topics(self, partitions: int = 4) -> tuple[str, str, str, str]:
        run = f"soak-{int(time.time())}"
        names = (f"{run}-in", f"{run}-out", f"{run}-dlq", f"{run}-group")
        create_topics(self.bootstrap, {names[0]: partitions, names[1]: partitions, names[2]: 1})
        return names

    def stop(self) -> None:
        pass


def _mem_available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable")


def _window_growth(values: list[int], window: int) -> float:
    """Median of the last ``window`` samples over the median of samples 2..window+1 (sample 1 is warm-up)."""
    first = values[1:1 + window] or values[:1]
    last = values[-window:]
    return statistics.median(last) / statistics.median(first) - 1


def _done(worker: Worker, s: dict[str, Any] | None = None) -> float:
    s = s or worker.samples()
    return worker.total("newsstream_messages_produced_total", s) + worker.total(
        "newsstream_messages_dead_lettered_total", s)


def calibrate(broker: Broker, worker: Worker, topic: str, docs: list[tuple[str, str]], n: int,
              compression_type: str | None) -> float:
    before = _done(worker)
    started = time.time()
    produce(broker.bootstrap, topic, ((f"c-{i}".encode(), json.dumps(
        {"id": f"c-{i}", "title": docs[i % len(docs)][0], "text": docs[i % len(docs)][1]}).encode())
        for i in range(n)), compression_type)
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
    parser.add_argument("--compression", default="lz4", choices=["none", "gzip", "snappy", "lz4", "zstd"],
                        help="compression of the pacer's and the worker's produced batches (default lz4)")
    parser.add_argument("--tick-ms", type=int, default=1000,
                        help="the pacer sends each tick's articles in one burst (see the module docstring)")
    parser.add_argument("--min-available-mib", type=int, default=2048,
                        help="stop early when the machine's available memory falls below this")
    parser.add_argument("--bootstrap", default=None,
                        help="soak against this Kafka cluster (e.g. the compose one) instead of the embedded broker")
    parser.add_argument("--label", default=None, help="e.g. 'short run' (default: from --minutes)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "soak.json")
    parser.add_argument("--md", type=Path, default=REPO / "bench" / "SOAK.md")
    args = parser.parse_args()
    label = args.label or ("full run" if args.minutes >= 30 else f"short run ({args.minutes:g} minutes)")

    docs, source = texts()
    log_dir = Path("/tmp") / f"soak-{int(time.time())}"
    broker: Broker | ExternalBroker = ExternalBroker(args.bootstrap) if args.bootstrap else Broker(log_dir)
    topic_in, topic_out, dlq, group = broker.topics()
    compression = None if args.compression == "none" else args.compression
    worker_settings: dict[str, Any] = {"compression_type": args.compression}
    if args.model:
        worker_settings["model_path"] = args.model
    worker = Worker(broker.bootstrap, topic_in, topic_out, dlq, group, log_dir / "worker.log",
                    worker_settings).start()
    minutes: list[dict[str, Any]] = []
    try:
        worker.wait_ready()
        max_rate = (calibrate(broker, worker, topic_in, docs, args.calibrate_docs, compression)
                    if args.rate is None else None)
        rate = args.rate if args.rate is not None else max_rate / 2  # type: ignore[operator]
        print(f"max rate {max_rate and round(max_rate, 1)}/s → soak at {rate:.1f}/s for {args.minutes:g} min, "
              f"texts: {source}", flush=True)
        tail = Tail(broker.bootstrap, topic_out)
        tail.start()
        pacer = Pacer(broker.bootstrap, topic_in, rate, docs, compression, args.tick_ms)
        pacer.start()
        started = time.time()
        prev = worker.samples()
        broker_pid = broker.broker.process.pid if isinstance(broker, Broker) else None
        prev_cpu, prev_t = worker.cpu_seconds(), time.monotonic()
        prev_broker_cpu = _proc_cpu_seconds(broker_pid) if broker_pid else 0.0
        stopped_early = None
        for minute in range(1, args.minutes + 1):
            time.sleep(max(0.0, started + 60 * minute - time.time()))
            assert worker.proc is not None and worker.proc.poll() is None, "worker died"
            s = worker.samples()
            cpu, now = worker.cpu_seconds(), time.monotonic()
            broker_cpu = _proc_cpu_seconds(broker_pid) if broker_pid else 0.0
            hist_now = buckets_of(s, "newsstream_message_processing_seconds")
            hist_prev = buckets_of(prev, "newsstream_message_processing_seconds")
            delta = [(le, hist_now[le] - hist_prev.get(le, 0.0)) for le in hist_now]
            window = [lat for at, lat in tail.latencies if started + 60 * (minute - 1) <= at < started + 60 * minute]
            row = {
                "minute": minute,
                "rss_bytes": worker.rss_bytes(),
                "cpu_share_of_a_core": round((cpu - prev_cpu) / (now - prev_t), 3),
                "broker_rss_bytes": _proc_rss_bytes(broker_pid) if broker_pid else None,
                "broker_cpu_share_of_a_core": (round((broker_cpu - prev_broker_cpu) / (now - prev_t), 3)
                                               if broker_pid else None),
                "load_average_1m": os.getloadavg()[0],
                "sent": pacer.sent,
                "done": _done(worker, s) - _done(worker, prev),
                "lag_messages": worker.total("newsstream_consumer_lag_messages", s),
                "e2e_p50_seconds": _quantile(window, 0.50),
                "e2e_p99_seconds": _quantile(window, 0.99),
                "processing_p99_seconds": histogram_quantile(0.99, delta),
            }
            minutes.append(row)
            print(json.dumps(row), flush=True)
            prev, prev_cpu, prev_t, prev_broker_cpu = s, cpu, now, broker_cpu
            available = _mem_available_bytes()
            if broker_pid and available < args.min_available_mib << 20:
                stopped_early = (f"stopped after minute {minute}: {available >> 20} MiB available, the memory-only "
                                 f"broker holds {row['broker_rss_bytes'] >> 20} MiB")
                print(stopped_early, flush=True)
                break
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
    rss_growth_single = (minutes[-1]["rss_bytes"] - baseline) / baseline
    rss_growth = _window_growth([m["rss_bytes"] for m in minutes], RSS_WINDOW_MINUTES)
    p99s = [m["e2e_p99_seconds"] for m in minutes[1:] if m["e2e_p99_seconds"] is not None] or \
        [m["e2e_p99_seconds"] for m in minutes if m["e2e_p99_seconds"] is not None]
    third = max(1, len(p99s) // 3)
    p99_drift = statistics.median(p99s[-third:]) / statistics.median(p99s[:third])
    report = {
        "label": label,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "minutes": args.minutes,
        "texts": source,
        "broker": f"Kafka at {args.bootstrap}" if args.bootstrap else "the embedded broker (Tansu, memory engine)",
        "compression": args.compression,
        "pacer_tick_ms": args.tick_ms,
        "max_rate_messages_per_second": max_rate and round(max_rate, 1),
        "rate_messages_per_second": round(rate, 1),
        "sent": pacer.sent,
        "drained_at_end": drained,
        "worker_exit_code": exit_code,
        "rss_baseline_bytes": baseline,
        "rss_final_bytes": minutes[-1]["rss_bytes"],
        "rss_max_bytes": max(m["rss_bytes"] for m in minutes),
        "rss_growth": round(rss_growth, 4),
        "rss_growth_definition": f"median of the last {RSS_WINDOW_MINUTES} minutes / median of minutes "
                                 f"2-{RSS_WINDOW_MINUTES + 1} - 1",
        "rss_growth_last_minute_over_first": round(rss_growth_single, 4),
        "stopped_early": stopped_early,
        "broker_rss_final_bytes": minutes[-1]["broker_rss_bytes"],
        "e2e_p99_median_seconds": round(statistics.median(p99s), 4),
        "e2e_p99_max_seconds": round(max(p99s), 4),
        "p99_last_third_over_first_third": round(p99_drift, 3),
        "pass": {"rss_growth_within_5_percent": rss_growth <= RSS_GROWTH_LIMIT,
                 "p99_stable": p99_drift <= P99_DRIFT_LIMIT, "drained": drained, "clean_exit": exit_code == 0,
                 "full_length": stopped_early is None},
        "per_minute": minutes,
        "python": platform.python_version(),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.md.write_text(_markdown(report))
    print(json.dumps({k: report[k] for k in ("label", "rss_growth", "e2e_p99_median_seconds",
                                             "p99_last_third_over_first_third", "pass")}))
    return 0 if all(report["pass"].values()) else 1


def _num(v: float | None, unit: float, fmt: str) -> str:
    return "—" if v is None else format(v / unit, fmt)


def _markdown(r: dict[str, Any]) -> str:
    mb = 1 << 20
    lines = [
        "# Soak",
        "",
        f"**{r['label']}** — {r['created_at']}, {r['machine']}. `make soak` runs the full 30 minutes "
        "(`bench/soak.py --minutes N` to change it); raw numbers in `bench/results/soak.json`.",
        "",
        f"One worker subprocess (default model) on {r.get('broker', 'the embedded broker')} at "
        f"{r['rate_messages_per_second']} articles/s, "
        + (f"half the measured maximum of {r['max_rate_messages_per_second']}/s" if r['max_rate_messages_per_second']
           else "a rate given with --rate")
        + f"; texts: {r['texts']}; "
        f"producers compress with {r['compression']}; the pacer sends a burst every {r['pacer_tick_ms']} ms; "
        f"{r['sent']:,} articles sent.",
        "",
        "| check | result | limit |",
        "|---|---|---|",
        f"| worker RSS growth, median of the last 5 minutes / of minutes 2–6 | {r['rss_growth']:+.1%} | ≤ +5 % |",
        f"| worker RSS, minute 1 → last (single samples) | {r['rss_growth_last_minute_over_first']:+.1%} "
        f"({r['rss_baseline_bytes'] / mb:.0f} → {r['rss_final_bytes'] / mb:.0f} MiB, max "
        f"{r['rss_max_bytes'] / mb:.0f}) | — |",
        f"| end-to-end p99, median of minutes | {r['e2e_p99_median_seconds'] * 1000:.0f} ms "
        f"(worst minute {r['e2e_p99_max_seconds'] * 1000:.0f} ms) | — |",
        f"| p99 drift, last third / first third | {r['p99_last_third_over_first_third']:.2f}x | ≤ 1.5x |",
        f"| backlog drained at the end | {r['drained_at_end']} | yes |",
        f"| worker exit on SIGTERM | {r['worker_exit_code']} | 0 |",
        f"| ran the full length | {r['stopped_early'] or 'yes'} | yes |",
        "",
        "| minute | RSS MiB | CPU (cores) | done | lag | e2e p50 ms | e2e p99 ms | poll→commit p99 ms "
        "| broker RSS MiB | broker CPU | load 1m |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in r["per_minute"]:
        def ms(v: float | None) -> str:
            return "—" if v is None else f"{v * 1000:.0f}"
        lines.append(f"| {m['minute']} | {m['rss_bytes'] / mb:.1f} | {m['cpu_share_of_a_core']:.2f} | "
                     f"{m['done']:.0f} | {m['lag_messages']:.0f} | {ms(m['e2e_p50_seconds'])} | "
                     f"{ms(m['e2e_p99_seconds'])} | {ms(m['processing_p99_seconds'])} | "
                     f"{_num(m['broker_rss_bytes'], mb, '.0f')} | {_num(m['broker_cpu_share_of_a_core'], 1, '.2f')} | "
                     f"{m['load_average_1m']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
