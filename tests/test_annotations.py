"""Label-only annotation files: ids joined to raw text, and every way a row is refused (file and line named)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.annotations import heldout_keys, is_label_only, load_annotations, near_key, resolve
from training.data import DataError, LabeledRow


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A miniature datasets root laid out like ../shared/datasets."""
    root = tmp_path / "datasets"
    _jsonl(root / "huffpost-head10k" / "News_Category_Dataset_v3.head10000.jsonl", [
        {"headline": "Bishops meet in Rome", "short_description": "The synod opens.", "category": "RELIGION"},
        {"headline": "Teachers back new exam", "short_description": "", "category": "EDUCATION"},
    ])
    _jsonl(root / "guardian" / "articles.jsonl", [
        {"id": "guardian:not_crimes/7", "section": "not_crimes", "path": "x", "text": "A school opened its doors."},
    ])
    _jsonl(root / "wiki-current-events" / "events_2010-2020.jsonl", [
        {"text": "Rioters torch cars in the capital.", "category": "Armed conflicts and attacks"},
    ])
    (root / "ag-news-train-sample5k").mkdir()
    with (root / "ag-news-train-sample5k" / "train.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["Pope visits Cuba The pontiff arrived #39;today#39;.", "0"],
                                  ["Quake hits Italy Hundreds dead as a strong earthquake shakes the mountains.", "0"]])
    (root / "ag-news-test").mkdir()
    with (root / "ag-news-test" / "test.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["label", "title", "description"],
                                  ["1", "Quake hits Italy", "Hundreds dead as a strong earthquake shakes the region."]])
    (root / "bbc-news" / "bbc" / "tech").mkdir(parents=True)
    (root / "bbc-news" / "bbc" / "tech" / "001.txt").write_text("Chips get faster\n\nA new chip.", encoding="utf-8")
    (root / "newsevents").mkdir()
    (root / "newsevents" / "reserved.txt").write_text("huffpost:1\nagnews:0\n", encoding="utf-8")
    return root


def test_ids_resolve_like_newsevents(root: Path) -> None:
    docs = resolve(root, ["huffpost:0", "guardian:not_crimes/7", "wikicurrent:events_2010-2020:0",
                          "agnewstrain:0", "bbc:tech/001.txt", "huffpost:9", "nosuch:1", "agnews:0"])
    assert docs["huffpost:0"] == ("Bishops meet in Rome", "The synod opens.")
    assert docs["guardian:not_crimes/7"] == ("", "A school opened its doors.")
    assert docs["wikicurrent:events_2010-2020:0"] == ("", "Rioters torch cars in the capital.")
    assert docs["agnewstrain:0"] == ("", "Pope visits Cuba The pontiff arrived 'today'.")
    assert docs["bbc:tech/001.txt"] == ("Chips get faster", "A new chip.")
    assert docs["agnews:0"] == ("Quake hits Italy", "Hundreds dead as a strong earthquake shakes the region.")
    assert "huffpost:9" not in docs and "nosuch:1" not in docs


