"""``newsstream top``, the logic: scrape workers' ``/metrics`` and turn two scrapes into one frame of numbers.

Nothing here draws (the terminal view is :mod:`streamer.top_view`, the only module importing ``rich``), so
every number the view shows is computed, and tested, from two scrape texts:

* rates are counters differenced between a worker's two consecutive scrapes ÷ the seconds between them,
  summed over workers (a counter that went down was reset by a restart: its new value is the increase);
* p50/p99 come from the bucket increases of ``newsstream_message_processing_seconds`` over the interval, as
  ``histogram_quantile`` over ``rate(..._bucket)`` would; when nothing was processed in the interval, from
  the cumulative buckets (labelled so);
* the label mix is each label's share of the predictions of its head over the interval (cumulative likewise);
* gauges (lag, ready, partitions, drift, shadow agreement, model) are the latest scrape's values.

A worker that cannot be scraped is a row saying "down" and why; it never stops the others being shown.
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

DEFAULT_URL = "http://127.0.0.1:9108/metrics"

CONSUMED = "newsstream_messages_consumed_total"
PRODUCED = "newsstream_messages_produced_total"
DEAD_LETTERED = "newsstream_messages_dead_lettered_total"
CLASSIFIED = "newsstream_classified_total"
PROCESSING = "newsstream_message_processing_seconds"
LOOP_PHASE = "newsstream_loop_phase_seconds"
LAG = "newsstream_consumer_lag_messages"
MODEL_INFO = "newsstream_model_info"
READY = "newsstream_ready"
ASSIGNED = "newsstream_assigned_partitions"
DRIFT = "newsstream_prediction_drift"
SHADOW = "newsstream_shadow_agreement_ratio"

PHASES = ("poll", "process", "send", "deliver", "commit")

#: labels of one series, sorted: the key of a value within a sample name
Labels = tuple[tuple[str, str], ...]
#: sample name (with its _total/_bucket/_count/_sum suffix) → labels → value
Samples = dict[str, dict[Labels, float]]


# ---- scraping ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    """One worker's /metrics at one moment: its samples, or why there are none."""

    url: str
    at: float  # time.monotonic() when the response was read
    samples: Samples | None = None
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.samples is not None


def normalize_url(url: str) -> str:
    """``host:port`` → ``http://host:port/metrics``; a URL with a scheme and a path is kept as given."""
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    scheme, rest = url.split("://", 1)
    if "/" not in rest:
        url = f"{scheme}://{rest}/metrics"
    return url


def parse_exposition(text: str) -> Samples:
    """The Prometheus text exposition format, as sample name → sorted labels → value."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = float(sample.value)
    return out


def describe_error(exc: BaseException) -> str:
    """A short, readable reason a scrape failed (what the "down" row shows)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, OSError) and reason.strerror:
            return reason.strerror
        return str(reason) or type(reason).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ValueError):
        return f"not a Prometheus exposition ({exc})"[:120]
    return f"{type(exc).__name__}: {exc}"[:120]


