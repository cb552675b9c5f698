"""Does the embedded broker (Tansu 0.6, memory engine) slow down as it fills? Round trips against records stored.

    .venv/bin/python bench/broker_scaling.py [--steps 0,10000,25000] [--records-per-batch 1] [--repeat 5]

No worker, no model: one broker, an input-like and an output-like topic (4 partitions each), filled step by step
with ``--value-bytes`` records (lz4, as ``bench/soak.py`` sends them). At each step, medians of ``--repeat``:

- produce: one record, ``acks=all``, send → acknowledged;
- commit: a group consumer commits offsets on the 4 partitions;
- fetch: a consumer positioned 25 records before the end of each partition polls until it has the 100 records.

The broker's CPU seconds per step come from ``/proc/<pid>/stat``. Memory-only and without retention, the broker
keeps everything a soak sends; if these round trips grow with what it holds, a long soak's latency drift is the
broker's, not the worker's. Writes ``bench/results/broker_scaling.json``.

Seen here (2026-11-25, one-record batches): produce 7-8 ms and commit 1-2 ms at every size; the tail fetch 2 ms
empty, 27 ms at 10,000 records per topic, 75 ms at 25,000, and at 50,000 it did not finish in 60 s. With
one-MB batches (``--records-per-batch 125``) the fetch went only from 2 to 12 ms over 200,000 records: the cost
follows the number of stored batches, not bytes or records.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamer.broker import EmbeddedBroker, create_topics  # noqa: E402

PARTITIONS = 4
TAIL_PER_PARTITION = 25


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _fill(producer: Any, topics: list[str], count: int, value: bytes) -> None:
    for i in range(count):
        for topic in topics:
            producer.send(topic, key=str(i).encode(), value=value)
    producer.flush()


def _measure(bootstrap: str, producer: Any, repeat: int) -> dict[str, float]:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    produce = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        producer.send("out", key=b"probe", value=b"{}").get(timeout=30)
        produce.append(time.perf_counter() - t0)

    tps = [TopicPartition("in", p) for p in range(PARTITIONS)]
    group = KafkaConsumer(bootstrap_servers=bootstrap, group_id="scaling", enable_auto_commit=False,
                          session_timeout_ms=6000)
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                           fetch_max_wait_ms=10)
    try:
        group.assign(tps)
        reader.assign(tps)
        ends = reader.end_offsets(tps)
        commit, fetch = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            group.commit({tp: OffsetAndMetadata(max(0, ends[tp] - 1), "", -1) for tp in tps})
            commit.append(time.perf_counter() - t0)
        want = sum(min(TAIL_PER_PARTITION, ends[tp]) for tp in tps)
        for _ in range(repeat):
            for tp in tps:
                reader.seek(tp, max(0, ends[tp] - TAIL_PER_PARTITION))
            got, t0 = 0, time.perf_counter()
            while got < want:
                got += sum(len(r) for r in reader.poll(timeout_ms=5000).values())
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"fetch of {want} tail records took over 60 s")
            fetch.append(time.perf_counter() - t0)
    finally:
        group.close(autocommit=False)
        reader.close()
    return {"produce_ms": round(statistics.median(produce) * 1000, 2),
            "commit_ms": round(statistics.median(commit) * 1000, 2),
            "fetch_tail_ms": round(statistics.median(fetch) * 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="0,10000,25000",
                        help="records stored per topic at each measurement, increasing")
    parser.add_argument("--value-bytes", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--records-per-batch", type=int, default=1,
                        help="records per produced batch while filling; a paced producer and the worker at a few "
                             "hundred records a second send batches of a few records, and the broker keeps each")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "broker_scaling.json")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]

    from kafka import KafkaProducer

    # Article-like bytes (compressible like text, not a run of one byte) so lz4 does what it does on articles.
    words = (REPO / "README.md").read_bytes().split()
    value = b" ".join(words[i % len(words)] for i in range(args.value_bytes // 6))[: args.value_bytes]
    broker = EmbeddedBroker(log_path=Path("/tmp") / f"broker-scaling-{int(time.time())}.log").start()
    assert broker.process is not None
    pid = broker.process.pid
    rows: list[dict[str, Any]] = []
    try:
        create_topics(broker.bootstrap, {"in": PARTITIONS, "out": PARTITIONS})
        # a record bigger than batch_size gets a batch of its own: this sets how many records share a batch
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5,
                                 batch_size=args.value_bytes * args.records_per_batch, max_request_size=4 << 20,
                                 compression_type="lz4")
        stored = 0
        for step in steps:
            _fill(producer, ["in", "out"], max(step, 1) - stored, value)
            stored = max(step, 1)
            cpu0 = _cpu_seconds(pid)
            row: dict[str, Any] = {"records_per_topic": stored, **_measure(broker.bootstrap, producer, args.repeat)}
            row["broker_cpu_seconds_for_the_probes"] = round(_cpu_seconds(pid) - cpu0, 3)
            row["broker_rss_bytes"] = _rss_bytes(pid)
            rows.append(row)
            print(json.dumps(row), flush=True)
        producer.close()
    finally:
        broker.stop()
    report = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "value_bytes": args.value_bytes,
              "partitions": PARTITIONS, "repeat": args.repeat,
              "records_per_batch": args.records_per_batch, "load_average_1m_at_end": os.getloadavg()[0],
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
