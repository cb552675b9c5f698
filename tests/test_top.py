"""``newsstream top``: the numbers from two synthetic scrapes, then the live view of a real worker under tmux.

The capture of the tmux test is written to ``$NEWSSTREAM_TEST_TOP_CAPTURE`` when set (the README's example).
"""

from __future__ import annotations

import http.server
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT, article, produce

from streamer.broker import free_port
from streamer.top import (
    Scrape,
    Scraper,
    bucket_increase,
    build_frame,
    fetch,
    histogram_quantile,
    normalize_url,
    parse_exposition,
)

# ---- two synthetic scrapes, two seconds apart -----------------------------------------------------------

BEFORE = """\
# TYPE newsstream_messages_consumed_total counter
newsstream_messages_consumed_total{topic="in"} 100
# TYPE newsstream_messages_produced_total counter
newsstream_messages_produced_total{topic="out"} 90
# TYPE newsstream_messages_dead_lettered_total counter
newsstream_messages_dead_lettered_total{reason="invalid_json"} 1
# TYPE newsstream_classified_total counter
newsstream_classified_total{head="topic",label="sport"} 10
newsstream_classified_total{head="topic",label="politics"} 10
newsstream_classified_total{head="topic",label="science"} 0
newsstream_classified_total{head="incident",label="none"} 20
# TYPE newsstream_message_processing_seconds histogram
newsstream_message_processing_seconds_bucket{le="0.01"} 50
newsstream_message_processing_seconds_bucket{le="0.1"} 100
newsstream_message_processing_seconds_bucket{le="1.0"} 100
newsstream_message_processing_seconds_bucket{le="+Inf"} 100
newsstream_message_processing_seconds_count 100
newsstream_message_processing_seconds_sum 3.0
# TYPE newsstream_loop_phase_seconds histogram
newsstream_loop_phase_seconds_bucket{le="+Inf",phase="poll"} 10
newsstream_loop_phase_seconds_count{phase="poll"} 10
newsstream_loop_phase_seconds_sum{phase="poll"} 0.5
# TYPE newsstream_consumer_lag_messages gauge
newsstream_consumer_lag_messages{partition="0",topic="in"} 40
newsstream_consumer_lag_messages{partition="1",topic="in"} 7
# TYPE newsstream_model_info gauge
newsstream_model_info{name="news",version="2.0.0"} 1
# TYPE newsstream_ready gauge
newsstream_ready 1
# TYPE newsstream_assigned_partitions gauge
newsstream_assigned_partitions 3
"""

AFTER = """\
# TYPE newsstream_messages_consumed_total counter
newsstream_messages_consumed_total{topic="in"} 300
# TYPE newsstream_messages_produced_total counter
newsstream_messages_produced_total{topic="out"} 280
# TYPE newsstream_messages_dead_lettered_total counter
newsstream_messages_dead_lettered_total{reason="invalid_json"} 5
newsstream_messages_dead_lettered_total{reason="empty_text"} 2
# TYPE newsstream_classified_total counter
newsstream_classified_total{head="topic",label="sport"} 40
newsstream_classified_total{head="topic",label="politics"} 20
newsstream_classified_total{head="topic",label="science"} 0
newsstream_classified_total{head="incident",label="none"} 20
# TYPE newsstream_message_processing_seconds histogram
newsstream_message_processing_seconds_bucket{le="0.01"} 50
newsstream_message_processing_seconds_bucket{le="0.1"} 100
newsstream_message_processing_seconds_bucket{le="1.0"} 200
newsstream_message_processing_seconds_bucket{le="+Inf"} 200
newsstream_message_processing_seconds_count 200
newsstream_message_processing_seconds_sum 60.0
# TYPE newsstream_loop_phase_seconds histogram
newsstream_loop_phase_seconds_bucket{le="+Inf",phase="poll"} 14
newsstream_loop_phase_seconds_count{phase="poll"} 14
newsstream_loop_phase_seconds_sum{phase="poll"} 0.9
# TYPE newsstream_consumer_lag_messages gauge
newsstream_consumer_lag_messages{partition="0",topic="in"} 3
newsstream_consumer_lag_messages{partition="1",topic="in"} 0
newsstream_consumer_lag_messages{partition="10",topic="in"} 12
newsstream_consumer_lag_messages{partition="2",topic="in"} 0
# TYPE newsstream_model_info gauge
newsstream_model_info{name="news",version="2.0.0"} 1
# TYPE newsstream_ready gauge
newsstream_ready 1
# TYPE newsstream_assigned_partitions gauge
newsstream_assigned_partitions 4
# TYPE newsstream_prediction_drift gauge
newsstream_prediction_drift{head="topic"} 0.125
"""

