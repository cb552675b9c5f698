"""HTTP endpoints on the metrics port: ``/metrics``, ``/healthz`` (the loop is alive), ``/readyz``.

A ``ThreadingHTTPServer`` in a daemon thread: scrapes never wait for a batch, and the endpoints keep
answering while the broker is down (that is when they matter most).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Health:
    """Shared state between the loop (writer) and the HTTP server (reader). Plain attributes: GIL-atomic."""

    def __init__(self, heartbeat_timeout_s: float = 30.0) -> None:
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.last_heartbeat = time.monotonic()
        self.model_loaded = False
        self.broker_connected = False
        self.member = False  # holds a generation of the consumer group, with or without partitions
        self.partitions = 0
        self.problem: str | None = None  # a condition that makes the replica unready until it clears
        self.warnings: list[str] = []  # shown in the detail; readiness does not depend on them

    def beat(self) -> None:
        self.last_heartbeat = time.monotonic()

    def healthy(self) -> tuple[bool, dict[str, object]]:
        age = time.monotonic() - self.last_heartbeat
        return age < self.heartbeat_timeout_s, {"heartbeat_age_seconds": round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, object]]:
        """Ready = model loaded + broker reachable + member of the group (partitions or not) + no problem.

        An idle replica (more replicas than partitions) is ready: it is a hot standby, and a scale-out or rolling
        update must not wait on it. The partitions it holds are in the detail and in the metrics.
        """
        detail: dict[str, object] = {
            "model_loaded": self.model_loaded,
            "broker_connected": self.broker_connected,
            "group_member": self.member,
            "partitions_assigned": self.partitions,
        }
        if self.problem:
            detail["problem"] = self.problem
        if self.warnings:
            detail["warnings"] = list(self.warnings)
        ok = self.model_loaded and self.broker_connected and self.member and not self.problem
        return ok, detail


class MetricsServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health) -> None:
        self.registry = registry
        self.health = health
        handler = _make_handler(registry, health)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _make_handler(registry: CollectorRegistry, health: Health) -> type[BaseHTTPRequestHandler]:
    checks: dict[str, Callable[[], tuple[bool, dict[str, object]]]] = {
        "/healthz": health.healthy,
        "/readyz": health.ready,
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in checks:
                ok, detail = checks[path]()
                body = json.dumps({"status": "ok" if ok else "fail", **detail}).encode()
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the worker's own log

    return Handler
