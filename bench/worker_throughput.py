"""End-to-end worker throughput against offline model throughput, on real full-length articles.

    .venv/bin/python bench/worker_throughput.py [--model DIR] [--docs 4000] [--batch 500]

1. offline: ``ModelBundle.classify`` on the same documents in batches of ``--batch`` (one core);
2. worker: the topic is filled first, then one worker (in this process, one consumer thread) drains it on an
   embedded broker: consume → validate → classify → produce (acks=all) → commit. The clock runs from the first
   consumed record to the last committed batch.

Writes ``bench/results/worker_throughput.json``; the target is worker ≥ 0.95 × offline.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry  # noqa: E402  (type of App.registry)

from streamer.app import App  # noqa: E402
from streamer.artifact import find_latest, load_bundle  # noqa: E402
from streamer.broker import EmbeddedBroker, create_topics  # noqa: E402
from streamer.produce import publish  # noqa: E402
from streamer.settings import Settings  # noqa: E402


def _articles(path: Path, n: int) -> list[dict[str, str]]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out.append({"id": str(row["id"]), "title": str(row.get("title") or ""), "text": str(row.get("text") or "")})
            if len(out) >= n:
                break
    return out


def _value(registry: CollectorRegistry, name: str) -> float:
    return sum(s.value for f in registry.collect() for s in f.samples if s.name == name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path,
                        default=REPO.parent / "shared" / "datasets" / "guardian" / "articles.jsonl")
    parser.add_argument("--docs", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "worker_throughput.json")
    args = parser.parse_args()

    model_dir = args.model or find_latest(REPO / "models")
    articles = _articles(args.data, args.docs)
    mean_bytes = sum(len(a["text"].encode()) + len(a["title"].encode()) for a in articles) / len(articles)

    bundle = load_bundle(model_dir)
    docs = [(a["title"], a["text"]) for a in articles]
    bundle.classify(docs[:64])
    started = time.perf_counter()
    for i in range(0, len(docs), args.batch):
        bundle.classify(docs[i:i + args.batch])
    offline = len(docs) / (time.perf_counter() - started)
    print(f"offline  {offline:8.0f} docs/s  ({len(docs)} docs, batch {args.batch}, {mean_bytes:.0f} B mean)")

    with EmbeddedBroker() as broker:
        settings = Settings(bootstrap_servers=broker.bootstrap, input_topic="bench.in", output_topic="bench.out",
                            dlq_topic="bench.dlq", group_id="bench", session_timeout_ms=6000,
                            batch_max_messages=args.batch, model_path=model_dir, model_watch_interval_s=0)
        create_topics(broker.bootstrap, {"bench.in": args.partitions, "bench.out": args.partitions, "bench.dlq": 1})
        publish(settings, "bench.in", [json.dumps(a, ensure_ascii=False).encode() for a in articles])
        app = App.build(settings.model_copy(update={"metrics_port": 0})).start()
        registry = app.registry
        while _value(registry, "newsstream_messages_consumed_total") == 0:
            time.sleep(0.005)
        first = time.perf_counter()
        while _value(registry, "newsstream_messages_produced_total") < len(articles):
            time.sleep(0.005)
        elapsed = time.perf_counter() - first
        app.stop()
    online = len(articles) / elapsed
    ratio = online / offline
    inference = _value(registry, "newsstream_inference_seconds_sum")
    print(f"worker   {online:8.0f} docs/s  → {ratio:.2f} × offline (target ≥ 0.95)")
    print(f"         model time {inference:.2f}s of {elapsed:.2f}s wall ({len(articles) / inference:.0f} docs/s inside "
          "the worker); the rest is Kafka I/O, JSON and validation")
    result = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": bundle.describe(),
        "docs": len(articles),
        "mean_bytes": round(mean_bytes),
        "batch": args.batch,
        "partitions": args.partitions,
        "offline_docs_per_second": round(offline, 1),
        "worker_docs_per_second": round(online, 1),
        "ratio": round(ratio, 3),
        "worker_model_seconds": round(inference, 3),
        "worker_wall_seconds": round(elapsed, 3),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
