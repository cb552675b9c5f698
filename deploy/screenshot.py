"""The README's throughput picture: Prometheus's own graph of a worker during a real run, shot with headless
Chromium (Grafana cannot run on this machine; the dashboard is proven by tests/test_deploy.py instead).

Starts the embedded broker, one worker (the newest bundle under models/, else a tiny test bundle), a local
Prometheus scraping it every second (deploy/localprom.py), and replays articles read at run time from a corpus
file (default ../shared/datasets/guardian/articles.jsonl — research-licensed, never copied into the repository)
in three paced phases, then screenshots the graph page.

    .venv/bin/python deploy/screenshot.py [--out deploy/prometheus-throughput.png] [--phase-seconds 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy"))

from localprom import LocalPrometheus, free_port  # noqa: E402

from streamer.broker import EmbeddedBroker, create_topics  # noqa: E402

EXPR = "sum(rate(newsstream_messages_produced_total[15s]))"
RATES = (30, 80, 150, 0)  # messages per second, one phase each; 0 = unpaced (the worker's capacity)


def model_location(tmp: Path) -> Path:
    if any((ROOT / "models").glob("*/card.json")):
        return ROOT / "models"
    sys.path.insert(0, str(ROOT / "tests"))
    from bundles import build_bundle

    build_bundle(tmp / "models" / "test-model-1", "1")
    print("no bundle under models/: using the tiny test bundle", file=sys.stderr)
    return tmp / "models"


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("worker not ready in time")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("chromium not found: apt-get install -y chromium")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--articles", type=Path, default=ROOT.parent / "shared/datasets/guardian/articles.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "deploy" / "prometheus-throughput.png")
    parser.add_argument("--phase-seconds", type=float, default=20.0)
    parser.add_argument("--range", default="2m", help="graph range shown")
    args = parser.parse_args()

    lines = [line for line in args.articles.read_bytes().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="newsstream-shot-") as tmp_name, EmbeddedBroker() as broker:
        tmp = Path(tmp_name)
        create_topics(broker.bootstrap, {"articles": 6, "articles.enriched": 6, "articles.dlq": 1})
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
        env.update({"NEWSSTREAM_BOOTSTRAP_SERVERS": broker.bootstrap, "NEWSSTREAM_METRICS_PORT": str(port),
                    "NEWSSTREAM_MODEL_PATH": str(model_location(tmp)), "NEWSSTREAM_SESSION_TIMEOUT_MS": "6000",
                    "NEWSSTREAM_LOG_LEVEL": "WARNING"})
        worker_log = (tmp / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "newsstream", "worker"], env=env, cwd=ROOT,
                                  stdout=worker_log, stderr=subprocess.STDOUT)
        (tmp / "prometheus").mkdir()
        prom = LocalPrometheus(tmp / "prometheus", [f"127.0.0.1:{port}"])
        try:
            wait_ready(port, worker)
            prom.start()
            time.sleep(5)  # a flat start before the traffic
            offset = 0
            for rate in RATES:
                count = int((rate or 400) * args.phase_seconds)
                chunk = [lines[(offset + i) % len(lines)] for i in range(count)]
                offset += count
                feed = tmp / "feed.jsonl"
                feed.write_bytes(b"\n".join(chunk) + b"\n")
                print(f"phase: {count} articles at {rate or 'max'}/s", file=sys.stderr)
                subprocess.run([sys.executable, "-m", "newsstream", "produce", "--file", str(feed), "--topic",
                                "articles", "--bootstrap-servers", broker.bootstrap, "--rate", str(rate)],
                               cwd=ROOT, check=True)
            deadline = time.monotonic() + 180  # the worker drains the unpaced phase...
            while time.monotonic() < deadline:
                done = prom.query("sum(newsstream_messages_produced_total)")["data"]["result"]
                if done and float(done[0]["value"][1]) >= offset:
                    break
                time.sleep(1)
            time.sleep(17)  # ...and the 15 s rate window falls back to zero
            query = {"g0.expr": EXPR, "g0.tab": "0", "g0.range_input": args.range, "g0.stacked": "0"}
            url = f"{prom.url}/graph?{urllib.parse.urlencode(query)}"
            args.out.parent.mkdir(parents=True, exist_ok=True)
            profile = tempfile.mkdtemp(prefix="chromium-")
            subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
                            "--virtual-time-budget=15000", f"--screenshot={args.out}", "--window-size=1400,900",
                            url], check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(profile, ignore_errors=True)
            peak = prom.query(f"max_over_time({EXPR}[5m:1s])")["data"]["result"]
            print(f"wrote {args.out}; peak throughput {float(peak[0]['value'][1]):.1f} msg/s" if peak else
                  f"wrote {args.out}; no throughput samples!", file=sys.stderr)
        finally:
            prom.stop()
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
            worker_log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
