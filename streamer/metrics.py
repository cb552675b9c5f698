"""Prometheus metrics of the worker, built around a registry passed in (a fresh one per test).

The names are an interface: dashboards and alerts are built on them. Add, never rename.

=================================================  =========  ==============================================
name                                               type       labels / meaning
=================================================  =========  ==============================================
newsstream_messages_consumed_total                 counter    topic — records polled from the input
newsstream_messages_produced_total                 counter    topic — enriched events acknowledged by the broker
newsstream_messages_dead_lettered_total            counter    reason — dead letters acknowledged (DeadLetterReason)
newsstream_classified_total                        counter    head, label — predictions published
newsstream_batch_size_messages                     histogram  records per processed batch
newsstream_inference_seconds                       histogram  model time per batch (one classify call)
newsstream_message_processing_seconds              histogram  per record: poll returned → offset committed
newsstream_event_age_seconds                       histogram  per event: publish time − input message timestamp
newsstream_prediction_confidence                   histogram  head — score of the top label
newsstream_prediction_drift                        gauge      head — Jensen–Shannon distance of the last
                                                              NEWSSTREAM_DRIFT_WINDOW_PREDICTIONS labels from the
                                                              training mix (0 same … 1 disjoint; NaN until the
                                                              window holds NEWSSTREAM_DRIFT_MIN_PREDICTIONS)
newsstream_shadow_agreement_ratio                  gauge      head — share of the last window's articles where the
                                                              shadow model's top label equals the live one's
newsstream_shadow_inference_seconds                histogram  shadow model time per batch
newsstream_shadow_errors_total                     counter    stage=load|classify|publish — shadow failures (the
                                                              live path is never affected)
newsstream_loop_phase_seconds                      histogram  phase=poll|process|send|deliver|commit — per batch:
                                                              where a cycle of the loop (and a record's latency)
                                                              goes
newsstream_consumer_lag_messages                   gauge      topic, partition — high watermark − position
newsstream_assigned_partitions                     gauge      partitions currently assigned
newsstream_last_processed_timestamp_seconds        gauge      unix time of the last committed batch
newsstream_commits_total                           counter    offset commits (or committed transactions)
newsstream_commit_failures_total                   counter    failed commits (records are re-read, not lost)
newsstream_rebalances_total                        counter    event=assigned|revoked|lost
newsstream_broker_errors_total                     counter    broker unreachable / request failed (retried), once each
newsstream_ready                                   gauge      1 when /readyz is 200 (model, broker, group member)
newsstream_dead_letters_bounded_total              counter    dead letters published in bounded form (too large)
newsstream_dead_letters_refused_total              counter    batches held back: the broker refused a bounded dead
                                                              letter (dead-letter topic misconfigured)
newsstream_model_info                              gauge      name, version — 1 for the model serving now
newsstream_model_reloads_total                     counter    result=success|refused
process_*, python_gc_*, python_info                           the client library's process, GC and platform
                                                              collectors (CPU, RSS, open fds, collections)
=================================================  =========  ==============================================
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from streamer.drift import LabelWindow

_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_AGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry, drift_window: int = 1000, drift_min: int = 200) -> None:
        self.registry = registry
        r = registry
        # CPU, memory, file descriptors and GC pauses next to our own series (what a leak or a GC storm shows in).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.consumed = Counter("newsstream_messages_consumed_total", "Records polled from the input topic",
                                ["topic"], registry=r)
        self.produced = Counter("newsstream_messages_produced_total", "Enriched events acknowledged by the broker",
                                ["topic"], registry=r)
        self.dead_lettered = Counter("newsstream_messages_dead_lettered_total",
                                     "Dead letters acknowledged by the broker, by reason", ["reason"], registry=r)
        self.classified = Counter("newsstream_classified_total", "Predictions published, by head and label",
                                  ["head", "label"], registry=r)
        self.batch_size = Histogram("newsstream_batch_size_messages", "Records per processed batch",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.inference = Histogram("newsstream_inference_seconds", "Model time per batch (one classify call)",
                                   buckets=_LATENCY_BUCKETS, registry=r)
        self.processing = Histogram("newsstream_message_processing_seconds",
                                    "Per record: from poll to offset commit", buckets=_LATENCY_BUCKETS, registry=r)
        self.event_age = Histogram("newsstream_event_age_seconds",
                                   "Publish time minus the input message timestamp", buckets=_AGE_BUCKETS,
                                   registry=r)
        # Where a cycle of the loop spends its time, per batch: what p99 latency is made of (bench/REPORT.md).
        self.loop_phase = Histogram("newsstream_loop_phase_seconds",
                                    "Time per batch in each phase of the loop: poll, process (parse, classify, "
                                    "encode), send, deliver (waiting for acknowledgements), commit",
                                    ["phase"], buckets=_LATENCY_BUCKETS, registry=r)
        self.phase = {name: self.loop_phase.labels(phase=name)
                      for name in ("poll", "process", "send", "deliver", "commit")}
        self.confidence = Histogram("newsstream_prediction_confidence", "Score of the top label, by head",
                                    ["head"], buckets=_CONFIDENCE_BUCKETS, registry=r)
        self.lag = Gauge("newsstream_consumer_lag_messages", "High watermark minus position, per partition",
                         ["topic", "partition"], registry=r)
        self.assigned = Gauge("newsstream_assigned_partitions", "Partitions currently assigned", registry=r)
        self.last_processed = Gauge("newsstream_last_processed_timestamp_seconds",
                                    "Unix time of the last committed batch", registry=r)
        self.commits = Counter("newsstream_commits_total", "Offset commits (or committed transactions)", registry=r)
        self.commit_failures = Counter("newsstream_commit_failures_total", "Failed offset commits", registry=r)
        self.rebalances = Counter("newsstream_rebalances_total", "Partition assignments and revocations",
                                  ["event"], registry=r)
        self.broker_errors = Counter("newsstream_broker_errors_total", "Broker unreachable or a request failed",
                                     registry=r)
        self.ready = Gauge("newsstream_ready", "1 when ready: model loaded, broker reachable, member of the group",
                           registry=r)
        self.dead_letters_bounded = Counter("newsstream_dead_letters_bounded_total",
                                            "Dead letters published bounded (value prefix, size and sha256 headers)",
                                            registry=r)
        self.dead_letters_refused = Counter("newsstream_dead_letters_refused_total",
                                            "Batches held back because the broker refused a bounded dead letter",
                                            registry=r)
        self.model_info = Gauge("newsstream_model_info", "The model serving now (value 1)", ["name", "version"],
                                registry=r)
        self.model_reloads = Counter("newsstream_model_reloads_total", "Model reload attempts by result",
                                     ["result"], registry=r)
        self.drift = Gauge("newsstream_prediction_drift",
                           "Jensen-Shannon distance between the label mix of the recent predictions and the "
                           "training mix (0 = same mix, 1 = no label in common)", ["head"], registry=r)
        self.shadow_agreement = Gauge("newsstream_shadow_agreement_ratio",
                                      "Share of recent articles where the shadow model's top label equals the live "
                                      "model's", ["head"], registry=r)
        self.shadow_inference = Histogram("newsstream_shadow_inference_seconds",
                                          "Shadow model time per batch", buckets=_LATENCY_BUCKETS, registry=r)
        self.shadow_errors = Counter("newsstream_shadow_errors_total",
                                     "Shadow model failures by stage (the live path goes on)", ["stage"], registry=r)
        self.drift_window = drift_window
        self.drift_min = drift_min
        self._windows: dict[str, LabelWindow] = {}
        # Children cached: labels() takes a lock and a dict lookup, and the hot path calls these per batch.
        # Label values come from the serving bundle's taxonomy (its card): bounded, and a custom taxonomy's heads
        # get series without code changes. Set by set_model.
        self._confidence_child: dict[str, Any] = {}
        self._heads: dict[str, tuple[str, ...]] = {}
        for result in ("success", "refused"):
            self.model_reloads.labels(result=result)
        for event in ("assigned", "revoked", "lost"):
            self.rebalances.labels(event=event)

    def set_model(self, name: str, version: str, heads: Mapping[str, Sequence[str]] | None = None,
                  reference: Mapping[str, Mapping[str, float]] | None = None) -> None:
        """The serving model; ``heads`` (its taxonomy) sets the head/label values the prediction series take;
        ``reference`` (the training label mix per head) is what drift is measured against; a new model starts a
        new drift window."""
        self.model_info.clear()
        self.model_info.labels(name=name, version=version).set(1)
        if heads is None:
            return
        labelled = {head: tuple(labels) for head, labels in heads.items()}
        if labelled != self._heads and self._heads:
            # Only when an operator allowed a taxonomy change: series of labels that no longer exist go.
            self.classified.clear()
            self.confidence.clear()
        self._heads = labelled
        self._confidence_child = {head: self.confidence.labels(head=head) for head in labelled}
        for head, labels in labelled.items():
            for label in labels:
                self.classified.labels(head=head, label=label)  # every label visible at 0 from the start
        self.drift.clear()
        self._windows = {}
        for head, labels in labelled.items():
            if reference and reference.get(head):
                self._windows[head] = LabelWindow(labels, reference[head], self.drift_window)
                self.drift.labels(head=head).set(float("nan"))

    def record_predictions(self, predictions: Iterable[dict[str, Any]]) -> None:
        predictions = list(predictions)
        tally: Tally[tuple[str, str]] = Tally()
        for prediction in predictions:
            for head, child in self._confidence_child.items():
                best = prediction[head]
                tally[(head, best["label"])] += 1
                child.observe(best["score"])
        for (head, label), count in tally.items():
            self.classified.labels(head=head, label=label).inc(count)
        for head, window in self._windows.items():
            window.add(p[head]["label"] for p in predictions)
            if len(window) >= self.drift_min:
                self.drift.labels(head=head).set(window.distance())
