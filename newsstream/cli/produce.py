"""``newsstream produce --file articles.jsonl``: publish each non-empty line as one message, as is."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Publish the lines of a JSON Lines file to a topic, one message each."

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, required=True, help="JSONL file, one article a line (- for stdin)")
    parser.add_argument("--topic", default=None, help="target topic (default: NEWSSTREAM_INPUT_TOPIC)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (default: as fast as possible)")
    parser.add_argument("--bootstrap-servers", default=None, help="default: NEWSSTREAM_BOOTSTRAP_SERVERS")
    parser.add_argument("--repeat", type=int, default=1, help="send the file this many times (load tests)")


def run(args: argparse.Namespace) -> int:
    from streamer.produce import run as produce

    return produce(args.file, args.topic, args.rate, args.bootstrap_servers, max(1, args.repeat))
