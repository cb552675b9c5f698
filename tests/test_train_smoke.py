"""``newsstream train`` end to end on a tiny synthetic set, then ``newsstream evaluate`` on the result."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

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



def _tiny_train(train: Path, root: Path, out: Path, *extra: str, hash_seed: str) -> subprocess.CompletedProcess[str]:
    # A different PYTHONHASHSEED per run: set and str-keyed dict ordering must not reach the model file.
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run(
        [sys.executable, "-m", "newsstream", "train", "--data", str(train), "--data-dir", str(root), "--no-dev",
         "--out", str(out), "--name", "tiny", "--version", "0.0.1", "--folds", "2", "--seed", "7", "--quiet",
         *extra],
        capture_output=True, text=True, timeout=120, env=env,
    )


def _tiny_data(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "datasets"
    (root / "newsevents").mkdir(parents=True)
    (root / "newsevents" / "reserved.txt").write_text("", encoding="utf-8")
    return write(tmp_path / "train.jsonl", make_rows(10, seed=3, prefix="rp")), root


def _tree_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _model_sha(bundle_dir: Path) -> str:
    return hashlib.sha256((bundle_dir / "model.joblib").read_bytes()).hexdigest()


def _flatten(card: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in card.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_train_refuses_an_existing_bundle_unless_forced(tmp_path: Path) -> None:
    train, root = _tiny_data(tmp_path)
    out = tmp_path / "models"
    bundle_dir = out / "tiny-0.0.1"
    first = _tiny_train(train, root, out, hash_seed="1")
    assert first.returncode == 0, first.stderr
    before = _tree_bytes(bundle_dir)
    assert "model.joblib" in before and "card.json" in before

    # Same --out/--name/--version again: refused up front with one line, the published bundle untouched.
    again = _tiny_train(train, root, out, hash_seed="2")
    assert again.returncode == 2, again.stderr
    refusal = [line for line in again.stderr.splitlines() if line.strip()]
    assert len(refusal) == 1, again.stderr
    assert str(bundle_dir) in refusal[0] and "--force" in refusal[0] and "--version" in refusal[0]
    assert _tree_bytes(bundle_dir) == before

    # With --force the bundle is replaced by a verified one, and nothing half-written is left beside it.
    forced = _tiny_train(train, root, out, "--force", hash_seed="3")
    assert forced.returncode == 0, forced.stderr
    card = load_bundle(bundle_dir).card
    assert card["artifact"]["sha256"] == _model_sha(bundle_dir)
    assert card["created_at"] >= json.loads(before["card.json"])["created_at"]
    assert sorted(p.name for p in out.iterdir()) == ["tiny-0.0.1"]
    assert not [p.name for p in bundle_dir.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_train_is_byte_reproducible_for_a_seed(tmp_path: Path) -> None:
    train, root = _tiny_data(tmp_path)
    bundle_a, bundle_b = tmp_path / "a" / "tiny-0.0.1", tmp_path / "b" / "tiny-0.0.1"
    for bundle_dir, hash_seed in ((bundle_a, "1"), (bundle_b, "2")):
        done = _tiny_train(train, root, bundle_dir.parent, hash_seed=hash_seed)
        assert done.returncode == 0, done.stderr
    assert _model_sha(bundle_a) == _model_sha(bundle_b)

    card_a = json.loads((bundle_a / "card.json").read_text(encoding="utf-8"))
    card_b = json.loads((bundle_b / "card.json").read_text(encoding="utf-8"))
    assert card_a["artifact"]["sha256"] == card_b["artifact"]["sha256"] == _model_sha(bundle_a)
    repro = card_a["reproducibility"]
    assert "byte-identical" in repro["model_file"]
    allowed = set(repro["varies_between_runs"]) | set(repro["varies_with_checkout"])
    assert {"created_at", "train_seconds", "peak_rss_bytes"} <= allowed
    # Every card field that did differ between the two runs is one the card owns up to.
    flat_a, flat_b = _flatten(card_a), _flatten(card_b)
    differing = {key for key in flat_a.keys() | flat_b.keys() if flat_a.get(key) != flat_b.get(key)}
    assert differing <= allowed, differing - allowed
