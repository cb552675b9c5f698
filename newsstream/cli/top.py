"""``newsstream top``: a live terminal view of workers' /metrics, for operators without Grafana."""

from __future__ import annotations

import argparse

HELP = "Show a live terminal view of one or more workers' /metrics: rates, lag, dead letters, latency, labels."


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Rates are counters differenced between two scrapes of a worker, summed over workers; p50/p99 "
                     "come from the per-record processing histogram's buckets over the last interval (since the "
                     "worker started when nothing was processed in it); the label mix is each label's share of its "
                     "head's predictions over the same interval. A worker that cannot be scraped shows as down "
                     "with the reason. Ctrl-C quits. Exit status with --once: 0 when at least one worker answered, "
                     "1 when none did.")
    parser.add_argument("urls", nargs="*", metavar="URL", default=None,
                        help="Metrics URLs of the workers to watch; host:port means http://host:port/metrics. "
                             "Default: http://127.0.0.1:9108/metrics.")
    parser.add_argument("--interval", type=_positive, default=1.0,
                        help="Seconds between scrapes (and between refreshes of the view). Default: 1.")
    parser.add_argument("--timeout", type=_positive, default=1.0,
                        help="Seconds to wait for one worker's /metrics before showing it as down. Default: 1.")
    parser.add_argument("--once", action="store_true",
                        help="Scrape twice, --interval apart, print one frame and exit (for scripts and logs).")
    parser.add_argument("--no-color", action="store_true",
                        help="Print without colours (NO_COLOR in the environment does the same).")


def run(args: argparse.Namespace) -> int:
    from streamer.top import DEFAULT_URL
    from streamer.top_view import run as top

    return top(args.urls or [DEFAULT_URL], interval=args.interval, once=args.once, color=not args.no_color,
               timeout_s=args.timeout)
