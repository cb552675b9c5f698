"""Batched classification throughput of a model bundle on real full-length articles, one core.

    .venv/bin/python bench/classify_throughput.py [--model models/newsstream-1.1.0] [--docs 2000]
    .venv/bin/python bench/classify_throughput.py --baseline-ref v1.1.0      # the latest model vs release 1.1.0

Reads ``guardian/articles.jsonl`` (4.5 KB mean) from the datasets root, classifies it in batches of 64, 256 and
1024 through ``ModelBundle.classify`` (what ``newsstream classify`` and the worker call), takes the median of
``--repeats`` passes per batch size and writes ``bench/results/classify_throughput.json``. BLAS and OpenMP are
pinned to one thread before numpy loads, so the number is per core.

With ``--baseline-ref REF`` the bundle committed at git ``REF`` is copied out of git into a temporary directory
(model and card), loaded through ``load_bundle`` with the current code (sha256 checked against its card), and
measured in the same run: each repeat times both models back to back on the same batches, so a busy machine
slows both alike. ``ratio`` is model ÷ baseline (medians), per batch size and for the median repeat.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamer.artifact import CARD_FILE, MODEL_FILE, ModelBundle, find_latest, load_bundle  # noqa: E402
from training.data import data_dir, guardian_docs  # noqa: E402

Docs = Sequence[tuple[str, str]]


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, check=True).stdout


def release_bundle(ref: str, workdir: Path, name: str = "newsstream") -> Path:
    """Copy the newest ``name`` bundle committed at git ``ref`` (its ``card.json`` and ``model.joblib``) into
    ``workdir`` and return its directory. Nothing is unpickled here: :func:`load_bundle` verifies it after."""
    listing = _git("ls-tree", "-r", "--name-only", ref, "--", "models").decode().splitlines()
    cards = []
    for path in listing:
        parts = path.split("/")
        if len(parts) == 3 and parts[2] == CARD_FILE:
            card = json.loads(_git("cat-file", "blob", f"{ref}:{path}"))
            if card.get("name") == name:
                cards.append((str(card.get("created_at", "")), parts[1], card))
    if not cards:
        raise SystemExit(f"no {name} bundle under models/ at git {ref!r}")
    _, directory, card = max(cards)
    target = workdir / directory
    target.mkdir(parents=True)
    for file in (CARD_FILE, str((card.get("artifact") or {}).get("file", MODEL_FILE))):
        (target / file).write_bytes(_git("cat-file", "blob", f"{ref}:models/{directory}/{file}"))
    return target


def time_batches(classify: Callable[[Docs], Any], docs: Docs, batch_size: int) -> tuple[float, float]:
    """One pass over ``docs``: (docs per wall second, docs per CPU second)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(docs), batch_size):
        classify(docs[start : start + batch_size])
    return len(docs) / (time.perf_counter() - started), len(docs) / (time.process_time() - cpu_started)


def side_by_side(
    models: Mapping[str, Callable[[Docs], Any]], docs: Docs, batch_sizes: Sequence[int], repeats: int
) -> dict[str, list[dict[str, Any]]]:
    """Per model, per batch size: the median of ``repeats`` passes. Each repeat runs every model back to back."""
    for classify in models.values():
        classify(docs[:64])  # warm-up: first-call imports and allocations are not throughput
    out: dict[str, list[dict[str, Any]]] = {label: [] for label in models}
    for batch_size in batch_sizes:
        runs: dict[str, list[tuple[float, float]]] = {label: [] for label in models}
        for repeat in range(repeats):
            # Alternate the order, so neither model always runs right after the other's allocations.
            for label in list(models)[:: 1 if repeat % 2 == 0 else -1]:
                runs[label].append(time_batches(models[label], docs, batch_size))
        for label, passes in runs.items():
            wall, cpu = [w for w, _ in passes], [c for _, c in passes]
            out[label].append({"batch_size": batch_size, "docs_per_second_median": round(statistics.median(wall)),
                               "docs_per_cpu_second_median": round(statistics.median(cpu)),
                               "runs": [round(r) for r in wall], "cpu_runs": [round(r) for r in cpu]})
            print(f"{label:>9s} batch {batch_size:5d}: {statistics.median(wall):7.0f} docs/s wall, "
                  f"{statistics.median(cpu):7.0f} docs per CPU-second (runs {[round(r) for r in wall]})")
    return out