def test_rows_join_text_and_count_by_file(root: Path, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "ann" / "topics_thin.jsonl", [
        {"id": "huffpost:0", "topic": "religion", "incident": "none", "sure": True},
        {"id": "guardian:not_crimes/7", "topic": "education", "incident": "none", "sure": False},
        {"id": "huffpost:0", "topic": "society", "incident": "none", "sure": True},  # repeat: first wins
    ])
    assert is_label_only(path)
    rows, report = load_annotations([path], root, frozenset(), set())
    assert [(r.id, r.topic, r.text) for r in rows] == [
        ("huffpost:0", "religion", "The synod opens."),
        ("guardian:not_crimes/7", "education", "A school opened its doors."),
    ]
    assert report.kept == 2 and report.unsure == 1
    assert report.repeated_ids == 1 and report.repeated_ids_disagreeing == 1
    assert report.by_file["topics_thin.jsonl"]["topic"] == {"religion": 1, "education": 1}
    assert report.by_source == {"huffpost": 1, "guardian": 1}


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ({"id": "huffpost:1", "topic": "education", "incident": "none"}, "reserved"),
        ({"id": "bbc:tech/001.txt", "topic": "science_technology", "incident": "none"}, "already in newsevents"),
        ({"id": "huffpost:0", "topic": "faith", "incident": "none"}, "not a topic label"),
        ({"id": "huffpost:0", "topic": "religion", "incident": "miracle"}, "not an incident label"),
        ({"id": "huffpost:0"}, "needs a topic or an incident"),
        ({"id": "huffpost:77", "topic": "religion", "incident": "none"}, "no such document"),
        ({"id": "nytimes:5", "topic": "religion", "incident": "none"}, "unknown corpus"),
    ],
)
def test_bad_rows_are_refused_with_file_and_line(root: Path, tmp_path: Path, row: dict[str, object], why: str) -> None:
    good = {"id": "guardian:not_crimes/7", "topic": "education", "incident": "none", "sure": True}
    path = _jsonl(tmp_path / "a.jsonl", [good, row])
    with pytest.raises(DataError, match=rf"a\.jsonl:2: .*{why}"):
        load_annotations([path], root, frozenset({"huffpost:1"}), {"bbc:tech/001.txt"})
    rows, report = load_annotations([path], root, frozenset({"huffpost:1"}), {"bbc:tech/001.txt"},
                                    skip_invalid=True)
    assert [r.id for r in rows] == ["guardian:not_crimes/7"] and report.invalid == 1


def test_near_duplicates_of_heldout_documents_are_dropped(root: Path, tmp_path: Path) -> None:
    # AG News train row 1 repeats the reserved AG News test row agnews:0 (title + description joined).
    path = _jsonl(tmp_path / "a.jsonl", [{"id": "agnewstrain:1", "topic": "disaster_accident_emergency",
                                           "incident": "natural_disaster", "sure": True}])
    dev = [LabeledRow(id="d1", title="", text="Something else entirely.", topic="sport")]
    keys = heldout_keys(root, ["agnews:0"], dev)
    assert near_key("", "Quake hits Italy Hundreds dead as a strong earthquake shakes the world") in keys
    rows, report = load_annotations([path], root, frozenset(), set(), heldout=keys)
    assert rows == [] and report.near_duplicates_of_heldout == 1


def test_train_accepts_label_only_files(root: Path, tmp_path: Path) -> None:
    words = {"religion": "church bishop prayer faith synod", "education": "school pupils teachers exam classroom"}
    lines: list[dict[str, object]] = []
    with (root / "huffpost-head10k" / "News_Category_Dataset_v3.head10000.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(40):
            topic = "religion" if i % 2 else "education"
            vocab = words[topic].split()
            text = f"item{i} " + " ".join(vocab[(i + k) % 5] for k in range(6))
            fh.write(json.dumps({"headline": text[:30], "short_description": text, "category": "X"}) + "\n")
            if i >= 2:
                lines.append({"id": f"huffpost:{i}", "topic": topic,
                              "incident": "protest" if i % 4 == 0 else "none", "sure": True})
    labels = _jsonl(tmp_path / "labels.jsonl", lines)
    run = subprocess.run(
        [sys.executable, "-m", "newsstream", "train", "--data", str(labels), "--data-dir", str(root), "--no-dev",
         "--out", str(tmp_path / "models"), "--name", "ann", "--version", "0.0.1", "--quiet", "--folds", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    card = json.loads((tmp_path / "models" / "ann-0.0.1" / "card.json").read_text(encoding="utf-8"))
    assert card["data"]["annotations"]["kept"] == 38
    assert card["data"]["train_counts"]["topic"] == {"education": 19, "religion": 19}

    bad = _jsonl(tmp_path / "bad.jsonl", [*lines[:3], {"id": "huffpost:1", "topic": "religion", "incident": "none"}])
    refused = subprocess.run(
        [sys.executable, "-m", "newsstream", "train", "--data", str(bad), "--data-dir", str(root), "--no-dev",
         "--out", str(tmp_path / "models"), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert refused.returncode == 2 and "bad.jsonl:4:" in refused.stderr and "reserved" in refused.stderr
