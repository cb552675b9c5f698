"""Users' own taxonomies: training on AG News' 4 classes, serving them on the real broker, and the evaluation gate.

The AG News model is trained once per session through the real CLI (``newsstream train --taxonomy``) on the
5,000-row AG train sample; its accuracy is measured here on AG test rows that are neither reserved for the
project's held-out evaluation nor near-duplicates of the training sample.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from conftest import read_all

from streamer.artifact import CARD_FILE, check_bundle, load_bundle, save_bundle
from streamer.metrics import Metrics
from streamer.model_watch import ModelHolder
from streamer.pipeline import Limits, process
from streamer.schemas import enriched_event_model
from streamer.taxonomy import DEFAULT, INCIDENTS, TOPIC_IPTC, TOPICS, Taxonomy, TaxonomyError
from training.data import DataError, data_dir, read_rows

ROOT = Path(__file__).resolve().parents[1]
DATA = data_dir()
HAS_AG = (DATA / "ag-news-train-sample5k" / "train.csv").is_file() and (DATA / "ag-news-test" / "test.csv").is_file()
needs_ag = pytest.mark.skipif(not HAS_AG, reason=f"needs the AG News data sets under {DATA} (../shared/datasets)")


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsstream", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


# ---- the taxonomy file ---------------------------------------------------------------------------------------


def test_default_taxonomy_file_is_the_news_taxonomy() -> None:
    assert len(TOPICS) == 17 and len(INCIDENTS) == 14
    assert TOPICS[0] == "arts_culture_entertainment_media" and TOPICS[-1] == "weather"
    assert INCIDENTS[0] == "air_drone_strike" and INCIDENTS[-1] == "none"
    assert TOPIC_IPTC["sport"] == "15000000" and TOPIC_IPTC["conflict_war_peace"] == "16000000"
    assert DEFAULT.plurals == {"topic": "topics", "incident": "incidents"}
    assert DEFAULT.head("incident").none_label == "none" and DEFAULT.head("topic").none_label is None


@pytest.mark.parametrize(("heads", "message"), [
    ({"category": ["world", "yes", True]}, "not a string"),
    ({"category": ["a", "a", "b"]}, "listed twice"),
    ({"category": ["a"]}, "at least two labels"),
    ({"model": ["a", "b"]}, "field of every enriched event"),
    ({"Category": ["a", "b"]}, "lower-case"),
    ({"kind": ["a", "b"], "kinds": {"labels": ["c", "d"], "plural": "kindz"}}, "also used by head"),
    ({"risk": {"labels": ["a", "b"], "none_label": "nothing"}}, "none_label"),
    ({"risk": {"labels": ["a", "b"], "colour": "red"}}, "unknown key"),
])
def test_bad_taxonomies_are_refused_with_the_place(heads: dict, message: str) -> None:
    with pytest.raises(TaxonomyError, match=message) as caught:
        Taxonomy.from_dict({"heads": heads}, "mine.yaml")
    assert str(caught.value).startswith("mine.yaml: ")


def test_yaml_booleans_are_caught_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("heads:\n  answer: [yes, no, maybe]\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match=r"t.yaml: heads.answer.labels: label True is not a string"):
        Taxonomy.load(path)
    path.write_text("heads:\n  answer: ['yes', 'no', maybe]\n", encoding="utf-8")
    assert Taxonomy.load(path).labels == {"answer": ("yes", "no", "maybe")}


def test_rows_are_validated_against_the_taxonomy_with_file_line_and_field(tmp_path: Path) -> None:
    taxonomy = Taxonomy.from_dict({"heads": {"category": ["world", "sports"], "tone": ["neutral", "alarm"]}})
    path = tmp_path / "rows.jsonl"
    rows = [{"id": "1", "text": "a", "category": "world"}, {"id": "2", "text": "b", "tone": "alarm"},
            {"id": "3", "text": "c", "category": "sprots"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:3: field 'category': .*'sprots' is not a category label"):
        read_rows(path, taxonomy=taxonomy)
    good = read_rows(path, taxonomy=taxonomy, skip_invalid=True)
    assert [(r.category, r.tone) for r in good] == [("world", None), (None, "alarm")]  # a head may be left out
    path.write_text(json.dumps({"id": "4", "text": "d", "topic": "sport"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r":1: .*needs a label for at least one head \(category, tone\)"):
        read_rows(path, taxonomy=taxonomy)


# ---- the default model's events do not change ----------------------------------------------------------------


def test_default_model_events_are_byte_identical_to_before() -> None:
    """The events of bundle 2.0.0 for fixed inputs, recorded before taxonomies travelled with the model."""
    bundle = load_bundle(ROOT / "models" / "newsstream-2.0.0")
    record = namedtuple("record", "topic partition offset timestamp key value headers")
    lines = (ROOT / "tests" / "data" / "golden_inputs.jsonl").read_bytes().splitlines()
    records = [record("articles", 0, i, 0, None, line, [("trace", b"t%d" % i)]) for i, line in enumerate(lines)]
    out = process(records, bundle, Limits(), "articles.enriched", "articles.dlq",
                  processed_at="2026-01-01T00:00:00.000Z")
    expected = [json.loads(line) for line in
                (ROOT / "tests" / "data" / "golden_events_2.0.0.jsonl").read_text(encoding="utf-8").splitlines()]
    got = [{"topic": o.topic, "key": o.key.decode() if o.key else None, "value": o.value.decode() if o.value else None,
            "headers": [[k, v.decode()] for k, v in o.headers]} for o in out.outputs]
    assert len(got) == len(expected) == 7
    for g, e in zip(got, expected, strict=True):
        assert g == e


# ---- AG News: train, evaluate, gate, serve -------------------------------------------------------------------


@pytest.fixture(scope="module")
def agnews(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not HAS_AG:
        pytest.skip(f"needs the AG News data sets under {DATA}")
    work = tmp_path_factory.mktemp("agnews")
    prep = subprocess.run([sys.executable, str(ROOT / "examples" / "agnews" / "prepare.py"), "--data-dir", str(DATA),
                           "--out", str(work / "data")], capture_output=True, text=True, timeout=120)
    assert prep.returncode == 0, prep.stderr
    counts = json.loads(prep.stdout)
    assert counts["train"] == 5000 and counts["test"] > 1000
    run = cli("train", "--taxonomy", str(ROOT / "examples" / "agnews" / "taxonomy.yaml"),
              "--data", str(work / "data" / "train.jsonl"), "--no-dev", "--name", "agnews", "--version", "1.0.0",
              "--out", str(work / "models"), "--data-dir", str(DATA), "--quiet")
    assert run.returncode == 0, run.stderr
    return {"model": work / "models" / "agnews-1.0.0", "train": work / "data" / "train.jsonl",
            "test": work / "data" / "test.jsonl", "work": work}


@needs_ag
def test_agnews_model_declares_its_taxonomy_and_meets_the_contract(agnews: dict[str, Path]) -> None:
    bundle = load_bundle(agnews["model"])
    card = json.loads((agnews["model"] / CARD_FILE).read_text(encoding="utf-8"))
    assert card["taxonomy"]["heads"]["category"]["labels"] == ["world", "sports", "business", "scitech"]
    assert card["labels"] == {"category": ["world", "sports", "business", "scitech"]}
    assert set(card["data"]["train_counts"]["category"]) == {"world", "sports", "business", "scitech"}
    assert bundle.taxonomy.plurals == {"category": "categories"}
    docs = [("Cup final", "The champions won on penalties."), ("", "Shares fell as oil prices rose.")]
    check_bundle(bundle, docs, agnews["work"] / "roundtrip")
    result = bundle.classify(docs)[0]
    assert set(result) == {"category", "categories"}


@needs_ag
def test_agnews_accuracy_on_held_out_test_rows(agnews: dict[str, Path]) -> None:
    run = cli("evaluate", "--model", str(agnews["model"]), "--data", str(agnews["test"]), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    category = report["heads"]["category"]
    assert category["n"] > 1000
    assert category["accuracy"] >= 0.85, category
    # No training row is in the test file, and no test row is a near-duplicate of one (prepare.py removes them).
    train_ids = {json.loads(line)["id"] for line in agnews["train"].read_text(encoding="utf-8").splitlines()}
    test_ids = {json.loads(line)["id"] for line in agnews["test"].read_text(encoding="utf-8").splitlines()}
    assert not train_ids & test_ids


@needs_ag
def test_training_refuses_a_head_with_too_few_rows_per_label(agnews: dict[str, Path], tmp_path: Path) -> None:
    rows = [json.loads(line) for line in agnews["train"].read_text(encoding="utf-8").splitlines()]
    per_label: dict[str, int] = {}
    few = []
    for row in rows:
        cap = 3 if row["category"] == "business" else 40
        if row["category"] != "scitech" and per_label.get(row["category"], 0) < cap:
            per_label[row["category"]] = per_label.get(row["category"], 0) + 1
            few.append(row)
    data = tmp_path / "few.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in few), encoding="utf-8")
    run = cli("train", "--taxonomy", str(ROOT / "examples" / "agnews" / "taxonomy.yaml"), "--data", str(data),
              "--no-dev", "--name", "few", "--version", "1", "--out", str(tmp_path / "models"), "--quiet")
    assert run.returncode == 2
    assert "head 'category': 2 label(s) under 5 rows (business, scitech)" in run.stderr
    assert "world 40, sports 40, business 3, scitech 0" in run.stderr
    assert not (tmp_path / "models" / "few-1").exists()


def degraded_copy(source: Path, target: Path, label: str) -> Path:
    """The same bundle with one class all but switched off: its intercept pushed far down."""
    bundle = load_bundle(source)
    payload = {k: v for k, v in bundle.payload.items() if k != "format"}
    head = payload["heads"]["category"]
    head.intercept = head.intercept.copy()
    head.intercept[list(head.classes_).index(label)] -= 50.0
    card = {k: v for k, v in bundle.card.items() if k != "artifact"}
    return save_bundle(target, payload, {**card, "version": "1.0.1-degraded"})


@needs_ag
def test_gate_passes_a_model_against_itself_and_fails_a_degraded_one(agnews: dict[str, Path], tmp_path: Path) -> None:
    model, data = str(agnews["model"]), str(agnews["test"])
    same = cli("evaluate", "--model", model, "--baseline", model, "--data", data, "--json", "--rounds", "300")
    assert same.returncode == 0, same.stderr
    report = json.loads(same.stdout)
    category = report["heads"]["category"]
    assert report["passed"] is True and report["worse_heads"] == []
    assert category["diff"] == 0 and category["diff_ci95"] == [0, 0] and category["verdict"] == "same"
    assert category["worse_classes"] == {}

    worse = str(degraded_copy(agnews["model"], tmp_path / "agnews-degraded", "sports"))
    failed = cli("evaluate", "--model", worse, "--baseline", model, "--data", data, "--rounds", "300")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAILED: worse than the baseline on category" in failed.stdout
    sports_line = next(line for line in failed.stdout.splitlines() if line.strip().startswith("sports:"))
    assert "worse beyond the interval" in sports_line
    as_json = json.loads(cli("evaluate", "--model", worse, "--baseline", model, "--data", data, "--json",
                             "--rounds", "300").stdout)
    assert as_json["passed"] is False and as_json["worse_heads"] == ["category"]
    assert as_json["heads"]["category"]["worse_classes"]["sports"]["significant"] is True
    assert as_json["heads"]["category"]["diff_ci95"][1] < 0
    # The other way round the degraded model is the baseline: the good one is better, the gate passes.
    assert cli("evaluate", "--model", model, "--baseline", worse, "--data", data, "--rounds", "300").returncode == 0


@needs_ag
def test_gate_refuses_bundles_of_different_taxonomies(agnews: dict[str, Path]) -> None:
    run = cli("evaluate", "--model", str(agnews["model"]), "--baseline", str(ROOT / "models" / "newsstream-2.0.0"),
              "--data", str(agnews["test"]))
    assert run.returncode == 2
    assert "different taxonomies" in run.stderr and "head 'category' added" in run.stderr


@needs_ag
def test_worker_serves_the_custom_taxonomy_on_the_broker(agnews: dict[str, Path], broker, topics_factory,
                                                         worker_factory) -> None:
    from conftest import produce

    rows = [json.loads(line) for line in agnews["test"].read_text(encoding="utf-8").splitlines()][:300]
    t = topics_factory(partitions=2)
    produce(broker.bootstrap, t.input, [(r["id"].encode(), json.dumps(
        {"id": r["id"], "title": r.get("title", ""), "text": r["text"]}).encode()) for r in rows])
    worker = worker_factory(t, agnews["model"])
    worker.wait_ready()
    events = [json.loads(m.value) for m in read_all(broker.bootstrap, t.output, len(rows), timeout_s=90)]
    assert len(events) == len(rows)
    schema = enriched_event_model(load_bundle(agnews["model"]).taxonomy)
    gold = {r["id"]: r["category"] for r in rows}
    for event in events:
        schema.model_validate(event)
        assert "topic" not in event and "incident" not in event and "topics" not in event
        assert event["category"]["label"] in ("world", "sports", "business", "scitech")
        assert event["categories"][0] == event["category"] and len(event["categories"]) == 3
        assert event["model"] == {"name": "agnews", "version": "1.0.0"}
    correct = sum(event["category"]["label"] == gold[event["id"]] for event in events)
    assert correct / len(events) >= 0.8
    # Metric label values come from the card: the four labels, nothing else, counts adding up.
    classified = {labels: value for labels, value in worker.metrics()["newsstream_classified_total"].items()}
    by_label = {dict(labels)["label"]: value for labels, value in classified.items()}
    assert {dict(labels)["head"] for labels in classified} == {"category"}
    assert set(by_label) == {"world", "sports", "business", "scitech"}
    assert sum(by_label.values()) == len(rows)


@needs_ag
def test_hot_reload_refuses_a_taxonomy_change_unless_allowed(agnews: dict[str, Path], tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    for allow in (False, True):
        models = tmp_path / f"models-{allow}"
        shutil.copytree(ROOT / "models" / "newsstream-2.0.0", models / "newsstream-2.0.0")
        metrics = Metrics(CollectorRegistry())
        holder = ModelHolder(models, metrics, interval_s=0, allow_taxonomy_change=allow)
        assert holder.current.taxonomy == DEFAULT
        shutil.copytree(agnews["model"], models / "agnews-1.0.0")  # newer created_at: a candidate
        assert holder.check() is allow
        refused = metrics.model_reloads.labels(result="refused")._value.get()
        assert refused == (0 if allow else 1)
        if allow:
            assert holder.swap_if_pending() and holder.current.taxonomy.labels == {"category": (
                "world", "sports", "business", "scitech")}
        else:
            assert holder.current.taxonomy == DEFAULT
