"""``newsstream train`` end to end on a tiny synthetic set, then ``newsstream evaluate`` on the result."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from streamer.artifact import check_bundle, load_bundle

#: (topic, incident, words): synthetic vocabularies, so the tiny model has something learnable.
CLASSES = [
    ("conflict_war_peace", "air_drone_strike", "warplanes airstrike jets bombed raid aircraft"),
    ("conflict_war_peace", "armed_clash", "troops fighters battle offensive frontline gunfire"),
    ("disaster_accident_emergency", "natural_disaster", "earthquake flood storm quake rain landslide"),
    ("labour", "protest", "strike union walkout marchers placards rally"),
    ("economy_business_finance", "none", "shares profits market investors quarterly earnings"),
    ("sport", "none", "goal striker league match season coach"),
]


def make_rows(n_per_class: int, seed: int, prefix: str) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for c, (topic, incident, words) in enumerate(CLASSES):
        vocab = words.split()
        for i in range(n_per_class):
            picked = [rng.choice(vocab) for _ in range(8)] + [rng.choice(["the", "a", "today", "report"])] * 2
            rows.append({"id": f"{prefix}{c}-{i}", "title": " ".join(picked[:4]), "text": " ".join(picked),
                         "topic": topic, "incident": incident})
    return rows


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def newsstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsstream", *args], capture_output=True, text=True, timeout=120)


def test_train_then_evaluate(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    (root / "newsevents").mkdir(parents=True)
    train_rows = make_rows(12, seed=1, prefix="tr")
    reserved_id = str(train_rows[0]["id"])
    (root / "newsevents" / "reserved.txt").write_text(reserved_id + "\n", encoding="utf-8")
    bad = {"id": "bad-1", "title": "x", "text": "y", "topic": "not_a_topic"}
    train = write(tmp_path / "train.jsonl", [*train_rows, train_rows[1] | {"id": "dup"}, bad])
    dev = write(tmp_path / "dev.jsonl", make_rows(4, seed=2, prefix="dv"))
    out = tmp_path / "models"

    refused = newsstream("train", "--data", str(train), "--data-dir", str(root), "--dev", str(dev), "--out", str(out))
    assert refused.returncode == 2
    assert "train.jsonl:74:" in refused.stderr and "topic" in refused.stderr

    done = newsstream("train", "--data", str(train), "--data-dir", str(root), "--dev", str(dev), "--out", str(out),
                      "--name", "tiny", "--version", "0.0.1", "--skip-invalid", "--quiet", "--folds", "2")
    assert done.returncode == 0, done.stderr
    bundle_dir = out / "tiny-0.0.1"
    card = json.loads((bundle_dir / "card.json").read_text(encoding="utf-8"))
    assert card["data"]["load"]["invalid"] == 1
    assert card["data"]["load"]["duplicates_removed"] == 1
    assert card["data"]["load"]["reserved_removed"] == 1
    assert card["throughput"]["docs_per_second"] > 0 and card["peak_rss_bytes"] > 0
    for name in ("report.md", "confusion-topic.png", "confusion-incident.png"):
        assert (bundle_dir / name).stat().st_size > 0
    bundle = load_bundle(bundle_dir)
    check_bundle(bundle, [("warplanes bombed", "airstrike raid"), ("", "shares profits")], tmp_path / "rt")

    scored = newsstream("evaluate", "--model", str(bundle_dir), "--data", str(dev), "--json")
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads(scored.stdout)["heads"]
    # Separable synthetic classes: a working pipeline gets them nearly all right.
    assert metrics["incident"]["macro_f1"] > 0.8 and metrics["topic"]["accuracy"] > 0.8
    assert metrics["incident"]["per_class"]["protest"]["support"] == 4

    table = newsstream("evaluate", "--model", str(bundle_dir), "--data", str(dev))
    assert table.returncode == 0 and "macro-F1" in table.stdout and "| air_drone_strike |" in table.stdout
