"""Tampered or corrupt model bundles: refused by ``load_bundle`` with a clear error, fatal at start-up (non-zero
exit, the error on stderr), and refused during hot reload while the old model keeps serving.

The second half tests :class:`streamer.model_watch.ModelHolder` directly (no broker: the watcher's decisions are
file-system logic, driven here with ``check()`` instead of the thread): model files replaced under an unchanged
card, half-copied bundles, the newest bad bundle at start-up and during reload.

The existing ``tests/test_worker_reload.py`` covers one flipped byte (sha mismatch) at start-up and at reload;
here are the four ways a bundle goes wrong, each on all three paths.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import joblib
import pytest
from bundles import build_bundle, copy_torn, corrupt_bundle, finish_copy, move_in, other_model_bytes
from conftest import ROOT, article, headers_of, produce, read_all
from prometheus_client import CollectorRegistry

from streamer.artifact import CARD_FILE, MODEL_FILE, ModelError, find_latest, list_bundles, load_bundle, sha256_file
from streamer.metrics import Metrics
from streamer.model_watch import ModelHolder, fingerprint


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
                                                        models_dir: Path, tmp_path: Path) -> None:
    """One worker, the four kinds one after another (each newest by created_at): each refused and counted."""
    t = topics_factory(partitions=1)
    worker = worker_factory(t, models_dir, model_watch_interval_s=0.3)
    worker.wait_ready(timeout_s=60)
    for n, kind in enumerate(KINDS, start=1):
        # Built and tampered aside, moved in with one rename: the watcher never sees it before the damage.
        move_in(tampered(tmp_path / f"test-model-bad-{kind}", kind, f"{n + 1}",
                         created_at=f"2026-0{n + 1}-01T00:00:00+00:00"), models_dir)
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


# ---- ModelHolder without a broker -----------------------------------------------------------------------------

V1, V2, V3 = "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"


def _holder(location: Path) -> ModelHolder:
    return ModelHolder(location, Metrics(CollectorRegistry()), interval_s=0)


def _count(holder: ModelHolder, result: str) -> float:
    return holder.metrics.model_reloads.labels(result=result)._value.get()


def _records(caplog: pytest.LogCaptureFixture, prefix: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(prefix)]


def _replace_model(bundle: Path, data: bytes) -> None:
    tmp = bundle.parent / ".model.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, bundle / MODEL_FILE)


def test_list_bundles_newest_first(tmp_path: Path) -> None:
    models = tmp_path / "models"
    build_bundle(models / "b", "2", created_at=V2)
    build_bundle(models / "a", "1", created_at=V1)
    build_bundle(models / "c", "3", created_at=V3)
    (models / "torn").mkdir()
    (models / "torn" / CARD_FILE).write_text('{"name": "test-model", "created_at": "2027')  # still being copied
    assert list_bundles(models) == [models / "c", models / "b", models / "a"]
    assert find_latest(models) == models / "c"
    assert list_bundles(models, name="other") == []


def test_fingerprint_covers_the_model_file(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "b", "1", created_at=V1)
    before = fingerprint(bundle)
    assert fingerprint(bundle) == before  # looking changes nothing
    _replace_model(bundle, other_model_bytes(bundle))
    assert fingerprint(bundle) != before
    (bundle / MODEL_FILE).unlink()
    assert fingerprint(bundle).endswith(":missing")


def test_model_file_replaced_under_same_card_refused_once_then_restored(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    bundle = build_bundle(tmp_path / "b", "1", created_at=V1)
    original = (bundle / MODEL_FILE).read_bytes()
    holder = _holder(bundle)
    _replace_model(bundle, other_model_bytes(bundle))
    for _ in range(3):  # refused once; unchanged files are not refused or logged again
        assert holder.check() is False
    assert _count(holder, "refused") == 1
    refused = _records(caplog, "model refused")
    assert len(refused) == 1 and "does not match the card" in refused[0].error  # type: ignore[attr-defined]
    assert holder.current.version == "1" and holder.swap_if_pending() is False

    _replace_model(bundle, original)  # put back: the same content as what serves, nothing to reload
    assert holder.check() is False and holder.swap_if_pending() is False
    assert _count(holder, "refused") == 1 and _count(holder, "success") == 0
    # ... and a later damage to it is noticed again (the refusal was forgotten once the file changed)
    _replace_model(bundle, original[:100])
    assert holder.check() is False and _count(holder, "refused") == 2


def test_half_copied_bundle_retried_at_each_change_until_complete(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    models = tmp_path / "models"
    build_bundle(models / "test-model-1", "1", created_at=V1)
    source = build_bundle(tmp_path / "v2", "2", created_at=V2)
    holder = _holder(models)
    # card first, no model file yet
    dest = models / "test-model-2"
    dest.mkdir()
    (dest / CARD_FILE).write_bytes((source / CARD_FILE).read_bytes())
    assert holder.check() is False and holder.check() is False
    assert _count(holder, "refused") == 1 and "model file not found" in _records(caplog, "model refused")[0].error  # type: ignore[attr-defined]
    # part of the model file
    data = (source / MODEL_FILE).read_bytes()
    (dest / MODEL_FILE).write_bytes(data[: len(data) // 3])
    assert holder.check() is False and holder.check() is False
    assert _count(holder, "refused") == 2 and "does not match the card" in _records(caplog, "model refused")[1].error  # type: ignore[attr-defined]
    finish_copy(source, dest)
    assert holder.check() is True
    assert holder.swap_if_pending() is True and holder.current.version == "2"
    assert holder.check() is False and _count(holder, "refused") == 2 and _count(holder, "success") == 1


def test_torn_copy_helper_is_refused_then_served(tmp_path: Path) -> None:
    models = tmp_path / "models"
    build_bundle(models / "test-model-1", "1", created_at=V1)
    source = build_bundle(tmp_path / "v2", "2", created_at=V2)
    holder = _holder(models)
    dest = copy_torn(source, models / "test-model-2")
    assert holder.check() is False and _count(holder, "refused") == 1
    finish_copy(source, dest)
    assert holder.check() is True and holder.swap_if_pending() and holder.current.version == "2"


def test_reload_takes_the_newest_that_verifies_but_never_goes_back(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    models = tmp_path / "models"
    build_bundle(models / "test-model-1", "1", created_at=V1)
    holder = _holder(models)
    # v2 sound, v3 (newest) corrupt, both arrive before a check: v3 refused, v2 (newer than what serves) staged
    move_in(build_bundle(tmp_path / "test-model-2", "2", created_at=V2), models)
    move_in(corrupt_bundle(tmp_path / "test-model-3", "3", created_at=V3), models)
    assert holder.check() is True and holder.swap_if_pending() and holder.current.version == "2"
    assert _count(holder, "refused") == 1
    assert _records(caplog, "model refused")[0].path.endswith("test-model-3")  # type: ignore[attr-defined]
    assert holder.check() is False and _count(holder, "refused") == 1  # v3 not retried while unchanged

    # Now the serving v2 goes bad on disk: refused; the loaded v2 keeps serving, no fall back to the older v1.
    _replace_model(models / "test-model-2", b"not a model")
    assert holder.check() is False and holder.swap_if_pending() is False
    assert holder.current.version == "2" and _count(holder, "refused") == 2
    assert holder.check() is False and _count(holder, "refused") == 2

    # v3 repaired (rewritten whole): retried because its files changed, and served
    shutil.rmtree(models / "test-model-3")
    move_in(build_bundle(tmp_path / "test-model-3", "3", created_at=V3), models)
    assert holder.check() is True and holder.swap_if_pending() and holder.current.version == "3"
    assert _count(holder, "success") == 2


def test_start_up_serves_the_newest_that_verifies(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    models = tmp_path / "models"
    build_bundle(models / "test-model-1", "1", created_at=V1)
    corrupt_bundle(models / "test-model-2", "2", created_at=V2)
    tampered(models / "test-model-3", "incompatible_sklearn", "3", created_at=V3)
    (models / "torn").mkdir()
    (models / "torn" / CARD_FILE).write_text("{")
    caplog.set_level(logging.WARNING)
    holder = _holder(models)
    assert holder.current.version == "1"
    skipped = _records(caplog, "model bundle skipped")
    by_path = {r.path: r for r in skipped}  # type: ignore[attr-defined]
    assert set(by_path) == {str(models / n) for n in ("test-model-3", "test-model-2", "torn")}
    assert all(r.levelno == logging.WARNING for r in skipped)
    assert "sha256" in by_path[str(models / "test-model-2")].error  # type: ignore[attr-defined]
    assert "scikit-learn 0.24.2" in by_path[str(models / "test-model-3")].error  # type: ignore[attr-defined]
    assert _count(holder, "refused") == 2
    # the watcher knows them: not refused again while unchanged
    assert holder.check() is False and _count(holder, "refused") == 2 and not _records(caplog, "model refused")


def test_start_up_with_nothing_that_verifies_names_every_bundle(tmp_path: Path) -> None:
    models = tmp_path / "models"
    corrupt_bundle(models / "test-model-1", "1", created_at=V1)
    tampered(models / "test-model-2", "wrong_sha256", "2", created_at=V2)
    with pytest.raises(ModelError) as info:
        _holder(models)
    message = str(info.value)
    assert "none of the 2 bundles" in message
    assert str(models / "test-model-1") in message and str(models / "test-model-2") in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no model bundle found"):
        _holder(tmp_path / "empty")
    with pytest.raises(ModelError, match="does not exist"):
        _holder(tmp_path / "nowhere")
