"""The one place the worker is wired: settings → model holder → metrics → HTTP → loop.

``newsstream worker``, the ``make run`` demo and the benchmark all build the worker here, so what they run is
what is deployed.

>>> from streamer.settings import Settings
>>> app = App.build(Settings(metrics_port=0, model_watch_interval_s=0))   # loads and verifies the model
>>> app.health.ready()[0]                                                 # not a group member yet
False
>>> app.close()
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from prometheus_client import CollectorRegistry

from streamer.artifact import ModelError
from streamer.http import Health, MetricsServer
from streamer.metrics import Metrics
from streamer.model_watch import ModelHolder, default_models_dir
from streamer.settings import Settings
from streamer.shadow import Shadow
from streamer.worker import Worker

log = logging.getLogger("streamer.worker")


class StartupError(Exception):
    """The worker cannot start; ``exit_code`` says why (3: no model verifies, 4: the metrics port)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class App:
    settings: Settings
    registry: CollectorRegistry
    metrics: Metrics
    models: ModelHolder
    health: Health
    server: MetricsServer
    worker: Worker
    thread: threading.Thread | None = None

    @classmethod
    def build(cls, settings: Settings, registry: CollectorRegistry | None = None) -> App:
        registry = registry if registry is not None else CollectorRegistry()
        metrics = Metrics(registry, settings.drift_window_predictions, settings.drift_min_predictions)
        location = settings.model_path or default_models_dir()
        reference = None
        if settings.drift_reference_path is not None:
            try:
                reference = json.loads(settings.drift_reference_path.read_text(encoding="utf-8"))
                if not isinstance(reference, dict):
                    raise ValueError("expected a JSON object {head: {label: share}}")
            except (OSError, ValueError) as exc:
                raise StartupError(f"cannot read NEWSSTREAM_DRIFT_REFERENCE_PATH "
                                   f"{settings.drift_reference_path}: {exc}", 2) from exc
        try:
            models = ModelHolder(location, metrics, settings.model_watch_interval_s,
                                 settings.model_allow_taxonomy_change, reference)
        except ModelError as exc:
            raise StartupError(f"cannot load the model from {location}: {exc}", 3) from exc
        shadow = None
        if settings.shadow_model_path is not None:
            # A shadow that does not verify is refused here, logged and counted; the live model serves regardless.
            shadow = Shadow.load(settings.shadow_model_path, metrics, list(models.current.labels),
                                 settings.drift_window_predictions)
        health = Health(settings.heartbeat_timeout_s)
        try:
            server = MetricsServer(settings.metrics_host, settings.metrics_port, registry, health).start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {settings.metrics_host}:{settings.metrics_port}: {exc}", 4) from exc
        worker = Worker(settings, metrics, models, health, shadow)
        return cls(settings, registry, metrics, models, health, server, worker)

    @property
    def metrics_url(self) -> str:
        host, port = self.server.address
        return f"http://{host}:{port}/metrics"

    def run(self) -> int:
        """The loop in this thread until :meth:`stop` (or SIGTERM, with :meth:`install_signal_handlers`)."""
        log.info("worker starting", extra={"model": self.models.current.describe(),
                                           "model_path": str(self.models.location), "metrics": self.metrics_url})
        self.models.start()
        try:
            code = self.worker.run()
        finally:
            self.close()
        log.info("worker stopped", extra={"batches": self.worker.batches})
        return code

    def start(self) -> App:
        """The loop in a background thread (demo, benchmark)."""
        self.thread = threading.Thread(target=self.run, name="worker", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.worker.request_stop()
        if self.thread is not None:
            self.thread.join(timeout_s)

    def close(self) -> None:
        self.models.stop()
        self.server.stop()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the batch, commit, leave the group; SIGHUP: look for a new model now."""
        settings, worker = self.settings, self.worker

        def on_stop(signum: int, frame: FrameType | None) -> None:
            log.info("stop requested; finishing the batch", extra={"signal": signal.Signals(signum).name})
            if worker.stopping:
                return
            worker.request_stop()
            # The promise is "gone within shutdown_timeout_s": if a broker call hangs the drain, give up; the
            # uncommitted batch is re-read by whoever owns the partition next.
            watchdog = threading.Timer(settings.shutdown_timeout_s, _give_up, args=(settings.shutdown_timeout_s,))
            watchdog.daemon = True
            watchdog.start()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.models.poke()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)

    def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.health.ready()[0]:
                return True
            time.sleep(0.05)
        return False


def _give_up(timeout_s: float) -> None:
    log.error("shutdown took too long; exiting without a clean close", extra={"timeout_seconds": timeout_s})
    logging.shutdown()
    os._exit(1)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (unless ``MALLOC_ARENA_MAX`` is set): True when applied.

    Why: glibc gives each thread that allocates its own arena (up to 8 per core), and kafka-python's I/O
    threads allocate record buffers while the loop allocates article strings: memory freed in one arena is not
    reused by another. With two arenas the worker's peak RSS at full rate fell from 302 to 290 MB and its rate
    did not drop (bench/REPORT.md). Called before the clients start their threads; a no-op off glibc.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # the operator chose; glibc already read it
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-8, arenas))  # M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def serve(settings: Settings, registry: CollectorRegistry | None = None) -> int:
    """``newsstream worker``: build, handle signals, run in this thread."""
    limit_malloc_arenas()
    app = App.build(settings, registry)
    app.install_signal_handlers()
    return app.run()
