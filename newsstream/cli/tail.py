"""``newsstream tail``: print enriched events or dead letters, one readable line each."""

from __future__ import annotations

import argparse

HELP = "Print enriched events or dead letters from a topic, one readable line each."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Reads committed messages only (read_committed), without a consumer group. Without "
                     "--from-beginning it shows the messages that reach the topic after it started, whatever "
                     "their timestamps. Exit status: 0 after --max-messages, --timeout or Ctrl-C, 1 when the "
                     "topic does not exist, 3 when no broker can be reached.")
    parser.add_argument("--topic", default=None,
                        help="Topic to read. Default: the output topic (NEWSSTREAM_OUTPUT_TOPIC).")
    parser.add_argument("--from-beginning", action="store_true",
                        help="Start at the oldest message instead of at the end of each partition.")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="Stop after printing this many messages. Default: 0, no limit.")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="Stop after this many seconds without a new message. Default: 0, never.")
    parser.add_argument("--json", action="store_true",
                        help="Print each raw message value instead of the readable summary.")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="Kafka bootstrap servers, host:port[,host:port…]. Default: NEWSSTREAM_BOOTSTRAP_SERVERS.")


def run(args: argparse.Namespace) -> int:
    from streamer.tail import run as tail

    return tail(args.topic, args.from_beginning, args.max_messages, args.timeout, args.json, args.bootstrap_servers)
