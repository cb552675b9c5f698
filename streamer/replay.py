"""``newsstream replay``: re-classify the input topic's history into another topic (backfill, a new model).

Records go through the worker's own code: :func:`streamer.pipeline.process` decides what each becomes (an
enriched event with the same key, headers and bytes the worker would send, ``processed_at`` aside, or a dead
letter with reason and origin), and the worker's send and delivery (:class:`streamer.worker.Worker`) publish
them, including what it does with a record the broker refuses as too large. What differs is only the reading:

- **Never the live group.** Partitions are assigned by hand; without ``group`` there is no group at all and
  nothing is committed anywhere. With its own ``group`` (the live one is refused) the offsets of a batch are
  committed on that group after every output of the batch is acknowledged (acks=all, flushed), as the worker
  does; a second run with the same group continues from those offsets instead of ``--from``.
- **A fixed end.** Each partition's end is its high watermark when the replay starts, read from the first
  fetch response (Tansu 0.6 answers ListOffsets "latest", i.e. ``end_offsets()``, wrongly; every fetch response
  carries the watermark, on Tansu and Kafka alike). Records that arrive later are not replayed.
- **Times by scanning.** ``--from``/``--until`` are found from the records' own timestamps, not with
  ``offsets_for_times()``: Tansu 0.6 answers every ListOffsets-by-time with offset 0, whatever the time. Per
  partition, replay begins at the first record whose timestamp is ≥ ``from`` (what ``offsets_for_times`` would
  return) and stops at the first one whose timestamp is ≥ ``until``; the offsets in between are replayed whatever
  their timestamps, so a partition's replay is one contiguous range, which is what ``group`` commits.
- **At least once.** A batch is classified while the previous one is being acknowledged; it is settled
  (acknowledged, then committed) before the next is sent, so a crash repeats at most one batch on the next run.
  The output producer is never transactional, even when the worker runs exactly_once: it must not share (and
  fence) the worker's transactional id.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from streamer.settings import Settings

log = logging.getLogger(__name__)

EXIT_FAILED = 1  #: a topic is missing, or the replay stopped part-way (a --group rerun continues)
EXIT_USAGE = 2  #: bad arguments or settings
EXIT_UNREACHABLE = 3  #: no broker at the bootstrap address (as ``produce`` and ``tail``)
EXIT_MODEL = 3  #: no model bundle verifies (as the worker)
EXIT_INTERRUPTED = 130  #: SIGINT/SIGTERM: the batch in flight was settled first

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ReplayError(Exception):
    """The replay cannot start or cannot go on; the message is the one line the user sees."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parse_time(text: str, now_ms: int | None = None) -> int:
    """An ISO-8601 time (or ``now``) as epoch milliseconds, rounded up; a time without a zone is UTC.

    >>> parse_time("2026-03-01T12:00:00Z"), parse_time("2026-03-01T13:00:00+01:00"), parse_time("2026-03-01T12:00")
    (1772366400000, 1772366400000, 1772366400000)
    >>> parse_time("1970-01-01T00:00:00.0001Z"), parse_time("now", now_ms=5)
    (1, 5)
    """
    if text.strip().lower() == "now":
        return now_ms if now_ms is not None else int(time.time() * 1000)
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Up, not down: records carry whole milliseconds, so "timestamp >= ceil(t)" is exactly "timestamp >= t".
    return math.ceil((moment - _EPOCH) / timedelta(milliseconds=1))


@dataclass(frozen=True)
class Window:
    """Which records to replay by timestamp (epoch ms); None: from the beginning / up to the end offsets."""

    from_ms: int | None = None
    until_ms: int | None = None


