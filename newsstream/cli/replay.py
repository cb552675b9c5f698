"""``newsstream replay``: re-classify the input topic's history into another topic."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Re-classify the input topic's history into another topic, without touching the live consumer group."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Reads the input topic by manual assignment and stops at each partition's end offset as it was when the "
        "replay started; records are classified, dead-lettered and published exactly as the worker does. "
        "Settings (bootstrap servers, security, topics, batch size, limits) come from the NEWSSTREAM_* variables "
        "like the worker's. Exit status: 0 when done (or at --limit), 1 when a topic is missing or the replay "
        "stopped part-way, 2 on bad arguments, 3 when no broker can be reached or no model bundle verifies, 130 "
        "when interrupted (the batch in flight is settled first).")
    parser.add_argument("--from", dest="from_", required=True, metavar="earliest|TIME",
                        help="Where to begin: earliest, or an ISO-8601 time (UTC when it has no zone): each "
                             "partition is replayed from its first record with a timestamp at or after it.")
    parser.add_argument("--until", default=None, metavar="TIME|now",
                        help="Stop each partition at its first record with a timestamp at or after this ISO-8601 "
                             "time (or now). Default: the end offsets taken at start only.")
    parser.add_argument("--output-topic", required=True,
                        help="Topic to publish the enriched events to (must exist; not the input topic).")
    parser.add_argument("--model", type=Path, default=None,
                        help="A bundle directory or a directory of bundles, newest that verifies wins. Default: "
                             "NEWSSTREAM_MODEL_PATH, else the newest under models/.")
    parser.add_argument("--group", default=None,
                        help="A consumer group of the replay's own: its progress is committed there after the "
                             "outputs are acknowledged, and a rerun continues from it instead of --from. Never "
                             "the worker's group. Default: no group, nothing committed.")
    parser.add_argument("--input-topic", default=None,
                        help="Topic to replay. Default: the input topic (NEWSSTREAM_INPUT_TOPIC).")
    parser.add_argument("--dlq-topic", default=None,
                        help="Dead-letter topic for records that cannot be processed. Default: NEWSSTREAM_DLQ_TOPIC.")
    parser.add_argument("--limit", type=int, default=0,
                        help="Stop after replaying this many records (with --group, a rerun continues). Default: 0, "
                             "no limit.")
    parser.add_argument("--no-progress", action="store_true",
                        help="Print no progress while replaying; only the summary at the end.")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="Kafka bootstrap servers, host:port[,host:port…]. Default: NEWSSTREAM_BOOTSTRAP_SERVERS.")


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from pydantic import ValidationError

    from streamer.replay import EXIT_USAGE, Window, parse_time, settings_for
    from streamer.replay import run as replay
    from streamer.settings import unknown_variables

    unknown = unknown_variables(os.environ)
    if unknown:  # as the worker: a misspelt NEWSSTREAM_INPUT_TOPIC must not replay the default topic instead
        name, closest = unknown[0]
        hint = f"; did you mean {closest}?" if closest else ""
        print(f"newsstream replay: unknown setting {name}{hint}", file=sys.stderr)
        return EXIT_USAGE
    try:
        from_ms = None if args.from_.strip().lower() == "earliest" else parse_time(args.from_)
        until_ms = None if args.until is None else parse_time(args.until)
    except ValueError as exc:
        print(f"newsstream replay: --from/--until take earliest, now or an ISO-8601 time: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if from_ms is not None and until_ms is not None and until_ms <= from_ms:
        print("newsstream replay: --until must be later than --from", file=sys.stderr)
        return EXIT_USAGE
    if args.limit < 0:
        print("newsstream replay: --limit must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = settings_for(args.bootstrap_servers, args.input_topic, args.dlq_topic, args.model)
    except ValidationError as exc:
        print(f"newsstream replay: invalid settings:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    return replay(settings, args.output_topic, Window(from_ms, until_ms), group=args.group, limit=args.limit,
                  progress=not args.no_progress)