def ratios(model: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    """model ÷ baseline per batch size: of the medians, and the median of the per-repeat ratios (CPU time)."""
    by_batch = {}
    for mine, theirs in zip(model, baseline, strict=True):
        per_repeat = [a / b for a, b in zip(mine["cpu_runs"], theirs["cpu_runs"], strict=True)]
        by_batch[str(mine["batch_size"])] = {
            "cpu": round(mine["docs_per_cpu_second_median"] / theirs["docs_per_cpu_second_median"], 3),
            "wall": round(mine["docs_per_second_median"] / theirs["docs_per_second_median"], 3),
            "median_of_repeats_cpu": round(statistics.median(per_repeat), 3),
        }
    return by_batch


def describe(bundle: ModelBundle, model_dir: Path) -> dict[str, Any]:
    path = model_dir.relative_to(REPO) if model_dir.is_relative_to(REPO) else model_dir
    return {**bundle.describe(), "path": str(path)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--baseline-ref", default=None,
                        help="Git ref whose committed newsstream bundle is measured alongside, e.g. v1.1.0.")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="64,256,1024")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "classify_throughput.json")
    args = parser.parse_args()

    model_dir = args.model or find_latest(REPO / "models", name="newsstream")
    bundle = load_bundle(model_dir)
    docs = guardian_docs(data_dir(args.data_dir), args.docs)
    if not docs:
        raise SystemExit("guardian/articles.jsonl not found under the datasets root")
    mean_bytes = statistics.mean(len(t.encode()) + len(x.encode()) for t, x in docs)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    with tempfile.TemporaryDirectory(prefix="newsstream-baseline-") as tmp:
        models: dict[str, Callable[[Docs], Any]] = {"model": bundle.classify}
        baseline: dict[str, Any] | None = None
        if args.baseline_ref:
            baseline_dir = release_bundle(args.baseline_ref, Path(tmp))
            baseline_bundle = load_bundle(baseline_dir)
            models["baseline"] = baseline_bundle.classify
            baseline = {**baseline_bundle.describe(), "git_ref": args.baseline_ref,
                        "git_commit": _git("rev-parse", f"{args.baseline_ref}^{{commit}}").decode().strip(),
                        "path": f"models/{baseline_dir.name} at {args.baseline_ref}"}
        measured = side_by_side(models, docs, batch_sizes, args.repeats)

    report: dict[str, Any] = {
        "benchmark": "classify_throughput",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": describe(bundle, model_dir),
        "data": {"file": "guardian/articles.jsonl", "docs": len(docs), "mean_bytes": round(mean_bytes)},
        "threads": 1,
        "repeats": args.repeats,
        # Wall-clock rates drop when other work shares the cores; docs per CPU-second is the one-core figure
        # that does not. The load average says how busy the machine was.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "target_docs_per_second": 2000,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "results": measured["model"],
    }
    if baseline is not None:
        by_batch = ratios(measured["model"], measured["baseline"])
        report["baseline"] = {**baseline, "results": measured["baseline"]}
        # The headline: batch 256 (the worker's typical batch) if measured, else the first batch size.
        headline = "256" if "256" in by_batch else next(iter(by_batch))
        report["ratio"] = {"model_over_baseline_cpu": by_batch[headline]["cpu"], "batch_size": int(headline),
                           "target": 2.0, "by_batch_size": by_batch}
        print(f"ratio model/baseline (CPU, batch {headline}): {by_batch[headline]['cpu']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
