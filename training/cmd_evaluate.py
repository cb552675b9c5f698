"""``newsstream evaluate --model PATH --data FILE [--json]``: per-head accuracy, macro-F1 and per-class table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streamer.artifact import ModelError, find_latest, load_bundle
from training.data import REPO_ROOT, DataError, LoadReport, read_rows
from training.metrics import evaluate_rows, format_table


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="bundle directory (default: newest under models/)")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, required=True, help="labeled JSONL or CSV file")
    parser.add_argument("--skip-invalid", action="store_true", help="skip bad rows (counted) instead of stopping")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def run(args: argparse.Namespace) -> int:
    try:
        model_dir = args.model or find_latest(args.models_dir)
        bundle = load_bundle(model_dir)
    except ModelError as exc:
        print(f"newsstream evaluate: {exc}", file=sys.stderr)
        return 2
    report = LoadReport()
    try:
        rows = read_rows(args.data, skip_invalid=args.skip_invalid, report=report)
    except DataError as exc:
        print(f"newsstream evaluate: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"newsstream evaluate: {args.data}: no labeled rows", file=sys.stderr)
        return 2
    metrics = evaluate_rows(bundle, rows)
    if args.json:
        out = {"model": {**bundle.describe(), "path": str(model_dir)}, "data": str(args.data),
               "rows": len(rows), "invalid": report.invalid, "heads": metrics}
        print(json.dumps(out, indent=2))
        return 0
    print(f"model {bundle.name} {bundle.version} ({model_dir}) on {args.data}: {len(rows)} rows"
          + (f", {report.invalid} invalid skipped" if report.invalid else ""))
    for head, head_metrics in metrics.items():
        print()
        print(format_table(head, head_metrics))
    return 0
