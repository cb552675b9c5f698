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
    ours = {n for n in parsed if not n.startswith(("process_", "python_"))}  # + the process, GC, platform collectors
    assert ours and all(n.startswith("newsstream_") for n in ours)
    assert {"process_resident_memory_bytes", "python_gc_collections", "python_info"} <= parsed
    names = {family.name for family in metrics.registry.collect() if family.name.startswith("newsstream_")}
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


def test_replace_refused_turns_too_large_events_into_dead_letters_and_shrinks_dead_letters() -> None:
    from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, RecordListTooLargeError
    from kafka.future import Future

    from streamer.pipeline import Limits, Output, Processed, dead_letter
    from streamer.schemas import DeadLetterReason, Rejection
    from streamer.worker import Batch, DeadLetterRefused, replace_refused

    class Rec:
        def __init__(self, offset: int) -> None:
            self.topic, self.partition, self.offset, self.timestamp = "in", 2, offset, 1700000000000
            self.key, self.value = f"k{offset}".encode(), f'{{"id": "{offset}"}}'.encode() + b" " * 3000
            self.headers = [("trace", b"t"), ("reason", b"upstream")]

    recs = [Rec(i) for i in range(5)]
    limits = Limits()
    outputs = [Output("out", r.key, b"x" * (100 + r.offset), [], r, prediction={"n": r.offset}) for r in recs[:4]]
    outputs.append(dead_letter(recs[4], Rejection(DeadLetterReason.INVALID_JSON, "bad"), limits, "dlq"))
    batch = Batch(0.0, recs, {}, {}, Processed(list(outputs)))
    batch.futures = [Future().success(None), Future().failure(MessageSizeTooLargeError("big")),
                     Future().failure(KafkaTimeoutError("slow")),  # retriable: the batch must fail, not reroute
                     Future().failure(RecordListTooLargeError("big")),
                     Future().failure(MessageSizeTooLargeError("a dead letter itself refused"))]

    assert replace_refused(batch, limits, "dlq") == [1, 3, 4]
    assert [o.topic for o in batch.outputs] == ["out", "dlq", "out", "dlq", "dlq"]
    for i in (1, 3):
        out = batch.outputs[i]
        assert (out.key, out.value, out.form) == (recs[i].key, recs[i].value, "whole")  # the input, untouched
        assert out.header("reason") == "output_too_large" and f"{100 + i} bytes" in (out.header("error") or "")
        assert (out.header("origin-topic"), out.header("origin-partition"), out.header("origin-offset")) == \
            ("in", "2", str(i))
        assert out.header("original.trace") == "t" and out.header("original.reason") == "upstream"
    bounded = batch.outputs[4]  # the refused dead letter, smaller: a prefix and the original's size and hash
    assert bounded.form == "bounded" and bounded.header("truncated") == "true"
    assert len(bounded.value or b"") < len(recs[4].value) and recs[4].value.startswith(bounded.value or b"x")
    assert bounded.header("original-value-bytes") == str(len(recs[4].value))
    assert batch.processed.predictions == [{"n": 0}, {"n": 2}]
    assert batch.processed.reasons() == {"output_too_large": 2, "invalid_json": 1}
    assert outputs[0] is batch.outputs[0] and outputs[2] is batch.outputs[2]

    # refused again: the form with no value; refused once more: the topic is misconfigured
    batch.futures = [Future().success(None)] * 4 + [Future().failure(MessageSizeTooLargeError("still"))]
    assert replace_refused(batch, limits, "dlq") == [4]
    assert batch.outputs[4].form == "minimal" and batch.outputs[4].value == b""
    with pytest.raises(DeadLetterRefused, match="dead-letter topic"):
        replace_refused(batch, limits, "dlq")
