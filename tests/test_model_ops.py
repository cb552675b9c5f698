"""Model operations on the real broker: the prediction-drift gauge and the shadow model."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from bundles import corrupt_bundle
from conftest import article, headers_of, produce, read_all
from prometheus_client import CollectorRegistry

from streamer.drift import AgreementWindow, LabelWindow, js_distance, reference_mix
from streamer.metrics import Metrics
from streamer.shadow import Shadow
from training.data import data_dir, read_rows

ROOT = Path(__file__).resolve().parents[1]
DATA = data_dir()
MODEL = ROOT / "models" / "newsstream-2.0.0"
THRESHOLD = 0.35  # NewsstreamPredictionDrift in deploy/prometheus/alerts.yml
needs_data = pytest.mark.skipif(
    not (DATA / "newsevents" / "dev.jsonl").is_file() or not (DATA / "ag-news-train-sample5k" / "train.csv").is_file(),
    reason=f"needs newsevents and AG News under {DATA} (../shared/datasets)")


# ---- pure logic ----------------------------------------------------------------------------------------------


def test_js_distance_bounds_and_symmetry() -> None:
    assert js_distance([1, 1], [2, 2]) == 0.0
    assert math.isclose(js_distance([1, 0], [0, 1]), 1.0)
    assert math.isclose(js_distance([3, 1, 0], [1, 1, 1]), js_distance([1, 1, 1], [3, 1, 0]))
    assert math.isnan(js_distance([0, 0], [1, 1]))


def test_label_window_slides_and_ignores_unknown_labels() -> None:
    window = LabelWindow(("a", "b"), {"a": 0.5, "b": 0.5}, size=4)
    window.add(["a", "a", "a", "a", "zzz"])
    assert len(window) == 4 and window.counts.tolist() == [4, 0]
    window.add(["b", "b"])
    assert window.counts.tolist() == [2, 2] and window.distance() == 0.0
    agreement = AgreementWindow(size=3)
    agreement.add([True, False, True, True])
    assert agreement.ratio() == pytest.approx(2 / 3)


def test_reference_mix_from_a_card_without_training_label_mix() -> None:
    card = {"data": {"train_counts": {"topic": {"sport": 3, "politics": 1}}}}
    assert reference_mix(card) == {"topic": {"sport": 0.75, "politics": 0.25}}
    assert reference_mix({"training_label_mix": {"topic": {"sport": 1.0}}}) == {"topic": {"sport": 1.0}}
    assert reference_mix({}) == {}


class _Raises:
    def __init__(self) -> None:
        self.labels = {"topic": ("a", "b")}

    def classify(self, docs: Any) -> Any:
        raise RuntimeError("shadow bug")

    def describe(self) -> dict[str, str]:
        return {"name": "broken", "version": "0"}


def test_a_shadow_that_raises_is_counted_and_returns_nothing() -> None:
    metrics = Metrics(CollectorRegistry())
    shadow = Shadow(_Raises(), metrics)  # type: ignore[arg-type]
    assert shadow.score([("t", "x")], [{"topic": {"label": "a", "score": 1.0}}]) is None
    assert metrics.shadow_errors.labels(stage="classify")._value.get() == 1


# ---- drift on the real broker ----------------------------------------------------------------------------------


def _training_like() -> list[dict[str, Any]]:
    rows = read_rows(DATA / "newsevents" / "dev.jsonl")
    return [{"id": f"dev-{r.id}", "title": r.title, "text": r.text} for r in rows]


def _sport_only() -> list[dict[str, Any]]:
    with (DATA / "ag-news-train-sample5k" / "train.csv").open(encoding="utf-8", newline="") as fh:
        return [{"id": f"sport-{n}", "title": "", "text": text}
                for n, (text, label) in enumerate(csv.reader(fh)) if label == "1"]


def _drift_after(stream: list[dict[str, Any]], broker: Any, topics_factory: Any, worker_factory: Any) -> dict:
    t = topics_factory(partitions=2)
    produce(broker.bootstrap, t.input, [(a["id"].encode(), json.dumps(a).encode()) for a in stream])
    worker = worker_factory(t, MODEL, drift_window_predictions=1000, drift_min_predictions=200)
    worker.wait_ready(timeout_s=60)
    read_all(broker.bootstrap, t.output, len(stream), timeout_s=120, settle_s=0.5)
    worker.wait_for(lambda: worker.metric("newsstream_messages_produced_total", topic=t.output) >= len(stream), 30,
                    "every event counted")
    return {head: worker.metric("newsstream_prediction_drift", head=head) for head in ("topic", "incident")}


@needs_data
def test_drift_separates_a_training_like_stream_from_a_sport_only_one(broker, topics_factory, worker_factory) -> None:
    rng = random.Random(0)
    like = rng.sample(_training_like(), 1200)
    sport = rng.sample(_sport_only(), 1200)
    near = _drift_after(like, broker, topics_factory, worker_factory)
    far = _drift_after(sport, broker, topics_factory, worker_factory)
    print(f"drift, window 1000: training-like {near}, sport-only {far}")  # the numbers bench/NOTES.md quotes
    for head in ("topic", "incident"):
        assert 0 <= near[head] < THRESHOLD < far[head] <= 1, (head, near, far)
    assert far["topic"] > 0.7  # nearly every prediction is `sport`


# ---- shadow on the real broker ---------------------------------------------------------------------------------


def test_shadow_scores_every_batch_and_publishes_only_to_its_topic(broker, topics_factory, worker_factory,
                                                                   model_v1: Path, unique) -> None:
    from streamer.broker import create_topics

    t = topics_factory(partitions=2)
    shadow_topic = unique("shadow")
    create_topics(broker.bootstrap, {shadow_topic: 1})
    n = 300
    produce(broker.bootstrap, t.input, [(f"a{i}".encode(), json.dumps(article(i)).encode()) for i in range(n)])
    worker = worker_factory(t, model_v1 / "test-model-1", shadow_model_path=MODEL, shadow_topic=shadow_topic)
    worker.wait_ready(timeout_s=60)
    live = read_all(broker.bootstrap, t.output, n, timeout_s=90)
    shadow = read_all(broker.bootstrap, shadow_topic, n, timeout_s=60)
    assert len(live) == n and len(shadow) == n
    assert all(headers_of(r)["model-name"] == "test-model" for r in live)  # the live path is the live model's
    assert {headers_of(r)["model-name"] for r in shadow} == {"newsstream"}
    assert {headers_of(r)["shadow"] for r in shadow} == {"true"}
    live_labels = {json.loads(r.value)["id"]: json.loads(r.value)["topic"]["label"] for r in live}
    shadow_labels = {json.loads(r.value)["id"]: json.loads(r.value)["topic"]["label"] for r in shadow}
    agree = sum(live_labels[k] == shadow_labels[k] for k in live_labels) / n
    worker.wait_for(lambda: worker.metric("newsstream_messages_produced_total", topic=t.output) >= n, 30, "counted")
    assert worker.metric("newsstream_shadow_agreement_ratio", head="topic") == pytest.approx(agree, abs=1e-9)
    m = worker.metrics()
    assert m["newsstream_shadow_inference_seconds_count"][()] >= 1
    assert sum(m["newsstream_shadow_errors_total"].values()) == 0


def test_shadow_of_the_same_model_agrees_everywhere(broker, topics_factory, worker_factory, model_v1: Path) -> None:
    t = topics_factory(partitions=2)
    produce(broker.bootstrap, t.input, [(f"a{i}".encode(), json.dumps(article(i)).encode()) for i in range(200)])
    bundle = model_v1 / "test-model-1"
    worker = worker_factory(t, bundle, shadow_model_path=bundle)
    worker.wait_ready(timeout_s=60)
    read_all(broker.bootstrap, t.output, 200, timeout_s=60)
    worker.wait_for(lambda: worker.metric("newsstream_messages_produced_total", topic=t.output) >= 200, 30, "counted")
    assert worker.metric("newsstream_shadow_agreement_ratio", head="topic") == 1.0
    assert worker.metric("newsstream_shadow_agreement_ratio", head="incident") == 1.0


def test_a_broken_shadow_never_touches_the_live_path(broker, topics_factory, worker_factory, model_v1: Path,
                                                      tmp_path: Path, unique) -> None:
    t = topics_factory(partitions=2)
    produce(broker.bootstrap, t.input, [(f"a{i}".encode(), json.dumps(article(i)).encode()) for i in range(200)])
    broken = corrupt_bundle(tmp_path / "broken", "9")
    # a bundle that does not verify, and a shadow topic that does not exist
    worker = worker_factory(t, model_v1 / "test-model-1", shadow_model_path=broken, shadow_topic=unique("nope"))
    worker.wait_ready(timeout_s=60)
    assert len(read_all(broker.bootstrap, t.output, 200, timeout_s=60)) == 200
    assert worker.metric("newsstream_shadow_errors_total", stage="load") == 1
    assert "newsstream_shadow_agreement_ratio" not in worker.metrics()
    assert any(e.get("msg", "").startswith("shadow model refused") for e in worker.log_events())

    t2 = topics_factory(partitions=1)
    produce(broker.bootstrap, t2.input, [(f"b{i}".encode(), json.dumps(article(i)).encode()) for i in range(50)])
    bundle = model_v1 / "test-model-1"
    w2 = worker_factory(t2, bundle, shadow_model_path=bundle, shadow_topic=unique("missing"))
    w2.wait_ready(timeout_s=60)
    assert len(read_all(broker.bootstrap, t2.output, 50, timeout_s=60)) == 50  # no send() blocked on the topic
    w2.wait_for(lambda: w2.metric("newsstream_shadow_errors_total", stage="publish") >= 1, 30, "publish refusal")
    assert w2.metric("newsstream_shadow_agreement_ratio", head="topic") == 1.0  # still measured