URL = "http://w1:9108/metrics"


def _pair(before: str = BEFORE, after: str = AFTER, url: str = URL) -> tuple[Scrape, Scrape]:
    return (Scrape(url, 100.0, samples=parse_exposition(before)), Scrape(url, 102.0, samples=parse_exposition(after)))


def test_rates_are_counter_increases_over_the_seconds_between_scrapes() -> None:
    before, after = _pair()
    frame = build_frame([after], [before])
    (worker,) = frame.workers
    assert frame.elapsed == pytest.approx(2.0)
    assert worker.rate_in == pytest.approx(100.0) and frame.rate_in == pytest.approx(100.0)
    assert worker.rate_out == pytest.approx(95.0) and frame.rate_out == pytest.approx(95.0)
    assert worker.rate_dead == pytest.approx(3.0)  # (5 - 1) + 2 new, over 2 s
    assert (worker.consumed, worker.produced, worker.dead) == (300, 280, 7)
    assert (worker.model, worker.ready, worker.partitions) == (("news", "2.0.0"), True, 4)
    assert frame.models == [("news", "2.0.0")]


def test_rates_sum_over_workers_and_need_two_scrapes() -> None:
    a0, a1 = _pair(url="http://a/metrics")
    b0, b1 = _pair(url="http://b/metrics")
    frame = build_frame([a1, b1], [a0, b0])
    assert frame.rate_in == pytest.approx(200.0)
    assert [w.rate_in for w in frame.workers] == [pytest.approx(100.0)] * 2
    assert len(frame.lag) == 8 and frame.total_lag == 30

    first = build_frame([a1, b1])  # no previous scrape: totals and gauges, no rates
    assert first.rate_in is None and first.elapsed is None
    assert all(w.rate_in is None for w in first.workers)
    assert [w.consumed for w in first.workers] == [300, 300]
    assert all(r.rate is None for r in first.dead_letters)


def test_counter_reset_counts_the_new_value_as_the_increase() -> None:
    restarted = AFTER.replace('consumed_total{topic="in"} 300', 'consumed_total{topic="in"} 30')
    before, after = _pair(after=restarted)
    assert build_frame([after], [before]).rate_in == pytest.approx(15.0)


def test_dead_letters_by_reason_rate_and_total() -> None:
    before, after = _pair()
    rows = {r.reason: (r.rate, r.total) for r in build_frame([after], [before]).dead_letters}
    # a reason first seen in the second scrape started at 0 in between
    assert rows == {"invalid_json": (pytest.approx(2.0), 5), "empty_text": (pytest.approx(1.0), 2)}
    assert [r.reason for r in build_frame([after], [before]).dead_letters] == ["invalid_json", "empty_text"]


def test_quantiles_come_from_the_bucket_increase_over_the_interval() -> None:
    before, after = _pair()
    assert bucket_increase(after.samples, before.samples, "newsstream_message_processing_seconds") == {
        0.01: 0, 0.1: 0, 1.0: 100, math.inf: 100}
    frame = build_frame([after], [before])
    # the 100 new records all fell in (0.1, 1]: interpolated inside it, as histogram_quantile(rate(...)) does
    assert frame.latency_window == "interval" and frame.latency_count == 100
    assert frame.p50 == pytest.approx(0.1 + 0.9 * 0.5)
    assert frame.p99 == pytest.approx(0.1 + 0.9 * 0.99)
    # the cumulative histogram would say 0.1 s: the view shows now, not the average since start
    assert histogram_quantile(0.5, {0.01: 50, 0.1: 100, 1.0: 200, math.inf: 200}) == pytest.approx(0.1)


