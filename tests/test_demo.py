"""``newsstream demo --once`` (``make run`` without the wait): broker, worker, examples, table, clean stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_demo_once(model_v1: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
    env["NEWSSTREAM_MODEL_PATH"] = str(model_v1)
    # port 0 for both: a developer's own broker or worker on 9092/9108 must not break the test
    result = subprocess.run([sys.executable, "-m", "newsstream", "demo", "--once", "--metrics-port", "0",
                             "--port", "0", "--timeout", "60"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [json.loads(line)["id"] for line in (ROOT / "examples" / "articles.jsonl").read_text().splitlines()
           if line.strip()]
    table_ids = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert set(ids) <= table_ids
    assert "metrics    http://127.0.0.1:" in result.stdout
    assert "stopped    worker, metrics server and broker" in result.stdout
    assert "article(s) processed" in result.stdout
