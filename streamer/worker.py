"""The Kafka loop: poll a batch → :func:`streamer.pipeline.process` → produce → flush (acks=all) → commit.

This module only polls, produces, commits and handles membership; what becomes of a record is decided by the
pure pipeline. Delivery rules, in one place:

- An offset is committed only after every output of its batch (enriched events and dead letters) is
  acknowledged by the broker. A crash between the two re-reads the batch: duplicates, never losses
  (``at_least_once``). One batch may be in flight while the next is classified (its acknowledgements arrive
  meanwhile); it is settled — acknowledged, then committed — before the next one is handed to the producer,
  so a kill -9 repeats at most one batch.
- Graceful membership changes repeat nothing: kafka-python 3.0 runs rebalance callbacks on its network thread,
  where a blocking ``commit()`` is refused, so the listener is an ``AsyncConsumerRebalanceListener`` that waits
  for the batch in flight and *awaits* its commit before the partitions are given up (join, leave, scale).
- ``exactly_once`` puts the outputs and the offsets in one transaction (``send_offsets_to_transaction``).
- Whatever fails after a poll (produce, commit, transaction), the consumer seeks back to the first offset of
  the batch on each partition it still owns, so the next poll reads the same records again.
- No input of any size or content stops a partition. A record the broker refuses as too large is never sent
  again as is: an enriched event becomes a dead letter (``output_too_large``), a dead letter shrinks to its
  bounded form (:func:`streamer.pipeline.shrink`). If even the smallest dead letter is refused, the dead-letter
  topic is misconfigured: the worker backs off, reports not-ready with the reason and counts it, without
  rebuilding its clients.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, RecordListTooLargeError
from kafka.structs import OffsetAndMetadata

from streamer.http import Health
from streamer.metrics import Metrics
from streamer.model_watch import ModelHolder
from streamer.pipeline import Limits, Output, Processed, dumps, now_iso, process, refused_event, shrink
from streamer.schemas import SCHEMA_VERSION, enrich
from streamer.settings import Settings
from streamer.shadow import Shadow

log = logging.getLogger(__name__)

# kafka-python splits a refused multi-record batch and retries, so these reach a future only for a record the
# broker refuses on its own: deterministic, sending it again cannot help. send() raises the first one itself
# for a record over max_request_size.
_REFUSED_AS_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


class BatchFailed(Exception):
    """Outputs or offsets of a batch did not make it; the batch will be read again."""


class ProducerFailed(BatchFailed):
    """The producer itself is in doubt (e.g. its producer id is unknown after a broker restart): rebuild it."""


class DeadLetterRefused(BatchFailed):
    """The broker refuses even a dead letter with no value: the dead-letter topic is misconfigured."""


@dataclass
class Batch:
    """One polled batch from classification to commit. ``futures`` line up with ``processed.outputs``."""

    started: float
    records: list[Any]
    offsets: dict[TopicPartition, OffsetAndMetadata]  # next offset to read, per partition
    first: dict[TopicPartition, int]  # where to seek back to if the batch fails
    processed: Processed
    futures: list[Any] = field(default_factory=list)

    @property
    def outputs(self) -> list[Output]:
        return self.processed.outputs

    @classmethod
    def of(cls, records_by_tp: dict[TopicPartition, list[Any]], processed: Processed, started: float) -> Batch:
        """The batch of one poll's records (per partition, in offset order) and their outputs."""
        return cls(
            started=started,
            records=[rec for recs in records_by_tp.values() for rec in recs],
            offsets={tp: OffsetAndMetadata(recs[-1].offset + 1, "", -1) for tp, recs in records_by_tp.items()},
            first={tp: recs[0].offset for tp, recs in records_by_tp.items()},
            processed=processed,
        )


def _first_error(futures: list[Any]) -> BaseException | None:
    """The first failed produce future's error; one still pending counts as failed (never commit unacknowledged)."""
    for f in futures:
        if not f.is_done:
            return KafkaTimeoutError("an output was not acknowledged after flush()")
        if f.exception is not None:
            return f.exception
    return None


class _Refused:
    """A stand-in future for a record ``send()`` itself refused as too large (over ``max_request_size``)."""

    is_done = True

    def __init__(self, exc: BaseException) -> None:
        self.exception = exc

    def failed(self) -> bool:
        return True


