"""What the worker tells the operator at start-up: unknown settings (refused, with the closest name), missing topics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
    env.update(extra)
    return env


def test_misspelt_settings_are_named_with_the_closest_real_one_and_refused(broker, model_v1: Path) -> None:
    env = _env(NEWSSTREAM_BOOTSTRAP_SERVERS=broker.bootstrap, NEWSSTREAM_MODEL_PATH=str(model_v1),
               NEWSSTREAM_METRICS_PORT="0", NEWSSTREAM_OUTPUT_TOPICS="mine.enriched",
               NEWSSTREAM_BATCH_MAX_MESAGES="50",
               # Kubernetes service links for a Service named "newsstream": not ours, not typos
               NEWSSTREAM_SERVICE_HOST="10.0.0.1", NEWSSTREAM_PORT_9108_TCP="tcp://10.0.0.1:9108")
    done = subprocess.run([sys.executable, "-m", "newsstream", "worker"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "unknown setting NEWSSTREAM_BATCH_MAX_MESAGES; did you mean NEWSSTREAM_BATCH_MAX_MESSAGES?" in done.stderr
    assert "unknown setting NEWSSTREAM_OUTPUT_TOPICS; did you mean NEWSSTREAM_OUTPUT_TOPIC?" in done.stderr
    assert "SERVICE_HOST" not in done.stderr and "PORT_9108" not in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_topics_are_named_at_start_up(broker, topics_factory, worker_factory,
                                                                   model_v1: Path, unique) -> None:
    t = topics_factory(partitions=2)
    t.dlq = unique("never-created-dlq")
    worker = worker_factory(t, model_v1)
    worker.wait_ready(timeout_s=60)
    events = worker.log_events()
    missing = [e for e in events if e.get("msg", "").startswith("topics missing on the broker")]
    assert missing and missing[0]["level"] == "error", events[-10:]
    assert missing[0]["missing"] == [f"dead-letter topic {t.dlq!r}"]
    status, body = worker.get("/readyz")
    assert status == 200  # a missing topic may be auto-created on first use; it is a warning, named
    assert json.loads(body)["warnings"] == [f"dead-letter topic {t.dlq!r} does not exist on the broker"]
