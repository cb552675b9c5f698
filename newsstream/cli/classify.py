"""``newsstream classify``: JSONL articles in, one enriched JSON line out per article (no Kafka)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Classify JSON Lines articles offline, with the worker's schema and validation."

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help="A bundle directory or a directory of bundles (default: NEWSSTREAM_MODEL_PATH, else "
                             "the newest under models/).")
    parser.add_argument("--input", default="-", help="JSON Lines file, or - for standard input (the default).")
    parser.add_argument("--output", default="-", help="JSON Lines file, or - for standard output (the default).")
    parser.add_argument("--batch-size", type=int, default=256, help="Articles per model call (default 256).")
    parser.add_argument("--strict", action="store_true",
                        help="Exit with status 1 if any line is bad (the rest is still classified).")


def run(args: argparse.Namespace) -> int:
    from streamer.classify import run as classify

    return classify(args.model, args.input, args.output, args.batch_size, args.strict)
