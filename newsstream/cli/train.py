"""``newsstream train``: the command line of :mod:`training.build`."""

from __future__ import annotations

import argparse
from pathlib import Path

from newsstream.cli.paths import REPO_ROOT

HELP = "Train the model heads on labeled data and write a verified model bundle."

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", type=Path, metavar="FILE",
                        help="A labeled JSON Lines or CSV file (repeatable); default: newsevents/train.jsonl and the "
                             "mapped corpora.")
    parser.add_argument("--taxonomy", type=Path, default=None, metavar="FILE",
                        help="A YAML taxonomy (heads and labels) the --data rows are labeled with, one field per "
                             "head; default: the news taxonomy (topic, incident). The bundle's card records it.")
    parser.add_argument("--min-rows-per-label", type=int, default=5, metavar="N",
                        help="Refuse a head with a label under N training rows (the counts are printed); with "
                             "--taxonomy a label with no rows is refused too.")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="The datasets root (default: $NEWSSTREAM_DATA_DIR, else ../shared/datasets).")
    parser.add_argument("--annotations", action="append", type=Path, metavar="FILE",
                        help="Label-only JSON Lines ({id, topic, incident, sure}) joined to the raw text by id "
                             "(repeatable); "
                             "default: training/annotations/*.jsonl with the default recipe. Label-only files "
                             "given to --data are read this way too.")
    parser.add_argument("--no-annotations", action="store_true",
                        help="Leave training/annotations/*.jsonl out of the default recipe.")
    parser.add_argument("--dev", type=Path, default=None,
                        help="A labeled file scored into the card (default: newsevents/dev.jsonl when present).")
    parser.add_argument("--no-dev", action="store_true", help="Do not score a dev file.")
    parser.add_argument("--mapped", default=None,
                        help="Comma-separated mapped corpora to add (default: the recipe's; 'none' for none).")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models", help="The models directory.")
    parser.add_argument("--name", default="newsstream")
    parser.add_argument("--version", default="1.1.0",
                        help="The bundle version; an existing <out>/<name>-<version> is refused unless --force.")
    parser.add_argument("--force", action="store_true",
                        help="Replace an existing bundle of this name and version (swapped in whole, once verified).")
    parser.add_argument("--seed", type=int, default=0, help="Random seed of the folds and the classifiers.")
    parser.add_argument("--recipe", default=None, metavar="FIELD=VALUE,…",
                        help="Override fields of the chosen recipe (training/selection.json), for example "
                             "featurizer=fast,analyzer=word+char_wb,char_chars=1000.")
    parser.add_argument("--folds", type=int, default=3, help="Cross-validation folds for the none-shift and --select.")
    parser.add_argument("--skip-invalid", action="store_true", help="Skip bad rows (counted) instead of stopping.")
    parser.add_argument("--select", action="store_true", help="Re-run the model-selection comparison first (slow).")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")


def run(args: argparse.Namespace) -> int:
    from training.build import run as train

    return train(args)