def test_quantiles_fall_back_to_cumulative_when_nothing_new() -> None:
    _, after = _pair()
    same = Scrape(URL, 103.0, samples=after.samples)
    frame = build_frame([same], [after])
    assert frame.latency_window == "cumulative" and frame.latency_count == 200
    assert frame.p50 == pytest.approx(0.1)
    assert frame.rate_in == 0.0
    assert build_frame([Scrape(URL, 1.0, samples={})]).latency_window is None


def test_histogram_quantile_edges() -> None:
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {0.1: 0, math.inf: 0}) is None
    assert histogram_quantile(0.99, {0.1: 0, 1.0: 0, math.inf: 5}) == 1.0  # beyond the last bound: that bound
    assert histogram_quantile(0.5, {0.1: 4, math.inf: 4}) == pytest.approx(0.05)
    assert histogram_quantile(1.0, {0.1: 4, 1.0: 4, math.inf: 4}) == pytest.approx(0.1)


def test_label_mix_over_the_interval_or_cumulative_when_nothing_new() -> None:
    before, after = _pair()
    mix = {m.head: m for m in build_frame([after], [before]).mix}
    topic = mix["topic"]
    assert topic.window == "interval" and topic.count == 40
    assert topic.shares == [("sport", pytest.approx(0.75)), ("politics", pytest.approx(0.25)), ("science", 0.0)]
    incident = mix["incident"]  # no new predictions of this head: the mix since start
    assert incident.window == "cumulative" and incident.shares == [("none", 1.0)]


def test_lag_per_partition_in_partition_order() -> None:
    before, after = _pair()
    frame = build_frame([after], [before])
    assert [(r.topic, r.partition, r.lag) for r in frame.lag] == [
        ("in", 0, 3), ("in", 1, 0), ("in", 2, 0), ("in", 10, 12)]
    assert frame.total_lag == 15


def test_drift_and_shadow_are_shown_when_present() -> None:
    before, after = _pair()
    health = {h.head: h for h in build_frame([after], [before]).health}
    assert health["topic"].drift == (0.125, 0.125) and health["topic"].shadow is None
    assert health["incident"].drift is None and health["incident"].shadow is None
    two = AFTER + 'newsstream_shadow_agreement_ratio{head="topic"} 0.9\n'
    other = two.replace('drift{head="topic"} 0.125', 'drift{head="topic"} 0.5').replace("} 0.9\n", "} 0.8\n")
    a = Scrape("http://a/metrics", 1.0, samples=parse_exposition(two))
    b = Scrape("http://b/metrics", 1.0, samples=parse_exposition(other))
    health = {h.head: h for h in build_frame([a, b]).health}
    assert health["topic"].drift == (0.125, 0.5) and health["topic"].shadow == (0.8, 0.9)


def test_drift_not_yet_computed_is_pending_not_zero() -> None:
    from streamer.top_view import fmt_ratio

    warming = AFTER.replace('drift{head="topic"} 0.125', 'drift{head="topic"} NaN')
    (topic,) = [h for h in build_frame([Scrape(URL, 1.0, samples=parse_exposition(warming))]).health
                if h.head == "topic"]
    assert topic.drift is not None and math.isnan(topic.drift[0])
    assert fmt_ratio(topic.drift) == "pending" and fmt_ratio(None) == "—"
    assert fmt_ratio((0.25, 0.25)) == "0.250" and fmt_ratio((0.1, 0.3)) == "0.100–0.300"
    # a worker still warming up does not hide another's number
    a = Scrape("http://a/metrics", 1.0, samples=parse_exposition(warming))
    b = Scrape("http://b/metrics", 1.0, samples=parse_exposition(AFTER))
    assert [h.drift for h in build_frame([a, b]).health if h.head == "topic"] == [(0.125, 0.125)]


