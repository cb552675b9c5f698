"""The worker loop: poll a batch → validate → classify (one call) → produce → flush (acks=all) → commit.

Delivery rules, in one place:

- An offset is committed only after every output of its batch (enriched events and dead letters) is
  acknowledged by the broker. A crash between the two re-reads the batch: duplicates, never losses
  (``at_least_once``). One batch may be in flight while the next is classified (its acknowledgements
  arrive meanwhile); it is settled — acknowledged, then committed — before the next one is handed to the
  producer, so a crash repeats at most one batch, and always before a revocation completes or the worker
  exits.
- ``exactly_once`` puts the outputs and the offsets in one transaction (``send_offsets_to_transaction``);
  a ``read_committed`` reader sees each output once. The transactional id is stable across restarts so a
  restarted instance fences the dead one and aborts its open transaction.
- Whatever fails after a poll (produce, commit, transaction), the consumer seeks back to the first offset of
  the batch on each partition it still owns, so the next poll reads the same records again.
- A bad message never stops the loop: it goes to the dead-letter topic, key and value untouched, with the
  reason and origin in headers. That includes an enriched event the broker refuses as too large (its topic's
  ``max.message.bytes`` may be lower than our limit): re-reading would be refused again forever, so the
  article becomes a dead letter (``output_too_large``) and the batch goes on (``reroute_refused``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, RecordListTooLargeError
from kafka.structs import OffsetAndMetadata

from streamer.artifact import ModelBundle
from streamer.http import Health
from streamer.metrics import Metrics
from streamer.model_watch import ModelHolder
from streamer.schemas import SCHEMA_VERSION, Article, DeadLetterReason, Rejection, enrich, parse_article
from streamer.settings import Settings

log = logging.getLogger(__name__)

_MAX_ERROR_HEADER_CHARS = 1000


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, byte for byte what ``json.dumps(ensure_ascii=False)`` writes for our events.

    orjson because the standard library spends ~50 µs on a full article (a sixth of the model's time) and orjson
    ~5 µs (bench/REPORT.md). What orjson refuses (integers over 64 bits, lone surrogates, very deep nesting) goes
    to the standard library, so such events are written, or rejected, exactly as before.
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


def dead_letter_headers(record: Any, rejection: Rejection) -> list[tuple[str, bytes]]:
    headers = [
        ("reason", rejection.reason.value.encode()),
        ("error", rejection.error[:_MAX_ERROR_HEADER_CHARS].encode("utf-8", "replace")),
        ("origin-topic", record.topic.encode()),
        ("origin-partition", str(record.partition).encode()),
        ("origin-offset", str(record.offset).encode()),
        ("origin-timestamp", str(record.timestamp).encode()),
    ]
    # Original headers ride along (after ours) so tracing ids survive the detour.
    headers.extend((k, v if v is not None else b"") for k, v in (record.headers or []))
    return headers


class BatchFailed(Exception):
    """Outputs or offsets of a batch did not make it; the batch will be read again."""


class ProducerFailed(BatchFailed):
    """The producer itself is in doubt (e.g. its producer id is unknown after a broker restart): rebuild it."""


@dataclass
class Batch:
    """One polled batch from classification to commit."""

    started: float
    records: list[Any]
    offsets: dict[TopicPartition, OffsetAndMetadata]  # next offset to read, per partition
    first: dict[TopicPartition, int]  # where to seek back to if the batch fails
    outputs: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    futures: list[Any] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)  # the input record of each output, same order


# kafka-python splits a refused multi-record batch and retries, so these reach a future only for a record the
# broker refuses on its own: deterministic, sending it again cannot help.
_REFUSED_AS_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


def _first_error(futures: list[Any]) -> BaseException | None:
    """The first failed produce future's error; one still pending counts as failed (never commit unacknowledged)."""
    for f in futures:
        if not f.is_done:
            return KafkaTimeoutError("an output was not acknowledged after flush()")
        if f.exception is not None:
            return f.exception
    return None


