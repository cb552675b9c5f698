"""Hot reload: a new version is picked up without a restart; a corrupted one is refused, the old keeps serving."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from bundles import build_bundle, copy_torn, corrupt_bundle, finish_copy, move_in, other_model_bytes
from conftest import ROOT, article, headers_of, produce, read_all


def _send(broker, topic: str, start: int, n: int) -> None:
    produce(broker.bootstrap, topic, [(f"art-{i}".encode(), json.dumps(article(i)).encode())
                                      for i in range(start, start + n)])


def _versions(broker, topic: str, n: int) -> dict[str, str]:
    return {json.loads(r.value)["id"]: headers_of(r)["model-version"]
            for r in read_all(broker.bootstrap, topic, n, timeout_s=30)}


def test_new_version_picked_up_and_corrupted_refused(broker, topics_factory, worker_factory,
                                                      models_dir: Path, tmp_path: Path) -> None:
    t = topics_factory(partitions=2)
    worker = worker_factory(t, models_dir, model_watch_interval_s=0.3)
    worker.wait_ready()
    _send(broker, t.input, 0, 50)
    assert set(_versions(broker, t.output, 50).values()) == {"1"}

    build_bundle(models_dir / "test-model-2", "2", created_at="2026-02-01T00:00:00+00:00")
    worker.wait_for(lambda: worker.metric("newsstream_model_info", name="test-model", version="2") == 1, 20,
                    "version 2 serving")
    assert worker.metric("newsstream_model_reloads_total", result="success") == 1
    assert worker.metric("newsstream_model_info", name="test-model", version="1") == 0
    _send(broker, t.input, 50, 50)
    versions = _versions(broker, t.output, 100)
    assert {versions[f"art-{i}"] for i in range(50, 100)} == {"2"}

    # Newest by created_at, but its model file no longer matches the card: refused, version 2 keeps serving.
    # Built aside and moved in with one rename: the watcher must never see the sound bundle before the damage.
    move_in(corrupt_bundle(tmp_path / "test-model-3", "3", created_at="2026-03-01T00:00:00+00:00"), models_dir)
    worker.wait_for(lambda: worker.metric("newsstream_model_reloads_total", result="refused") == 1, 20,
                    "version 3 refused")
    _send(broker, t.input, 100, 50)
    versions = _versions(broker, t.output, 150)
    assert {versions[f"art-{i}"] for i in range(100, 150)} == {"2"}
    assert worker.metric("newsstream_model_info", name="test-model", version="2") == 1
    assert worker.get("/readyz")[0] == 200
    refused = [e for e in worker.log_events() if e.get("msg", "").startswith("model refused")]
    assert refused and "sha256" in refused[0]["error"]

    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_sighup_forces_a_check(broker, topics_factory, worker_factory, models_dir: Path) -> None:
    t = topics_factory(partitions=1)
    worker = worker_factory(t, models_dir, model_watch_interval_s=0)  # 0: never on its own
    worker.wait_ready()
    build_bundle(models_dir / "test-model-2", "2", created_at="2026-02-01T00:00:00+00:00")
    worker.signal(signal.SIGHUP)
    worker.wait_for(lambda: worker.metric("newsstream_model_info", name="test-model", version="2") == 1, 20,
                    "version 2 after SIGHUP")
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_bad_model_at_startup_exits_nonzero_with_a_clear_error(tmp_path: Path) -> None:
    bad = corrupt_bundle(tmp_path / "bad-1", "1")
    result = subprocess.run([sys.executable, "-m", "newsstream", "worker", "--model-path", str(bad),
                             "--bootstrap-servers", "127.0.0.1:1", "--metrics-port", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "cannot load the model" in result.stderr and "sha256" in result.stderr

    missing = subprocess.run([sys.executable, "-m", "newsstream", "worker", "--model-path",
                              str(tmp_path / "nowhere"), "--metrics-port", "0"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def _refusals(worker) -> list[dict]:
    return [e for e in worker.log_events() if e.get("msg", "").startswith("model refused")]


def test_model_file_replaced_under_an_unchanged_card_is_refused(broker, topics_factory, worker_factory,
                                                                models_dir: Path, tmp_path: Path) -> None:
    """Someone copies a different model.joblib over the serving one and leaves the card: noticed, refused, counted;
    the verified model in memory keeps serving, and the refusal is said once, not every interval."""
    t = topics_factory(partitions=1)
    worker = worker_factory(t, models_dir, model_watch_interval_s=0.3)
    worker.wait_ready()
    serving = models_dir / "test-model-1"
    card_before = (serving / "card.json").read_bytes()
    (tmp_path / "model.joblib").write_bytes(other_model_bytes(serving))  # a sound model, another sha256
    os.replace(tmp_path / "model.joblib", serving / "model.joblib")  # one change, no torn state in between
    assert (serving / "card.json").read_bytes() == card_before

    worker.wait_for(lambda: worker.metric("newsstream_model_reloads_total", result="refused") == 1, 20,
                    "the replaced model file refused")
    refused = _refusals(worker)
    assert len(refused) == 1 and "does not match the card" in refused[0]["error"], refused
    assert refused[0]["path"].endswith("test-model-1") and refused[0]["serving"]["version"] == "1"

    _send(broker, t.input, 0, 30)
    assert set(_versions(broker, t.output, 30).values()) == {"1"}
    assert worker.metric("newsstream_model_info", name="test-model", version="1") == 1
    # 30 articles through and many intervals later: the unchanged refused file was not refused (or logged) again
    assert worker.metric("newsstream_model_reloads_total", result="refused") == 1
    assert len(_refusals(worker)) == 1
    assert worker.metric("newsstream_model_reloads_total", result="success") == 0
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_half_copied_bundle_is_retried_once_complete(broker, topics_factory, worker_factory, models_dir: Path,
                                                     tmp_path: Path) -> None:
    """card.json of version 2 lands first, model.joblib still being written: refused while torn, served once the
    copy completes (a refused version is retried when a file of it changes)."""
    t = topics_factory(partitions=1)
    worker = worker_factory(t, models_dir, model_watch_interval_s=0.3)
    worker.wait_ready()
    source = build_bundle(tmp_path / "v2", "2", created_at="2026-02-01T00:00:00+00:00")
    dest = copy_torn(source, models_dir / "test-model-2")
    worker.wait_for(lambda: worker.metric("newsstream_model_reloads_total", result="refused") >= 1, 20,
                    "the torn copy refused")
    assert "does not match the card" in _refusals(worker)[-1]["error"]
    assert worker.metric("newsstream_model_info", name="test-model", version="1") == 1

    finish_copy(source, dest)
    worker.wait_for(lambda: worker.metric("newsstream_model_info", name="test-model", version="2") == 1, 20,
                    "version 2 once the copy completed")
    assert worker.metric("newsstream_model_reloads_total", result="success") == 1
    _send(broker, t.input, 0, 30)
    assert set(_versions(broker, t.output, 30).values()) == {"2"}
    assert worker.metric("newsstream_model_reloads_total", result="refused") == 1
    assert len(_refusals(worker)) == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_start_up_skips_a_corrupt_newest_bundle(broker, topics_factory, worker_factory, models_dir: Path) -> None:
    corrupt_bundle(models_dir / "test-model-2", "2", created_at="2026-02-01T00:00:00+00:00")
    t = topics_factory(partitions=1)
    worker = worker_factory(t, models_dir, model_watch_interval_s=0.3)
    worker.wait_ready()
    assert worker.metric("newsstream_model_info", name="test-model", version="1") == 1
    skipped = [e for e in worker.log_events() if e.get("msg", "").startswith("model bundle skipped")]
    assert len(skipped) == 1 and skipped[0]["level"] == "warning", skipped
    assert skipped[0]["path"] == str(models_dir / "test-model-2") and "sha256" in skipped[0]["error"]
    assert worker.metric("newsstream_model_reloads_total", result="refused") == 1
    _send(broker, t.input, 0, 30)
    assert set(_versions(broker, t.output, 30).values()) == {"1"}
    # the watcher knows the skipped bundle: it neither loads it nor refuses it again
    assert worker.metric("newsstream_model_reloads_total", result="refused") == 1
    assert worker.metric("newsstream_model_reloads_total", result="success") == 0
    assert not _refusals(worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_start_up_with_every_bundle_corrupt_exits_3(tmp_path: Path) -> None:
    models = tmp_path / "models"
    corrupt_bundle(models / "test-model-1", "1", created_at="2026-01-01T00:00:00+00:00")
    corrupt_bundle(models / "test-model-2", "2", created_at="2026-02-01T00:00:00+00:00")
    result = subprocess.run([sys.executable, "-m", "newsstream", "worker", "--model-path", str(models),
                             "--bootstrap-servers", "127.0.0.1:1", "--metrics-port", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "cannot load the model" in result.stderr and "none of the 2 bundles" in result.stderr
    for name in ("test-model-1", "test-model-2"):
        assert str(models / name) in result.stderr
    assert "worker starting" not in result.stderr