def test_loop_phase_mean_per_batch() -> None:
    before, after = _pair()
    frame = build_frame([after], [before])
    phases = dict(frame.phases)
    assert frame.phases_window == "interval"
    assert phases["poll"] == pytest.approx(0.4 / 4) and phases["commit"] is None


def test_a_down_worker_is_a_row_and_never_stops_the_others() -> None:
    before, after = _pair()
    down = Scrape("http://gone/metrics", 102.0, error="Connection refused")
    frame = build_frame([after, down], [before, None])
    assert [w.up for w in frame.workers] == [True, False]
    assert frame.workers[1].error == "Connection refused" and frame.up == 1
    assert frame.rate_in == pytest.approx(100.0)
    # the scrape before was a failure: no rate yet (Scraper keeps the last good scrape instead)
    back = build_frame([after], [Scrape(URL, 101.0, error="timed out")])
    assert back.rate_in is None


def test_normalize_url() -> None:
    assert normalize_url("10.0.0.5:9108") == "http://10.0.0.5:9108/metrics"
    assert normalize_url("http://w:9108") == "http://w:9108/metrics"
    assert normalize_url("https://w/custom/path") == "https://w/custom/path"


@pytest.fixture
def http_server() -> Iterator[Callable[[int, bytes], str]]:
    servers: list[http.server.HTTPServer] = []

    def serve(status: int, body: bytes) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/metrics"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_fetch_never_raises(http_server: Callable[[int, bytes], str]) -> None:
    refused = fetch(f"http://127.0.0.1:{free_port()}/metrics", timeout_s=1.0)
    assert not refused.up and refused.error == "Connection refused"
    assert fetch(http_server(404, b"nope")).error == "HTTP 404 Not Found"
    garbage = fetch(http_server(200, b"<html>hello</html>"))
    assert not garbage.up and garbage.error is not None and garbage.error.startswith("not a Prometheus exposition")
    ok = fetch(http_server(200, AFTER.encode()))
    assert ok.up and ok.samples is not None and "newsstream_ready" in ok.samples

    with Scraper([http_server(200, AFTER.encode()), f"127.0.0.1:{free_port()}"], timeout_s=1.0) as scraper:
        scraper.frame()
        frame = scraper.frame()
    assert [w.up for w in frame.workers] == [True, False] and frame.rate_in == 0.0


def test_the_real_metrics_module_exports_what_top_reads() -> None:
    """Built on streamer.metrics itself, so a renamed series breaks this test and not the operators' view."""
    from prometheus_client import CollectorRegistry, generate_latest

    from streamer.metrics import Metrics

    m = Metrics(CollectorRegistry())
    m.set_model("news", "3", {"topic": ["sport", "politics"], "incident": ["none"]})
    m.ready.set(1)
    m.assigned.set(2)
    m.lag.labels(topic="in", partition="1").set(9)
    before = Scrape(URL, 10.0, samples=parse_exposition(generate_latest(m.registry).decode()))
    m.consumed.labels(topic="in").inc(20)
    m.produced.labels(topic="out").inc(19)
    m.dead_lettered.labels(reason="invalid_json").inc()
    m.record_predictions([{"topic": {"label": "sport", "score": 0.9}, "incident": {"label": "none", "score": 0.8}}]
                         * 19)
    for _ in range(19):
        m.processing.observe(0.02)
    m.phase["commit"].observe(0.004)
    after = Scrape(URL, 11.0, samples=parse_exposition(generate_latest(m.registry).decode()))
    frame = build_frame([after], [before])
    (w,) = frame.workers
    assert (w.model, w.ready, w.partitions, w.rate_in, w.rate_out) == (("news", "3"), True, 2, 20.0, 19.0)
    assert [(r.reason, r.rate, r.total) for r in frame.dead_letters] == [("invalid_json", 1.0, 1.0)]
    assert frame.latency_count == 19 and frame.p50 is not None and 0.01 < frame.p50 <= 0.025
    assert {m.head: m.shares[0] for m in frame.mix} == {"topic": ("sport", 1.0), "incident": ("none", 1.0)}
    assert [(r.topic, r.partition, r.lag) for r in frame.lag] == [("in", 1, 9)]
    assert dict(frame.phases)["commit"] == pytest.approx(0.004)


