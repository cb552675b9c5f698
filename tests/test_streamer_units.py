"""Pure logic: message validation, settings → client kwargs, generated --help, metrics names, broker guards."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from conftest import ROOT
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamer.broker import BrokerError, EmbeddedBroker, port_is_free
from streamer.metrics import Metrics
from streamer.schemas import Article, DeadLetterReason, Rejection, enrich, parse_article
from streamer.settings import Settings


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, DeadLetterReason.TOMBSTONE),
        (b"\xff\xfe{}", DeadLetterReason.NOT_UTF8),
        (b"{", DeadLetterReason.INVALID_JSON),
        (b"", DeadLetterReason.INVALID_JSON),
        (b'"a string"', DeadLetterReason.INVALID_SCHEMA),
        (b'{"id": "a"}', DeadLetterReason.INVALID_SCHEMA),
        (b'{"id": "", "text": "t"}', DeadLetterReason.INVALID_SCHEMA),
        (b'{"id": true, "text": "t"}', DeadLetterReason.INVALID_SCHEMA),
        (b'{"id": "a", "text": 5}', DeadLetterReason.INVALID_SCHEMA),
        (b'{"id": "a", "text": " \\n "}', DeadLetterReason.EMPTY_TEXT),
        (b'{"id": "a", "text": "' + b"x" * 200 + b'"}', DeadLetterReason.TOO_LARGE),
    ],
)
def test_rejections(value: bytes | None, reason: DeadLetterReason) -> None:
    parsed = parse_article(value, max_bytes=100)
    assert isinstance(parsed, Rejection) and parsed.reason is reason and parsed.error


def test_valid_article_keeps_unknown_fields_and_int_ids() -> None:
    parsed = parse_article(json.dumps({"id": 42, "text": "Body", "lang_hint": "fr", "tags": ["a"]}).encode())
    assert isinstance(parsed, Article) and parsed.id == "42"
    event = enrich(parsed, {"topic": {"label": "sport", "score": 0.9}}, {"name": "m", "version": "1"}, "t",
                   {"topic": "in", "partition": 0, "offset": 7})
    assert event["lang_hint"] == "fr" and event["tags"] == ["a"]
    assert event["origin"] == {"topic": "in", "partition": 0, "offset": 7} and event["schema_version"] == "1"


def test_prediction_fields_win_over_input_fields() -> None:
    parsed = parse_article(b'{"id": "a", "text": "t", "topic": "spoofed", "model": "x"}')
    assert isinstance(parsed, Article)
    event = enrich(parsed, {"topic": {"label": "sport", "score": 1.0}}, {"name": "m", "version": "1"}, "t", None)
    assert event["topic"] == {"label": "sport", "score": 1.0} and event["model"] == {"name": "m", "version": "1"}


def test_settings_from_env_and_sasl_ssl_reach_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSSTREAM_BOOTSTRAP_SERVERS", "k1:9093, k2:9093")
    monkeypatch.setenv("NEWSSTREAM_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("NEWSSTREAM_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("NEWSSTREAM_SASL_USERNAME", "svc")
    monkeypatch.setenv("NEWSSTREAM_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("NEWSSTREAM_SSL_CAFILE", "/etc/ca.pem")
    monkeypatch.setenv("NEWSSTREAM_PROCESSING_GUARANTEE", "exactly_once")
    s = Settings()
    assert "hunter2" not in repr(s)
    for kwargs in (s.consumer_kwargs(), s.producer_kwargs(), s.admin_kwargs()):
        assert kwargs["bootstrap_servers"] == ["k1:9093", "k2:9093"]
        assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
        assert kwargs["sasl_plain_username"] == "svc" and kwargs["sasl_plain_password"] == "hunter2"
        assert kwargs["ssl_cafile"] == "/etc/ca.pem"
    assert s.consumer_kwargs()["enable_auto_commit"] is False
    assert s.consumer_kwargs()["isolation_level"] == "read_committed"
    producer = s.producer_kwargs()
    assert producer["acks"] == "all" and producer["transactional_id"]


def test_sasl_without_mechanism_is_refused() -> None:
    with pytest.raises(ValueError, match="sasl_mechanism"):
        Settings(security_protocol="SASL_PLAINTEXT").consumer_kwargs()


def test_worker_help_lists_every_setting() -> None:
    result = subprocess.run([sys.executable, "-m", "newsstream", "worker", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in result.stdout, name
        assert "NEWSSTREAM_" + name.upper() in result.stdout, name


def test_metric_names_are_prefixed_and_parse() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.set_model("m", "1")
    metrics.record_predictions([{"topic": {"label": "sport", "score": 0.8},
                                 "incident": {"label": "none", "score": 0.6}}])
    parsed = {f.name for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    assert parsed and all(n.startswith("newsstream_") for n in parsed)
    names = {family.name for family in metrics.registry.collect()}
    # every documented name is registered (the docstring is the contract with dashboards and alerts)
    import streamer.metrics as module

    documented = {w.removesuffix("_total") for w in (module.__doc__ or "").split() if w.startswith("newsstream_")}
    assert documented == names


def test_broker_refuses_a_taken_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        with pytest.raises(BrokerError, match="in use"):
            EmbeddedBroker(port=port).start()


def test_reroute_refused_turns_only_too_large_enriched_events_into_dead_letters() -> None:
    from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, RecordListTooLargeError
    from kafka.future import Future

    from streamer.worker import Batch, reroute_refused

    class Rec:
        def __init__(self, offset: int) -> None:
            self.topic, self.partition, self.offset, self.timestamp = "in", 2, offset, 1700000000000
            self.key, self.value = f"k{offset}".encode(), f'{{"id": "{offset}"}}'.encode()
            self.headers = [("trace", b"t")]

    recs = [Rec(i) for i in range(5)]
    outputs = [("out", r.key, b"x" * (100 + r.offset), []) for r in recs[:4]] + [("dlq", b"k4", b"bad", [])]
    batch = Batch(0.0, recs, {}, {}, outputs=list(outputs), published=[{"n": i} for i in range(4)],
                  reasons={"invalid_json": 1}, sources=list(recs))
    batch.futures = [Future().success(None), Future().failure(MessageSizeTooLargeError("big")),
                     Future().failure(KafkaTimeoutError("slow")),  # retriable: the batch must fail, not reroute
                     Future().failure(RecordListTooLargeError("big")),
                     Future().failure(MessageSizeTooLargeError("a dead letter itself refused"))]

    assert reroute_refused(batch, "out", "dlq") == [1, 3]
    assert [o[0] for o in batch.outputs] == ["out", "dlq", "out", "dlq", "dlq"]
    for i in (1, 3):
        _topic, key, value, headers = batch.outputs[i]
        h = dict(headers)
        assert (key, value) == (recs[i].key, recs[i].value)  # the input, untouched
        assert h["reason"] == b"output_too_large" and str(100 + i).encode() + b" bytes" in h["error"]
        assert (h["origin-topic"], h["origin-partition"], h["origin-offset"]) == (b"in", b"2", str(i).encode())
        assert h["trace"] == b"t"
    assert batch.published == [{"n": 0}, {"n": 2}]
    assert batch.reasons == {"invalid_json": 1, "output_too_large": 2}
    assert outputs[2] == batch.outputs[2] and outputs[4] == batch.outputs[4]
