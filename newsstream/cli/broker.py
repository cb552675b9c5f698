"""``newsstream broker start|stop|run|status``: the embedded Tansu broker for development and demos.

``start`` runs it in the background and writes a pidfile; ``stop`` stops that pid; ``run`` stays in the
foreground until Ctrl-C. Memory-only: topics and messages are gone when it stops.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

HELP = "Start, stop or run the embedded Tansu broker for development (memory only)."
DEFAULT_PIDFILE = Path(".cache/newsstream-broker.json")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "run", "status"],
                        help="Start runs it in the background, stop stops the one started, run keeps it in the "
                             "foreground, status says whether it is up.")
    parser.add_argument("--port", type=int, default=9092, help="Port on 127.0.0.1 (default 9092).")
    parser.add_argument("--pidfile", type=Path, default=DEFAULT_PIDFILE,
                        help="Where start and stop keep the process id.")
    parser.add_argument("--log-file", type=Path, default=None,
                        help="File for the broker's output (default: discarded).")
    parser.add_argument("--topics", nargs="*", default=[], metavar="NAME[:PARTITIONS]",
                        help="Topics to create once it is ready, for example articles:4 articles.enriched:4.")


def _topic_specs(specs: list[str]) -> dict[str, int]:
    out = {}
    for spec in specs:
        name, _, partitions = spec.partition(":")
        out[name] = int(partitions or 1)
    return out


def run(args: argparse.Namespace) -> int:
    from streamer.broker import BrokerError, EmbeddedBroker, create_topics, pid_alive, stop_pid

    pidfile: Path = args.pidfile
    if args.action == "status":
        info = _read(pidfile)
        alive = info is not None and pid_alive(int(info["pid"]))
        print(json.dumps({**(info or {}), "alive": alive}))
        return 0 if alive else 1
    if args.action == "stop":
        info = _read(pidfile)
        if not info:
            print(f"no broker pidfile at {pidfile}", file=sys.stderr)
            return 1
        stop_pid(int(info["pid"]))
        pidfile.unlink(missing_ok=True)
        print(f"broker {info['bootstrap']} (pid {info['pid']}) stopped")
        return 0
    broker = EmbeddedBroker(port=args.port, log_path=args.log_file)
    try:
        broker.start()
        if args.topics:
            create_topics(broker.bootstrap, _topic_specs(args.topics))
    except BrokerError as exc:
        print(f"newsstream broker: {exc}", file=sys.stderr)
        broker.stop()
        return 1
    assert broker.process is not None
    if args.action == "start":
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(json.dumps({"pid": broker.process.pid, "bootstrap": broker.bootstrap}))
        print(f"broker ready on {broker.bootstrap} (pid {broker.process.pid}); stop with: newsstream broker stop")
        # Detach: the broker lives on in its own session after we exit.
        broker.process = None
        return 0
    print(f"broker ready on {broker.bootstrap}; Ctrl-C stops it", flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.wait(0.5):
        if not broker.alive():
            print("newsstream broker: the broker process exited", file=sys.stderr)
            return 1
    broker.stop()
    return 0


def _read(pidfile: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(pidfile.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
