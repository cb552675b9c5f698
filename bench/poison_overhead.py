"""Throughput of one worker with poison in the stream against a clean stream (the issue: within 20 %).

    .venv/bin/python bench/poison_overhead.py [--good 4000] [--poison-share 0.10] [--runs 3] [--model DIR]

Each run fills nothing in advance: a worker subprocess (default model) is started on empty topics and made
ready, then the stream is produced in one go, ``--good`` full-length articles, plus (poisoned mode) every kind
of ``tests/reliability/poison.py`` repeated to ``--poison-share`` of the stream, interleaved at random. The
clock runs from just before the first record is sent to the worker's last committed batch
(``newsstream_last_processed_timestamp_seconds``). Clean and poisoned alternate which goes first. The
figure compared is good articles enriched per second (median of ``--runs``); messages per second is reported
too. Writes ``bench/results/poison_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from reliability_harness import REPO, Broker, Worker, produce, texts

sys.path.insert(0, str(REPO / "tests" / "reliability"))

from poison import bad_cases

MAX_BYTES = 200_000


def one_run(broker: Broker, mode: str, run: int, docs: list[tuple[str, str]], args: argparse.Namespace,
            log_dir: Path) -> dict[str, float]:
    topic_in, topic_out, dlq, group = broker.topics()
    good = [(f"{mode}-{run}-{i}".encode(),
             json.dumps({"id": f"{mode}-{run}-{i}", "title": docs[i % len(docs)][0],
                         "text": docs[i % len(docs)][1]}).encode()) for i in range(args.good)]
    messages = list(good)
    n_bad = 0
    if mode == "poisoned":
        want = round(args.good * args.poison_share / (1 - args.poison_share))
        rnd = random.Random(run)
        rep = 0
        while n_bad < want:
            for case in bad_cases(MAX_BYTES, tag=f"{run}-{rep}"):
                if case.kind in args.exclude or n_bad >= want:
                    continue
                messages.insert(rnd.randrange(len(messages) + 1), (case.key, case.value))
                n_bad += 1
            rep += 1
    worker = Worker(broker.bootstrap, topic_in, topic_out, dlq, group, log_dir / f"worker-{mode}-{run}.log",
                    {"max_message_bytes": MAX_BYTES, "model_path": args.model} if args.model
                    else {"max_message_bytes": MAX_BYTES}).start()
    try:
        worker.wait_ready()
        started = time.time()
        total = produce(broker.bootstrap, topic_in, iter(messages))
        deadline = time.monotonic() + 900
        while True:
            s = worker.samples()
            done = worker.total("newsstream_messages_produced_total", s) + worker.total(
                "newsstream_messages_dead_lettered_total", s)
            if done >= total:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode} run {run}: {done}/{total} after 900 s")
            time.sleep(0.2)
        finished = worker.total("newsstream_last_processed_timestamp_seconds", s)
        assert worker.total("newsstream_messages_produced_total", s) == args.good
        assert worker.total("newsstream_messages_dead_lettered_total", s) == n_bad
    finally:
        worker.stop()
    wall = finished - started
    return {"messages": total, "good": args.good, "poison": n_bad, "seconds": round(wall, 3),
            "messages_per_second": round(total / wall, 1), "good_per_second": round(args.good / wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--good", type=int, default=4000)
    parser.add_argument("--poison-share", type=float, default=0.10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=None, help="bundle or directory of bundles (default: newest in models/)")
    parser.add_argument("--exclude", nargs="*", default=[], help="poison kinds to leave out")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "poison_overhead.json")
    args = parser.parse_args()

    docs, source = texts()
    docs = [d for d in docs if len(d[1].encode()) < MAX_BYTES - 2000]
    log_dir = Path("/tmp") / f"poison-overhead-{int(time.time())}"
    broker = Broker(log_dir)
    runs: dict[str, list[dict[str, float]]] = {"clean": [], "poisoned": []}
    try:
        for run in range(args.runs):
            order = ["clean", "poisoned"] if run % 2 == 0 else ["poisoned", "clean"]
            for mode in order:
                result = one_run(broker, mode, run, docs, args, log_dir)
                runs[mode].append(result)
                print(f"run {run} {mode:8s} {result}", flush=True)
    finally:
        broker.stop()

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    ratio_good = median("poisoned", "good_per_second") / median("clean", "good_per_second")
    ratio_messages = median("poisoned", "messages_per_second") / median("clean", "messages_per_second")
    report = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "texts": source,
        "good_per_run": args.good,
        "poison_share": args.poison_share,
        "poison_kinds": len({c.kind for c in bad_cases(MAX_BYTES)} - set(args.exclude)),
        "excluded_kinds": args.exclude,
        "runs": runs,
        "median_good_per_second": {m: median(m, "good_per_second") for m in runs},
        "median_messages_per_second": {m: median(m, "messages_per_second") for m in runs},
        "ratio_good_per_second": round(ratio_good, 3),
        "ratio_messages_per_second": round(ratio_messages, 3),
        "within_20_percent": ratio_good >= 0.8,
        "python": platform.python_version(),
        "note": "2-core machine shared with other work; medians of alternating runs",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("median_good_per_second", "ratio_good_per_second",
                                             "ratio_messages_per_second", "within_20_percent")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
