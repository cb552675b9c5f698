"""``newsstream demo`` (what ``make run`` runs): the whole pipeline on one machine.

Embedded broker → topics → worker (in this process) → publish ``examples/articles.jsonl`` (and the shared
seed article when it is there) → print the enriched events as a table → keep serving until Ctrl-C
(``--once``: stop after the table). Everything started here is stopped here, in reverse order.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEED_ARTICLE = ROOT.parent / "shared" / "examples" / "seed-article.json"



def _lines(examples: Path) -> list[bytes]:
    lines = [line for line in examples.read_bytes().split(b"\n") if line.strip()]
    if SEED_ARTICLE.is_file():
        try:
            seed = json.loads(SEED_ARTICLE.read_text(encoding="utf-8"))
            lines.append(json.dumps(seed, ensure_ascii=False).encode("utf-8"))
        except (OSError, ValueError) as exc:
            print(f"(seed article skipped: {exc})", file=sys.stderr)
    return lines


def _collect(bootstrap: str, topics: list[str], want: int, timeout_s: float) -> list[Any]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def _ids(lines: list[bytes]) -> list[str]:
    ids = []
    for line in lines:
        try:
            ids.append(str(json.loads(line).get("id")))
        except (ValueError, AttributeError):
            continue
    return ids


def _table(records: list[Any], dlq_topic: str, order: list[str] | None = None) -> str:
    rows = [("id", "topic", "score", "incident", "score", "expected (topic / incident)")]
    dead = []
    # Partitions interleave the results; show them in the order they were published.
    rank = {id_: i for i, id_ in enumerate(order or [])}
    records = sorted(records, key=lambda r: rank.get((r.key or b"").decode("utf-8", "replace"), len(rank)))
    for rec in records:
        if rec.topic == dlq_topic:
            headers = {k: (v or b"").decode() for k, v in rec.headers or []}
            dead.append(f"  dead letter {rec.key!r}: {headers.get('reason')} ({headers.get('error')})")
            continue
        event = json.loads(rec.value)
        expected = event.get("expected") or {}
        marks = ""
        if expected:
            ok_t = "✓" if expected.get("topic") == event["topic"]["label"] else "✗"
            ok_i = "✓" if expected.get("incident") == event["incident"]["label"] else "✗"
            marks = f"{ok_t} {expected.get('topic')} / {ok_i} {expected.get('incident')}"
        rows.append((str(event["id"])[:28], event["topic"]["label"], f"{event['topic']['score']:.2f}",
                     event["incident"]["label"], f"{event['incident']['score']:.2f}", marks))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + dead)


def run(args: Any) -> int:
    from streamer.app import App, StartupError
    from streamer.broker import BrokerError, EmbeddedBroker, create_topics, port_is_free
    from streamer.logs import configure_logging
    from streamer.produce import publish
    from streamer.settings import Settings

    configure_logging("WARNING", "text")
    port = args.port if args.port is not None else (9092 if port_is_free("127.0.0.1", 9092) else 0)
    overrides: dict[str, Any] = {"model_path": args.model} if args.model else {}
    settings = Settings(bootstrap_servers="127.0.0.1:0", group_id="newsstream-demo", session_timeout_ms=6000,
                        metrics_host="127.0.0.1", metrics_port=args.metrics_port, batch_max_wait_ms=100,
                        **overrides)
    broker = EmbeddedBroker(port=port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    app: App | None = None
    try:
        try:
            broker.start()
        except BrokerError as exc:
            print(f"newsstream demo: {exc}", file=sys.stderr)
            return 1
        settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap})
        print(f"broker     {broker.bootstrap} (Tansu, memory-only)")
        create_topics(broker.bootstrap, {settings.input_topic: args.partitions, settings.output_topic: args.partitions,
                                         settings.dlq_topic: 1})
        try:
            app = App.build(settings).start()
        except StartupError as exc:
            print(f"newsstream demo: {exc}\n"
                  "  train one with `make train`, or point NEWSSTREAM_MODEL_PATH at a bundle", file=sys.stderr)
            return exc.exit_code
        models = app.models
        host, mport = app.server.address
        print(f"model      {models.current.name} {models.current.version}")
        lines = _lines(args.examples)
        publish(settings, settings.input_topic, lines)
        print(f"published  {len(lines)} article(s) to {settings.input_topic}; waiting for the worker…", flush=True)
        records = _collect(broker.bootstrap, [settings.output_topic, settings.dlq_topic], len(lines), args.timeout)
        print()
        print(_table(records, settings.dlq_topic, _ids(lines)))
        print()
        print(f"{len(records)} of {len(lines)} article(s) processed")
        print(f"metrics    http://{host}:{mport}/metrics   (also /healthz, /readyz)")
        print(f"try        NEWSSTREAM_BOOTSTRAP_SERVERS={broker.bootstrap} newsstream tail --from-beginning")
        if len(records) < len(lines):
            print("newsstream demo: not every article came back in time", file=sys.stderr)
            return 1
        if not args.once:
            print("running    Ctrl-C stops the worker and the broker", flush=True)
            while not stop.wait(0.5):
                if not broker.alive():
                    print("newsstream demo: the broker exited", file=sys.stderr)
                    return 1
        return 0
    finally:
        if app is not None:
            app.stop()
        broker.stop()
        print("stopped    worker, metrics server and broker")