def reroute_refused(batch: Batch, output_topic: str, dlq_topic: str) -> list[int]:
    """Turn enriched events the broker refused as too large into dead letters, in place; their indexes.

    Only events bound for ``output_topic`` whose future failed that way are rerouted; ``batch.futures`` must
    line up with ``batch.outputs``. The caller sends the rerouted outputs again (now dead letters).

    >>> from kafka.future import Future
    >>> class Rec: topic, partition, offset, timestamp, key, value, headers = "in", 0, 7, 0, b"k", b"{}", []
    >>> b = Batch(0.0, [Rec()], {}, {}, outputs=[("out", b"k", b"x" * 10, [])], published=[{}], sources=[Rec()])
    >>> b.futures = [Future().failure(MessageSizeTooLargeError("too big"))]
    >>> reroute_refused(b, "out", "dlq"), b.outputs[0][0], b.outputs[0][2], b.published, b.reasons
    ([0], 'dlq', b'{}', [], {'output_too_large': 1})
    """
    refused = [i for i, (topic, *_rest) in enumerate(batch.outputs)
               if topic == output_topic and i < len(batch.futures) and batch.futures[i].failed()
               and isinstance(batch.futures[i].exception, _REFUSED_AS_TOO_LARGE)]
    for i in refused:
        rec, size = batch.sources[i], len(batch.outputs[i][2] or b"")
        rejection = Rejection(DeadLetterReason.OUTPUT_TOO_LARGE,
                              f"the broker refused the enriched event ({size} bytes): {batch.futures[i].exception}")
        batch.outputs[i] = (dlq_topic, rec.key, rec.value, dead_letter_headers(rec, rejection))
        batch.reasons[rejection.reason.value] = batch.reasons.get(rejection.reason.value, 0) + 1
    # enriched outputs come first and line up with ``published``
    gone = set(refused)
    batch.published = [p for i, p in enumerate(batch.published) if i not in gone]
    return refused


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.worker._on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker._on_assigned(set(assigned))


