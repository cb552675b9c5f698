"""Tampered or corrupt model bundles: refused by ``load_bundle`` with a clear error, fatal at start-up (non-zero
exit, the error on stderr), and refused during hot reload while the old model keeps serving.

The existing ``tests/test_worker_reload.py`` covers one flipped byte (sha mismatch) at start-up and at reload;
here are the four ways a bundle goes wrong, each on all three paths.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import joblib
import pytest
from bundles import build_bundle
from conftest import ROOT, article, headers_of, produce, read_all

from streamer.artifact import CARD_FILE, MODEL_FILE, ModelError, load_bundle, sha256_file


def _card(bundle: Path) -> dict:
    return json.loads((bundle / CARD_FILE).read_text())


def _write_card(bundle: Path, card: dict) -> None:
    (bundle / CARD_FILE).write_text(json.dumps(card, indent=2))


def _reseal(bundle: Path) -> None:
    """Make the card's sha256 match the (altered) model file again: only the alteration itself is wrong."""
    card = _card(bundle)
    card["artifact"]["sha256"] = sha256_file(bundle / MODEL_FILE)
    card["artifact"]["bytes"] = (bundle / MODEL_FILE).stat().st_size
    _write_card(bundle, card)


def wrong_sha256(bundle: Path) -> None:
    card = _card(bundle)
    card["artifact"]["sha256"] = "0" * 64
    _write_card(bundle, card)


def truncated_joblib(bundle: Path) -> None:
    model = bundle / MODEL_FILE
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    _reseal(bundle)  # a torn copy whose card was regenerated from it: the hash matches, the pickle is broken


def labels_outside_taxonomy(bundle: Path) -> None:
    # The model itself predicts a label the taxonomy does not have (the card still lists the taxonomy).
    payload = joblib.load(bundle / MODEL_FILE)
    head = payload["heads"]["incident"]
    head.classes_ = head.classes_.copy()
    head.classes_[0] = "alien_invasion"
    joblib.dump(payload, bundle / MODEL_FILE)
    _reseal(bundle)


def incompatible_sklearn(bundle: Path) -> None:
    card = _card(bundle)
    card["libraries"]["scikit-learn"] = "0.24.2"
    _write_card(bundle, card)


#: kind → (tamper, what the error must say)
KINDS: dict[str, tuple[Callable[[Path], None], str]] = {
    "wrong_sha256": (wrong_sha256, "does not match the card"),
    "truncated_joblib": (truncated_joblib, "cannot be loaded"),
    "labels_outside_taxonomy": (labels_outside_taxonomy, "outside the taxonomy: ['alien_invasion']"),
    "incompatible_sklearn": (incompatible_sklearn, "built with scikit-learn 0.24.2"),
}


def tampered(directory: Path, kind: str, version: str = "9", created_at: str | None = None) -> Path:
    build_bundle(directory, version, created_at=created_at)
    load_bundle(directory)  # sound before the tampering: the tampering is what gets it refused
    KINDS[kind][0](directory)
    return directory


@pytest.mark.parametrize("kind", KINDS)
def test_load_bundle_refuses(kind: str, tmp_path: Path) -> None:
    bundle = tampered(tmp_path / "bad", kind)
    with pytest.raises(ModelError) as info:
        load_bundle(bundle)
    assert KINDS[kind][1] in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
def test_worker_start_up_exits_nonzero(kind: str, tmp_path: Path) -> None:
    bundle = tampered(tmp_path / "bad-1", kind)
    result = subprocess.run([sys.executable, "-m", "newsstream", "worker", "--model-path", str(bundle),
                             "--bootstrap-servers", "127.0.0.1:1", "--metrics-port", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "cannot load the model" in result.stderr and KINDS[kind][1] in result.stderr
    assert str(bundle) in result.stderr  # names the bundle
    # refused before anything else started: it never got as far as the broker
    assert "broker unavailable" not in result.stderr and "worker starting" not in result.stderr


def test_hot_reload_refuses_each_kind_and_keeps_serving(broker, topics_factory, worker_factory,
                                                        models_dir: Path) -> None:
    """One worker, the four kinds one after another (each newest by created_at): each refused and counted."""
    t = topics_factory(partitions=1)
    worker = worker_factory(t, models_dir, model_watch_interval_s=0.3)
    worker.wait_ready(timeout_s=60)
    for n, kind in enumerate(KINDS, start=1):
        tampered(models_dir / f"test-model-bad-{kind}", kind, f"{n + 1}", created_at=f"2026-0{n + 1}-01T00:00:00+00:00")
        worker.wait_for(lambda n=n: worker.metric("newsstream_model_reloads_total", result="refused") == n, 30,
                        f"{kind} refused")
        refused = [e for e in worker.log_events() if e.get("msg", "").startswith("model refused")]
        assert len(refused) == n and KINDS[kind][1] in refused[-1]["error"], refused[-1]
        assert refused[-1]["path"].endswith(f"test-model-bad-{kind}")
        assert refused[-1]["serving"] == {"name": "test-model", "version": "1"}
        assert worker.metric("newsstream_model_info", name="test-model", version="1") == 1
    assert worker.metric("newsstream_model_reloads_total", result="success") == 0

    produce(broker.bootstrap, t.input, [(f"art-{i}".encode(), json.dumps(article(i)).encode()) for i in range(30)])
    out = read_all(broker.bootstrap, t.output, 30, timeout_s=60)
    assert len(out) == 30 and {headers_of(r)["model-version"] for r in out} == {"1"}
    assert worker.get("/readyz")[0] == 200
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
