"""``newsstream train``: the command line of :mod:`training.build`."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Train the model heads on labeled data and write a verified model bundle."

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", type=Path, metavar="FILE",
                        help="labeled JSONL/CSV file (repeatable); default: newsevents/train.jsonl + mapped corpora")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="datasets root (default: $NEWSSTREAM_DATA_DIR or ../shared/datasets)")
    parser.add_argument("--annotations", action="append", type=Path, metavar="FILE",
                        help="label-only JSONL ({id, topic, incident, sure}) joined to raw text by id (repeatable); "
                             "default: training/annotations/*.jsonl with the default recipe. Label-only files "
                             "given to --data are read this way too")
    parser.add_argument("--no-annotations", action="store_true",
                        help="leave out training/annotations/*.jsonl from the default recipe")
    parser.add_argument("--dev", type=Path, default=None,
                        help="labeled file scored into the card (default: newsevents/dev.jsonl if present)")
    parser.add_argument("--no-dev", action="store_true", help="do not score a dev file")
    parser.add_argument("--mapped", default=None,
                        help="comma-separated mapped corpora to add (default: the recipe's; 'none' for none)")
    parser.add_argument("--out", type=Path, default=_repo_root() / "models", help="models directory")
    parser.add_argument("--name", default="newsstream")
    parser.add_argument("--version", default="1.1.0",
                        help="bundle version; an existing <out>/<name>-<version> is refused unless --force")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing bundle of this name and version (swapped in whole, once verified)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3, help="CV folds for the none-shift and --select")
    parser.add_argument("--skip-invalid", action="store_true", help="skip bad rows (counted) instead of stopping")
    parser.add_argument("--select", action="store_true", help="re-run the model-selection comparison first (slow)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _repo_root() -> Path:
    from training.data import REPO_ROOT

    return REPO_ROOT


def run(args: argparse.Namespace) -> int:
    from training.build import run as train

    return train(args)
