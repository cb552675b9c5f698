"""``newsstream evaluate --model PATH --data FILE [--baseline PATH] [--json]``.

Without ``--baseline``: per-head accuracy, macro-F1 and the per-class table of one bundle. With it, an evaluation
gate: both bundles on the same rows, per head the difference in macro-F1 with a paired-bootstrap 95 % interval
and the classes that got worse. Exit codes: 0 scored (and, with a baseline, not worse on any head), 1 worse than
the baseline beyond the interval on at least one head, 2 the bundles or the data cannot be used.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from streamer.artifact import ModelError, find_latest, load_bundle
from training.compare import compare, summary_lines
from training.data import DataError, LoadReport, read_rows
from training.metrics import evaluate_rows, format_table

WORSE = 1


def run(args: Any) -> int:
    try:
        model_dir = args.model or find_latest(args.models_dir)
        bundle = load_bundle(model_dir)
        baseline = load_bundle(args.baseline) if getattr(args, "baseline", None) else None
    except ModelError as exc:
        print(f"newsstream evaluate: {exc}", file=sys.stderr)
        return 2
    if baseline is not None and bundle.taxonomy.labels != baseline.taxonomy.labels:
        changes = "; ".join(baseline.taxonomy.differences(bundle.taxonomy)) or "label order"
        print(f"newsstream evaluate: the two bundles have different taxonomies ({changes}); a gate compares "
              "models of one taxonomy", file=sys.stderr)
        return 2
    report = LoadReport()
    try:
        rows = read_rows(args.data, skip_invalid=args.skip_invalid, report=report, taxonomy=bundle.taxonomy)
    except DataError as exc:
        print(f"newsstream evaluate: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"newsstream evaluate: {args.data}: no labeled rows", file=sys.stderr)
        return 2
    if baseline is not None:
        return gate(args, bundle, baseline, rows, report)
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


def gate(args: Any, bundle: Any, baseline: Any, rows: list[Any], report: LoadReport) -> int:
    result = compare(baseline, bundle, rows, rounds=args.rounds, seed=args.seed)
    heads = {head: h for head, h in result.items() if isinstance(h, dict)}
    worse = sorted(head for head, h in heads.items() if h["verdict"] == "worse")
    if args.json:
        out = {"model": {**bundle.describe(), "path": str(bundle.path)},
               "baseline": {**baseline.describe(), "path": str(baseline.path)},
               "data": str(args.data), "rows": len(rows), "invalid": report.invalid, "rounds": args.rounds,
               "passed": not worse, "worse_heads": worse, "heads": heads}
        print(json.dumps(out, indent=2))
    else:
        print(f"model {bundle.name} {bundle.version} vs baseline {baseline.name} {baseline.version} on {args.data}: "
              f"{len(rows)} rows, paired bootstrap {args.rounds} rounds, 95 % intervals")
        print("\n".join(summary_lines(heads)))
        print(f"FAILED: worse than the baseline on {', '.join(worse)}" if worse
              else "passed: not worse than the baseline on any head")
    return WORSE if worse else 0