class Worker:
    def __init__(self, settings: Settings, metrics: Metrics, models: ModelHolder, health: Health) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models = models
        self.health = health
        self.consumer: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None
        self._stop = threading.Event()
        self._next_offset: dict[TopicPartition, int] = {}
        # at_least_once: the batch sent but not yet acknowledged and committed. Its acknowledgements arrive
        # while the next batch is classified (the broker works on one core while the model uses another);
        # it is settled (waited for, committed) before the next one is sent, on revoke and on shutdown.
        self._in_flight: Batch | None = None
        self._max_output_bytes = int(settings.producer_kwargs()["max_request_size"]) - 1024
        self.batches = 0
        health.model_loaded = True

    # ---- lifecycle -------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Safe from a signal handler: the loop finishes its batch, then shuts down."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> int:
        backoff = 0.5
        try:
            while not self._stop.is_set():
                self.health.beat()
                try:
                    if self.consumer is None:
                        self._connect()
                    self._step()
                    backoff = 0.5
                except BatchFailed as exc:
                    self._trouble("batch not committed; it will be read again", exc, backoff)
                    if isinstance(exc, ProducerFailed):
                        # kafka-python keeps failing with the old producer id after a broker restart;
                        # fresh clients resume from the committed offsets, which is where we rewound anyway.
                        self._close_clients(leave_group=False)
                    backoff = min(backoff * 2, 10.0)
                except Exception as exc:
                    # Broker gone or a client in a bad state: rebuild the clients after a pause.
                    self._trouble("broker unavailable or client error; retrying", exc, backoff)
                    self._close_clients(leave_group=False)
                    backoff = min(backoff * 2, 10.0)
        finally:
            try:
                self._settle()
            except Exception as exc:  # the batch is re-read by the next owner: a duplicate, not a loss
                log.warning("last batch not committed at shutdown", extra={"error": str(exc)})
            self._close_clients(leave_group=True)
            self.health.partitions_assigned = False
            self.metrics.ready.set(0)
        return 0

    def _trouble(self, message: str, exc: BaseException, backoff: float) -> None:
        self.metrics.broker_errors.inc()
        self.health.broker_connected = False
        self.metrics.ready.set(0)
        log.warning(message, extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_seconds": backoff})
        # wait() wakes at once on SIGTERM; the heartbeat keeps /healthz green while we wait on purpose
        deadline = time.monotonic() + backoff
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.health.beat()
            self._stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))

    def _connect(self) -> None:
        s = self.settings
        producer = KafkaProducer(**s.producer_kwargs())
        try:
            if s.exactly_once:
                producer.init_transactions()
            consumer = KafkaConsumer(**s.consumer_kwargs())
        except BaseException:
            producer.close(timeout=1)
            raise
        consumer.subscribe([s.input_topic], listener=_Rebalance(self))
        self.producer, self.consumer = producer, consumer
        log.info("connected", extra={"bootstrap_servers": s.bootstrap_servers, "input_topic": s.input_topic,
                                     "group_id": s.group_id, "processing_guarantee": s.processing_guarantee})

    def _close_clients(self, leave_group: bool) -> None:
        consumer, producer = self.consumer, self.producer
        self.consumer = self.producer = None
        self._in_flight = None  # not committed: re-read from the committed offsets by the next consumer
        if consumer is not None:
            try:
                # No auto-commit: everything acknowledged is already committed; close() leaves the group.
                consumer.close(autocommit=False, timeout_ms=3000 if leave_group else 0)
            except Exception as exc:
                log.warning("consumer close failed", extra={"error": str(exc)})
        if producer is not None:
            try:
                producer.close(timeout=3 if leave_group else 0)
            except Exception as exc:
                log.warning("producer close failed", extra={"error": str(exc)})
        self._next_offset.clear()
        self.metrics.lag.clear()
        self.metrics.assigned.set(0)

    # ---- rebalance -------------------------------------------------------------------------------------

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return  # kafka-python calls this with nothing on the first join
        self.metrics.rebalances.labels(event="revoked").inc()
        try:
            # Hand over cleanly: what was sent is acknowledged and committed before the partitions go.
            self._settle()
        except BatchFailed as exc:
            log.warning("commit on revoke failed; the new owner re-reads those records", extra={"error": str(exc)})
        for tp in revoked:
            self._next_offset.pop(tp, None)
            with contextlib.suppress(KeyError):  # no lag sample yet for a partition we never read
                self.metrics.lag.remove(tp.topic, str(tp.partition))
        log.info("partitions revoked", extra={"partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in revoked)})

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.metrics.rebalances.labels(event="assigned").inc()
        log.info("partitions assigned",
                 extra={"partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in assigned)})

    # ---- the loop --------------------------------------------------------------------------------------

    def _step(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        self.models.swap_if_pending()
        # With a batch in flight, don't sit in poll: settle it as soon as there is nothing new to overlap with.
        wait_ms = 0 if self._in_flight is not None else self.settings.batch_max_wait_ms
        records = consumer.poll(timeout_ms=wait_ms, max_records=self.settings.batch_max_messages)
        self.health.beat()
        if records:
            batch = self._prepare(records)
            if self.settings.exactly_once:
                self._publish_transactional(batch)
            else:
                self._publish_pipelined(batch)
        else:
            self._settle()
        self._observe(consumer)

    def _observe(self, consumer: KafkaConsumer) -> None:
        assignment = consumer.assignment()
        self.metrics.assigned.set(len(assignment))
        coordinator = getattr(consumer, "_coordinator", None)
        connected = not coordinator.coordinator_unknown() if coordinator is not None else True
        if connected != self.health.broker_connected:
            # kafka-python reconnects on its own and says little; the transition is what operators need.
            if connected:
                log.info("broker connection (group coordinator) established")
            else:
                self.metrics.broker_errors.inc()
                log.warning("lost the broker (group coordinator unknown); kafka-python keeps reconnecting")
        self.health.broker_connected = connected
        self.health.partitions_assigned = bool(assignment)
        self.metrics.ready.set(1 if connected and assignment else 0)
        for tp in assignment:
            hw = consumer.highwater(tp)
            position = self._next_offset.get(tp)
            if hw is not None and position is not None:
                self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, hw - position))

    def _prepare(self, records_by_tp: dict[TopicPartition, list[Any]]) -> Batch:
        """Validate, classify (one model call), build every output of the batch."""
        s, m = self.settings, self.metrics
        records = [rec for recs in records_by_tp.values() for rec in recs]
        batch = Batch(
            started=time.monotonic(),
            records=records,
            offsets={tp: OffsetAndMetadata(recs[-1].offset + 1, "", -1) for tp, recs in records_by_tp.items()},
            first={tp: recs[0].offset for tp, recs in records_by_tp.items()},
        )
        m.consumed.labels(topic=s.input_topic).inc(len(records))
        m.batch_size.observe(len(records))

        valid: list[tuple[Any, Article]] = []
        dead: list[tuple[Any, Rejection]] = []
        for rec in records:
            try:
                parsed = parse_article(rec.value, s.max_message_bytes)
            except Exception as exc:  # parse_article never raises by contract; a bug must not wedge the loop
                parsed = Rejection(DeadLetterReason.INVALID_SCHEMA, f"unexpected {type(exc).__name__}: {exc}")
            if isinstance(parsed, Rejection):
                dead.append((rec, parsed))
            else:
                valid.append((rec, parsed))

        bundle = self.models.current
        t0 = time.perf_counter()
        predictions = classify_articles(bundle, [a for _, a in valid]) if valid else []
        m.inference.observe(time.perf_counter() - t0)

        model = bundle.describe()
        headers = [("schema-version", SCHEMA_VERSION.encode()), ("model-name", model["name"].encode()),
                   ("model-version", model["version"].encode()), ("content-type", b"application/json")]
        processed_at = now_iso()
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
            if len(value) > self._max_output_bytes:
                dead.append((rec, Rejection(DeadLetterReason.OUTPUT_TOO_LARGE,
                                            f"enriched event is {len(value)} bytes, limit {self._max_output_bytes}")))
                continue
            batch.outputs.append((s.output_topic, article.id.encode(), value, headers))
            batch.sources.append(rec)
            batch.published.append(prediction)
        for rec, rejection in dead:
            batch.outputs.append((s.dlq_topic, rec.key, rec.value, dead_letter_headers(rec, rejection)))
            batch.sources.append(rec)
            batch.reasons[rejection.reason.value] = batch.reasons.get(rejection.reason.value, 0) + 1
        return batch

    def _publish_pipelined(self, batch: Batch) -> None:
        producer = self.producer
        assert producer is not None
        # The previous batch had the whole classification of this one to be acknowledged: settle (commit) it
        # before this one is sent, so at most one batch is ever published but uncommitted — what a kill -9
        # can make the next owner publish again.
        previous, self._in_flight = self._in_flight, None
        if previous is not None:
            self._settle_one(previous, also_failing=[batch])
        try:
            batch.futures = [producer.send(topic, key=key, value=value, headers=headers)
                             for topic, key, value, headers in batch.outputs]
        except Exception as exc:
            self._fail([batch])
            raise ProducerFailed(f"send failed: {type(exc).__name__}: {exc}") from exc
        self._in_flight = batch

    def _settle(self) -> None:
        """Wait for the batch in flight, then commit it (at_least_once)."""
        batch, self._in_flight = self._in_flight, None
        if batch is not None:
            self._settle_one(batch, also_failing=[])

    def _settle_one(self, batch: Batch, also_failing: list[Batch]) -> None:
        producer, consumer = self.producer, self.consumer
        assert producer is not None and consumer is not None
        if not all(f.is_done for f in batch.futures):
            producer.flush()
        error = _first_error(batch.futures)
        refused = reroute_refused(batch, self.settings.output_topic, self.settings.dlq_topic) if error else []
        if refused:
            log.warning("the broker refused enriched events as too large; dead-lettered",
                        extra={"count": len(refused), "output_topic": self.settings.output_topic})
            for i in refused:
                topic, key, value, headers = batch.outputs[i]
                batch.futures[i] = producer.send(topic, key=key, value=value, headers=headers)
            producer.flush()
            error = _first_error(batch.futures)
        if error is not None:
            self._fail([batch, *also_failing])
            raise ProducerFailed(f"produce failed: {type(error).__name__}: {error}") from error
        try:
            consumer.commit(batch.offsets)
        except Exception as exc:  # CommitFailedError, RebalanceInProgressError, broker errors
            self.metrics.commit_failures.inc()
            self._fail([batch, *also_failing])
            raise BatchFailed(f"commit failed: {type(exc).__name__}: {exc}") from exc
        self.metrics.commits.inc()
        self._done(batch)

    def _fail(self, batches: list[Batch]) -> None:
        """Seek back to the first record of the failed batches (and anything after them): nothing is skipped."""
        self._in_flight = None
        first: dict[TopicPartition, int] = {}
        for batch in batches:
            for tp, offset in batch.first.items():
                first[tp] = min(offset, first.get(tp, offset))
        consumer = self.consumer
        if consumer is None:
            return
        owned = consumer.assignment()
        for tp, offset in first.items():
            if tp in owned:
                try:
                    consumer.seek(tp, offset)
                except Exception as exc:
                    log.warning("seek back failed", extra={"partition": str(tp), "error": str(exc)})

    def _done(self, batch: Batch) -> None:
        """Counted only now: the outputs are acknowledged and the offsets committed."""
        s, m = self.settings, self.metrics
        done = time.monotonic()
        wall = time.time()
        m.produced.labels(topic=s.output_topic).inc(len(batch.published))
        for reason, count in batch.reasons.items():
            m.dead_lettered.labels(reason=reason).inc(count)
        m.record_predictions(batch.published)
        elapsed = done - batch.started
        for rec in batch.records:
            m.processing.observe(elapsed)
            if rec.timestamp is not None and rec.timestamp >= 0:
                m.event_age.observe(max(0.0, wall - rec.timestamp / 1000.0))
        m.last_processed.set(wall)
        for tp, om in batch.offsets.items():
            self._next_offset[tp] = om.offset
        self.batches += 1
        if batch.reasons:
            log.info("dead-lettered", extra={"count": sum(batch.reasons.values()), "reasons": batch.reasons})

    def _publish_transactional(self, batch: Batch) -> None:
        producer, consumer = self.producer, self.consumer
        assert producer is not None and consumer is not None
        for attempt in (1, 2):
            try:
                producer.begin_transaction()
                batch.futures = [producer.send(topic, key=key, value=value, headers=headers)
                                 for topic, key, value, headers in batch.outputs]
                producer.send_offsets_to_transaction(batch.offsets, consumer.group_metadata())
                producer.commit_transaction()
                break
            except Exception as exc:
                self.metrics.commit_failures.inc()
                try:
                    producer.abort_transaction()
                except Exception as abort_exc:
                    self._fail([batch])
                    log.warning("abort failed", extra={"error": str(abort_exc)})
                    # A producer that cannot abort (e.g. fenced) is unusable: rebuild the clients.
                    raise ProducerFailed(f"transaction failed and could not be aborted: {exc}") from exc
                # Events the broker refused as too large fail every attempt: once, as dead letters, then again.
                if attempt == 1 and reroute_refused(batch, self.settings.output_topic, self.settings.dlq_topic):
                    log.warning("the broker refused enriched events as too large; dead-lettered, transaction "
                                "retried", extra={"output_topic": self.settings.output_topic})
                    continue
                self._fail([batch])
                raise BatchFailed(f"transaction failed: {type(exc).__name__}: {exc}") from exc
        self.metrics.commits.inc()
        self._done(batch)
