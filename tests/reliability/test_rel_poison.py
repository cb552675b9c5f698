"""Every poison kind, twice, interleaved with good articles, through a real worker on the real broker.

Each bad one must land in the dead letters with the right reason, its original key and value bytes and the
origin of the very record it came from; each valid edge case must come out enriched with its fields intact;
the worker must stay up. (Throughput with poison vs a clean run: ``bench/poison_overhead.py``.)
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

from conftest import article, headers_of, produce, read_all
from poison import Case, bad_cases, interleave, valid_cases

from streamer.schemas import EnrichedEvent

MAX_BYTES = 20_000
GOOD = 600
#: Kinds that wedged the worker (or corrupted its output) before a759e2c; also tested on their own below.
WEDGED = {"huge_float_literal", "nan_literal", "deeply_nested", "lone_surrogate"}


def _run(broker, topics_factory, worker_factory, model: Path, cases: list[Case], good: int):
    t = topics_factory(partitions=3)
    messages = interleave([(f"art-{i}".encode(), json.dumps(article(i)).encode()) for i in range(good)], cases,
                          seed=5)
    produce(broker.bootstrap, t.input, messages)
    worker = worker_factory(t, model, max_message_bytes=MAX_BYTES, batch_max_messages=100)
    worker.wait_ready(timeout_s=60)
    n_bad = sum(1 for c in cases if not c.valid)
    enriched = read_all(broker.bootstrap, t.output, good + len(cases) - n_bad, timeout_s=120, settle_s=1.0)
    dead = read_all(broker.bootstrap, t.dlq, n_bad, timeout_s=60, settle_s=0.5)
    return t, worker, enriched, dead


def _input_records(bootstrap: str, topic: str, n: int) -> dict[tuple[int, int], tuple[bytes | None, bytes | None]]:
    return {(r.partition, r.offset): (r.key, r.value) for r in read_all(bootstrap, topic, n, timeout_s=60)}


def test_poison_interleaved_with_good(broker, topics_factory, worker_factory, model_v1: Path) -> None:
    cases = [c for tag in ("a", "b") for c in bad_cases(MAX_BYTES, tag) + valid_cases(MAX_BYTES, tag)]
    bad = [c for c in cases if not c.valid]
    valid = [c for c in cases if c.valid]
    assert len({c.kind for c in bad}) >= 25
    t, worker, enriched, dead = _run(broker, topics_factory, worker_factory, model_v1, cases, GOOD)
    origin_of = _input_records(broker.bootstrap, t.input, GOOD + len(cases))

    # Dead letters: exactly the bad ones, each once, bytes untouched, reason and origin right.
    assert len(dead) == len(bad), Counter(headers_of(r)["reason"] for r in dead)
    expected = {(c.key, c.value): c for c in bad}
    assert len(expected) == len(bad)
    seen: Counter[str] = Counter()
    for rec in dead:
        case = expected.pop((rec.key, rec.value), None)
        assert case is not None, f"unexpected or duplicated dead letter key={rec.key!r} value={rec.value!r:.80}"
        h = headers_of(rec)
        assert h["reason"] == case.reason, (case.kind, h["reason"], h["error"])
        assert h["error"], case.kind
        assert h["origin-topic"] == t.input
        origin = (int(h["origin-partition"]), int(h["origin-offset"]))
        assert origin_of[origin] == (rec.key, rec.value), (case.kind, origin)
        seen[case.reason.value] += 1
    assert expected == {}

    # Enriched: every good article and every valid edge case, once, fields intact, origin right.
    events = {}
    for rec in enriched:
        event = EnrichedEvent.model_validate(json.loads(rec.value))
        assert event.id not in events, f"{event.id} published twice"
        events[event.id] = (json.loads(rec.value), rec)
    assert set(events) == {f"art-{i}" for i in range(GOOD)} | {c.expect["id"] for c in valid}
    for case in valid:
        event, rec = events[case.expect["id"]]
        for name, value in case.expect.items():
            assert event[name] == value, (case.kind, name)
        assert rec.key == case.expect["id"].encode()
        o = event["origin"]
        assert o["topic"] == t.input and origin_of[(o["partition"], o["offset"])] == (case.key, case.value), case.kind

    # Still up, and the counters agree with what was read.
    assert worker.proc is not None and worker.proc.poll() is None
    assert worker.get("/healthz")[0] == 200 and worker.get("/readyz")[0] == 200
    worker.wait_for(lambda: worker.metric("newsstream_messages_consumed_total", topic=t.input) == GOOD + len(cases),
                    30, "every record counted")
    dl = {dict(k)["reason"]: v for k, v in worker.metrics()["newsstream_messages_dead_lettered_total"].items()}
    assert dl == {reason: float(n) for reason, n in seen.items()}
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_poison_that_wedged_the_worker(broker, topics_factory, worker_factory, model_v1: Path) -> None:
    """Regression: deep nesting raised RecursionError out of parse_article and a lone surrogate escape made
    dumps() raise; the loop took either for a broker error and re-read the batch forever. NaN/1e400 were
    published as non-JSON NaN/Infinity. Alone in a small stream, each must be one dead letter, no error."""
    cases = [c for c in bad_cases(MAX_BYTES, "w") if c.kind in WEDGED]
    assert {c.kind for c in cases} == WEDGED
    t = topics_factory(partitions=1)
    messages = interleave([(f"art-{i}".encode(), json.dumps(article(i)).encode()) for i in range(100)], cases,
                          seed=1)
    produce(broker.bootstrap, t.input, messages)
    worker = worker_factory(t, model_v1, max_message_bytes=MAX_BYTES, batch_max_messages=20)
    worker.wait_ready(timeout_s=60)
    dead = read_all(broker.bootstrap, t.dlq, len(cases), timeout_s=45, settle_s=0.5)
    enriched = read_all(broker.bootstrap, t.output, 100, timeout_s=15, settle_s=0.5)
    assert sorted(headers_of(r)["reason"] for r in dead) == ["invalid_json"] * len(cases)
    assert {json.loads(r.value)["id"] for r in enriched} == {f"art-{i}" for i in range(100)}
    assert worker.metric("newsstream_broker_errors_total") == 0