def replace_refused(batch: Batch, limits: Limits, dlq_topic: str, only: list[int] | None = None) -> list[int]:
    """Swap each output the broker refused as too large for what to send instead; their indexes.

    An enriched event becomes its dead letter; a dead letter its next smaller form. Raises
    :class:`DeadLetterRefused` when a dead letter has no smaller form.

    >>> from types import SimpleNamespace as R
    >>> from streamer.schemas import DeadLetterReason, Rejection
    >>> rec = R(topic="in", partition=0, offset=7, timestamp=0, key=b"k", value=b"{}", headers=[])
    >>> event = Output("out", b"k", b"x" * 10, [], rec, prediction={})
    >>> b = Batch(0.0, [rec], {}, {}, Processed([event]), futures=[_Refused(MessageSizeTooLargeError("big"))])
    >>> replace_refused(b, Limits(), "dlq"), b.outputs[0].topic, b.outputs[0].value, b.processed.reasons()
    ([0], 'dlq', b'{}', {'output_too_large': 1})
    """
    candidates = range(len(batch.futures)) if only is None else only
    refused = [i for i in candidates if (f := batch.futures[i]) is not None
               and f.is_done and f.failed() and isinstance(f.exception, _REFUSED_AS_TOO_LARGE)]
    for i in refused:
        out, error = batch.outputs[i], batch.futures[i].exception
        if out.rejection is None:
            batch.outputs[i] = refused_event(out, error, limits, dlq_topic)
            continue
        smaller = shrink(out)
        if smaller is None:
            raise DeadLetterRefused(
                f"the broker refused a dead letter of {out.size} bytes with no value ({error}); check the "
                f"dead-letter topic {out.topic!r} (max.message.bytes, ACLs)")
        batch.outputs[i] = smaller
    return refused


