"""Tiny model bundles for tests: fitted in a second on short synthetic texts, covering every label.

They test plumbing (loading, hot reload, the worker's schema), not accuracy: the default model's quality is
``tests/test_model_contract.py``'s and the training issue's business.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from streamer.artifact import CARD_FILE, MODEL_FILE, save_bundle
from streamer.features import DocumentText
from streamer.taxonomy import INCIDENTS, TOPICS


def _texts(labels: tuple[str, ...]) -> tuple[list[tuple[str, str]], list[str]]:
    docs, y = [], []
    for label in labels:
        words = label.replace("_", " ")
        for i in range(3):
            docs.append((f"{words} report {i}", f"This story is about {words}. More on {words} number {i}."))
            y.append(label)
    return docs, y


def build_bundle(directory: Path, version: str, name: str = "test-model", created_at: str | None = None) -> Path:
    features = make_pipeline(DocumentText(), TfidfVectorizer())
    heads = {}
    all_docs: list[tuple[str, str]] = []
    labelled = {head: _texts(labels) for head, labels in (("topic", TOPICS), ("incident", INCIDENTS))}
    for docs, _ in labelled.values():
        all_docs.extend(docs)
    features.fit(all_docs)
    for head, (docs, y) in labelled.items():
        heads[head] = LogisticRegression(max_iter=200).fit(features.transform(docs), y)
    card = {
        "name": name,
        "version": version,
        "created_at": created_at or datetime.now(UTC).isoformat(),
        # what prediction drift is measured against: the labels' share among the training rows (all equal here)
        "training_label_mix": {head: {label: 1 / len(set(y)) for label in set(y)} for head, (_, y) in labelled.items()},
    }
    return save_bundle(Path(directory), {"features": features, "heads": heads, "log_prior_shift": {}}, card)


def corrupt_bundle(directory: Path, version: str, created_at: str | None = None) -> Path:
    """A bundle whose model file no longer matches the sha256 in its card (a tampered or torn copy)."""
    build_bundle(directory, version, created_at=created_at)
    model = Path(directory) / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    card = json.loads((Path(directory) / CARD_FILE).read_text())
    assert card["version"] == version
    return Path(directory)


def move_in(built: Path, models_dir: Path, name: str | None = None) -> Path:
    """Put a finished bundle into a watched directory in one rename, so a watcher never sees it half-made.

    ``built`` must be on the same file system (build it under the test's ``tmp_path``).
    """
    dest = Path(models_dir) / (name or Path(built).name)
    Path(built).rename(dest)
    return dest


def copy_torn(source: Path, dest: Path, model_fraction: float = 0.5) -> Path:
    """A copy of ``source`` at ``dest`` caught half-way: the whole card, part of the model file.

    The partial model file is written before the card, so a watcher's first sight of ``dest`` (it looks for
    ``card.json``) is this torn state, never an even earlier one. Finish with :func:`finish_copy`.
    """
    dest = Path(dest)
    dest.mkdir(parents=True)
    data = (Path(source) / MODEL_FILE).read_bytes()
    (dest / MODEL_FILE).write_bytes(data[: int(len(data) * model_fraction)])
    (dest / CARD_FILE).write_bytes((Path(source) / CARD_FILE).read_bytes())
    return dest


def finish_copy(source: Path, dest: Path) -> Path:
    """Write the rest of the model file (in place, as a copy does) so ``dest`` matches ``source``."""
    data = (Path(source) / MODEL_FILE).read_bytes()
    with (Path(dest) / MODEL_FILE).open("r+b") as fh:
        fh.seek(0, 2)
        fh.write(data[fh.tell():])
    return Path(dest)


def other_model_bytes(bundle: Path) -> bytes:
    """A sound model file that differs from ``bundle``'s (build_bundle is deterministic: same bytes every time)."""
    import io

    import joblib

    payload = joblib.load(Path(bundle) / MODEL_FILE)  # our own freshly built file
    payload["note"] = "a different build"
    buffer = io.BytesIO()
    joblib.dump(payload, buffer)
    return buffer.getvalue()
