"""Security settings: SASL/SSL reach real kafka-python clients and the wire; secrets stay out of logs, /metrics
and error output; the metrics/health address is configurable (loopback by default, all interfaces in the image).

``tests/test_streamer_units.py`` checks the kwargs dicts (``Settings.*_kwargs``); here real clients are built
from them (kafka-python refuses unknown config names, so a renamed key fails here) and a real connection
shows the SASL handshake the settings ask for.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry

from streamer.http import Health, MetricsServer
from streamer.settings import Settings

CANARY = "canary-Zq8xW3-never-print-me"
SSL_CANARY = "ssl-canary-K7pV2-never-print-me"
API = (2, 6)  # a fixed protocol version: the constructors do not dial the broker to probe it


def test_sasl_ssl_settings_reach_real_clients(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used: the clients never connect in this test\n")
    s = Settings(bootstrap_servers="k1:9093,k2:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                 sasl_username="svc", sasl_password=CANARY, ssl_cafile=ca, ssl_password=SSL_CANARY,
                 ssl_check_hostname=False, processing_guarantee="exactly_once")
    producer = KafkaProducer(**s.producer_kwargs(), api_version=API)
    consumer = KafkaConsumer(**s.consumer_kwargs(), api_version=API)
    try:
        for client in (producer, consumer):
            cfg = client.config
            assert cfg["bootstrap_servers"] == ["k1:9093", "k2:9093"]
            assert cfg["security_protocol"] == "SASL_SSL" and cfg["sasl_mechanism"] == "SCRAM-SHA-512"
            assert cfg["sasl_plain_username"] == "svc" and cfg["sasl_plain_password"] == CANARY
            assert cfg["ssl_cafile"] == str(ca) and cfg["ssl_password"] == SSL_CANARY
            assert cfg["ssl_check_hostname"] is False
        assert producer.config["transactional_id"] and producer.config["acks"] == -1
        assert consumer.config["isolation_level"] == "read_committed"
    finally:
        producer.close(timeout=0)
        consumer.close()


def test_sasl_settings_reach_the_wire(broker, caplog: pytest.LogCaptureFixture) -> None:
    """Against the (SASL-less) test broker: the SASL client opens with a SaslHandshake and is turned away."""
    plain = Settings(bootstrap_servers=broker.bootstrap)
    admin = KafkaAdminClient(**plain.admin_kwargs())
    admin.list_topics()  # the same broker, without SASL: fine
    admin.close()
    sasl = Settings(bootstrap_servers=broker.bootstrap, security_protocol="SASL_PLAINTEXT",
                    sasl_mechanism="SCRAM-SHA-256", sasl_username="svc", sasl_password=CANARY)
    with caplog.at_level(logging.DEBUG, logger="kafka"), pytest.raises(Exception, match="bootstrap"):
        KafkaAdminClient(**sasl.admin_kwargs())
    assert "SaslHandshakeRequest(version=1, mechanism='SCRAM-SHA-256')" in caplog.text


def _worker_env(bootstrap: str, model: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
    env.update({"NEWSSTREAM_BOOTSTRAP_SERVERS": bootstrap, "NEWSSTREAM_MODEL_PATH": str(model),
                "NEWSSTREAM_METRICS_PORT": str(port), "NEWSSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "NEWSSTREAM_SASL_MECHANISM": "PLAIN", "NEWSSTREAM_SASL_USERNAME": "svc",
                "NEWSSTREAM_SASL_PASSWORD": CANARY, "NEWSSTREAM_SSL_PASSWORD": SSL_CANARY,
                "NEWSSTREAM_LOG_FORMAT": "json"})
    env.update(extra)
    return env


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp shows them) listening on ``port``."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        host, hex_port = fields[1].split(":")
        if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
            out.add(host)
    return out


def _secrets_check(broker, model_v1: Path, tmp_path: Path, level: str) -> None:
    """A worker whose SASL credentials the broker turns away, retrying for a while: grep everything it said."""
    from streamer.broker import free_port

    port = free_port()
    log_path = tmp_path / f"worker-{level}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "newsstream", "worker"], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT,
                                env=_worker_env(broker.bootstrap, model_v1, port, NEWSSTREAM_LOG_LEVEL=level))
        try:
            import urllib.request

            deadline = time.monotonic() + 60
            metrics = b""
            while time.monotonic() < deadline:
                assert proc.poll() is None, log_path.read_text()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                        metrics = resp.read()
                except OSError:
                    time.sleep(0.2)
                    continue
                errors = re.search(rb"^newsstream_broker_errors_total (\S+)", metrics, re.M)
                if errors and float(errors.group(1)) >= 2:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"no broker errors logged:\n{log_path.read_text()[-3000:]}")
            # the defaults bind /metrics to loopback only
            assert _listening(port) == {"0100007F"}
        finally:
            proc.kill()
            proc.wait(timeout=10)
    text = log_path.read_text(errors="replace")
    assert "broker unavailable" in text  # it did try, with the credentials, and said so
    if level == "DEBUG":  # kafka-python's own chatter is in, down to the handshake the credentials drive
        assert "SaslHandshakeRequest(version=1, mechanism='PLAIN')" in text
    for secret in (CANARY, SSL_CANARY):
        assert secret not in text, f"secret in the {level} log: ...{text[max(0, text.find(secret) - 200):][:300]}"
        assert secret.encode() not in metrics


def test_secrets_stay_out_of_logs_and_metrics(broker, model_v1: Path, tmp_path: Path) -> None:
    _secrets_check(broker, model_v1, tmp_path, "INFO")


def test_secrets_stay_out_of_debug_logs(broker, model_v1: Path, tmp_path: Path) -> None:
    # DEBUG turns kafka-python's loggers up too. Its KafkaAdminClient logs its whole configuration, password
    # included; the worker builds only a producer and a consumer, which do not. This keeps it that way.
    _secrets_check(broker, model_v1, tmp_path, "DEBUG")


def test_secrets_stay_out_of_help_and_settings_errors(model_v1: Path) -> None:
    env = _worker_env("127.0.0.1:1", model_v1, 0, NEWSSTREAM_METRICS_PORT="not-a-port")
    bad = subprocess.run([sys.executable, "-m", "newsstream", "worker"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "metrics_port" in bad.stderr
    helped = subprocess.run([sys.executable, "-m", "newsstream", "worker", "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "NEWSSTREAM_SASL_PASSWORD" in helped.stdout
    for result in (bad, helped):
        assert CANARY not in result.stdout + result.stderr and SSL_CANARY not in result.stdout + result.stderr
    assert CANARY not in repr(Settings(sasl_password=CANARY)) and CANARY not in str(Settings(sasl_password=CANARY))


def test_metrics_address_is_configurable(model_v1: Path) -> None:
    for host, expected in (("127.0.0.1", "0100007F"), ("0.0.0.0", "00000000")):
        server = MetricsServer(host, 0, CollectorRegistry(), Health()).start()
        try:
            assert _listening(server.address[1]) == {expected}
        finally:
            server.stop()
    # the setting reaches the worker's server: the image's value, on a real worker process
    from streamer.broker import free_port

    port = free_port()
    env = _worker_env("127.0.0.1:1", model_v1, port, NEWSSTREAM_METRICS_HOST="0.0.0.0",
                      NEWSSTREAM_SECURITY_PROTOCOL="PLAINTEXT")
    proc = subprocess.Popen([sys.executable, "-m", "newsstream", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port) and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.2)
        assert _listening(port) == {"00000000"}
    finally:
        proc.kill()
        proc.wait(timeout=10)
    # 0.0.0.0 in the container, loopback for `make run` (tests/test_demo.py checks the demo's printed address)
    assert "NEWSSTREAM_METRICS_HOST=0.0.0.0" in (ROOT / "Dockerfile").read_text()
    assert Settings.model_fields["metrics_host"].default == "127.0.0.1"
