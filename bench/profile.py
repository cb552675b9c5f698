"""Where a worker's CPU goes: py-spy raw samples (``--threads``) → shares per category.

A sample is one stack of one thread that was running at that instant (py-spy drops sleeping threads), so
``samples / (rate × seconds)`` is the fraction of a core that thread used. Each main-thread stack is put in
the first category whose marker it contains, most specific first.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

#: (category, markers: any one frame containing any marker) — checked in order.
MAIN_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("model: heads (predict_proba)", ("sklearn/linear_model", "sklearn/calibration", "sklearn/svm",
                                      "sklearn/isotonic", "softmax_rows",
                                      # 2.x heads: CalibratedLinearHead lives beside the featurizer
                                      "predict_proba (streamer/features.py", "predict (streamer/features.py")),
    ("features: text + hashing TF-IDF", ("streamer/features.py", "sklearn/feature_extraction", "sklearn/pipeline",
                                         "sklearn/preprocessing", "HashedTfidf", "FastHashedTfidf", "ArticleText")),
    ("model: rest of classify (top-k dicts, prior shift)", ("classify (streamer/artifact.py",)),
    ("input: JSON decode", ("loads (json", "decode (json", "raw_decode (json")),
    ("input: pydantic validation", ("validate_article", "model_validate")),
    ("output: enrich (model_dump)", ("enrich (streamer/schemas.py",)),
    ("output: JSON encode", ("dumps (streamer/pipeline.py", "dumps (streamer/worker.py", "encode (json")),
    ("kafka: produce (send → buffer)", ("send (kafka/producer",)),
    ("kafka: flush + ack wait", ("flush (kafka/producer",)),
    ("kafka: commit", ("commit (kafka/consumer",)),
    ("kafka: poll (fetch + record decode)", ("poll (kafka/consumer",)),
    ("metrics", ("prometheus_client", "record_predictions", "streamer/metrics.py")),
    ("logging", ("logging/", "streamer/logs.py")),
    ("loop bookkeeping (observe, lag)", ("_observe (streamer/worker.py",)),
    ("input: parse (other)", ("parse_article",)),
    ("worker loop (other)", ("streamer/worker.py",)),
]


def _frames(stack: str) -> list[str]:
    return stack.split(";")


def summarize(raw: str, wall_samples: float) -> dict[str, Any]:
    """``raw``: py-spy ``--format raw --threads`` output. ``wall_samples``: sampling rate × seconds."""
    by_thread: Counter[str] = Counter()
    main: Counter[str] = Counter()
    main_thread: str | None = None
    stacks: list[tuple[str, list[str], int]] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        frames = _frames(stack)
        thread = next((f for f in frames if f.startswith("thread ")), "thread ?")
        stacks.append((thread, frames, int(count)))
        if any("Worker.run" in f or "run (streamer/worker.py" in f for f in frames):
            main_thread = thread
    for thread, frames, n in stacks:
        joined = ";".join(frames)
        if thread == main_thread:
            label = next((name for name, marks in MAIN_CATEGORIES if any(m in joined for m in marks)), "other")
            main[label] += n
            by_thread["main (worker loop)"] += n
        elif "producer" in thread or "kafka/producer" in joined:
            by_thread["kafka producer I/O thread"] += n
        elif "kafka-io" in thread or "kafka/" in joined:
            by_thread["kafka consumer I/O thread"] += n
        elif "model-watch" in thread or "model_watch" in joined:
            by_thread["model watcher"] += n
        elif "http" in thread or "process_request" in thread or "socketserver" in joined:
            by_thread["metrics HTTP server (the harness polls it)"] += n
        else:
            by_thread["other threads"] += n
    main_total = sum(main.values())
    return {
        "main_thread_busy_share": round(main_total / wall_samples, 3) if wall_samples else None,
        "main_thread_percent": {k: round(100 * v / main_total, 1) for k, v in main.most_common()} if main_total
        else {},
        "threads_core_share": {k: round(v / wall_samples, 3) for k, v in by_thread.most_common()} if wall_samples
        else {},
        "samples": sum(n for _, _, n in stacks),
    }
