"""``newsstream tail``: print enriched events or dead letters, one readable line each."""

from __future__ import annotations

import argparse

HELP = "Print enriched events or dead letters from a topic, one readable line each."

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", default=None, help="topic to read (default: NEWSSTREAM_OUTPUT_TOPIC)")
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    parser.add_argument("--max-messages", type=int, default=0, help="stop after this many (default: no limit)")
    parser.add_argument("--timeout", type=float, default=0.0, help="stop after this many idle seconds (0: never)")
    parser.add_argument("--json", action="store_true", help="print the raw value")
    parser.add_argument("--bootstrap-servers", default=None, help="default: NEWSSTREAM_BOOTSTRAP_SERVERS")


def run(args: argparse.Namespace) -> int:
    from streamer.tail import run as tail

    return tail(args.topic, args.from_beginning, args.max_messages, args.timeout, args.json, args.bootstrap_servers)
