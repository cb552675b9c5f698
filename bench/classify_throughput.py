"""Batched classification throughput of a model bundle on real full-length articles, one core.

    .venv/bin/python bench/classify_throughput.py [--model models/newsstream-1.1.0] [--docs 2000]

Reads ``guardian/articles.jsonl`` (4.5 KB mean) from the datasets root, classifies it in batches of 64, 256 and
1024 through ``ModelBundle.classify`` (what ``newsstream classify`` and the worker call), takes the median of
``--repeats`` passes per batch size and writes ``bench/results/classify_throughput.json``. BLAS and OpenMP are
pinned to one thread before numpy loads, so the number is per core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamer.artifact import find_latest, load_bundle  # noqa: E402
from training.data import data_dir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="64,256,1024")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "classify_throughput.json")
    args = parser.parse_args()

    model_dir = args.model or find_latest(REPO / "models", name="newsstream")
    bundle = load_bundle(model_dir)
    path = data_dir(args.data_dir) / "guardian" / "articles.jsonl"
    docs: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            docs.append((str(record.get("title") or ""), str(record.get("text") or "")))
            if len(docs) >= args.docs:
                break
    mean_bytes = statistics.mean(len(t.encode()) + len(x.encode()) for t, x in docs)
    bundle.classify(docs[:64])  # warm-up: first-call imports and allocations are not throughput

    results = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        rates, cpu_rates = [], []
        for _ in range(args.repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            for start in range(0, len(docs), batch_size):
                bundle.classify(docs[start : start + batch_size])
            rates.append(len(docs) / (time.perf_counter() - started))
            cpu_rates.append(len(docs) / (time.process_time() - cpu_started))
        results.append({"batch_size": batch_size, "docs_per_second_median": round(statistics.median(rates)),
                        "docs_per_cpu_second_median": round(statistics.median(cpu_rates)),
                        "runs": [round(r) for r in rates], "cpu_runs": [round(r) for r in cpu_rates]})
        print(f"batch {batch_size:5d}: {statistics.median(rates):7.0f} docs/s wall, "
              f"{statistics.median(cpu_rates):7.0f} docs per CPU-second (runs {[round(r) for r in rates]})")

    report = {
        "benchmark": "classify_throughput",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {**bundle.describe(), "path": str(model_dir.relative_to(REPO) if model_dir.is_relative_to(REPO)
                                                     else model_dir)},
        "data": {"file": "guardian/articles.jsonl", "docs": len(docs), "mean_bytes": round(mean_bytes)},
        "threads": 1,
        # Wall-clock rates drop when other work shares the cores; docs per CPU-second is the one-core figure
        # that does not. The load average says how busy the machine was.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "target_docs_per_second": 2000,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
