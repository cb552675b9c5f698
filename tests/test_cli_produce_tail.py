"""``newsstream produce`` and ``newsstream tail`` against the real broker: what users replay and watch with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, read_all

from streamer.broker import create_topics


def _cli(broker, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
    env["NEWSSTREAM_BOOTSTRAP_SERVERS"] = broker.bootstrap
    return subprocess.run([sys.executable, "-m", "newsstream", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_produce_then_tail(broker, unique, tmp_path: Path) -> None:
    topic = unique("cli")
    create_topics(broker.bootstrap, {topic: 2})
    lines = [json.dumps({"id": f"c-{i}", "text": f"t {i}"}) for i in range(20)] + ["{broken"]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n\n")
    produced = _cli(broker, "produce", "--file", str(source), "--topic", topic, "--rate", "200")
    assert produced.returncode == 0, produced.stderr
    assert "published 21 message(s)" in produced.stderr

    records = read_all(broker.bootstrap, topic, 21, timeout_s=20)
    assert sorted(r.value.decode() for r in records) == sorted(lines)  # sent byte for byte, bad line too
    assert {r.key for r in records} == {f"c-{i}".encode() for i in range(20)} | {None}

    tailed = _cli(broker, "tail", "--topic", topic, "--from-beginning", "--max-messages", "21", "--json")
    assert tailed.returncode == 0, tailed.stderr
    assert sorted(tailed.stdout.splitlines()) == sorted(lines)

    idle = _cli(broker, "tail", "--topic", topic, "--timeout", "1")  # only new messages: none come
    assert idle.returncode == 0 and idle.stdout == ""
