"""Per-article cost of each step of the worker's hot path, in microseconds, measured one step at a time.

    .venv/bin/python -m bench.hotpath [--docs 2000]        # without Kafka steps
    (``python -m bench.harness`` runs it with its broker, adding produce and consume)

Each step runs over the same real articles, the way the worker runs it (``streamer.schemas.parse_article``,
``enrich``, ``streamer.worker.dumps``, ``ModelBundle.classify`` on batches of 500, the worker's metrics calls),
best of three passes. Anything here that is not features or model is overhead a serial loop adds to the model's
time: ``model / (model + overhead)`` is the efficiency such a loop can reach at best on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

BATCH = 500


def _best_us_per_doc(fn: Callable[[], Any], n: int, passes: int = 3) -> float:
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / n


def measure(values: list[bytes], model: Path, bootstrap: str | None = None) -> dict[str, Any]:
    import numpy as np
    from prometheus_client import CollectorRegistry

    from streamer.artifact import load_bundle
    from streamer.metrics import Metrics
    from streamer.pipeline import dumps
    from streamer.schemas import Article, enrich, parse_article

    bundle = load_bundle(model)
    n = len(values)
    articles: list[Article] = [a for a in (parse_article(v) for v in values) if isinstance(a, Article)]
    docs = [(a.title or "", a.text) for a in articles]
    batches = [docs[i : i + BATCH] for i in range(0, len(docs), BATCH)]
    bundle.classify(docs[:64])
    predictions = [p for b in batches for p in bundle.classify(b)]
    features = bundle.payload["features"]
    xs = [features.transform(b) for b in batches]
    model_info = bundle.describe()
    origin = {"topic": "t", "partition": 0, "offset": 0}
    events = [enrich(a, p, model_info, "2026-01-01T00:00:00.000Z", origin) for a, p in zip(articles, predictions,
                                                                                           strict=True)]
    us: dict[str, float] = {}
    us["model: classify (features + heads + top-k)"] = _best_us_per_doc(
        lambda: [bundle.classify(b) for b in batches], n)
    us["  of which features (text + hashing TF-IDF)"] = _best_us_per_doc(
        lambda: [features.transform(b) for b in batches], n)
    us["  of which heads (predict_proba)"] = _best_us_per_doc(
        lambda: [[clf.predict_proba(x) for clf in bundle.payload["heads"].values()] for x in xs], n)
    # the top-k dicts alone, built exactly as ModelBundle.classify builds them
    probas = [bundle.predict_proba(b) for b in batches]

    def topk_as_classify() -> None:
        for proba_by_head in probas:
            for head, proba in proba_by_head.items():
                labels = bundle.labels[head]
                order = np.argsort(-proba, axis=1, kind="stable")[:, :3]
                for i, row in enumerate(order):
                    [{"label": labels[j], "score": round(float(proba[i, j]), 6)} for j in row]

    us["  of which top-k dicts (as ModelBundle.classify builds them)"] = _best_us_per_doc(topk_as_classify, n)
    us["input: json.loads"] = _best_us_per_doc(lambda: [json.loads(v) for v in values], n)
    us["input: parse_article (decode + json + pydantic)"] = _best_us_per_doc(
        lambda: [parse_article(v, 1_000_000) for v in values], n)
    us["output: enrich (model_dump + merge)"] = _best_us_per_doc(
        lambda: [enrich(a, p, model_info, "x", origin) for a, p in zip(articles, predictions, strict=True)], n)
    us["output: streamer.worker.dumps"] = _best_us_per_doc(lambda: [dumps(e) for e in events], n)
    us["(alternative) json.dumps, ensure_ascii=True"] = _best_us_per_doc(
        lambda: [json.dumps(e, separators=(",", ":")).encode() for e in events], n)
    try:
        import orjson

        us["(alternative) orjson.dumps"] = _best_us_per_doc(lambda: [orjson.dumps(e) for e in events], n)
    except ImportError:
        pass
    metrics = Metrics(CollectorRegistry())

    def meter() -> None:
        metrics.record_predictions(predictions)
        for _ in range(n):  # what the worker does per record after each batch
            metrics.processing.observe(0.1)
            metrics.event_age.observe(0.2)

    us["metrics (per-record observes + prediction tallies)"] = _best_us_per_doc(meter, n)
    if bootstrap:
        us.update(_kafka(values, bootstrap, [dumps(e) for e in events]))
    model_us = us["model: classify (features + heads + top-k)"]
    # CPU the loop's own process spends besides the model (what no pipelining within one GIL can hide)
    overhead_keys = [k for k in us if not k.startswith(("model", "  ", "(alternative)", "input: json.loads"))
                     and "wall" not in k and "main thread" not in k]
    overhead = sum(us[k] for k in overhead_keys)
    return {"us_per_doc": {k: round(v, 1) for k, v in us.items()}, "model_us_per_doc": round(model_us, 1),
            "overhead_us_per_doc": round(overhead, 1), "overhead_parts": overhead_keys,
            "serial_efficiency_bound": round(model_us / (model_us + overhead), 3), "docs": n}


def _kafka(values: list[bytes], bootstrap: str, outputs: list[bytes]) -> dict[str, float]:
    """send() as the worker calls it (1 MB batches, 5 ms linger) and a group-less consumer draining a topic.

    ``process_time`` covers every thread of this process (kafka-python's sender and consumer I/O threads too);
    the broker's CPU is not in it.
    """
    import uuid

    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from streamer.broker import create_topics

    topic = f"bench-hotpath-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {topic: 6})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=1_048_576,
                             max_request_size=8 * 1024 * 1024)
    headers = [("schema-version", b"1"), ("model-name", b"m"), ("model-version", b"1"),
               ("content-type", b"application/json")]
    keys = [str(i).encode() for i in range(len(outputs))]
    out: dict[str, float] = {}
    started, cpu = time.perf_counter(), time.process_time()
    for k, v in zip(keys, outputs, strict=True):
        producer.send(topic, key=k, value=v, headers=headers)
    out["kafka: producer.send (main thread)"] = 1e6 * (time.perf_counter() - started) / len(outputs)
    producer.flush()
    out["kafka: produce, CPU of all threads (send → acked)"] = 1e6 * (time.process_time() - cpu) / len(outputs)
    out["kafka: produce, wall (send → acked)"] = 1e6 * (time.perf_counter() - started) / len(outputs)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(6)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = 0
    started, cpu = time.perf_counter(), time.process_time()
    deadline = started + 60
    while got < len(outputs) and time.perf_counter() < deadline:
        got += sum(len(r) for r in consumer.poll(timeout_ms=500, max_records=BATCH).values())
    out["kafka: consume, wall (poll: fetch + decode)"] = 1e6 * (time.perf_counter() - started) / max(1, got)
    out["kafka: consume, CPU of all threads"] = 1e6 * (time.process_time() - cpu) / max(1, got)
    consumer.close()
    return out


def ceiling(values: list[bytes], model: Path, batch_sizes: list[int]) -> dict[str, Any]:
    """Fallback for the offline ceiling when ``bench/classify_throughput.py`` is absent: same method, same
    output shape (batched ``ModelBundle.classify``, one pass per batch size, after a warm-up)."""
    from streamer.artifact import load_bundle

    bundle = load_bundle(model)
    docs = [(str(o.get("title") or ""), str(o.get("text") or "")) for o in (json.loads(v) for v in values)]
    bundle.classify(docs[:64])
    results = []
    for size in batch_sizes:
        started = time.perf_counter()
        for i in range(0, len(docs), size):
            bundle.classify(docs[i : i + size])
        results.append({"batch_size": size, "docs_per_second_median": round(len(docs) / (time.perf_counter()
                                                                                          - started))})
    return {"benchmark": "classify_throughput (bench.hotpath fallback)", "results": results}


def main(argv: list[str] | None = None) -> int:
    from streamer.artifact import find_latest

    repo = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=repo.parent / "shared" / "datasets")
    parser.add_argument("--bootstrap", default=None, help="a broker, to add produce and consume costs")
    parser.add_argument("--ceiling-out", type=Path, default=None,
                        help="only measure the offline ceiling (batches of 256 and 500) into this JSON file")
    args = parser.parse_args(argv)
    values = []
    with (args.data_dir / "guardian" / "articles.jsonl").open("rb") as fh:
        for line in fh:
            r = json.loads(line)
            values.append(json.dumps({"id": r["id"], "title": None, "text": r["text"], "source": "guardian",
                                      "section": r.get("section")}, ensure_ascii=False).encode())
            if len(values) >= args.docs:
                break
    model = args.model or find_latest(repo / "models", name="newsstream")
    if args.ceiling_out is not None:
        args.ceiling_out.write_text(json.dumps(ceiling(values, model, [256, 500])), encoding="utf-8")
        return 0
    result = measure(values, model, args.bootstrap)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
