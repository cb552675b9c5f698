"""The benchmark harness: its rate and profile arithmetic, and a small real run on the embedded broker.

The real run is the harness's own quick path cut down (1,200 articles, no Quix, no scaling, no py-spy) so it
stays well under a minute; it proves every measured key comes out as a finite number and that the worker
really delivered every article, not that any target is met (that is ``make bench``'s job).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.harness import configure, previous_release, run, steady_rate
from bench.profile import summarize

ROOT = Path(__file__).resolve().parents[1]
GUARDIAN = ROOT.parent / "shared" / "datasets" / "guardian" / "articles.jsonl"


def rec(ts_ms: int, key: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(timestamp=ts_ms, value=json.dumps({"processed_at": key}).encode())


def test_steady_rate_counts_whole_batches_after_the_first() -> None:
    # three batches of 100, finishing at 0 s, 1 s and 2 s: 200 records in 2 s after the first batch
    records = [rec(t * 1000 + i // 50, f"b{t}") for t in range(3) for i in range(100)]
    assert steady_rate(records, lambda r: json.loads(r.value)["processed_at"]) == pytest.approx(200 / 2.0, rel=0.01)
    # one record per event: 9 records in 0.9 s after the first one
    singles = [rec(100 * i) for i in range(10)]
    assert steady_rate(singles, None) == pytest.approx(10.0)
    assert math.isnan(steady_rate(singles[:1], None))


def test_profile_summary_splits_threads_and_categories() -> None:
    main = "thread (1): MainThread;run (streamer/worker.py:150);_step (streamer/worker.py:250)"
    raw = "\n".join([
        f"{main};classify (streamer/artifact.py:140);transform (streamer/features.py:300) 60",
        f"{main};classify (streamer/artifact.py:140);predict_proba (sklearn/linear_model/_base.py:1) 10",
        f"{main};dumps (streamer/worker.py:50);encode (json/encoder.py:200) 20",
        f"{main};poll (kafka/consumer/group.py:700) 10",
        "thread (2): net;run (kafka/producer/sender.py:100) 25",
    ])
    out = summarize(raw, wall_samples=200)
    assert out["main_thread_percent"]["features: text + hashing TF-IDF"] == 60.0
    assert out["main_thread_percent"]["model: heads (predict_proba)"] == 10.0
    assert out["main_thread_percent"]["output: JSON encode"] == 20.0
    assert out["threads_core_share"] == {"main (worker loop)": 0.5, "kafka producer I/O thread": 0.125}


@pytest.mark.skipif(not GUARDIAN.is_file(), reason="needs ../shared/datasets/guardian/articles.jsonl")
def test_small_real_run_writes_every_measured_key(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    out = tmp_path / "results.json"
    args = parser.parse_args(["--quick", "--docs", "1200", "--latency-seconds", "3", "--skip",
                              "quix,scaling,profile,hotpath", "--out", str(out), "--no-report"])
    assert run(args) == 0
    results = json.loads(out.read_text())
    # A clone without tags has no previous release to compare with; the harness then leaves that comparison out.
    release_keys = ("release_worker_docs_per_s", "speedup_vs_release") if previous_release() else ()
    for key in ("ceiling_docs_per_s", "worker_docs_per_s", "passthrough_docs_per_s", "worker_vs_passthrough",
                *release_keys, "per_message_docs_per_s", "worker_with_shadow_docs_per_s", "shadow_rate_ratio",
                "speedup_vs_per_message", "p99_ms_at_half_load", "p99_ms_at_quarter_load", "worker_rss_mb",
                "train_seconds", "train_peak_rss_mb"):
        assert isinstance(results[key], float) and math.isfinite(results[key]) and results[key] > 0, key
    assert "efficiency_vs_ceiling" not in results  # retired: it rewarded a slower model
    # approx: the harness takes the median of per-round ratios; with one round it is this quotient, up to float rounding
    assert results["worker_vs_passthrough"] == pytest.approx(results["worker_docs_per_s"]
                                                             / results["passthrough_docs_per_s"], rel=1e-6)
    row = results["rounds"][0]
    assert row["worker"]["outputs"] == 1200  # every article enriched, none lost or duplicated
    if release_keys:
        assert results["release"]["ref"] == previous_release()  # the previous release, from its git tag
        assert row["release_worker"]["outputs"] == 1200
    assert row["passthrough"]["outputs"] == 1200
    assert row["worker_shadow"]["outputs"] == 1200
    assert set(results["latency_ms"]) == {"25%", "50%", "75%"}
    for level in results["latency_ms"].values():
        assert 0 < level["p50"] <= level["p95"] <= level["p99"]
    assert results["latency_detail"]["outputs"] == results["latency_detail"]["sent"]
