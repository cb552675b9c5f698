"""The model-artifact contract: save, verify, load, predict. Shared by training and the worker.

A bundle is a directory ``models/<name>-<version>/`` holding ``model.joblib`` and ``card.json``. The card
records the sha256 of ``model.joblib``; :func:`load_bundle` hashes the file and compares *before* unpickling,
because unpickling runs code. It also refuses a bundle built with another scikit-learn minor version
(pickles are not portable across them) and one whose labels leave its taxonomy. The taxonomy travels in the
card (``taxonomy``: heads, labels, event field names); a card without one (bundles ≤ 2.0.0) means the default
news taxonomy, so older bundles load unchanged.

The joblib payload is a dict::

    {"format": 1,
     "features": transformer or None,   # docs -> feature matrix, computed once for both heads
     "heads": {"topic": clf, "incident": clf},   # one per taxonomy head; each has predict_proba and classes_
     "log_prior_shift": {"incident": array or None, ...}}   # class-aware thresholds, see below

``log_prior_shift`` is added to the log-probabilities before renormalising: a shift of ``+b`` on ``none``
makes the head say ``none`` unless another label is ``e**b`` times more likely. Scores still sum to 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamer.features import Doc, softmax_rows
from streamer.taxonomy import Taxonomy, TaxonomyError

FORMAT_VERSION = 1
MODEL_FILE = "model.joblib"
CARD_FILE = "card.json"


class ModelError(Exception):
    """A bundle that must not be served: missing, tampered, incompatible or outside the taxonomy."""


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import joblib
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
        "numpy": np.__version__,
    }


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


@dataclass(frozen=True)
class Scored:
    label: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 6)}


@dataclass
class ModelBundle:
    """A verified, loaded bundle. Build it with :func:`load_bundle` (or :func:`from_payload` in training)."""

    payload: dict[str, Any]
    card: dict[str, Any]
    path: Path | None = None
    labels: dict[str, tuple[str, ...]] = field(init=False)
    taxonomy: Taxonomy = field(init=False)
    _shift: dict[str, np.ndarray | None] = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.taxonomy = Taxonomy.of_card(self.card)
        except TaxonomyError as exc:
            raise ModelError(str(exc)) from exc
        allowed = self.taxonomy.labels
        heads = self.payload.get("heads")
        if not isinstance(heads, dict) or set(heads) != set(allowed):
            raise ModelError(f"bundle must have exactly the taxonomy's heads {sorted(allowed)}, "
                             f"got {sorted(heads or {})}")
        self.labels = {}
        self._shift = {}
        for head, clf in heads.items():
            classes = tuple(str(c) for c in getattr(clf, "classes_", ()))
            if not classes:
                raise ModelError(f"head {head!r} is not fitted (no classes_)")
            outside = sorted(set(classes) - set(allowed[head]))
            if outside:
                raise ModelError(f"head {head!r} predicts labels outside the taxonomy: {outside}")
            self.labels[head] = classes
            shift = (self.payload.get("log_prior_shift") or {}).get(head)
            if shift is not None:
                shift = np.asarray(shift, dtype=np.float64)
                if shift.shape != (len(classes),):
                    raise ModelError(f"log_prior_shift[{head!r}] has shape {shift.shape}, expected ({len(classes)},)")
            self._shift[head] = shift

    @property
    def name(self) -> str:
        return str(self.card.get("name", "unnamed"))

    @property
    def version(self) -> str:
        return str(self.card.get("version", "0"))

    def predict_proba(self, docs: Sequence[Doc]) -> dict[str, np.ndarray]:
        """Head → ``(len(docs), n_labels)`` probabilities, columns in ``self.labels[head]`` order."""
        if not docs:
            return {head: np.zeros((0, len(labels))) for head, labels in self.labels.items()}
        features = self.payload.get("features")
        x = features.transform(docs) if features is not None else docs
        out: dict[str, np.ndarray] = {}
        for head, clf in self.payload["heads"].items():
            proba = np.asarray(clf.predict_proba(x), dtype=np.float64)
            shift = self._shift[head]
            if shift is not None:
                proba = softmax_rows(np.log(np.clip(proba, 1e-12, None)) + shift)
            out[head] = proba
        return out

    def classify(self, docs: Sequence[Doc], top_k: int = 3) -> list[dict[str, Any]]:
        """One dict per document, the ``classify`` / worker schema's prediction part.

        Keys: per head, its name (best ``{"label", "score"}``) and its plural (top-k): ``topic``/``topics`` and
        ``incident``/``incidents`` for the default taxonomy.
        """
        probas = self.predict_proba(docs)
        results: list[dict[str, Any]] = [{} for _ in docs]
        plural = self.taxonomy.plurals
        for head, proba in probas.items():
            labels = self.labels[head]
            k = min(top_k, len(labels))
            order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
            for i, row in enumerate(order):
                ranked = [{"label": labels[j], "score": round(float(proba[i, j]), 6)} for j in row]
                results[i][head] = ranked[0]
                results[i][plural[head]] = ranked
        return results

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def save_bundle(directory: Path, payload: dict[str, Any], card: dict[str, Any]) -> Path:
    """Write ``model.joblib`` and ``card.json`` (with the file's sha256 and library versions) atomically."""
    import joblib

    payload = {"format": FORMAT_VERSION, **payload}
    taxonomy = ModelBundle(payload, card).taxonomy  # refuse to write what could not be loaded
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".model-", delete=False) as tmp:
        joblib.dump(payload, tmp.name, compress=("zlib", 3))
        tmp_path = Path(tmp.name)
    os.replace(tmp_path, model_path)
    card = dict(card)
    card["format"] = FORMAT_VERSION
    card["labels"] = {head: list(labels) for head, labels in taxonomy.labels.items()}
    card["taxonomy"] = taxonomy.as_dict()
    card["libraries"] = {**library_versions(), **card.get("libraries", {})}
    card["artifact"] = {"file": MODEL_FILE, "sha256": sha256_file(model_path), "bytes": model_path.stat().st_size}
    card_tmp = directory / (CARD_FILE + ".tmp")
    card_tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    # The card lands last: a watcher that sees a card sees the model it describes.
    os.replace(card_tmp, directory / CARD_FILE)
    return directory


