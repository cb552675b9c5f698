"""``newsstream classify``: the worker's schema offline; bad lines reported with their number, rest processed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

from streamer.schemas import EnrichedEvent


def _run(model: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsstream", "classify", "--model", str(model), *args],
                          cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120)


def test_classify_examples_file(model_v1: Path, tmp_path: Path) -> None:
    examples = ROOT / "examples" / "articles.jsonl"
    out = tmp_path / "out.jsonl"
    result = _run(model_v1, "--input", str(examples), "--output", str(out), "--batch-size", "7")
    assert result.returncode == 0, result.stderr
    inputs = [json.loads(line) for line in examples.read_text().splitlines() if line.strip()]
    events = [EnrichedEvent.model_validate_json(line) for line in out.read_text().splitlines()]
    assert [e.id for e in events] == [a["id"] for a in inputs]
    for event, source in zip(events, inputs, strict=True):
        assert event.origin is None and event.model == {"name": "test-model", "version": "1"}
        assert event.model_extra is not None and event.model_extra["expected"] == source["expected"]
        assert event.title == source["title"]


def test_bad_lines_reported_with_line_numbers(model_v1: Path) -> None:
    lines = [
        json.dumps({"id": "a", "title": "Quake", "text": "The ground shook."}),
        "{not json",
        json.dumps({"id": "b", "text": ""}),
        "",
        json.dumps({"title": "no id", "text": "x"}),
        json.dumps({"id": "c", "text": "Markets fell."}),
    ]
    stdin = "\n".join(lines) + "\n"
    result = _run(model_v1, stdin=stdin)
    assert result.returncode == 0
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["a", "c"]
    assert "<stdin>:2: invalid_json" in result.stderr
    assert "<stdin>:3: empty_text" in result.stderr
    assert "<stdin>:5: invalid_schema" in result.stderr and "id" in result.stderr

    strict = _run(model_v1, "--strict", stdin=stdin)
    assert strict.returncode == 1
    assert [json.loads(line)["id"] for line in strict.stdout.splitlines()] == ["a", "c"]


def test_unloadable_model_is_a_clear_error(tmp_path: Path) -> None:
    result = _run(tmp_path / "missing", stdin="")
    assert result.returncode == 2 and "cannot load the model" in result.stderr
