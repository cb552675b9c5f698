"""The command line: every help text is a whole sentence; offline classification never loads kafka-python."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from newsstream.cli import COMMANDS, build_parser


def _subparsers(monkeypatch: pytest.MonkeyPatch) -> dict[str, argparse.ArgumentParser]:
    monkeypatch.setattr(sys, "argv", ["newsstream", "--help"])  # configures every command
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_help_text_is_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    subparsers = _subparsers(monkeypatch)
    assert set(subparsers) == set(COMMANDS)
    bad = []
    for name, sub in subparsers.items():
        assert sub.description and sub.description[0].isupper() and sub.description.endswith("."), name
        for action in sub._actions:
            text = action.help
            if text in (None, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
                continue
            assert isinstance(text, str)
            if not (text[0].isupper() or text[0] in "`-") or not text.rstrip().endswith((".", ".)")):
                bad.append(f"{name} {'/'.join(action.option_strings) or action.dest}: {text!r}")
    assert not bad, "\n".join(bad)


def test_offline_classify_does_not_import_kafka(model_v1: Path, tmp_path: Path) -> None:
    examples = str(ROOT / "examples" / "articles.jsonl")
    code = ("import sys; from newsstream.cli import main; "
            f"rc = main(['classify', '--model', {str(model_v1)!r}, '--input', {examples!r},"
            f" '--output', {str(tmp_path / 'out.jsonl')!r}]); "
            "assert rc == 0, rc; "
            "loaded = sorted(m for m in sys.modules if m == 'kafka' or m.startswith('kafka.')); "
            "assert not loaded, loaded")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.jsonl").read_text().count("\n") >= 10
