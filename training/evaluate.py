"""``newsstream evaluate --model PATH --data FILE [--json]``: per-head accuracy, macro-F1 and per-class table."""

from __future__ import annotations

import json
import sys
from typing import Any

from streamer.artifact import ModelError, find_latest, load_bundle
from training.data import DataError, LoadReport, read_rows
from training.metrics import evaluate_rows, format_table


def run(args: Any) -> int:
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
