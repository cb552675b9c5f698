"""``newsstream evaluate``: the command line of :mod:`training.evaluate`."""

from __future__ import annotations

import argparse
from pathlib import Path

from newsstream.cli.paths import REPO_ROOT

HELP = ("Score a model bundle on labeled data (accuracy, macro-F1, per-class F1 per head); with --baseline, "
        "a promotion gate that exits 1 when the model is worse.")

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help="The bundle directory (default: the newest under models/).")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, required=True,
                        help="A labeled JSON Lines or CSV file, one field per head of the model's taxonomy.")
    parser.add_argument("--baseline", type=Path, default=None, metavar="BUNDLE",
                        help="The serving model: compare on the same rows (paired bootstrap) and exit 1 when --model "
                             "is worse beyond the 95 %% interval on any head.")
    parser.add_argument("--rounds", type=int, default=1000, help="Bootstrap resamples for --baseline.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the bootstrap resamples.")
    parser.add_argument("--skip-invalid", action="store_true", help="Skip bad rows (counted) instead of stopping.")
    parser.add_argument("--json", action="store_true", help="Print the metrics as one JSON object.")


def run(args: argparse.Namespace) -> int:
    from training.evaluate import run as evaluate

    return evaluate(args)
