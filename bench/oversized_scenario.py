"""Issue 11 #1 as the reporter ran it: a worker of a checkout against oversized and bad input, 120 s each.

    .venv/bin/python bench/oversized_scenario.py .                 # this checkout
    git worktree add /tmp/v110 v1.1.0 && .venv/bin/python bench/oversized_scenario.py /tmp/v110   # the release

s1: 1,000 Guardian articles and 20 bad messages (one a 2 MiB JSON article) on 4 partitions.
s2: 600 Guardian articles among 1.2, 2.5, 6 and 12 MB articles and a 3 MB non-UTF-8 value on each of 3 partitions.
Prints, per scenario, the good articles enriched (and how many records that took) and the dead letters written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "guardian" / "articles.jsonl"


def read(bootstrap: str, topic: str) -> list[Any]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out: list[Any] = []
    idle = 0
    while idle < 4:
        got = consumer.poll(timeout_ms=500)
        idle = 0 if got else idle + 1
        for records in got.values():
            out.extend(records)
    consumer.close()
    return out


def scenario(root: Path, bootstrap: str, name: str, parts: int, good: list[dict[str, str]],
             bad: list[tuple[bytes, int]]) -> None:
    from kafka import KafkaProducer

    from streamer.broker import create_topics, free_port

    tin, tout, tdlq = f"{name}.in", f"{name}.out", f"{name}.dlq"
    create_topics(bootstrap, {tin: parts, tout: parts, tdlq: 1})
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=64 * 2**20)
    for i, a in enumerate(good):
        producer.send(tin, key=a["id"].encode(), value=json.dumps(a).encode(), partition=i % parts)
    for j, (value, part) in enumerate(bad):
        producer.send(tin, key=f"bad-{j}".encode(), value=value, partition=part)
    producer.flush()
    producer.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
    env.update(NEWSSTREAM_BOOTSTRAP_SERVERS=bootstrap, NEWSSTREAM_INPUT_TOPIC=tin, NEWSSTREAM_OUTPUT_TOPIC=tout,
               NEWSSTREAM_DLQ_TOPIC=tdlq, NEWSSTREAM_GROUP_ID=name, NEWSSTREAM_METRICS_PORT=str(free_port()),
               NEWSSTREAM_SESSION_TIMEOUT_MS="6000", NEWSSTREAM_MODEL_PATH=str(root / "models" / "newsstream-1.1.0"),
               PYTHONPATH=str(root))
    worker = subprocess.Popen([sys.executable, "-m", "newsstream", "worker"], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(120)
    worker.terminate()
    worker.wait(20)
    out, dlq = read(bootstrap, tout), read(bootstrap, tdlq)
    ids = {json.loads(r.value)["id"] for r in out}
    bounded = sum(1 for r in dlq if dict(r.headers).get("truncated") == b"true")
    print(f"{name}: {len(ids)} of {len(good)} good enriched ({len(out)} records), {len(dlq)} dead letters "
          f"for {len(bad)} bad ({bounded} bounded)", flush=True)


def main() -> int:
    root = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(root))
    from streamer.broker import EmbeddedBroker

    articles: list[dict[str, str]] = []
    with DATA.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            articles.append({"id": row["id"], "title": "", "text": row["text"]})
            if len(articles) >= 1600:
                break
    with EmbeddedBroker() as broker:
        huge = json.dumps({"id": "huge", "text": "word " * (2 * 2**20 // 5)}).encode()[: 2 * 2**20 - 2] + b'"}'
        bad1 = [(b"not json %d" % i, i % 4) for i in range(19)] + [(huge, 1)]
        scenario(root, broker.bootstrap, "s1", 4, articles[:1000], bad1)
        sizes = (1_200_000, 2_500_000, 6_000_000, 12_000_000)
        bad2 = [(json.dumps({"id": f"x{n}", "text": "w " * (n // 2)}).encode(), p) for n in sizes for p in range(3)]
        bad2 += [(b"\xff" * 3_000_000, p) for p in range(3)]
        scenario(root, broker.bootstrap, "s2", 3, articles[1000:1600], bad2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