class _Rebalance(AsyncConsumerRebalanceListener):
    """Runs on kafka-python's network thread, while the loop's thread is blocked in ``poll()`` or ``close()``."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.worker._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker._on_assigned(set(assigned))

    async def on_partitions_lost(self, lost: Any) -> None:
        self.worker._on_lost(set(lost))


class Worker:
    def __init__(self, settings: Settings, metrics: Metrics, models: ModelHolder, health: Health,
                 shadow: Shadow | None = None) -> None:
        self.settings = settings
        self.shadow = shadow
        # Shadow events need a topic that exists (send() would block the loop on a missing one) and are never
        # part of a transaction (exactly_once publishes the live outputs only).
        self._shadow_topic_ok = False
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
        max_request = int(settings.producer_kwargs()["max_request_size"])
        self.limits = Limits(
            max_message_bytes=settings.max_message_bytes,
            max_output_bytes=min(max_request, settings.output_max_message_bytes),
            dead_letter_bytes=min(max_request, settings.dlq_max_message_bytes),
            dead_letter_prefix_bytes=settings.dead_letter_prefix_bytes,
        )
        self._topics_checked = False
        self._outage_counted = False  # the error that began this outage is already in broker_errors_total
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
                    if self.health.broker_connected:
                        self._outage_counted = False
                except DeadLetterRefused as exc:
                    # Rebuilding the clients cannot fix a topic setting: keep them, say why, retry slowly.
                    self.metrics.dead_letters_refused.inc()
                    self.health.problem = f"dead-letter topic refuses dead letters: {exc}"
                    self._trouble("the dead-letter topic refuses even bounded dead letters; the batch waits",
                                  exc, backoff, level=logging.ERROR)
                    backoff = min(backoff * 2, 60.0)
                except BatchFailed as exc:
                    self._trouble("batch not committed; it will be read again", exc, backoff)
                    if isinstance(exc, ProducerFailed):
                        # kafka-python keeps failing with the old producer id after a broker restart;
                        # fresh clients resume from the committed offsets, which is where we rewound anyway.
                        self._close_clients(leave_group=False)
                    backoff = min(backoff * 2, 10.0)
                except Exception as exc:
                    # Broker gone or a client in a bad state: rebuild the clients after a pause.
                    self.health.broker_connected = False
                    self._trouble("broker unavailable or client error; retrying", exc, backoff)
                    self._close_clients(leave_group=False)
                    backoff = min(backoff * 2, 10.0)
        finally:
            try:
                self._settle()
            except Exception as exc:  # the batch is re-read by the next owner: a duplicate, not a loss
                log.warning("last batch not committed at shutdown", extra={"error": str(exc)})
            self._close_clients(leave_group=True)
            self.health.member = False
            self._publish_ready()
        return 0

    def _trouble(self, message: str, exc: BaseException, backoff: float, level: int = logging.WARNING) -> None:
        self.metrics.broker_errors.inc()
        self._outage_counted = True
        self._publish_ready()
        log.log(level, message, extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_seconds": backoff})
        if self.consumer is not None:
            with contextlib.suppress(Exception):  # the lag gauge stays current while batches fail
                self._observe_lag(self.consumer)
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
        if not self._topics_checked:
            self._check_topics(consumer)

    def _check_topics(self, consumer: KafkaConsumer) -> None:
        """Name a missing input, output or dead-letter topic at start-up (auto-creation may be off)."""
        s = self.settings
        try:
            existing = consumer.topics()
        except Exception as exc:
            log.warning("could not list topics", extra={"error": str(exc)})
            return
        self._topics_checked = True
        missing = [f"{role} topic {name!r}" for role, name in
                   (("input", s.input_topic), ("output", s.output_topic), ("dead-letter", s.dlq_topic))
                   if name not in existing]
        self.health.warnings = [f"{m} does not exist on the broker" for m in missing]
        if self.shadow is not None and s.shadow_topic:
            self._shadow_topic_ok = s.shadow_topic in existing and not s.exactly_once
            if not self._shadow_topic_ok:
                why = "exactly_once publishes live outputs only" if s.exactly_once else "the topic does not exist"
                self.shadow.failed("publish", RuntimeError(f"shadow events not published to {s.shadow_topic!r}: {why}"))
        if missing:
            log.error("topics missing on the broker; create them (or enable auto-creation)",
                      extra={"missing": missing, "bootstrap_servers": s.bootstrap_servers})

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
        self.health.member = False
        self.health.partitions = 0

    # ---- membership ------------------------------------------------------------------------------------

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return  # kafka-python calls this with nothing on the first join
        self.metrics.rebalances.labels(event="revoked").inc()
        batch, self._in_flight = self._in_flight, None
        if batch is not None:
            # Hand over cleanly: what was sent is acknowledged and committed before the partitions go. The
            # network thread must not block on itself, so the commit is awaited, not called.
            consumer = self.consumer
            try:
                self._deliver(batch)
                assert consumer is not None
                await consumer.commit_async(batch.offsets)
            except Exception as exc:
                self.metrics.commit_failures.inc()
                log.warning("commit on revoke failed; the new owner re-reads those records",
                            extra={"error": f"{type(exc).__name__}: {exc}"})
            else:
                self.metrics.commits.inc()
                self._done(batch)
                log.info("handed over: the batch in flight was committed before the partitions went",
                         extra={"records": len(batch.records)})
        self._forget(revoked)
        log.info("partitions revoked", extra={"partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in revoked)})

    def _on_lost(self, lost: set[TopicPartition]) -> None:
        # Evicted: the partitions already belong to someone else; committing would fail. Drop the batch.
        self._in_flight = None
        self.metrics.rebalances.labels(event="lost").inc()
        self._forget(lost)
        log.warning("partitions lost (evicted from the group); their uncommitted records are re-read by the new "
                    "owner", extra={"partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in lost)})

    def _forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._next_offset.pop(tp, None)
            with contextlib.suppress(KeyError):  # no lag sample yet for a partition we never read
                self.metrics.lag.remove(tp.topic, str(tp.partition))

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
        t0 = time.perf_counter()
        records = consumer.poll(timeout_ms=wait_ms, max_records=self.settings.batch_max_messages)
        if records:  # an empty poll is idle time, not part of any record's latency
            self.metrics.phase["poll"].observe(time.perf_counter() - t0)
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
        coordinator = getattr(consumer, "_coordinator", None)
        connected = not coordinator.coordinator_unknown() if coordinator is not None else True
        if connected != self.health.broker_connected:
            # kafka-python reconnects on its own and says little; the transition is what operators need.
            if connected:
                self._outage_counted = False
                log.info("broker connection (group coordinator) established")
            else:
                if not self._outage_counted:  # each error once: a failed call already counted this one
                    self.metrics.broker_errors.inc()
                    self._outage_counted = True
                log.warning("lost the broker (group coordinator unknown); kafka-python keeps reconnecting")
        self.health.broker_connected = connected
        # A member holds a generation whether or not it got partitions: an idle replica is ready.
        self.health.member = consumer.group_metadata().generation_id >= 0
        self._observe_lag(consumer)
        self._publish_ready()

    def _observe_lag(self, consumer: KafkaConsumer) -> None:
        assignment = consumer.assignment()
        self.metrics.assigned.set(len(assignment))
        self.health.partitions = len(assignment)
        for tp in assignment:
            hw = consumer.highwater(tp)
            position = self._next_offset.get(tp)
            if position is None:
                with contextlib.suppress(Exception):
                    position = consumer.position(tp, timeout_ms=0)
            if hw is not None and position is not None:
                self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, hw - position))

    def _publish_ready(self) -> None:
        self.metrics.ready.set(1 if self.health.ready()[0] else 0)

    def _prepare(self, records_by_tp: dict[TopicPartition, list[Any]]) -> Batch:
        s, m = self.settings, self.metrics
        records = [rec for recs in records_by_tp.values() for rec in recs]
        started = time.monotonic()
        m.consumed.labels(topic=s.input_topic).inc(len(records))
        m.batch_size.observe(len(records))
        bundle = self.models.current
        t0 = time.perf_counter()
        processed = process(records, bundle, self.limits, s.output_topic, s.dlq_topic,
                            keep_articles=self.shadow is not None)
        m.inference.observe(elapsed := time.perf_counter() - t0)
        m.phase["process"].observe(elapsed)
        if self.shadow is not None:
            events = [o for o in processed.outputs if o.rejection is None and o.article is not None]
            docs = [(o.article.title or "", o.article.text) for o in events]
            scored = self.shadow.score(docs, [o.prediction or {} for o in events])
            if scored is not None and self._shadow_topic_ok:
                self._publish_shadow(events, scored)
        return Batch.of(records_by_tp, processed, started)

    def _publish_shadow(self, events: list[Any], predictions: list[dict[str, Any]]) -> None:
        """The shadow's events, fire and forget: outside the batch's acknowledgements and commit."""
        producer, shadow, topic = self.producer, self.shadow, self.settings.shadow_topic
        assert producer is not None and shadow is not None and topic
        model = shadow.bundle.describe()
        headers = [("schema-version", SCHEMA_VERSION.encode()), ("model-name", model["name"].encode()),
                   ("model-version", model["version"].encode()), ("content-type", b"application/json"),
                   ("shadow", b"true")]
        processed_at = now_iso()
        try:
            for out, prediction in zip(events, predictions, strict=True):
                rec = out.source
                origin = {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
                value = dumps(enrich(out.article, prediction, model, processed_at, origin))
                future = producer.send(topic, key=out.key, value=value, headers=headers)
                future.add_errback(lambda exc: shadow.failed("publish", exc))
        except Exception as exc:
            shadow.failed("publish", exc)

    def _send(self, batch: Batch, indexes: list[int] | None = None) -> None:
        """Send outputs of the batch (all, or those at ``indexes``), filling ``batch.futures`` in the same order.

        A record ``send()`` itself refuses as too large (over ``max_request_size``) is replaced at once by its
        smaller form and sent again, before anything waits or a transaction has to be aborted.
        """
        producer = self.producer
        assert producer is not None
        if indexes is None:
            indexes = list(range(len(batch.outputs)))
            batch.futures = [None] * len(batch.outputs)
        t0 = time.perf_counter()
        for i in indexes:
            while True:
                out = batch.outputs[i]
                try:
                    batch.futures[i] = producer.send(out.topic, key=out.key, value=out.value, headers=out.headers)
                    break
                except _REFUSED_AS_TOO_LARGE as exc:
                    batch.futures[i] = _Refused(exc)
                    if not replace_refused(batch, self.limits, self.settings.dlq_topic, only=[i]):
                        raise
        self.metrics.phase["send"].observe(time.perf_counter() - t0)

    def _publish_pipelined(self, batch: Batch) -> None:
        # The previous batch had the whole classification of this one to be acknowledged: settle (commit) it
        # before this one is sent, so at most one batch is ever published but uncommitted — what a kill -9
        # can make the next owner publish again.
        previous, self._in_flight = self._in_flight, None
        if previous is not None:
            self._settle_one(previous, also_failing=[batch])
        try:
            self._send(batch)
        except DeadLetterRefused:
            self._fail([batch])
            raise
        except Exception as exc:
            self._fail([batch])
            raise ProducerFailed(f"send failed: {type(exc).__name__}: {exc}") from exc
        self._in_flight = batch

    def _settle(self) -> None:
        """Wait for the batch in flight, then commit it (at_least_once)."""
        batch, self._in_flight = self._in_flight, None
        if batch is not None:
            self._settle_one(batch, also_failing=[])

    def _deliver(self, batch: Batch) -> None:
        """Wait until every output of the batch is acknowledged; refused ones are replaced and sent again."""
        producer = self.producer
        assert producer is not None
        for _ in range(4):  # event → whole dead letter → bounded → minimal: each refusal shrinks the record
            if not all(f.is_done for f in batch.futures):
                producer.flush()
            error = _first_error(batch.futures)
            if error is None:
                return
            refused = replace_refused(batch, self.limits, self.settings.dlq_topic)
            if not refused:
                raise ProducerFailed(f"produce failed: {type(error).__name__}: {error}") from error
            log.warning("the broker refused records as too large; sending smaller dead letters instead",
                        extra={"count": len(refused), "forms": sorted({batch.outputs[i].form for i in refused})})
            self._send(batch, refused)
        raise ProducerFailed("outputs still refused after every smaller form")

    def _settle_one(self, batch: Batch, also_failing: list[Batch]) -> None:
        consumer = self.consumer
        assert consumer is not None
        t0 = time.perf_counter()
        try:
            self._deliver(batch)
        except BatchFailed:
            self._fail([batch, *also_failing])
            raise
        t1 = time.perf_counter()
        self.metrics.phase["deliver"].observe(t1 - t0)
        try:
            consumer.commit(batch.offsets)
        except Exception as exc:  # CommitFailedError, RebalanceInProgressError, broker errors
            self.metrics.commit_failures.inc()
            self._fail([batch, *also_failing])
            raise BatchFailed(f"commit failed: {type(exc).__name__}: {exc}") from exc
        self.metrics.phase["commit"].observe(time.perf_counter() - t1)
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
        predictions = batch.processed.predictions
        reasons = batch.processed.reasons()
        m.produced.labels(topic=s.output_topic).inc(len(predictions))
        for reason, count in reasons.items():
            m.dead_lettered.labels(reason=reason).inc(count)
        bounded = sum(1 for o in batch.outputs if o.form in ("bounded", "minimal"))
        if bounded:
            m.dead_letters_bounded.inc(bounded)
        m.record_predictions(predictions)
        elapsed = done - batch.started
        for rec in batch.records:
            m.processing.observe(elapsed)
            if rec.timestamp is not None and rec.timestamp >= 0:
                m.event_age.observe(max(0.0, wall - rec.timestamp / 1000.0))
        m.last_processed.set(wall)
        if self.health.problem and self.health.problem.startswith("dead-letter"):
            self.health.problem = None  # a batch with its dead letters went through since
        for tp, om in batch.offsets.items():
            self._next_offset[tp] = om.offset
        self.batches += 1
        if reasons:
            log.info("dead-lettered", extra={"count": sum(reasons.values()), "reasons": reasons,
                                             "bounded": bounded})

    def _publish_transactional(self, batch: Batch) -> None:
        producer, consumer = self.producer, self.consumer
        assert producer is not None and consumer is not None
        for _attempt in range(4):  # each retry sends smaller forms of what the broker refused as too large
            try:
                producer.begin_transaction()
                self._send(batch)
                producer.flush()
                error = _first_error(batch.futures)
                if error is not None:
                    raise error
                producer.send_offsets_to_transaction(batch.offsets, consumer.group_metadata())
                producer.commit_transaction()
                break
            except DeadLetterRefused:
                with contextlib.suppress(Exception):
                    producer.abort_transaction()
                self._fail([batch])
                raise
            except Exception as exc:
                self.metrics.commit_failures.inc()
                try:
                    producer.abort_transaction()
                except Exception as abort_exc:
                    self._fail([batch])
                    log.warning("abort failed", extra={"error": str(abort_exc)})
                    # A producer that cannot abort (e.g. fenced) is unusable: rebuild the clients.
                    raise ProducerFailed(f"transaction failed and could not be aborted: {exc}") from exc
                try:
                    refused = replace_refused(batch, self.limits, self.settings.dlq_topic)
                except DeadLetterRefused:
                    self._fail([batch])
                    raise
                if refused:
                    log.warning("the broker refused records as too large; transaction retried with smaller dead "
                                "letters", extra={"count": len(refused)})
                    continue
                self._fail([batch])
                raise BatchFailed(f"transaction failed: {type(exc).__name__}: {exc}") from exc
        else:
            self._fail([batch])
            raise BatchFailed("transaction still refused after every smaller form")
        self.metrics.commits.inc()
        self._done(batch)