def fetch(url: str, timeout_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> Scrape:
    """Scrape one URL. Never raises: a failure is a Scrape with ``error`` set."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            body = resp.read()
        return Scrape(url, clock(), samples=parse_exposition(body.decode("utf-8", "replace")))
    except Exception as exc:  # anything: an unreachable or broken worker is shown, it does not end the view
        return Scrape(url, clock(), error=describe_error(exc))


def scrape_all(urls: Sequence[str], timeout_s: float = 1.0, pool: ThreadPoolExecutor | None = None) -> list[Scrape]:
    """Scrape every URL at once (a slow worker costs at most ``timeout_s``, not that times the workers)."""
    if pool is None:
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(urls)))) as own:
            return list(own.map(lambda u: fetch(u, timeout_s), urls))
    return list(pool.map(lambda u: fetch(u, timeout_s), urls))


# ---- arithmetic on samples ----------------------------------------------------------------------------------


def _series(samples: Samples | None, name: str) -> dict[Labels, float]:
    return samples.get(name, {}) if samples else {}


def _label(labels: Labels, key: str) -> str:
    return dict(labels).get(key, "")


def increase(cur: float, prev: float | None) -> float:
    """Counter increase between two scrapes; a counter that went down was reset (restart): all of it is new."""
    if prev is None:
        return 0.0
    return cur - prev if cur >= prev else cur


def counter_by(samples: Samples | None, name: str, key: str | None = None) -> dict[str, float]:
    """A counter summed over its series, grouped by one label (``key``) or into "" when ``key`` is None."""
    out: dict[str, float] = {}
    for labels, value in _series(samples, name).items():
        group = _label(labels, key) if key else ""
        out[group] = out.get(group, 0.0) + value
    return out


def increase_by(cur: Samples | None, prev: Samples | None, name: str, key: str | None = None) -> dict[str, float]:
    """Per group of ``key``, the counter's increase between two scrapes (series-wise, resets handled)."""
    out: dict[str, float] = {}
    before = _series(prev, name)
    for labels, value in _series(cur, name).items():
        group = _label(labels, key) if key else ""
        out[group] = out.get(group, 0.0) + increase(value, before.get(labels, 0.0 if prev is not None else None))
    return out


def buckets(samples: Samples | None, name: str, **match: str) -> dict[float, float]:
    """A histogram's cumulative bucket counts (upper bound → count), summed over series matching ``match``."""
    out: dict[float, float] = {}
    for labels, value in _series(samples, f"{name}_bucket").items():
        d = dict(labels)
        if any(d.get(k) != v for k, v in match.items()):
            continue
        le = float(d["le"])
        out[le] = out.get(le, 0.0) + value
    return out


def bucket_increase(cur: Samples | None, prev: Samples | None, name: str) -> dict[float, float]:
    """The buckets' increase between two scrapes; all of ``cur`` when the histogram was reset (its count fell)."""
    now = buckets(cur, name)
    if prev is None:
        return {le: 0.0 for le in now}
    before = buckets(prev, name)
    if sum(_series(cur, f"{name}_count").values()) < sum(_series(prev, f"{name}_count").values()):
        return now
    return {le: max(0.0, count - before.get(le, 0.0)) for le, count in now.items()}


def add_buckets(into: dict[float, float], more: Mapping[float, float]) -> None:
    for le, count in more.items():
        into[le] = into.get(le, 0.0) + count


def histogram_quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation within the bucket holding rank ``q × count``.

    None when there are no observations. A rank in the +Inf bucket gives the highest finite bound (as
    Prometheus does): "at least this much".
    """
    bounds = sorted(cumulative)
    if not bounds or not math.isinf(bounds[-1]):
        return None
    total = cumulative[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le in bounds:
        count = cumulative[le]
        if count >= rank:
            if math.isinf(le):
                return lower_bound if len(bounds) > 1 else None
            if count == lower_count:
                return le
            if le <= 0:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return bounds[-2] if len(bounds) > 1 else None


def gauge_by(samples: Samples | None, name: str, key: str) -> dict[str, float]:
    return {_label(labels, key): value for labels, value in _series(samples, name).items()}


def gauge(samples: Samples | None, name: str) -> float | None:
    series = _series(samples, name)
    return next(iter(series.values())) if series else None


def model_of(samples: Samples | None) -> tuple[str, str] | None:
    """(name, version) of the model serving now, from ``newsstream_model_info`` (the series valued 1)."""
    for labels, value in _series(samples, MODEL_INFO).items():
        if value >= 1:
            d = dict(labels)
            return d.get("name", "?"), d.get("version", "?")
    return None


# ---- one frame ---------------------------------------------------------------------------------------------


@dataclass
class WorkerRow:
    url: str
    up: bool
    error: str | None = None
    model: tuple[str, str] | None = None
    ready: bool | None = None
    partitions: int | None = None
    rate_in: float | None = None  # records/s; None until a second scrape
    rate_out: float | None = None
    rate_dead: float | None = None
    consumed: float = 0.0  # totals since the worker started
    produced: float = 0.0
    dead: float = 0.0


@dataclass
class LagRow:
    url: str
    topic: str
    partition: int
    lag: float


@dataclass
class DeadLetterRow:
    reason: str
    rate: float | None
    total: float


@dataclass
class HeadMix:
    head: str
    shares: list[tuple[str, float]]  # (label, share of the head's predictions), largest first, all labels
    count: float  # predictions the shares are of
    window: str  # "interval" or "cumulative"


@dataclass
class HeadHealth:
    head: str
    drift: tuple[float, float] | None  # (lowest, highest) over workers; None: not exported; (nan, nan): not yet
    shadow: tuple[float, float] | None


@dataclass
class Frame:
    workers: list[WorkerRow]
    elapsed: float | None  # seconds the rates are over (mean of the workers'); None on the first scrape
    rate_in: float | None
    rate_out: float | None
    rate_dead: float | None
    p50: float | None
    p99: float | None
    latency_count: float  # records the quantiles are over
    latency_window: str | None  # "interval", "cumulative" or None (no observations)
    lag: list[LagRow]
    dead_letters: list[DeadLetterRow]
    mix: list[HeadMix]
    health: list[HeadHealth]
    phases: list[tuple[str, float | None]] = field(default_factory=list)  # phase → mean seconds per batch
    phases_window: str | None = None

    @property
    def up(self) -> int:
        return sum(1 for w in self.workers if w.up)

    @property
    def total_lag(self) -> float:
        return sum(row.lag for row in self.lag)

    @property
    def models(self) -> list[tuple[str, str]]:
        return sorted({w.model for w in self.workers if w.up and w.model})


def _sum_or_none(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _spread(values: Iterable[float]) -> tuple[float, float] | None:
    """(lowest, highest) of a gauge over workers: None when no worker exports it, (nan, nan) when every worker
    exports NaN (drift does until its window is full), else over the workers with a number."""
    present = list(values)
    if not present:
        return None
    numbers = [v for v in present if not math.isnan(v)]
    return (min(numbers), max(numbers)) if numbers else (math.nan, math.nan)


def build_frame(current: Sequence[Scrape], previous: Sequence[Scrape | None] | None = None) -> Frame:
    """One frame from each worker's latest scrape and (same order) the one before it, if any."""
    prev_list: list[Scrape | None] = list(previous) if previous is not None else [None] * len(current)
    if len(prev_list) != len(current):
        raise ValueError("previous and current scrapes must be of the same workers, in the same order")
    # A pair is usable for rates only when both scrapes succeeded and time passed between them.
    pairs: list[tuple[Scrape, Scrape | None, float | None]] = []
    for cur, prev in zip(current, prev_list, strict=True):
        usable = prev if (prev is not None and prev.up and cur.up and cur.at > prev.at) else None
        pairs.append((cur, usable, (cur.at - usable.at) if usable is not None else None))

    workers: list[WorkerRow] = []
    lag: list[LagRow] = []
    dead_rate: dict[str, float] = {}
    dead_total: dict[str, float] = {}
    dead_has_rate = False
    interval_buckets: dict[float, float] = {}
    cumulative_buckets: dict[float, float] = {}
    mix_interval: dict[str, dict[str, float]] = {}
    mix_cumulative: dict[str, dict[str, float]] = {}
    phase_interval: dict[str, list[float]] = {p: [0.0, 0.0] for p in PHASES}
    phase_cumulative: dict[str, list[float]] = {p: [0.0, 0.0] for p in PHASES}
    drift: dict[str, list[float]] = {}
    shadow: dict[str, list[float]] = {}
    elapsed: list[float] = []

    for cur, prev, seconds in pairs:
        if not cur.up:
            workers.append(WorkerRow(cur.url, up=False, error=cur.error))
            continue
        s, p = cur.samples, prev.samples if prev is not None else None
        row = WorkerRow(cur.url, up=True, model=model_of(s))
        ready = gauge(s, READY)
        row.ready = None if ready is None else ready >= 1
        assigned = gauge(s, ASSIGNED)
        row.partitions = None if assigned is None else int(assigned)
        row.consumed = sum(counter_by(s, CONSUMED).values())
        row.produced = sum(counter_by(s, PRODUCED).values())
        row.dead = sum(counter_by(s, DEAD_LETTERED).values())
        for reason, total in counter_by(s, DEAD_LETTERED, "reason").items():
            dead_total[reason] = dead_total.get(reason, 0.0) + total
        if seconds is not None:
            elapsed.append(seconds)
            row.rate_in = sum(increase_by(s, p, CONSUMED).values()) / seconds
            row.rate_out = sum(increase_by(s, p, PRODUCED).values()) / seconds
            dead_inc = increase_by(s, p, DEAD_LETTERED, "reason")
            row.rate_dead = sum(dead_inc.values()) / seconds
            dead_has_rate = True
            for reason, inc in dead_inc.items():
                dead_rate[reason] = dead_rate.get(reason, 0.0) + inc / seconds
            add_buckets(interval_buckets, bucket_increase(s, p, PROCESSING))
            for (head, label), inc in _by_head_label(increase_by_series(s, p, CLASSIFIED)).items():
                mix_interval.setdefault(head, {})[label] = mix_interval.get(head, {}).get(label, 0.0) + inc
            before = _phase_totals(p)
            for phase, (total, count) in _phase_totals(s).items():
                old_total, old_count = before[phase]
                reset = count < old_count
                phase_interval[phase][0] += total if reset else total - old_total
                phase_interval[phase][1] += count if reset else count - old_count
        add_buckets(cumulative_buckets, buckets(s, PROCESSING))
        for (head, label), total in _by_head_label(_series(s, CLASSIFIED)).items():
            mix_cumulative.setdefault(head, {})[label] = mix_cumulative.get(head, {}).get(label, 0.0) + total
        for phase, (total, count) in _phase_totals(s).items():
            phase_cumulative[phase][0] += total
            phase_cumulative[phase][1] += count
        for (topic, partition), value in sorted(_lag_of(s).items()):
            lag.append(LagRow(cur.url, topic, partition, value))
        for head, value in gauge_by(s, DRIFT, "head").items():
            drift.setdefault(head, []).append(value)
        for head, value in gauge_by(s, SHADOW, "head").items():
            shadow.setdefault(head, []).append(value)
        workers.append(row)

    up_rows = [w for w in workers if w.up]
    if interval_buckets.get(math.inf, 0.0) > 0:
        latency, latency_window = interval_buckets, "interval"
    elif cumulative_buckets.get(math.inf, 0.0) > 0:
        latency, latency_window = cumulative_buckets, "cumulative"
    else:
        latency, latency_window = {}, None

    mix: list[HeadMix] = []
    for head in sorted(set(mix_cumulative) | set(mix_interval)):
        counts, window = mix_interval.get(head, {}), "interval"
        if sum(counts.values()) <= 0:
            counts, window = mix_cumulative.get(head, {}), "cumulative"
        total = sum(counts.values())
        shares = sorted(((label, (n / total) if total else 0.0) for label, n in counts.items()),
                        key=lambda item: (-item[1], item[0]))
        mix.append(HeadMix(head, shares, total, window))

    heads = sorted(set(mix_cumulative) | set(drift) | set(shadow))
    health = [HeadHealth(head, _spread(drift.get(head, [])), _spread(shadow.get(head, []))) for head in heads]

    if any(n > 0 for _, n in phase_interval.values()):
        phase_source, phases_window = phase_interval, "interval"
    elif any(n > 0 for _, n in phase_cumulative.values()):
        phase_source, phases_window = phase_cumulative, "cumulative"
    else:
        phase_source, phases_window = phase_cumulative, None
    phases = [(phase, (total / n) if n > 0 else None) for phase, (total, n) in phase_source.items()]

    dead_letters = [DeadLetterRow(reason, dead_rate.get(reason, 0.0) if dead_has_rate else None, total)
                    for reason, total in dead_total.items() if total > 0 or dead_rate.get(reason, 0.0) > 0]
    dead_letters.sort(key=lambda r: (-r.total, r.reason))

    return Frame(
        workers=workers,
        elapsed=(sum(elapsed) / len(elapsed)) if elapsed else None,
        rate_in=_sum_or_none(w.rate_in for w in up_rows),
        rate_out=_sum_or_none(w.rate_out for w in up_rows),
        rate_dead=_sum_or_none(w.rate_dead for w in up_rows),
        p50=histogram_quantile(0.5, latency),
        p99=histogram_quantile(0.99, latency),
        latency_count=latency.get(math.inf, 0.0),
        latency_window=latency_window,
        lag=lag,
        dead_letters=dead_letters,
        mix=mix,
        health=health,
        phases=phases,
        phases_window=phases_window,
    )


def increase_by_series(cur: Samples | None, prev: Samples | None, name: str) -> dict[Labels, float]:
    before = _series(prev, name)
    return {labels: increase(value, before.get(labels, 0.0 if prev is not None else None))
            for labels, value in _series(cur, name).items()}


def _by_head_label(series: Mapping[Labels, float]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for labels, value in series.items():
        key = (_label(labels, "head"), _label(labels, "label"))
        out[key] = out.get(key, 0.0) + value
    return out


def _phase_totals(samples: Samples | None) -> dict[str, tuple[float, float]]:
    """Per loop phase, the (sum of seconds, number of batches) of ``newsstream_loop_phase_seconds``."""
    sums = gauge_by(samples, f"{LOOP_PHASE}_sum", "phase")
    counts = gauge_by(samples, f"{LOOP_PHASE}_count", "phase")
    return {phase: (sums.get(phase, 0.0), counts.get(phase, 0.0)) for phase in PHASES}


def _lag_of(samples: Samples | None) -> dict[tuple[str, int], float]:
    out: dict[tuple[str, int], float] = {}
    for labels, value in _series(samples, LAG).items():
        try:
            partition = int(_label(labels, "partition"))
        except ValueError:
            partition = -1
        out[(_label(labels, "topic"), partition)] = value
    return out


# ---- the scrape loop (no drawing) ------------------------------------------------------------------------


class Scraper:
    """Scrapes the same workers again and again; each :meth:`frame` is over the interval since the last one."""

    def __init__(self, urls: Sequence[str], timeout_s: float = 1.0) -> None:
        self.urls = [normalize_url(u) for u in urls]
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(16, len(self.urls))))
        self._previous: list[Scrape | None] = [None] * len(self.urls)

    def frame(self) -> Frame:
        current = scrape_all(self.urls, self.timeout_s, self._pool)
        frame = build_frame(current, self._previous)
        # A failed scrape does not replace the last good one: when the worker is back, its rate is over the gap.
        self._previous = [cur if cur.up else prev for cur, prev in zip(current, self._previous, strict=True)]
        return frame

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Scraper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
