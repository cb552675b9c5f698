"""The pure part of the worker: polled records in → enriched events and dead letters out. No Kafka import.

:func:`process` validates, classifies (one model call per batch) and encodes; every record of the batch comes
out as exactly one :class:`Output`, either an enriched event for the output topic or a dead letter. The Kafka
loop (:mod:`streamer.worker`) only sends what it is given, waits for the acknowledgements and commits.

A dead letter always fits. When the original record (value, key and headers) is larger than what the producer
or the dead-letter topic takes (``Limits.dead_letter_bytes``), the dead letter is *bounded*: a prefix of the value,
the key cut to 1 KiB, and headers that say so (``truncated``, the original size and sha256) plus the origin
topic, partition and offset, from which the whole record can be fetched while retention holds. If the broker
refuses a dead letter as too large anyway (the topic's ``max.message.bytes`` is lower than configured),
:func:`shrink` gives the next smaller form, down to one with no value at all.

>>> from types import SimpleNamespace as R
>>> rec = R(topic="in", partition=0, offset=7, timestamp=0, key=b"k", value=b"x" * 5000, headers=[("reason", b"up")])
>>> dl = dead_letter(rec, Rejection(DeadLetterReason.TOO_LARGE, "big"), Limits(dead_letter_bytes=4096,
...                                                                      dead_letter_prefix_bytes=100))
>>> len(dl.value), dl.header("truncated"), dl.header("original-value-bytes"), dl.header("reason")
(100, 'true', '5000', 'too_large')
>>> dl.header("original.reason")  # the original record's headers are kept under a prefix; ours win
'up'
>>> shrink(dl).value, shrink(shrink(dl)) is None
(b'', True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from streamer.artifact import ModelBundle
from streamer.schemas import SCHEMA_VERSION, Article, DeadLetterReason, Rejection, enrich, parse_article

Header = tuple[str, bytes]

#: Original headers ride along under this prefix, so ours (``reason``, ``origin-*``) win over same-named ones.
ORIGINAL_HEADER_PREFIX = "original."
_MAX_ERROR_HEADER_CHARS = 1000
_MAX_KEY_BYTES = 1024  # a bounded dead letter's key; longer keys are cut and their sha256 sent
_MAX_ORIGINAL_HEADER_BYTES = 8192  # a bounded dead letter keeps the original headers only up to this
#: What kafka-python adds around one record in a batch, with room to spare (record + batch headers).
RECORD_OVERHEAD_BYTES = 512


class Record(Protocol):
    """What the pipeline reads of a consumed record (kafka-python's ``ConsumerRecord`` has these)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] | None


@dataclass(frozen=True)
class Limits:
    """Sizes the pipeline keeps to. ``dead_letter_bytes``: the largest dead letter sent whole."""

    max_message_bytes: int | None = None  # larger input values are dead-lettered as too_large
    max_output_bytes: int = 1 << 62  # larger enriched events are dead-lettered as output_too_large
    dead_letter_bytes: int = 1_000_000
    dead_letter_prefix_bytes: int = 65_536  # the value prefix a bounded dead letter carries


@dataclass
class Output:
    """One record to send. ``source`` is the input record it answers; ``rejection`` is None for an event."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[Header]
    source: Any
    rejection: Rejection | None = None
    prediction: dict[str, Any] | None = None
    article: Any = None  # the parsed input of an event (a shadow model scores the same articles)
    form: str = "event"  # event | whole | bounded | minimal

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return None

    @property
    def size(self) -> int:
        return record_size(self.key, self.value, self.headers)


@dataclass
class Processed:
    """Every output of a batch: enriched events first (``events``), then dead letters."""

    outputs: list[Output] = field(default_factory=list)

    @property
    def predictions(self) -> list[dict[str, Any]]:
        return [o.prediction for o in self.outputs if o.rejection is None and o.prediction is not None]

    def reasons(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for o in self.outputs:
            if o.rejection is not None:
                tally[o.rejection.reason.value] = tally.get(o.rejection.reason.value, 0) + 1
        return tally


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[Header]) -> int:
    """Bytes one record takes in a request, as kafka-python counts them against ``max_request_size`` (upper bound)."""
    return (len(key or b"") + len(value or b"") + sum(len(k.encode()) + len(v or b"") + 8 for k, v in headers)
            + RECORD_OVERHEAD_BYTES)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, byte for byte what ``json.dumps(ensure_ascii=False)`` writes for our events.

    orjson because the standard library spends ~50 µs on a full article and orjson ~5 µs (bench/REPORT.md). What
    orjson refuses (integers over 64 bits, lone surrogates, very deep nesting) goes to the standard library, so
    such events are written, or rejected, exactly as before.
    """
    try:
        return orjson.dumps(event)
    except orjson.JSONEncodeError:
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def classify_articles(bundle: ModelBundle, articles: Sequence[Article]) -> list[dict[str, Any] | Exception]:
    """One model call for the batch; if it raises, one call per article so only the culprit is lost."""
    docs = [(a.title or "", a.text) for a in articles]
    try:
        return list(bundle.classify(docs))
    except Exception:
        out: list[dict[str, Any] | Exception] = []
        for doc in docs:
            try:
                out.append(bundle.classify([doc])[0])
            except Exception as exc:
                out.append(exc)
        return out


# ---- dead letters ------------------------------------------------------------------------------------------


def _origin_headers(record: Record, rejection: Rejection) -> list[Header]:
    return [
        ("reason", rejection.reason.value.encode()),
        ("error", rejection.error[:_MAX_ERROR_HEADER_CHARS].encode("utf-8", "replace")),
        ("origin-topic", record.topic.encode()),
        ("origin-partition", str(record.partition).encode()),
        ("origin-offset", str(record.offset).encode()),
        ("origin-timestamp", str(record.timestamp).encode()),
    ]


def _original_headers(record: Record) -> list[Header]:
    return [(ORIGINAL_HEADER_PREFIX + k, v if v is not None else b"") for k, v in (record.headers or [])]


def dead_letter(record: Record, rejection: Rejection, limits: Limits, topic: str = "dlq") -> Output:
    """The dead letter of ``record``: whole (key, value untouched) when it fits, else bounded."""
    headers = _origin_headers(record, rejection) + _original_headers(record)
    whole = Output(topic, record.key, record.value, headers, record, rejection, form="whole")
    if whole.size <= limits.dead_letter_bytes:
        return whole
    return _bounded(record, rejection, topic, limits.dead_letter_prefix_bytes, "bounded")


def _bounded(record: Record, rejection: Rejection, topic: str, prefix_bytes: int, form: str) -> Output:
    value, key = record.value or b"", record.key
    headers = _origin_headers(record, rejection)
    headers += [("truncated", b"true"),
                ("original-value-bytes", str(len(value)).encode()),
                ("original-value-sha256", hashlib.sha256(value).hexdigest().encode())]
    if record.value is None:
        headers.append(("original-value-null", b"true"))
    if key is not None and len(key) > _MAX_KEY_BYTES:
        headers += [("original-key-bytes", str(len(key)).encode()),
                    ("original-key-sha256", hashlib.sha256(key).hexdigest().encode())]
        key = key[:_MAX_KEY_BYTES]
    original = _original_headers(record)
    if sum(len(k) + len(v) for k, v in original) <= _MAX_ORIGINAL_HEADER_BYTES and form == "bounded":
        headers += original
    elif original:
        headers.append(("original-headers-dropped", str(len(original)).encode()))
    return Output(topic, key, value[:prefix_bytes] if record.value is not None else None, headers, record,
                  rejection, form=form)


def shrink(output: Output) -> Output | None:
    """The next smaller form of a dead letter the broker refused as too large; None when there is none."""
    assert output.rejection is not None, "only dead letters shrink"
    if output.form == "whole":
        return _bounded(output.source, output.rejection, output.topic, min(65_536, max(0, output.size // 2)),
                        "bounded")
    if output.form == "bounded":
        return _bounded(output.source, output.rejection, output.topic, 0, "minimal")
    return None


# ---- the batch ---------------------------------------------------------------------------------------------


def process(records: Sequence[Record], bundle: ModelBundle, limits: Limits, output_topic: str, dlq_topic: str,
            processed_at: str | None = None, keep_articles: bool = False) -> Processed:
    """Validate, classify (one model call), encode: one output per record, events first, then dead letters.

    ``keep_articles``: each event keeps its parsed article (a shadow model scores them); otherwise they are let go
    with the batch's encoding, so a batch in flight holds its bytes, not a second copy of every text.
    """
    valid: list[tuple[Record, Article]] = []
    dead: list[tuple[Record, Rejection]] = []
    for rec in records:
        try:
            parsed = parse_article(rec.value, limits.max_message_bytes)
        except Exception as exc:  # parse_article never raises by contract; a bug must not wedge the loop
            parsed = Rejection(DeadLetterReason.INVALID_SCHEMA, f"unexpected {type(exc).__name__}: {exc}")
        if isinstance(parsed, Rejection):
            dead.append((rec, parsed))
        else:
            valid.append((rec, parsed))

    predictions = classify_articles(bundle, [a for _, a in valid]) if valid else []
    model = bundle.describe()
    headers = [("schema-version", SCHEMA_VERSION.encode()), ("model-name", model["name"].encode()),
               ("model-version", model["version"].encode()), ("content-type", b"application/json")]
    processed_at = processed_at or now_iso()
    headers_bytes = record_size(None, None, headers)  # the same headers on every event: counted once a batch
    out = Processed()
    for (rec, article), prediction in zip(valid, predictions, strict=True):
        if isinstance(prediction, Exception):
            dead.append((rec, Rejection(DeadLetterReason.CLASSIFICATION_ERROR,
                                        f"{type(prediction).__name__}: {prediction}")))
            continue
        origin = {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
        try:
            value = dumps(enrich(article, prediction, model, processed_at, origin))
        except (ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
            dead.append((rec, Rejection(DeadLetterReason.INVALID_SCHEMA,
                                        f"the enriched event cannot be encoded: {exc}")))
            continue
        key = article.id.encode()
        size = len(key) + len(value) + headers_bytes
        if size > limits.max_output_bytes:
            dead.append((rec, Rejection(DeadLetterReason.OUTPUT_TOO_LARGE,
                                        f"enriched event is {size} bytes, limit {limits.max_output_bytes}")))
            continue
        out.outputs.append(Output(output_topic, key, value, headers, rec, prediction=prediction,
                                  article=article if keep_articles else None))
    for rec, rejection in dead:
        out.outputs.append(dead_letter(rec, rejection, limits, dlq_topic))
    return out


def refused_event(event: Output, error: BaseException, limits: Limits, dlq_topic: str) -> Output:
    """The dead letter for an enriched event the broker refused as too large (its topic's limit is lower)."""
    size = len(event.value or b"")
    rejection = Rejection(DeadLetterReason.OUTPUT_TOO_LARGE,
                          f"the broker refused the enriched event ({size} bytes): {error}")
    return dead_letter(event.source, rejection, limits, dlq_topic)
