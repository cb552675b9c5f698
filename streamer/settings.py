"""Worker settings: one pydantic-settings class, environment prefix ``NEWSSTREAM_``.

Every field is also a ``newsstream worker`` flag (``--input-topic`` for ``input_topic``), generated from the
model fields by :mod:`newsstream.cli.worker` so the help text and the environment can never drift apart. Units
live in the names.

A ``NEWSSTREAM_*`` variable that names no setting is a typo until proven otherwise: :func:`unknown_variables`
finds them with the closest real name, and the worker refuses to start on one (README, "Settings").

>>> unknown_variables({"NEWSSTREAM_BATCH_MAX_MESAGES": "50", "NEWSSTREAM_INPUT_TOPIC": "a", "PATH": "/bin"})
[('NEWSSTREAM_BATCH_MAX_MESAGES', 'NEWSSTREAM_BATCH_MAX_MESSAGES')]
"""

from __future__ import annotations

import difflib
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ProcessingGuarantee = Literal["at_least_once", "exactly_once"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

#: Where the worker looks for a model when ``model_path`` is unset: the newest bundle under it.
DEFAULT_MODELS_DIR = Path("models")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSSTREAM_", extra="ignore", validate_default=True)

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated")
    input_topic: str = Field(default="articles", description="topic the worker consumes articles from")
    output_topic: str = Field(default="articles.enriched", description="topic enriched events are published to")
    dlq_topic: str = Field(
        default="articles.dlq", description="dead-letter topic for messages that cannot be processed"
    )
    group_id: str = Field(default="newsstream-worker", description="consumer group id")
    client_id: str = Field(default="newsstream", description="Kafka client id prefix")
    transactional_id: str | None = Field(
        default=None,
        description="exactly_once: transactional id, unique per instance and stable across its restarts "
        "(default: <group_id>-<input_topic>-<hostname>)",
    )
    model_path: Path | None = Field(
        default=None,
        description="a bundle directory or a directory of bundles (newest wins); default: newest under models/",
    )
    model_watch_interval_s: float = Field(
        default=5.0, ge=0, description="how often to look for a new model (0 = never)"
    )
    drift_window_predictions: int = Field(
        default=1000, ge=10, description="predictions per head the drift gauge compares with the training mix"
    )
    drift_min_predictions: int = Field(
        default=200, ge=1, description="predictions in the window before the drift gauge reports (NaN until then)"
    )
    drift_reference_path: Path | None = Field(
        default=None,
        description="JSON {head: {label: share}} to measure drift against instead of the model card's training mix",
    )
    shadow_model_path: Path | None = Field(
        default=None,
        description="a second bundle that scores every batch beside the live one and publishes nothing (or to "
                    "NEWSSTREAM_SHADOW_TOPIC)",
    )
    shadow_topic: str | None = Field(default=None, description="topic for the shadow model's events (optional)")
    model_allow_taxonomy_change: bool = Field(
        default=False,
        description="hot reload may serve a bundle whose heads or labels differ from the serving one's",
    )
    metrics_host: str = Field(default="127.0.0.1", description="address for /metrics, /healthz, /readyz")
    metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="port for /metrics, /healthz, /readyz (0 = any free)"
    )
    processing_guarantee: ProcessingGuarantee = Field(
        default="at_least_once", description="at_least_once | exactly_once"
    )
    session_timeout_ms: int = Field(default=10_000, ge=1000, description="consumer group session timeout")
    max_poll_interval_ms: int = Field(
        default=300_000, ge=1000, description="max time between polls before leaving the group"
    )
    batch_max_messages: int = Field(default=500, ge=1, description="most messages classified in one batch")
    batch_max_wait_ms: int = Field(default=200, ge=0, description="longest a poll waits to fill a batch")
    max_message_bytes: int = Field(
        default=1_000_000, ge=1, description="larger input values go to the dead-letter topic"
    )
    output_max_message_bytes: int = Field(
        default=1_000_000, ge=1024,
        description="the output topic's max.message.bytes: larger enriched events become dead letters",
    )
    dlq_max_message_bytes: int = Field(
        default=1_000_000, ge=1024,
        description="the dead-letter topic's max.message.bytes: larger dead letters are published bounded "
        "(a prefix of the value, with its size and sha256)",
    )
    dead_letter_prefix_bytes: int = Field(
        default=65_536, ge=0, description="how much of the value a bounded dead letter keeps"
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="where a new group starts reading"
    )
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="none", description="compression for produced events"
    )
    heartbeat_timeout_s: float = Field(
        default=30.0, gt=0, description="how long the loop may be quiet before /healthz fails"
    )
    shutdown_timeout_s: float = Field(default=8.0, gt=0, description="budget to drain, flush and commit on SIGTERM")
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL"
    )
    sasl_mechanism: SaslMechanism | None = Field(default=None, description="PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512")
    sasl_username: str | None = Field(default=None, description="SASL user name")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret)")
    ssl_cafile: Path | None = Field(default=None, description="CA bundle to verify the broker")
    ssl_certfile: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    ssl_keyfile: Path | None = Field(default=None, description="client private key (mutual TLS)")
    ssl_password: SecretStr | None = Field(default=None, description="password of the client private key (secret)")
    ssl_check_hostname: bool = Field(default=True, description="verify the broker's host name against its certificate")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="log level")
    log_format: Literal["json", "text"] = Field(default="json", description="json (one object a line) | text")

    # ---- kafka-python client configuration -----------------------------------------------------------

    def security_kwargs(self) -> dict[str, Any]:
        """The connection settings every client needs; only what is set, so kafka-python keeps its defaults."""
        kw: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
            # Fail fast when the broker is away: the worker's own loop retries with backoff, logs it and keeps
            # /healthz fresh, which a client blocked for 30 s inside a constructor cannot do.
            "bootstrap_timeout_ms": 5000,
            # kafka-python's reconnect backoff doubles up to 30 s: after a long outage the worker sat up to 30 s
            # more before it noticed the broker was back (measured 21-26 s; 0.8 s with this cap).
            "reconnect_backoff_max_ms": 2000,
        }
        if self.security_protocol.startswith("SASL"):
            if not self.sasl_mechanism:
                raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        if self.security_protocol.endswith("SSL"):
            kw["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, name)
                if value is not None:
                    kw[name] = str(value)
            if self.ssl_password is not None:
                kw["ssl_password"] = self.ssl_password.get_secret_value()
        return kw

    def consumer_kwargs(self) -> dict[str, Any]:
        return {
            **self.security_kwargs(),
            "client_id": f"{self.client_id}-consumer",
            "group_id": self.group_id,
            "enable_auto_commit": False,  # offsets are committed only after the output is acknowledged
            "auto_offset_reset": self.auto_offset_reset,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": max(300, self.session_timeout_ms // 3),
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "max_poll_records": self.batch_max_messages,
            # exactly_once must not read what an aborted transaction upstream wrote
            "isolation_level": "read_committed" if self.exactly_once else "read_uncommitted",
        }

    def producer_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            **self.security_kwargs(),
            "client_id": f"{self.client_id}-producer",
            "acks": "all",
            # A batch whose outputs cannot be delivered fails within ~30 s and is re-read, instead of blocking
            # the loop for kafka-python's 60 s + 120 s defaults while /healthz goes stale.
            "max_block_ms": 10_000,
            "request_timeout_ms": 10_000,
            "delivery_timeout_ms": 30_000,
            "linger_ms": 5,
            # Enriched events are ~1-10 KB: with kafka-python's 16 KB default every few sends open a new batch
            # and wake the sender thread, which measured 3x slower than 1 MB batches on the bundled broker.
            "batch_size": 1_048_576,
            "compression_type": None if self.compression_type == "none" else self.compression_type,
            # an enriched event carries the article plus predictions: allow some headroom over the input
            "max_request_size": max(1_048_576, self.max_message_bytes * 2 + 65_536),
        }
        if self.exactly_once:
            kw["enable_idempotence"] = True
            # Stable across restarts so a restarted instance fences its dead predecessor and aborts its open
            # transaction at once; unique per instance because two live producers with one id fence each other.
            kw["transactional_id"] = (
                self.transactional_id or f"{self.group_id}-{self.input_topic}-{socket.gethostname()}"
            )
        return kw

    def admin_kwargs(self) -> dict[str, Any]:
        return {**self.security_kwargs(), "client_id": f"{self.client_id}-admin"}

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"


#: Kubernetes injects ``<SERVICE>_SERVICE_HOST``, ``<SERVICE>_PORT_9108_TCP`` … for every Service in the namespace
#: (a Service named ``newsstream`` yields ``NEWSSTREAM_PORT``): not ours, never a typo of ours.
_SERVICE_LINKS = re.compile(r"^NEWSSTREAM_(SERVICE_HOST|SERVICE_PORT.*|PORT(_\d+_(TCP|UDP|SCTP).*)?)$")
#: Variables of the project's own tooling that share the prefix.
_NOT_SETTINGS = {"NEWSSTREAM_DATA_DIR", "NEWSSTREAM_TEST_BOOTSTRAP_SERVERS"}


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``NEWSSTREAM_*`` names that are no setting, each with the closest setting's variable (or None)."""
    known = {"NEWSSTREAM_" + name.upper() for name in Settings.model_fields}
    out: list[tuple[str, str | None]] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("NEWSSTREAM_") or upper in known or upper in _NOT_SETTINGS:
            continue
        if _SERVICE_LINKS.match(upper):
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        out.append((name, close[0] if close else None))
    return out
