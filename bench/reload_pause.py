"""How long does the worker's loop pause while a new model is loaded and swapped in?

    .venv/bin/python bench/reload_pause.py [--reloads 5] [--rate 400] [--baseline-s 20]

The real worker (``App.build(settings).start()``) runs on an embedded broker against a steady stream of real
articles (``--rate`` per second). First a stretch without reloads, then ``--reloads`` reloads: each publishes a new
version of the default model (``models/newsstream-1.1.0``: the same ``model.joblib``, which the card's sha256
still matches, and a card with a new ``version`` and ``created_at``) into the watched directory with one rename,
then pokes the watcher (what SIGHUP does). The watcher hashes, unpickles and smoke-tests it on its own thread and
stages it; the loop swaps between batches.

Measured, in the worker's process:

- ``swap_if_pending``: each call is timed (the method is wrapped); the calls that swapped are the loop's own
  pause for a reload (it also drops the old model, whose memory is freed there when nothing else holds it);
- the gap between consecutive batch commits (``newsstream_commits_total`` increments are timestamped): the
  largest gap while a reload is in progress (from the poke to 1 s after the swap) against the gaps of the
  stretch without reloads. Unpickling runs on another thread but needs the GIL, so this is where a reload's
  cost to the loop would show;
- the watcher's time per reload (poke → staged), the resident memory before and after the reloads, and whether
  any swapped-out model is still referenced after the run (weak references, after a GC).

Writes ``bench/results/reload_pause.json`` and prints a summary.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import weakref  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from itertools import pairwise  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry  # noqa: E402

from streamer.app import App  # noqa: E402
from streamer.artifact import CARD_FILE, MODEL_FILE, ModelBundle, read_card  # noqa: E402
from streamer.broker import EmbeddedBroker, create_topics  # noqa: E402
from streamer.produce import publish  # noqa: E402
from streamer.settings import Settings  # noqa: E402

#: The producer publishes the steady stream in calls of this many seconds' worth of articles.
CHUNK_S = 10.0
#: After the swap, gaps this long still count as "around the reload" (the next batch after the swap included).
AFTER_SWAP_S = 1.0


def _articles(path: Path, n: int) -> list[bytes]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            article = {"id": str(row["id"]), "title": str(row.get("title") or ""), "text": str(row.get("text") or "")}
            out.append(json.dumps(article, ensure_ascii=False).encode())
            if len(out) >= n:
                break
    return out


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sum(s.value for f in registry.collect() for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _reloaded(registry: CollectorRegistry, n: int) -> Callable[[], bool]:
    return lambda: _value(registry, "newsstream_model_reloads_total", result="success") >= n


def _version(source: Path, dest: Path, version: str, created_at: datetime) -> Path:
    """A copy of ``source`` under a new version and created_at (the model file, hence its sha256, unchanged)."""
    dest.mkdir(parents=True)
    shutil.copyfile(source / MODEL_FILE, dest / MODEL_FILE)
    card = read_card(source)
    card["version"] = version
    card["created_at"] = created_at.isoformat(timespec="seconds")
    (dest / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return dest


def _stats_ms(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"count": len(values), "p50_ms": round(statistics.median(values) * 1000, 2),
            "p99_ms": round(p99 * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2)}


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"reload_pause: timed out waiting for {what}")
        time.sleep(0.005)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "newsstream-1.1.0")
    parser.add_argument("--data", type=Path,
                        default=REPO.parent / "shared" / "datasets" / "guardian" / "articles.jsonl")
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--rate", type=float, default=400.0, help="articles per second, steady")
    parser.add_argument("--baseline-s", type=float, default=20.0, help="stretch without reloads")
    parser.add_argument("--between-s", type=float, default=4.0, help="pause after each swap before the next reload")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "reload_pause.json")
    args = parser.parse_args()

    articles = _articles(args.data, 2000)
    base_card = read_card(args.model)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="reload-pause-") as tmp, EmbeddedBroker() as broker:
        models, staging = Path(tmp) / "models", Path(tmp) / "staging"
        _version(args.model, models / "v0", f"{base_card['version']}+r0", now)
        # Every version copied beforehand: at reload time only a rename happens (how a bundle should be
        # published), so the bench's own file copying does not land inside the measured windows.
        staged = [_version(args.model, staging / f"v{i}", f"{base_card['version']}+r{i}", now + timedelta(minutes=i))
                  for i in range(1, args.reloads + 1)]

        settings = Settings(bootstrap_servers=broker.bootstrap, input_topic="bench.in", output_topic="bench.out",
                            dlq_topic="bench.dlq", group_id="bench", session_timeout_ms=6000,
                            batch_max_messages=args.batch, model_path=models, model_watch_interval_s=0,
                            metrics_port=0)
        create_topics(broker.bootstrap, {"bench.in": 2, "bench.out": 2, "bench.dlq": 1})
        app = App.build(settings)
        registry, holder = app.registry, app.models

        commits: list[float] = []
        commit_counter = app.metrics.commits
        count_commit = commit_counter.inc

        def timed_commit(amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
            commits.append(time.perf_counter())
            count_commit(amount, exemplar)

        commit_counter.inc = timed_commit  # type: ignore[method-assign]

        swaps: list[tuple[float, float, bool]] = []  # (start, seconds, swapped)
        swap = holder.swap_if_pending

        retired: list[weakref.ref[ModelBundle]] = []

        def timed_swap() -> bool:
            old = weakref.ref(holder.current)  # weak: freeing the old model stays inside the timed call
            t0 = time.perf_counter()
            swapped = swap()
            swaps.append((t0, time.perf_counter() - t0, swapped))
            if swapped:
                retired.append(old)
            return swapped

        holder.swap_if_pending = timed_swap  # type: ignore[method-assign]

        checks: list[tuple[float, float, bool]] = []
        check = holder.check

        def timed_check() -> bool:
            t0 = time.perf_counter()
            staged_one = check()
            checks.append((t0, time.perf_counter() - t0, staged_one))
            return staged_one

        holder.check = timed_check  # type: ignore[method-assign]

        stop = threading.Event()

        def stream() -> None:
            # publish() runs to the end of its list: chunks of CHUNK_S seconds, so the stream stops with the bench
            chunk = max(1, int(args.rate * CHUNK_S))
            start = 0
            while not stop.is_set():
                publish(settings, "bench.in", [articles[(start + k) % len(articles)] for k in range(chunk)], args.rate)
                start += chunk

        producer = threading.Thread(target=stream, name="bench-producer", daemon=True)
        app.start()
        producer.start()
        _wait(lambda: len(commits) >= 5, 60, "the first commits")
        time.sleep(3.0)  # warm: group settled, caches filled
        rss_before = _value(registry, "process_resident_memory_bytes")
        baseline = (time.perf_counter(), time.perf_counter() + args.baseline_s)
        time.sleep(args.baseline_s)

        windows: list[tuple[float, float]] = []
        per_reload: list[dict[str, Any]] = []
        for i, bundle in enumerate(staged, start=1):
            bundle.rename(models / bundle.name)
            poked = time.perf_counter()
            holder.poke()
            _wait(_reloaded(registry, i), 60, f"reload {i}")
            swapped_at, swap_s = next((t, s) for t, s, did in reversed(swaps) if did)
            loaded_s = next(s for t, s, did in reversed(checks) if did)
            windows.append((poked, swapped_at + swap_s + AFTER_SWAP_S))
            per_reload.append({"version": holder.current.version, "watcher_load_s": round(loaded_s, 3),
                               "poke_to_swap_s": round(swapped_at + swap_s - poked, 3),
                               "swap_if_pending_ms": round(swap_s * 1000, 3)})
            time.sleep(AFTER_SWAP_S + args.between_s)
        rss_after = _value(registry, "process_resident_memory_bytes")
        refused = _value(registry, "newsstream_model_reloads_total", result="refused")
        app.stop()
        stop.set()
        producer.join(CHUNK_S * 2)
        gc.collect()
        still_alive = sum(1 for ref in retired if ref() is not None)  # a swapped-out model nobody should hold

    gaps = list(pairwise(commits))
    quiet = [b - a for a, b in gaps if baseline[0] <= a and b <= baseline[1]]
    around = [b - a for a, b in gaps if any(a < end and b > start for start, end in windows)]
    noop_swaps = [s for _, s, did in swaps if not did]
    result = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"name": base_card["name"], "version": base_card["version"],
                  "model_bytes": (args.model / MODEL_FILE).stat().st_size},
        "rate_per_s": args.rate,
        "reloads": args.reloads,
        "refused": refused,
        "swap_if_pending": {
            "swapped_ms": [r["swap_if_pending_ms"] for r in per_reload],
            "swapped_max_ms": max(r["swap_if_pending_ms"] for r in per_reload),
            "noop_calls": len(noop_swaps),
            "noop_max_us": round(max(noop_swaps) * 1e6, 2) if noop_swaps else None,
        },
        "watcher_load_s": [r["watcher_load_s"] for r in per_reload],
        "per_reload": per_reload,
        "commit_gaps": {"without_reloads": _stats_ms(quiet), "around_reloads": _stats_ms(around)},
        "rss_bytes": {"before_reloads": rss_before, "after_reloads": rss_after},
        "swapped_out_models_still_alive": still_alive,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    q, r = result["commit_gaps"]["without_reloads"], result["commit_gaps"]["around_reloads"]
    print(f"{args.reloads} reloads of {base_card['name']} {base_card['version']} "
          f"({result['model']['model_bytes'] / 1e6:.1f} MB) at {args.rate:.0f} articles/s")
    print(f"  swap_if_pending when it swapped: max {result['swap_if_pending']['swapped_max_ms']:.3f} ms "
          f"({', '.join(f'{x:.3f}' for x in result['swap_if_pending']['swapped_ms'])} ms); "
          f"otherwise max {result['swap_if_pending']['noop_max_us']} µs over {len(noop_swaps)} calls")
    print(f"  watcher verify+load+smoke per reload (its own thread): "
          f"{', '.join(f'{x:.2f}' for x in result['watcher_load_s'])} s")
    print(f"  gap between commits without reloads: p50 {q.get('p50_ms')} ms, p99 {q.get('p99_ms')} ms, "
          f"max {q.get('max_ms')} ms ({q['count']} gaps)")
    print(f"  gap between commits around reloads:  p50 {r.get('p50_ms')} ms, p99 {r.get('p99_ms')} ms, "
          f"max {r.get('max_ms')} ms ({r['count']} gaps)")
    print(f"  RSS {rss_before / 2**20:.0f} MiB before the reloads, {rss_after / 2**20:.0f} MiB after; "
          f"load average {result['load_average']}; swapped-out models still in memory: {still_alive}")
    print(f"  → {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
