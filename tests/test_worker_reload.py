"""Hot reload: a new version is picked up without a restart; a corrupted one is refused, the old keeps serving."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from bundles import build_bundle, corrupt_bundle
from conftest import ROOT, article, headers_of, produce, read_all


def _send(broker, topic: str, start: int, n: int) -> None:
    produce(broker.bootstrap, topic, [(f"art-{i}".encode(), json.dumps(article(i)).encode())
                                      for i in range(start, start + n)])


def _versions(broker, topic: str, n: int) -> dict[str, str]:
    return {json.loads(r.value)["id"]: headers_of(r)["model-version"]
            for r in read_all(broker.bootstrap, topic, n, timeout_s=30)}


def test_new_version_picked_up_and_corrupted_refused(broker, topics_factory, worker_factory,
                                                      models_dir: Path) -> None:
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
    corrupt_bundle(models_dir / "test-model-3", "3", created_at="2026-03-01T00:00:00+00:00")
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
