"""A throw-away Prometheus on loopback, configured from ``deploy/prometheus/prometheus.yml``.

Used by ``tests/test_deploy.py`` and ``deploy/screenshot.py``: the compose scrape job is kept (its name, so the
dashboard's and alerts' ``job`` matchers are exercised) but pointed at local workers instead of Docker DNS.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
WORKER_JOB = "newsstream-worker"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_config(targets: list[str], interval: str = "1s") -> dict[str, Any]:
    """The compose config with the worker job scraping ``targets`` and the alert rules at an absolute path."""
    config = yaml.safe_load(CONFIG.read_text())
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == WORKER_JOB]
    if len(jobs) != 1:
        raise ValueError(f"{CONFIG}: expected one scrape job named {WORKER_JOB}")
    job = {k: v for k, v in jobs[0].items() if not k.endswith("_sd_configs")}
    job["static_configs"] = [{"targets": targets}]
    job["scrape_interval"] = interval
    job["scrape_timeout"] = interval
    config["global"] = {**config.get("global", {}), "scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(CONFIG.parent / name) for name in config.get("rule_files", [])]
    config["scrape_configs"] = [job]
    return config


class LocalPrometheus:
    def __init__(self, workdir: Path, targets: list[str], interval: str = "1s", binary: str | None = None) -> None:
        self.binary = binary or shutil.which("prometheus") or ""
        if not self.binary:
            raise FileNotFoundError("prometheus binary not found (apt-get install prometheus)")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(local_config(targets, interval)))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> LocalPrometheus:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready after {timeout_s}s:\n{self.log()[-3000:]}")

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path>; returns the whole JSON answer (errors come back as status=error, not raised)."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return dict(json.load(resp))
        except urllib.error.HTTPError as exc:  # 400/422 carry the PromQL error as JSON
            return dict(json.load(exc))

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