def test_render_shows_every_panel() -> None:
    pytest.importorskip("rich")
    from rich.console import Console

    from streamer.top_view import render

    before, after = _pair()
    frame = build_frame([after, Scrape("http://gone:1/metrics", 102.0, error="Connection refused")],
                        [before, None])
    console = Console(record=True, width=140, no_color=True)
    console.print(render(frame, 1.0))
    screen = console.export_text()
    for expected in ("in 100/s", "out 95.0/s", "news 2.0.0", "down: Connection refused", "invalid_json",
                     "empty_text", "p50", "550 ms", "sport", "75%", "drift", "shadow agreement", "0.125"):
        assert expected in screen, f"{expected!r} not in\n{screen}"
    assert re.search(r"\bin\s+10\s+12\b", screen), screen  # lag of partition 10
    assert re.search(r"incident\s+—\s+—", screen), screen  # no drift, no shadow: a dash, not a zero


# ---- a real worker, watched by the real command ---------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    drop = ("TMUX", "NEWSSTREAM_", "COLUMNS", "LINES")  # rich takes COLUMNS over the terminal's real width
    return {**{k: v for k, v in os.environ.items() if not k.startswith(drop)}, **extra}


def _top(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsstream", "top", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=_env(COLUMNS="150"))


def _worker_line(screen: str, port: int) -> list[str] | None:
    """The cells after the worker's address on its row: status, model (two words), ready, parts, rates, totals."""
    for line in screen.splitlines():
        match = re.search(rf"127\.0\.0\.1:{port}\s+(.*?)\s*│?\s*$", line)
        if match:
            return match.group(1).split()
    return None


def _number(cell: str) -> float | None:
    return None if cell == "—" else float(cell.replace(",", ""))


@pytest.fixture
def running_worker(broker, topics_factory, worker_factory, model_v1):
    topics = topics_factory(partitions=4)
    worker = worker_factory(topics, model_v1)
    worker.wait_ready()
    return topics, worker


def test_once_prints_one_frame(broker, running_worker) -> None:
    topics, worker = running_worker
    produce(broker.bootstrap, topics.input, [(None, b"not json")])
    produce(broker.bootstrap, topics.input,
            [(f"o-{i}".encode(), json.dumps(article(i)).encode()) for i in range(40)])
    worker.wait_for(lambda: worker.metric("newsstream_messages_produced_total", topic=topics.output) >= 40
                    and worker.metric("newsstream_messages_dead_lettered_total", reason="invalid_json") >= 1, 30,
                    "40 events and 1 dead letter")
    down = free_port()
    started = time.monotonic()
    done = _top("--once", "--interval", "0.5", "--no-color", f"127.0.0.1:{worker.metrics_port}",
                f"http://127.0.0.1:{down}/metrics")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    screen = done.stdout
    assert "\x1b[" not in screen
    cells = _worker_line(screen, worker.metrics_port)
    assert cells is not None, screen
    assert cells[:5] == ["up", "test-model", "1", "yes", "4"], screen
    assert _number(cells[8]) == 41 and _number(cells[9]) == 40 and _number(cells[10]) == 1, screen
    assert re.search(rf"127\.0\.0\.1:{down}\s+down: Connection refused", screen), screen
    assert "invalid_json" in screen
    for p in range(4):
        assert re.search(rf"{topics.input}\s+{p}\s+0\b", screen), screen
    assert elapsed < 15

    nobody = _top("--once", "--interval", "0.2", f"127.0.0.1:{free_port()}")
    assert nobody.returncode == 1 and "down: Connection refused" in nobody.stdout


def _tmux(sock: Path, *args: str) -> str:
    return subprocess.run(["tmux", "-S", str(sock), *args], check=True, capture_output=True, text=True,
                          timeout=10).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_live_view_under_tmux(broker, running_worker, tmp_path: Path) -> None:
    topics, worker = running_worker
    down = free_port()
    sock = Path("/tmp") / f"top-{uuid.uuid4().hex[:8]}.sock"  # short: a socket path is limited to ~100 bytes
    command = (f"cd {ROOT} && {sys.executable} -m newsstream top http://127.0.0.1:{worker.metrics_port}/metrics "
               f"http://127.0.0.1:{down}/metrics; echo top-exited-$?; sleep 60")
    subprocess.run(["tmux", "-S", str(sock), "new-session", "-d", "-x", "160", "-y", "50", "-s", "top", command],
                   check=True, env=_env(), timeout=10)
    screens: list[str] = []
    try:
        def capture() -> str:
            screen = _tmux(sock, "capture-pane", "-p", "-t", "top")
            screens.append(screen)
            return screen

        deadline = time.monotonic() + 20
        while "127.0.0.1:" + str(worker.metrics_port) not in capture():
            assert time.monotonic() < deadline, screens[-1]
            time.sleep(0.2)

        def feed() -> None:
            produce(broker.bootstrap, topics.input, [(None, b"not json")])
            for batch in range(8):
                produce(broker.bootstrap, topics.input, [
                    (f"t-{i}".encode(), json.dumps(article(i)).encode()) for i in range(batch * 40, batch * 40 + 40)])
                time.sleep(0.4)

        def missing(screen: str) -> list[str]:
            """What the settled screen should show and this one does not (empty: all of it)."""
            cells = _worker_line(screen, worker.metrics_port) or []
            checks = {
                "worker row: up, test-model 1, ready, 4 partitions": cells[:5] == ["up", "test-model", "1", "yes", "4"],
                "321 consumed, 320 produced, 1 dead": len(cells) > 10 and [_number(c) for c in cells[8:11]] == [
                    321, 320, 1],
                "model in the header": "model test-model 1" in screen,
                "lag 0 on each partition": all(re.search(rf"{topics.input}\s+{p}\s+0\b", screen) for p in range(4)),
                "invalid_json, total 1": bool(re.search(r"invalid_json\s+\S+\s+1\b", screen)),
                "second worker down": bool(re.search(rf"127\.0\.0\.1:{down}\s+down: Connection refused", screen)),
                "1/2 workers up": "1/2 workers up" in screen,
                "drift and shadow columns": "drift" in screen and "shadow agreement" in screen,
            }
            return [what for what, ok in checks.items() if not ok]

        feeder = threading.Thread(target=feed)
        feeder.start()
        deadline = time.monotonic() + 45
        while True:
            screen = capture()
            if not feeder.is_alive() and not missing(screen):
                break
            assert time.monotonic() < deadline, f"never shown: {missing(screen)}\n{screen}"
            time.sleep(0.25)
        feeder.join()
        (tmp_path / "screens.txt").write_text("\n\n".join(screens))

        # Some frame while articles were coming in showed a rate above zero.
        busy = [s for s in screens if (c := _worker_line(s, worker.metrics_port)) and len(c) > 10
                and (_number(c[5]) or 0) > 0]
        assert busy, f"no frame showed a rate in:\n{screens[-1]}"
        if os.environ.get("NEWSSTREAM_TEST_TOP_CAPTURE"):  # the busiest frame, for the README
            showcase = max(busy, key=lambda s: _number((_worker_line(s, worker.metrics_port) or [""] * 6)[5]) or 0)
            Path(os.environ["NEWSSTREAM_TEST_TOP_CAPTURE"]).write_text(
                "\n".join(line.rstrip() for line in showcase.rstrip().splitlines()) + "\n")

        _tmux(sock, "send-keys", "-t", "top", "C-c")
        deadline = time.monotonic() + 10
        while "top-exited-" not in capture():
            assert time.monotonic() < deadline, screens[-1]
            time.sleep(0.2)
        assert "top-exited-0" in screens[-1] and "Traceback" not in screens[-1], screens[-1]
    finally:
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True, timeout=10)
        sock.unlink(missing_ok=True)
