"""``newsstream produce --file articles.jsonl``: publish each non-empty line as one message, as is."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Publish the lines of a JSON Lines file to a topic, one message each."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Exit status: 0 when every message was acknowledged, 1 when any failed (the count and the "
                     "first error are printed), 2 when the file cannot be read, 3 when no broker can be reached.")
    parser.add_argument("--file", type=Path, required=True,
                        help="JSON Lines file with one article a line; - reads standard input.")
    parser.add_argument("--topic", default=None,
                        help="Topic to publish to. Default: the input topic (NEWSSTREAM_INPUT_TOPIC).")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="Messages per second to pace a replay at. Default: as fast as possible.")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="Kafka bootstrap servers, host:port[,host:port…]. Default: NEWSSTREAM_BOOTSTRAP_SERVERS.")
    parser.add_argument("--repeat", type=int, default=1,
                        help="Send the file this many times, for load tests. Default: 1.")


def run(args: argparse.Namespace) -> int:
    from streamer.produce import run as produce

    return produce(args.file, args.topic, args.rate, args.bootstrap_servers, max(1, args.repeat))
