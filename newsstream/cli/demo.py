"""``newsstream demo`` (what ``make run`` runs): broker, worker and the example articles on one machine."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Run the main job on one machine: the embedded broker, the worker and the example articles, as a table."

def configure(parser: argparse.ArgumentParser) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "articles.jsonl"
    parser.add_argument("--once", action="store_true", help="Stop after printing the table.")
    parser.add_argument("--port", type=int, default=None,
                        help="Broker port (default: 9092 if it is free, else any free port; 0: any free port).")
    parser.add_argument("--metrics-port", type=int, default=9108,
                        help="Metrics port on 127.0.0.1 (default 9108; 0: any free port).")
    parser.add_argument("--examples", type=Path, default=examples, help="JSON Lines articles to publish.")
    parser.add_argument("--model", type=Path, default=None,
                        help="A model bundle or a directory of bundles (default: NEWSSTREAM_MODEL_PATH, else models/).")
    parser.add_argument("--partitions", type=int, default=4, help="Partitions of the input topic (default 4).")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="Seconds to wait for every result (default 90).")


def run(args: argparse.Namespace) -> int:
    from newsstream.demo import run as demo

    return demo(args)
