"""``make bench`` (``python -m bench.harness``):
 the worker against the kafka-python floor, the previous release and two peer designs, on the embedded broker.

Everything is measured side by side in one run. A *round* measures, back to back on the same pre-filled
6-partition input topic (real Guardian articles, read at run time, never stored here):

1. the offline model alone (``bench/classify_throughput.py``: batched ``ModelBundle.classify``, one process),
   reported for reference;
2. the kafka-python pass-through loop with no model (``bench/baselines.py passthrough``): the floor the client
   library sets, so ``worker_vs_passthrough`` says how close the worker gets to it;
3. one worker process (``python -m newsstream worker``, default settings);
4. one worker with a shadow model (the same bundle again): ``shadow_rate_ratio``, its rate ÷ the worker's;
5. one worker of the previous release (its git tag checked out into a worktree, its own model):
   ``speedup_vs_release``;
6. two worker processes in one consumer group;
7. the per-message kafka-python loop and 8. the Quix Streams application (``bench/baselines.py``).

Each ratio is computed within its round; the reported ratio is the median over rounds. Then one worker serves a
fixed-rate producer at 25, 50 and 75 % of its measured maximum (latency), and one worker is sampled with py-spy
at its maximum rate (profile). Results: ``bench/results/latest.json``; ``bench/REPORT.md`` and
``bench/throughput.png`` are rendered from it (``bench/report.py``).

How a rate is read: every design stamps each output record with the wall-clock time it was produced. The
worker produces a batch at a time (its events share ``processed_at``), the baselines one record at a time, so
records are grouped into *events* (one batch, or one record); the steady rate is the number of records in all
events after the first, divided by the time from the first event to the last. Start-up (model load, group join,
first fetch) is therefore outside the window for every design alike, and a batch is never cut in half.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000  # Tansu's first join waits session_timeout/2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smoke mode: few articles, one round, short loads")
    parser.add_argument("--docs", type=int, default=None, help="articles in the throughput topic (full: 10000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of side-by-side runs (full: 3)")
    parser.add_argument("--model", type=Path, default=None, help="bundle (default: newest under models/)")
    parser.add_argument("--data-dir", type=Path, default=None, help="datasets root (default: ../shared/datasets)")
    parser.add_argument("--latency-seconds", type=float, default=None, help="per load level (full: 15)")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: quix,per_message,scaling,"
                                                    "hotpath,latency,profile")
    parser.add_argument("--release-ref", default=None,
                        help="git ref of the previous release for speedup_vs_release (default: the newest v* tag "
                             "reachable from HEAD that is not HEAD)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default: bench/results/latest.json; --quick: bench/results/quick.json)")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite bench/REPORT.md and the plot")


# ---- small helpers -------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC).strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def uid(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


def median(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for dist in ("kafka-python", "scikit-learn", "numpy", "pydantic", "quixstreams", "confluent-kafka"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[dist] = version(dist)
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions,
            "load_average_at_start": list(os.getloadavg())}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return float("nan")


def rss_peak_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---- workload ------------------------------------------------------------------------------------------


@dataclass
class Workload:
    values: list[bytes]
    keys: list[bytes]
    mean_bytes: float
    source_file: Path  # a temporary JSONL copy for the fixed-rate producer (outside the repository)


def load_workload(data_root: Path, docs: int, tmp: Path) -> Workload:
    path = data_root / "guardian" / "articles.jsonl"
    values: list[bytes] = []
    keys: list[bytes] = []
    with path.open("rb") as fh:
        for line in fh:
            record = json.loads(line)
            # The message an upstream would send: id, title (Guardian rows have none), full text, a pass-through.
            message = {"id": record["id"], "title": record.get("title"), "text": record["text"],
                       "source": "guardian", "section": record.get("section")}
            values.append(json.dumps(message, ensure_ascii=False).encode())
            keys.append(str(record["id"]).encode())
            if len(values) >= docs:
                break
    if len(values) < docs:
        raise SystemExit(f"bench: {path} has only {len(values)} articles, {docs} requested")
    source = tmp / "articles.jsonl"
    source.write_bytes(b"\n".join(values) + b"\n")
    return Workload(values, keys, statistics.mean(len(v) for v in values), source)


def prefill(bootstrap: str, topic: str, work: Workload) -> float:
    from kafka import KafkaProducer

    started = time.monotonic()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024,
                             max_request_size=8 * 1024 * 1024)
    futures = [producer.send(topic, key=k, value=v) for k, v in zip(work.keys, work.values, strict=True)]
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    producer.close()
    return time.monotonic() - started


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 120.0) -> list[Any]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            got = consumer.poll(timeout_ms=300)
            for records in got.values():
                out.extend(records)
            if len(out) >= expected:
                # keep reading briefly: a duplicate would show up here
                quiet_until = quiet_until or time.monotonic() + 0.5
                if time.monotonic() >= quiet_until:
                    break
        return out
    finally:
        consumer.close()


# ---- rates ---------------------------------------------------------------------------------------------


def steady_rate(records: list[Any], batch_key: Callable[[Any], Any] | None) -> float:
    """Records in all events after the first ÷ time from the first event to the last (see module doc)."""
    events: dict[Any, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        events[batch_key(rec) if batch_key else i].append(rec.timestamp)
    ordered = sorted((max(ts), len(ts)) for ts in events.values())
    if len(ordered) < 2:
        return float("nan")
    span_s = (ordered[-1][0] - ordered[0][0]) / 1000.0
    return sum(n for _, n in ordered[1:]) / span_s if span_s > 0 else float("nan")


def processed_at(rec: Any) -> str:
    return str(json.loads(rec.value).get("processed_at"))


# ---- processes -----------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int | None = None
    _fh: Any = field(default=None, repr=False)

    def metric_sum(self, name: str) -> float:
        assert self.metrics_port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
            body = resp.read().decode()
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 15.0) -> int:
        from streamer.broker import stop_pid

        if self.alive():
            stop_pid(self.proc.pid, timeout_s, child=self.proc)
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        return self.proc.wait()


class Runner:
    def __init__(self, bootstrap: str, model: Path, tmp: Path, broker_pid: int = -1) -> None:
        self.bootstrap = bootstrap
        self.broker_pid = broker_pid
        self.model = model
        self.tmp = tmp
        self.started: list[Proc] = []

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
              metrics_port: int | None = None, cwd: Path = REPO) -> Proc:
        log_path = self.tmp / f"{name}-{len(self.started)}.log"
        fh = log_path.open("ab")
        proc = subprocess.Popen(cmd, cwd=cwd, env=env or dict(os.environ), stdout=fh, stderr=subprocess.STDOUT)
        p = Proc(name, proc, log_path, metrics_port, fh)
        self.started.append(p)
        return p

    def worker(self, input_topic: str, output_topic: str, group: str, name: str = "worker",
               release: Release | None = None, extra_env: dict[str, str] | None = None) -> Proc:
        """A worker of this checkout, or of ``release`` (its own tree and model, run from that tree)."""
        from streamer.broker import free_port

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
        env.update({
            "NEWSSTREAM_BOOTSTRAP_SERVERS": self.bootstrap,
            "NEWSSTREAM_INPUT_TOPIC": input_topic,
            "NEWSSTREAM_OUTPUT_TOPIC": output_topic,
            "NEWSSTREAM_DLQ_TOPIC": output_topic + ".dlq",
            "NEWSSTREAM_GROUP_ID": group,
            "NEWSSTREAM_MODEL_PATH": str(release.model if release else self.model),
            "NEWSSTREAM_METRICS_PORT": str(port),
            "NEWSSTREAM_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "NEWSSTREAM_LOG_FORMAT": "json",
            **(extra_env or {}),
        })
        if release is None:
            return self.spawn(name, [sys.executable, "-m", "newsstream", "worker"], env, port)
        # `python -m` puts the working directory first on sys.path: the release's packages, not this checkout's.
        env["PYTHONPATH"] = str(release.tree)
        return self.spawn(name, [sys.executable, "-m", "newsstream", "worker"], env, port, cwd=release.tree)

    def wait_produced(self, procs: list[Proc], count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for p in procs:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited with {p.proc.returncode}:\n{p.log_tail()}")
            with contextlib.suppress(OSError):
                if sum(p.metric_sum("newsstream_messages_produced_total") for p in procs) >= count:
                    return
            time.sleep(0.5)  # each scrape costs the worker a few ms of CPU: don't disturb it
        raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {count} outputs:\n{procs[0].log_tail()}")

    def wait_exit(self, p: Proc, timeout_s: float) -> None:
        try:
            p.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            p.stop()
            raise RuntimeError(f"{p.name} did not finish in {timeout_s:.0f}s:\n{p.log_tail()}") from exc
        if p.proc.returncode != 0:
            raise RuntimeError(f"{p.name} exited with {p.proc.returncode}:\n{p.log_tail()}")

    def stop_all(self) -> None:
        for p in self.started:
            with contextlib.suppress(Exception):
                p.stop(5)


@dataclass
class Release:
    """The previous release, checked out from its git tag into a worktree, with the model it shipped."""

    ref: str
    tree: Path
    model: Path

    @classmethod
    def checkout(cls, ref: str, tmp: Path) -> Release:
        from streamer.artifact import find_latest

        tree = tmp / f"release-{ref}"
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(tree), ref], cwd=REPO, check=True,
                       capture_output=True)
        return cls(ref, tree, find_latest(tree / "models", name="newsstream"))

    def remove(self) -> None:
        subprocess.run(["git", "worktree", "remove", "--force", str(self.tree)], cwd=REPO, capture_output=True)


def previous_release() -> str | None:
    """The newest release tag (vX.Y.Z) reachable from HEAD that is not HEAD itself."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    tags = subprocess.run(["git", "tag", "--merged", "HEAD", "--sort=-v:refname", "v*"], cwd=REPO,
                          capture_output=True, text=True).stdout.split()
    for tag in tags:
        commit = subprocess.run(["git", "rev-list", "-n", "1", tag], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
        if commit and commit != head:
            return tag
    return None


def create(bootstrap: str, *topics: str) -> None:
    from streamer.broker import create_topics

    create_topics(bootstrap, dict.fromkeys(topics, PARTITIONS))


# ---- the parts of a round -------------------------------------------------------------------------------


def ceiling(model: Path, data_root: Path, docs: int, tmp: Path) -> dict[str, Any]:
    """The training engineer's offline benchmark, in its own process: best batch size, one pass each."""
    out = tmp / f"ceiling-{uuid.uuid4().hex[:6]}.json"
    script = REPO / "bench" / "classify_throughput.py"
    if script.is_file():
        cmd = [sys.executable, str(script), "--model", str(model), "--data-dir", str(data_root), "--docs",
               str(docs), "--repeats", "1", "--batch-sizes", "256,500", "--out", str(out)]
    else:
        cmd = [sys.executable, "-m", "bench.hotpath", "--model", str(model), "--data-dir", str(data_root),
               "--docs", str(docs), "--ceiling-out", str(out)]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    report = json.loads(out.read_text())
    best = max(report["results"], key=lambda r: r["docs_per_second_median"])
    return {"docs_per_s": float(best["docs_per_second_median"]), "batch_size": best["batch_size"],
            "by_batch_size": {r["batch_size"]: r["docs_per_second_median"] for r in report["results"]}}


def run_workers(r: Runner, input_topic: str, n: int, count: int, timeout_s: float,
                release: Release | None = None, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """``n`` worker processes in one group, each writing its own output topic (so each one's rate is exact)."""
    group = uid("group")
    outputs = [uid(f"out{i}") for i in range(n)]
    create(r.bootstrap, *outputs)
    tag = f"-{release.ref}" if release else ""
    procs = [r.worker(input_topic, out, group, name=f"worker{tag}{i}of{n}", release=release, extra_env=extra_env)
             for i, out in enumerate(outputs)]
    try:
        broker_cpu0, t0 = cpu_seconds(r.broker_pid), time.monotonic()
        r.wait_produced(procs, count, timeout_s)
        # over the whole run (start-up included): how much CPU the broker needed beside the workers
        broker_core_share = (cpu_seconds(r.broker_pid) - broker_cpu0) / (time.monotonic() - t0)
        rss = [rss_peak_mb(p.proc.pid) for p in procs]
    finally:
        for p in procs:
            p.stop()
    rates, got = [], 0
    for out in outputs:
        recs = read_topic(r.bootstrap, out, 1 if n > 1 else count, timeout_s=30)
        got += len(recs)
        rates.append(steady_rate(recs, processed_at))
    assignments = [sum(1 for line in p.log_path.read_text().splitlines() if "partitions assigned" in line)
                   for p in procs]
    return {"docs_per_s": sum(rates), "per_process_docs_per_s": rates, "outputs": got, "rss_peak_mb": rss,
            "assignments_per_process": assignments, "broker_core_share": round(broker_core_share, 3)}


def run_baseline(r: Runner, design: str, python: str, input_topic: str, count: int,
                 timeout_s: float) -> dict[str, Any]:
    group, output = uid("group"), uid(f"out-{design}")
    create(r.bootstrap, output)
    model = [] if design == "passthrough" else ["--model", str(r.model)]
    p = r.spawn(design, [python, "-m", "bench.baselines", design, "--bootstrap", r.bootstrap, "--input",
                         input_topic, "--output", output, "--group", group, *model, "--count", str(count)])
    r.wait_exit(p, timeout_s)
    recs = read_topic(r.bootstrap, output, count, timeout_s=30)
    return {"docs_per_s": steady_rate(recs, None), "outputs": len(recs)}


def quix_python() -> str | None:
    """This interpreter if it has quixstreams, else ``NEWSSTREAM_BENCH_QUIX_PYTHON``; None when neither."""
    candidates = [sys.executable, os.environ.get("NEWSSTREAM_BENCH_QUIX_PYTHON", "")]
    for python in candidates:
        if python and subprocess.run([python, "-c", "import quixstreams"], capture_output=True).returncode == 0:
            return python
    return None


def latency(r: Runner, work: Workload, max_rate: float, seconds: float, warmup_s: float) -> dict[str, Any]:
    """One worker, one input topic, three load levels one after the other; publish → enriched produced."""
    input_topic, output, group = uid("lat-in"), uid("lat-out"), uid("group")
    create(r.bootstrap, input_topic, output)
    w = r.worker(input_topic, output, group, name="worker-latency")
    levels: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"http://127.0.0.1:{w.metrics_port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    break
            if not w.alive():
                raise RuntimeError(f"latency worker exited:\n{w.log_tail()}")
            time.sleep(0.2)
        sent_total = 0
        windows = []
        for share in (0.25, 0.50, 0.75):
            rate = max(1.0, max_rate * share)
            started = time.time()
            p = r.spawn(f"producer-{int(share * 100)}", [sys.executable, "-m", "bench.baselines", "produce",
                                                          "--bootstrap", r.bootstrap, "--topic", input_topic,
                                                          "--source", str(work.source_file), "--rate", f"{rate:.3f}",
                                                          "--seconds", str(seconds)])
            r.wait_exit(p, seconds + 60)
            sent = int(rate * seconds)
            sent_total += sent
            r.wait_produced([w], sent_total, 60)
            ended = time.time()
            late = json.loads(p.log_path.read_text().strip().splitlines()[-1]).get("late_seconds")
            windows.append((share, rate, started + warmup_s, ended, sent, late))
            time.sleep(1.0)
        rss = rss_peak_mb(w.proc.pid)
    finally:
        w.stop()
    recs = read_topic(r.bootstrap, output, sent_total, timeout_s=60)
    samples = []
    for rec in recs:
        value = json.loads(rec.value)
        samples.append((value["bench_sent_at"], rec.timestamp / 1000.0 - value["bench_sent_at"]))
    for share, rate, lo, hi, sent, late in windows:
        lat = sorted(1000 * d for t, d in samples if lo <= t < hi)
        levels[f"{int(share * 100)}%"] = {
            "offered_docs_per_s": round(rate, 1), "sent": sent, "measured": len(lat), "producer_late_s": late,
            "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99), "max": lat[-1] if lat else float("nan"),
        }
    return {"levels": levels, "outputs": len(recs), "sent": sent_total, "rss_peak_mb": rss}


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def profile(r: Runner, input_topic: str, count: int, timeout_s: float) -> dict[str, Any]:
    """py-spy (CPU samples, per thread) on one worker at its maximum rate, attached after the first batch."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return {"error": "py-spy not installed (pip install '.[bench]')"}
    group, output = uid("group"), uid("prof-out")
    create(r.bootstrap, output)
    w = r.worker(input_topic, output, group, name="worker-profile")
    raw = r.tmp / "profile.txt"
    try:
        r.wait_produced([w], 1, timeout_s)
        rate_hz = 200
        spy_proc = r.spawn("py-spy", [spy, "record", "--pid", str(w.proc.pid), "--rate", str(rate_hz),
                                      "--format", "raw", "--threads", "--nonblocking", "-o", str(raw)])
        t0 = time.monotonic()
        r.wait_produced([w], count, timeout_s)
        seconds = time.monotonic() - t0
        spy_proc.proc.send_signal(2)  # SIGINT: py-spy writes what it has
        spy_proc.proc.wait(timeout=30)
    finally:
        w.stop()
    if not raw.exists():
        return {"error": f"py-spy wrote nothing:\n{spy_proc.log_tail()}"}
    from bench.profile import summarize

    return {**summarize(raw.read_text(), rate_hz * seconds), "seconds": round(seconds, 2), "rate_hz": rate_hz}


# ---- main ------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("NEWSSTREAM_LOG_LEVEL", "WARNING")
    from streamer.artifact import find_latest, read_card
    from streamer.broker import EmbeddedBroker

    quick = bool(args.quick)
    docs = args.docs or (1500 if quick else 10000)
    rounds = args.rounds or (1 if quick else 3)
    lat_seconds = args.latency_seconds or (5.0 if quick else 15.0)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    data_root = args.data_dir or (REPO.parent / "shared" / "datasets")
    if not (data_root / "guardian" / "articles.jsonl").is_file():
        alt = Path(os.environ.get("NEWSSTREAM_DATA_DIR", "")) / "guardian" / "articles.jsonl"
        if not alt.is_file():
            print(f"bench: {data_root}/guardian/articles.jsonl not found (--data-dir)", file=sys.stderr)
            return 2
        data_root = alt.parent.parent
    model = (args.model or find_latest(REPO / "models", name="newsstream")).resolve()
    card = read_card(model)
    # the baselines sample fewer records: they are 4-10x slower and their rate is steady after a few hundred
    baseline_count = max(300, docs // 4)
    qpy = None if "quix" in skip else quix_python()

    results: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "machine": machine(),
        "model": {"path": str(model.relative_to(REPO) if model.is_relative_to(REPO) else model),
                  "name": card.get("name"), "version": card.get("version")},
    }
    tmp = Path(tempfile.mkdtemp(prefix="newsstream-bench-"))
    log(f"model {model.name}, {docs} articles, {rounds} round(s), logs in {tmp}")
    release_ref = None if "release" in skip else (args.release_ref or previous_release())
    release = Release.checkout(release_ref, tmp) if release_ref else None
    if release is not None:
        results["release"] = {"ref": release.ref, "model": release.model.name}
        log(f"previous release {release.ref} (its worker and model {release.model.name}) from a git worktree")
    work = load_workload(data_root, docs, tmp)
    results["workload"] = {"file": "guardian/articles.jsonl", "articles": docs, "mean_value_bytes":
                           round(work.mean_bytes), "partitions": PARTITIONS, "baseline_articles": baseline_count}
    broker = EmbeddedBroker(log_path=tmp / "tansu.log").start()
    assert broker.process is not None
    r = Runner(broker.bootstrap, model, tmp, broker.process.pid)
    try:
        input_topic = uid("in")
        create(broker.bootstrap, input_topic)
        results["workload"]["prefill_seconds"] = round(prefill(broker.bootstrap, input_topic, work), 2)
        per_round: list[dict[str, Any]] = []
        timeout = 120 + docs / 50
        for i in range(rounds):
            row: dict[str, Any] = {}
            log(f"round {i + 1}/{rounds}: ceiling")
            row["ceiling"] = ceiling(model, data_root, docs, tmp)
            if "passthrough" not in skip:
                log(f"round {i + 1}/{rounds}: kafka-python pass-through (no model)")
                row["passthrough"] = run_baseline(r, "passthrough", sys.executable, input_topic, docs, timeout)
            log(f"round {i + 1}/{rounds}: one worker")
            row["worker"] = run_workers(r, input_topic, 1, docs, timeout)
            if "shadow" not in skip:
                # A shadow of the same size as the live model (the same bundle): what scoring a candidate costs.
                log(f"round {i + 1}/{rounds}: one worker with a shadow model")
                row["worker_shadow"] = run_workers(r, input_topic, 1, docs, timeout,
                                                   extra_env={"NEWSSTREAM_SHADOW_MODEL_PATH": str(model)})
            if release is not None:
                log(f"round {i + 1}/{rounds}: one worker of {release.ref}")
                row["release_worker"] = run_workers(r, input_topic, 1, docs, timeout, release=release)
            if "scaling" not in skip:
                log(f"round {i + 1}/{rounds}: two workers")
                row["workers2"] = run_workers(r, input_topic, 2, docs, timeout)
            if "per_message" not in skip:
                log(f"round {i + 1}/{rounds}: per-message kafka-python loop")
                row["per_message"] = run_baseline(r, "per-message", sys.executable, input_topic, baseline_count,
                                                  timeout)
            if qpy is not None:
                log(f"round {i + 1}/{rounds}: Quix Streams")
                try:
                    row["quix"] = run_baseline(r, "quix", qpy, input_topic, baseline_count, timeout)
                except RuntimeError as exc:
                    row["quix"] = {"error": str(exc)[-2000:]}
            w = row["worker"]["docs_per_s"]
            row["ratios"] = {
                "worker_vs_passthrough": w / row.get("passthrough", {}).get("docs_per_s", float("nan")),
                "speedup_vs_release": w / row.get("release_worker", {}).get("docs_per_s", float("nan")),
                "shadow_rate_ratio": row.get("worker_shadow", {}).get("docs_per_s", float("nan")) / w,
                "scaling_2_vs_1": row.get("workers2", {}).get("docs_per_s", float("nan")) / w,
                "speedup_vs_per_message": w / row.get("per_message", {}).get("docs_per_s", float("nan")),
                "speedup_vs_quix": w / row.get("quix", {}).get("docs_per_s", float("nan")),
            }
            log(f"round {i + 1}: " + ", ".join(f"{k}={v:.3f}" for k, v in row["ratios"].items()) +
                f"; ceiling {row['ceiling']['docs_per_s']:.0f}/s, worker {w:.0f}/s")
            per_round.append(row)
        results["rounds"] = per_round

        def med(path: Callable[[dict[str, Any]], Any]) -> float:
            vals = []
            for row in per_round:
                with contextlib.suppress(KeyError, TypeError):
                    vals.append(float(path(row)))
            return median(vals)

        results["ceiling_docs_per_s"] = med(lambda x: x["ceiling"]["docs_per_s"])
        results["worker_docs_per_s"] = med(lambda x: x["worker"]["docs_per_s"])
        results["passthrough_docs_per_s"] = med(lambda x: x["passthrough"]["docs_per_s"])
        results["worker_vs_passthrough"] = med(lambda x: x["ratios"]["worker_vs_passthrough"])
        results["release_worker_docs_per_s"] = med(lambda x: x["release_worker"]["docs_per_s"])
        results["worker_with_shadow_docs_per_s"] = med(lambda x: x["worker_shadow"]["docs_per_s"])
        results["shadow_rate_ratio"] = med(lambda x: x["ratios"]["shadow_rate_ratio"])
        results["speedup_vs_release"] = med(lambda x: x["ratios"]["speedup_vs_release"])
        results["worker2_docs_per_s"] = med(lambda x: x["workers2"]["docs_per_s"])
        results["scaling_2_vs_1"] = med(lambda x: x["ratios"]["scaling_2_vs_1"])
        results["per_message_docs_per_s"] = med(lambda x: x["per_message"]["docs_per_s"])
        results["speedup_vs_per_message"] = med(lambda x: x["ratios"]["speedup_vs_per_message"])
        results["quix_docs_per_s"] = med(lambda x: x["quix"]["docs_per_s"])
        results["speedup_vs_quix"] = med(lambda x: x["ratios"]["speedup_vs_quix"])
        if qpy is None and "quix" not in skip:
            results["quix_error"] = ("quixstreams is not importable here; install the bench extra "
                                     "(pip install -e '.[bench]') or set NEWSSTREAM_BENCH_QUIX_PYTHON")
        errors = [row["quix"]["error"] for row in per_round if "error" in row.get("quix", {})]
        if errors:
            results["quix_error"] = errors[0]
        rss = [v for row in per_round for v in row["worker"]["rss_peak_mb"]]

        if "hotpath" not in skip:
            log("hot path: per-article cost of each step, one at a time")
            from bench.hotpath import measure

            results["hot_path"] = measure(work.values[: min(docs, 2000)], model, broker.bootstrap)
        if "latency" not in skip:
            log(f"latency at 25/50/75 % of {results['worker_docs_per_s']:.0f}/s, {lat_seconds:.0f} s each")
            lat = latency(r, work, results["worker_docs_per_s"], lat_seconds, warmup_s=min(2.0, lat_seconds / 3))
            results["latency_ms"] = {k: {q: v[q] for q in ("p50", "p95", "p99")} for k, v in lat["levels"].items()}
            results["latency_detail"] = lat
            results["p99_ms_at_half_load"] = lat["levels"]["50%"]["p99"]
            results["p99_ms_at_quarter_load"] = lat["levels"]["25%"]["p99"]
            rss.append(lat["rss_peak_mb"])
        else:
            results["latency_ms"] = {}
            results["p99_ms_at_half_load"] = results["p99_ms_at_quarter_load"] = float("nan")
        results["worker_rss_mb"] = max(rss) if rss else float("nan")
        if "profile" not in skip:
            log("profile: py-spy on one worker at its maximum rate")
            results["profile"] = profile(r, input_topic, docs, timeout)
    finally:
        r.stop_all()
        broker.stop()
        if release is not None:
            release.remove()
    results["train_seconds"] = float(card.get("train_seconds", float("nan")))
    results["train_peak_rss_mb"] = float(card.get("peak_rss_bytes", float("nan"))) / 2**20
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    results["logs"] = str(tmp)

    out = args.out or RESULTS / ("quick.json" if quick else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    log(f"wrote {out}")
    for key in ("passthrough_docs_per_s", "worker_docs_per_s", "worker_vs_passthrough", "speedup_vs_release",
                "p99_ms_at_half_load", "p99_ms_at_quarter_load", "scaling_2_vs_1", "worker_rss_mb",
                "speedup_vs_per_message", "speedup_vs_quix", "ceiling_docs_per_s", "shadow_rate_ratio"):
        print(f"{key:28s} {results[key]:10.3f}")
    if not args.no_report and not quick:
        from bench.report import render

        render(results, REPO / "bench")
        log("wrote bench/REPORT.md and bench/throughput.png")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m bench.harness", description=(__doc__ or "").splitlines()[0])
    configure(_parser)
    raise SystemExit(run(_parser.parse_args()))