@dataclass
class PartitionReplay:
    """What the replay did on one partition. Offsets replayed: ``first`` up to (not including) ``next``."""

    partition: int
    start: int  # where reading began: the group's committed offset, else the partition's beginning
    resumed: bool  # start is the group's committed offset (--from is not applied)
    started: bool  # at or past the --from boundary: every record from here on is replayed
    end: int | None = None  # the high watermark when the replay started: nothing at or after it is replayed
    first: int | None = None
    next: int | None = None
    read: int = 0
    skipped: int = 0  # records before the --from boundary
    until_at: int | None = None  # the first offset whose timestamp is >= --until
    done: bool = False

    def describe(self) -> str:
        if self.first is None:
            what = "nothing replayed"
        else:
            what = f"offsets {self.first}..{self.next - 1 if self.next is not None else self.first} ({self.read} read)"
        notes = [f"{'resumed at' if self.resumed else 'began at'} {self.start}", f"end at start {self.end}"]
        if self.skipped:
            notes.append(f"{self.skipped} skipped before --from")
        if self.until_at is not None:
            notes.append(f"stopped at {self.until_at} by --until")
        return f"partition {self.partition}: {what}; " + ", ".join(notes)


@dataclass
class Summary:
    input_topic: str
    output_topic: str
    dlq_topic: str
    group: str | None
    model: dict[str, str]
    partitions: list[PartitionReplay] = field(default_factory=list)
    enriched: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    limited: bool = False

    @property
    def read(self) -> int:
        return sum(p.read for p in self.partitions)

    @property
    def skipped(self) -> int:
        return sum(p.skipped for p in self.partitions)

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        dead = sum(self.dead_lettered.values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self.dead_lettered.items()))
        how = "interrupted" if self.interrupted else "stopped at --limit" if self.limited else "done"
        head = (f"replay {how}: {self.read} read from {self.input_topic}, {self.enriched} enriched to "
                f"{self.output_topic}, {dead} dead-lettered to {self.dlq_topic}" + (f" ({reasons})" if reasons else "")
                + f" in {self.seconds:.1f}s, {self.rate:.0f} records/s")
        committed = f"progress committed on group {self.group}" if self.group else "no group, nothing committed"
        out = [head, f"model {self.model.get('name')} {self.model.get('version')}; {committed}"]
        if self.skipped:
            out.append(f"{self.skipped} records before --from were read and skipped")
        out += ["  " + p.describe() for p in sorted(self.partitions, key=lambda p: p.partition)]
        return out


