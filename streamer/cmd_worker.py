"""``newsstream worker``: the long-running Kafka worker. Every setting is a flag and a NEWSSTREAM_ variable."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from streamer.artifact import ModelError
from streamer.http import Health, MetricsServer
from streamer.logs import configure_logging
from streamer.metrics import Metrics
from streamer.model_watch import ModelHolder
from streamer.settings import Settings, add_arguments, from_args

log = logging.getLogger("streamer.worker")


def default_models_dir() -> Path:
    """``./models`` when run from a checkout, else the one beside the installed package (editable install)."""
    here = Path("models")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "models"


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        settings = from_args(args)
    except ValidationError as exc:
        print(f"newsstream worker: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    return serve(settings)


def _give_up(timeout_s: float) -> None:
    log.error("shutdown took too long; exiting without a clean close", extra={"timeout_seconds": timeout_s})
    logging.shutdown()
    os._exit(1)


def serve(settings: Settings, registry: CollectorRegistry | None = None) -> int:
    from streamer.worker import Worker  # kafka-python is only needed here, not for --help

    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry)
    location = settings.model_path or default_models_dir()
    try:
        models = ModelHolder(location, metrics, settings.model_watch_interval_s)
    except ModelError as exc:
        log.error("cannot load the model; refusing to start", extra={"path": str(location), "error": str(exc)})
        print(f"newsstream worker: cannot load the model from {location}: {exc}", file=sys.stderr)
        return 3
    health = Health(settings.heartbeat_timeout_s)
    try:
        server = MetricsServer(settings.metrics_host, settings.metrics_port, registry, health).start()
    except OSError as exc:
        print(f"newsstream worker: cannot listen on {settings.metrics_host}:{settings.metrics_port}: {exc}",
              file=sys.stderr)
        return 4
    worker = Worker(settings, metrics, models, health)

    def on_stop(signum: int, frame: FrameType | None) -> None:
        log.info("stop requested; finishing the batch", extra={"signal": signal.Signals(signum).name})
        if worker.stopping:
            return
        worker.request_stop()
        # The promise is "gone within 10 s": if a broker call hangs the drain, give up; the uncommitted
        # batch is re-read by whoever owns the partition next.
        watchdog = threading.Timer(settings.shutdown_timeout_s, _give_up, args=(settings.shutdown_timeout_s,))
        watchdog.daemon = True
        watchdog.start()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        models.poke()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hup)
    host, port = server.address
    log.info("worker starting", extra={"model": models.current.describe(), "model_path": str(location),
                                       "metrics": f"http://{host}:{port}/metrics"})
    models.start()
    try:
        code = worker.run()
    finally:
        models.stop()
        server.stop()
    log.info("worker stopped", extra={"batches": worker.batches})
    return code