def read_card(directory: Path) -> dict[str, Any]:
    card_path = Path(directory) / CARD_FILE
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{card_path}: model card not found") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{card_path}: unreadable model card: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelError(f"{card_path}: model card must be a JSON object")
    return card


def verify(directory: Path, card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check a bundle without unpickling it. Returns the card; raises :class:`ModelError` otherwise."""
    directory = Path(directory)
    card = read_card(directory) if card is None else card
    artifact = card.get("artifact") or {}
    expected = artifact.get("sha256")
    if not isinstance(expected, str) or len(expected) != 64:
        raise ModelError(f"{directory}: card has no artifact.sha256; refusing to unpickle an unverified file")
    model_path = directory / str(artifact.get("file", MODEL_FILE))
    if model_path.parent.resolve() != directory.resolve():
        raise ModelError(f"{directory}: artifact.file must name a file inside the bundle")
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    actual = sha256_file(model_path)
    if actual != expected:
        raise ModelError(f"{model_path}: sha256 {actual} does not match the card ({expected}); refusing to load")
    import sklearn

    built_with = str((card.get("libraries") or {}).get("scikit-learn", ""))
    if _minor(built_with) != _minor(sklearn.__version__):
        raise ModelError(
            f"{directory}: built with scikit-learn {built_with or '?'}, running {sklearn.__version__}; "
            "retrain or install the matching version"
        )
    try:
        taxonomy = Taxonomy.of_card(card)
    except TaxonomyError as exc:
        raise ModelError(f"{directory}: {exc}") from exc
    labels = card.get("labels") or {}
    for head, allowed in taxonomy.labels.items():
        outside = sorted(set(labels.get(head, [])) - set(allowed))
        if outside:
            raise ModelError(f"{directory}: card lists {head} labels outside the taxonomy: {outside}")
    extra = sorted(set(labels) - set(taxonomy.labels))
    if extra:
        raise ModelError(f"{directory}: card lists heads its taxonomy does not have: {extra}")
    return card


def load_bundle(directory: Path | str) -> ModelBundle:
    """Verify, then load. The only way a bundle gets unpickled."""
    import joblib

    directory = Path(directory)
    card = verify(directory)
    try:
        payload = joblib.load(directory / str(card["artifact"].get("file", MODEL_FILE)))
    except Exception as exc:  # a verified file can still be corrupt at the source; say so plainly
        raise ModelError(f"{directory}: model file cannot be loaded: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise ModelError(f"{directory}: unknown payload format (expected format {FORMAT_VERSION})")
    return ModelBundle(payload, card, directory)


def list_bundles(models_dir: Path, name: str | None = None) -> list[Path]:
    """Bundles under ``models_dir``, newest first (by card ``created_at``), optionally of one model name.

    A directory whose card cannot be read or parsed is left out (a card still being copied shows up once it is
    complete). Equal ``created_at`` keep directory-name order. Nothing is verified here: that is
    :func:`verify`'s job, and the caller decides what to do with a bundle that fails it.
    """
    found: list[tuple[str, Path]] = []
    for card_path in sorted(Path(models_dir).glob(f"*/{CARD_FILE}")):
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(card, dict) or (name is not None and card.get("name") != name):
            continue
        found.append((str(card.get("created_at", "")), card_path.parent))
    found.sort(key=lambda entry: entry[0], reverse=True)  # stable: ties stay in name order
    return [path for _, path in found]


def find_latest(models_dir: Path, name: str | None = None) -> Path:
    """Newest bundle under ``models_dir`` (by card ``created_at``), optionally of one model name."""
    bundles = list_bundles(models_dir, name)
    if not bundles:
        raise ModelError(f"no model bundle found under {models_dir}")
    return bundles[0]


def check_bundle(bundle: ModelBundle, docs: Sequence[Doc], tmp_dir: Path | None = None) -> None:
    """The contract every bundle meets (river-style): raises ``AssertionError`` naming what broke.

    - predictions are deterministic (same input twice → same output);
    - every label is in the bundle's taxonomy (its card's, not a constant) and each head's scores sum to 1;
    - a save/load round trip (when ``tmp_dir`` is given) predicts the same.
    """
    assert docs, "check_bundle needs at least one document"
    first = bundle.predict_proba(docs)
    second = bundle.predict_proba(docs)
    taxonomy = bundle.taxonomy.labels
    assert set(bundle.labels) == set(taxonomy), f"heads {sorted(bundle.labels)} differ from {sorted(taxonomy)}"
    for head in taxonomy:
        assert set(bundle.labels[head]) <= set(taxonomy[head]), f"{head}: labels outside the taxonomy"
        assert first[head].shape == (len(docs), len(bundle.labels[head])), f"{head}: wrong shape"
        assert np.array_equal(first[head], second[head]), f"{head}: predictions are not deterministic"
        sums = first[head].sum(axis=1)
        assert np.allclose(sums, 1.0, atol=1e-6), f"{head}: scores do not sum to 1 ({sums.min()}..{sums.max()})"
        assert np.all(first[head] >= 0), f"{head}: negative scores"
    for result in bundle.classify(docs):
        assert set(result) == set(taxonomy) | set(bundle.taxonomy.plurals.values()), f"keys {sorted(result)}"
        for head, plural in bundle.taxonomy.plurals.items():
            assert result[head]["label"] in taxonomy[head]
            assert result[plural][0] == result[head]
    if tmp_dir is not None:
        card = {k: v for k, v in bundle.card.items() if k not in ("artifact",)}
        payload = {k: v for k, v in bundle.payload.items() if k != "format"}
        reloaded = load_bundle(save_bundle(Path(tmp_dir), payload, card))
        again = reloaded.predict_proba(docs)
        assert reloaded.taxonomy == bundle.taxonomy, "round trip changed the taxonomy"
        for head in taxonomy:
            assert np.allclose(first[head], again[head]), f"{head}: round trip changed predictions"