class _Progress:
    """A tqdm bar on a terminal; elsewhere (a Job's log, a pipe) a plain line every ``interval_s``."""

    def __init__(self, enabled: bool, stream: TextIO, interval_s: float = 10.0) -> None:
        self.enabled = enabled
        self.stream = stream
        self.interval_s = interval_s
        self.bar: Any = None
        self.total = 0
        self.started = time.monotonic()
        self.shown_at = self.started

    def begin(self, total: int) -> None:
        self.total = total
        if not self.enabled:
            return
        isatty = getattr(self.stream, "isatty", None)
        if isatty is not None and isatty():
            try:
                from tqdm import tqdm  # in the train extra; the image leaves it out, and the plain lines serve
            except ImportError:
                return
            self.bar = tqdm(total=total, unit="rec", file=self.stream, desc="replay", dynamic_ncols=True)

    def update(self, done: int, read: int) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if now - self.shown_at >= self.interval_s:
            self.shown_at = now
            share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
            print(f"replay: {done} of {self.total} offsets{share}, {read} replayed, "
                  f"{read / max(now - self.started, 1e-9):.0f} records/s", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Replay:
    """One run: ``Replay(...).run()`` returns the :class:`Summary` or raises :class:`ReplayError`."""

    def __init__(self, settings: Settings, output_topic: str, window: Window, group: str | None = None,
                 limit: int = 0, stop: threading.Event | None = None, progress: bool = True,
                 stream: TextIO | None = None, end_timeout_s: float = 30.0, stall_timeout_s: float = 60.0) -> None:
        if group is not None and group == settings.group_id:
            raise ReplayError(f"--group {group!r} is the live worker's group (NEWSSTREAM_GROUP_ID); a replay never "
                              "commits there: name a group of its own", EXIT_USAGE)
        if output_topic == settings.input_topic:
            raise ReplayError(f"the output topic is the input topic {output_topic!r}", EXIT_USAGE)
        self.settings = settings
        # The worker's producer settings, but never transactional: a transactional id shared with the live worker
        # would fence it (and an exactly_once worker's default id is derived from its group and host).
        self.publish_settings = settings.model_copy(update={"processing_guarantee": "at_least_once",
                                                            "output_topic": output_topic})
        self.output_topic = output_topic
        self.window = window
        self.group = group
        self.limit = max(0, limit)
        self.stop = stop or threading.Event()
        self.stream = stream if stream is not None else sys.stderr
        self.progress = _Progress(progress, self.stream)
        self.end_timeout_s = end_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.consumer: Any = None
        self.publisher: Any = None  # a Worker, used for its send and delivery only
        self.parts: dict[Any, PartitionReplay] = {}
        self.summary: Summary | None = None

    # ---- set-up --------------------------------------------------------------------------------------

    def _load_model(self) -> Any:
        from prometheus_client import CollectorRegistry

        from streamer.artifact import ModelError
        from streamer.http import Health
        from streamer.metrics import Metrics
        from streamer.model_watch import ModelHolder, default_models_dir
        from streamer.worker import Worker

        s = self.publish_settings
        location = s.model_path or default_models_dir()
        metrics = Metrics(CollectorRegistry())
        try:
            # The worker's start-up choice (the newest bundle that verifies), never reloaded: one model for the run.
            models = ModelHolder(location, metrics, interval_s=0)
        except ModelError as exc:
            raise ReplayError(f"cannot load the model from {location}: {exc}", EXIT_MODEL) from exc
        return Worker(s, metrics, models, Health())

    def _connect(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.errors import KafkaError

        from streamer.produce import cannot_reach

        s = self.settings
        consumer_kw = {**s.consumer_kwargs(), "client_id": f"{s.client_id}-replay", "group_id": self.group,
                       "auto_offset_reset": "earliest"}
        for subscription_only in ("session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms"):
            consumer_kw.pop(subscription_only, None)  # manual assignment: no membership to keep
        try:
            self.consumer = KafkaConsumer(**consumer_kw)
            self.publisher.producer = KafkaProducer(**{**self.publish_settings.producer_kwargs(),
                                                       "client_id": f"{s.client_id}-replay-producer"})
        except KafkaError as exc:
            self._close()
            message = cannot_reach("replay", s, exc).removeprefix("newsstream replay: ")  # run() adds it back
            raise ReplayError(message, EXIT_UNREACHABLE) from exc

    def _partitions(self) -> list[Any]:
        from kafka import TopicPartition

        s, consumer = self.settings, self.consumer
        deadline = time.monotonic() + 5  # metadata of a topic created a moment ago may lag
        partitions = consumer.partitions_for_topic(s.input_topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(s.input_topic)
        if not partitions:
            raise ReplayError(f"input topic {s.input_topic!r} not found on {s.bootstrap_servers}")
        existing = consumer.topics()
        roles = (("output", self.output_topic), ("dead-letter", s.dlq_topic))
        missing = [f"{role} topic {name!r}" for role, name in roles if name not in existing]
        if missing:
            raise ReplayError(f"{' and '.join(missing)} not found on {s.bootstrap_servers}; create "
                              f"{'it' if len(missing) == 1 else 'them'} first")
        return [TopicPartition(s.input_topic, p) for p in sorted(partitions)]

    def _position(self, tps: list[Any]) -> None:
        """Seek each partition to the group's committed offset, else to its beginning; note where."""
        consumer = self.consumer
        consumer.assign(tps)
        committed: dict[Any, int | None] = {}
        if self.group is not None:
            committed = {tp: consumer.committed(tp) for tp in tps}
        for tp in tps:
            offset = committed.get(tp)
            if offset is not None:
                consumer.seek(tp, offset)
            else:
                consumer.seek_to_beginning(tp)
        for tp in tps:
            offset = committed.get(tp)
            resumed = offset is not None
            start = offset if offset is not None else consumer.position(tp)
            self.parts[tp] = PartitionReplay(tp.partition, start, resumed,
                                             started=resumed or self.window.from_ms is None)

    def _close(self) -> None:
        consumer, self.consumer = self.consumer, None
        producer = self.publisher.producer if self.publisher is not None else None
        if self.publisher is not None:
            self.publisher.producer = None
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close(autocommit=False, timeout_ms=3000)
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=5)

    # ---- the loop ------------------------------------------------------------------------------------

    def run(self) -> Summary:
        self.publisher = self._load_model()
        bundle = self.publisher.models.current
        s = self.settings
        self.summary = Summary(s.input_topic, self.output_topic, s.dlq_topic, self.group, bundle.describe())
        started = time.monotonic()
        self._connect()
        try:
            tps = self._partitions()
            self._position(tps)
            self.summary.partitions = list(self.parts.values())
            self._loop(tps)
        finally:
            self.summary.seconds = time.monotonic() - started
            self.progress.close()
            self._close()
        return self.summary

    def _loop(self, tps: list[Any]) -> None:
        from kafka.errors import KafkaError

        consumer, summary, s = self.consumer, self.summary, self.settings
        assert summary is not None
        in_flight: Any = None  # sent, not yet settled: classified batches overlap the previous one's acks
        began = last_progress = time.monotonic()
        progress_begun = False
        while not self.stop.is_set():
            active = [tp for tp in tps if not self.parts[tp].done]
            if not active:
                break
            if summary.limited:
                break
            wait_ms = 0 if in_flight is not None else max(100, s.batch_max_wait_ms)
            try:
                polled = consumer.poll(timeout_ms=wait_ms, max_records=s.batch_max_messages)
            except KafkaError as exc:
                raise ReplayError(f"reading {s.input_topic} failed: {type(exc).__name__}: {exc}") from exc
            self._learn_ends(active)
            taken = self._take(polled)
            self._finish_partitions(active)
            if not progress_begun and all(p.end is not None for p in self.parts.values()):
                progress_begun = True
                self.progress.begin(sum(max(0, (p.end or 0) - p.start) for p in self.parts.values()))
            if taken:
                batch = self._prepare(taken)
                if in_flight is not None:
                    self._settle(in_flight)
                in_flight = None
                self._send(batch)
                in_flight = batch
            elif in_flight is not None:
                self._settle(in_flight)
                in_flight = None
            if progress_begun:
                self.progress.update(self._offsets_done(), summary.read)
            now = time.monotonic()
            if polled:
                last_progress = now
            unknown = sorted(tp.partition for tp in active if self.parts[tp].end is None)
            if unknown and now - began > self.end_timeout_s:
                raise ReplayError(f"no fetch answer for partition(s) {unknown} of {s.input_topic} within "
                                  f"{self.end_timeout_s:.0f}s: cannot tell where the replay ends")
            if now - last_progress > self.stall_timeout_s:
                stuck = sorted(tp.partition for tp in tps if not self.parts[tp].done)
                raise ReplayError(f"no records from partition(s) {stuck} of {s.input_topic} for "
                                  f"{self.stall_timeout_s:.0f}s before their end offsets; is the broker at "
                                  f"{s.bootstrap_servers} still up?")
        if in_flight is not None:
            self._settle(in_flight)
        summary.interrupted = self.stop.is_set() and any(not p.done for p in self.parts.values())

    def _learn_ends(self, active: list[Any]) -> None:
        for tp in active:
            part = self.parts[tp]
            if part.end is None:
                highwater = self.consumer.highwater(tp)
                if highwater is not None:
                    part.end = highwater

    def _take(self, polled: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        """The polled records to replay, per partition (contiguous), moving each partition's boundaries."""
        assert self.summary is not None
        window = self.window
        room = self.limit - self.summary.read if self.limit else -1  # records --limit still allows (-1: no limit)
        taken: dict[Any, list[Any]] = {}
        for tp, records in polled.items():
            part = self.parts.get(tp)
            if part is None or part.done or part.end is None:
                continue  # end None cannot happen: a fetch that brings records also brings the watermark
            chosen: list[Any] = []
            for rec in records:
                if rec.offset >= part.end:
                    break
                if len(chosen) == room:
                    self.summary.limited = True  # the rest is left for the next run (with --group: from here)
                    break
                if window.until_ms is not None and rec.timestamp >= window.until_ms:
                    part.until_at = rec.offset
                    break
                if not part.started:
                    if window.from_ms is not None and rec.timestamp < window.from_ms:
                        part.skipped += 1
                        continue
                    part.started = True
                chosen.append(rec)
            if chosen:
                taken[tp] = chosen
                room -= len(chosen) if room > 0 else 0
                part.first = chosen[0].offset if part.first is None else part.first
                part.next = chosen[-1].offset + 1
                part.read += len(chosen)
        return taken

    def _finish_partitions(self, active: list[Any]) -> None:
        """A partition is done at its end offset or its --until boundary; it is paused so nothing more is fetched."""
        done = []
        for tp in active:
            part = self.parts[tp]
            if part.end is None:
                continue
            if part.until_at is not None or self.consumer.position(tp) >= part.end:
                part.done = True
                done.append(tp)
        if done:
            self.consumer.pause(*done)

    def _offsets_done(self) -> int:
        total = 0
        for tp, part in self.parts.items():
            if part.end is None:
                continue
            if part.done:
                total += max(0, part.end - part.start)
            else:
                with contextlib.suppress(Exception):
                    total += max(0, min(self.consumer.position(tp), part.end) - part.start)
        return total

    # ---- publishing: the worker's own send and delivery -----------------------------------------------

    def _prepare(self, taken: dict[Any, list[Any]]) -> Any:
        from streamer.pipeline import process
        from streamer.worker import Batch

        w = self.publisher
        records = [rec for recs in taken.values() for rec in recs]
        processed = process(records, w.models.current, w.limits, self.output_topic, self.settings.dlq_topic)
        return Batch.of(taken, processed, time.monotonic())

    def _send(self, batch: Any) -> None:
        from streamer.worker import DeadLetterRefused

        try:
            self.publisher._send(batch)
        except DeadLetterRefused as exc:
            raise ReplayError(f"the dead-letter topic refuses dead letters: {exc}") from exc
        except Exception as exc:
            raise ReplayError(f"sending to {self.output_topic} failed: {type(exc).__name__}: {exc}") from exc

    def _settle(self, batch: Any) -> None:
        """Every output acknowledged (refused ones replaced as the worker does), then the offsets committed."""
        from streamer.worker import BatchFailed, DeadLetterRefused

        summary = self.summary
        assert summary is not None
        try:
            self.publisher._deliver(batch)
        except DeadLetterRefused as exc:
            raise ReplayError(f"the dead-letter topic refuses dead letters: {exc}") from exc
        except BatchFailed as exc:
            raise ReplayError(f"outputs not acknowledged: {exc}") from exc
        if self.group is not None:
            try:
                self.consumer.commit(batch.offsets)
            except Exception as exc:
                raise ReplayError(f"committing on group {self.group!r} failed: {type(exc).__name__}: {exc}") from exc
        summary.enriched += len(batch.processed.predictions)
        for reason, count in batch.processed.reasons().items():
            summary.dead_lettered[reason] = summary.dead_lettered.get(reason, 0) + count


def run(settings: Settings, output_topic: str, window: Window, group: str | None = None, limit: int = 0,
        progress: bool = True, install_signals: bool = True) -> int:
    """``newsstream replay``: replay, print the summary (stderr), return the exit status."""
    import signal

    stop = threading.Event()
    try:
        replay = Replay(settings, output_topic, window, group=group, limit=limit, stop=stop, progress=progress)
    except ReplayError as exc:
        print(f"newsstream replay: {exc}", file=sys.stderr)
        return exc.exit_code
    if install_signals:  # finish (settle and commit) the batch in flight, then stop and print the summary
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    try:
        summary = replay.run()
    except ReplayError as exc:
        print(f"newsstream replay: {exc}", file=sys.stderr)
        if exc.exit_code == EXIT_FAILED and replay.summary is not None and replay.summary.read:
            for line in replay.summary.lines():
                print(line, file=sys.stderr)
            if group is not None:
                print(f"newsstream replay: rerun with --group {group} to continue from its last committed batch",
                      file=sys.stderr)
        return exc.exit_code
    for line in summary.lines():
        print(line, file=sys.stderr)
    return EXIT_INTERRUPTED if summary.interrupted else 0


def settings_for(bootstrap_servers: str | None = None, input_topic: str | None = None, dlq_topic: str | None = None,
                 model_path: Path | None = None) -> Settings:
    """Settings from the environment (NEWSSTREAM_*), with the flags given taking precedence."""
    overrides: dict[str, Any] = {name: value for name, value in (
        ("bootstrap_servers", bootstrap_servers), ("input_topic", input_topic), ("dlq_topic", dlq_topic),
        ("model_path", model_path)) if value is not None}
    return Settings(**overrides)
