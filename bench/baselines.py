"""The peer designs the worker is compared with, and the fixed-rate producer, each run as its own process.

    python -m bench.baselines per-message --bootstrap B --input T --output O --group G --model M --count N
    python -m bench.baselines quix        --bootstrap B --input T --output O --group G --model M --count N
    python -m bench.baselines passthrough --bootstrap B --input T --output O --group G --count N
    python -m bench.baselines produce     --bootstrap B --topic T --source FILE --rate R --seconds S

``per-message`` is the plain kafka-python loop of the issue: poll one record, predict one, produce it, commit
once a second. ``quix`` is a Quix Streams application (confluent-kafka underneath) doing the same per message.
``passthrough`` is the floor kafka-python sets: the worker's loop with no model and nothing else (poll up to 500,
decode each value with orjson, encode it again, produce, flush, commit), with the worker's client settings.
All three stamp each output with the wall-clock time it was produced (record timestamp), exactly as the worker's
producer does, so the harness measures all three from the output topic the same way. Both exit after
``--count`` outputs are flushed. Nothing here validates, meters or dead-letters: that is the point of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _classify_one(bundle: Any, obj: dict[str, Any]) -> dict[str, Any]:
    prediction: dict[str, Any] = bundle.classify([(str(obj.get("title") or ""), str(obj.get("text") or ""))])[0]
    obj.update(prediction)
    return obj


def per_message(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer, KafkaProducer

    from streamer.artifact import load_bundle

    bundle = load_bundle(args.model)
    consumer = KafkaConsumer(args.input, bootstrap_servers=args.bootstrap, group_id=args.group,
                             enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=1,
                             session_timeout_ms=6000, heartbeat_interval_ms=2000)
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5,
                             max_request_size=4 * 1024 * 1024)
    done = 0
    last_commit = time.monotonic()
    try:
        while done < args.count:
            for records in consumer.poll(timeout_ms=200, max_records=1).values():
                for rec in records:
                    out = _classify_one(bundle, json.loads(rec.value))
                    producer.send(args.output, key=rec.key, value=json.dumps(out).encode())
                    done += 1
            if time.monotonic() - last_commit >= 1.0:
                producer.flush()
                consumer.commit()
                last_commit = time.monotonic()
        producer.flush()
        consumer.commit()
    finally:
        producer.close(timeout=5)
        consumer.close(autocommit=False)
    return 0


def quix(args: argparse.Namespace) -> int:
    from quixstreams import Application

    from streamer.artifact import load_bundle

    bundle = load_bundle(args.model)
    app = Application(broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
                      auto_create_topics=False, use_changelog_topics=False,
                      consumer_extra_config={"session.timeout.ms": 6000},
                      producer_extra_config={"message.max.bytes": 4 * 1024 * 1024})
    source = app.topic(args.input, key_deserializer="bytes", value_deserializer="json")
    sink = app.topic(args.output, key_serializer="bytes", value_serializer="json")
    sdf = app.dataframe(source)
    done = 0

    def classify(value: dict[str, Any]) -> dict[str, Any]:
        nonlocal done
        out = _classify_one(bundle, value)
        done += 1
        if done >= args.count:
            app.stop()  # the loop finishes this message, flushes the producer and commits
        return out

    sdf = sdf.apply(classify)
    # Quix forwards the input timestamp by default; stamp the produce time like the other two designs.
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: int(time.time() * 1000))
    sdf.to_topic(sink)
    app.run()
    return 0 if done >= args.count else 1


def passthrough(args: argparse.Namespace) -> int:
    import orjson
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import OffsetAndMetadata

    from streamer.settings import Settings

    settings = Settings(bootstrap_servers=args.bootstrap, group_id=args.group, input_topic=args.input,
                        output_topic=args.output, session_timeout_ms=6000)
    consumer = KafkaConsumer(args.input, **{**settings.consumer_kwargs(), "bootstrap_servers": args.bootstrap})
    producer = KafkaProducer(**{**settings.producer_kwargs(), "bootstrap_servers": args.bootstrap})
    done = 0
    try:
        while done < args.count:
            polled = consumer.poll(timeout_ms=200, max_records=500)
            if not polled:
                continue
            offsets = {}
            for tp, records in polled.items():
                for rec in records:
                    producer.send(args.output, key=rec.key, value=orjson.dumps(orjson.loads(rec.value)))
                offsets[tp] = records[-1].offset + 1
                done += len(records)
            producer.flush()
            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
    finally:
        producer.close(timeout=5)
        consumer.close(autocommit=False)
    return 0


def produce(args: argparse.Namespace) -> int:
    """Fixed-rate producer: ``bench_sent_at`` (epoch seconds) is written into each value just before send."""
    from kafka import KafkaProducer

    lines = [line.rstrip(b"\n") for line in Path(args.source).read_bytes().splitlines() if line.strip()]
    keys = [str(json.loads(line)["id"]).encode() for line in lines]
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=1,
                             max_request_size=4 * 1024 * 1024)
    total = int(args.rate * args.seconds)
    started = time.monotonic()
    try:
        for i in range(total):
            ahead = i / args.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            line = lines[i % len(lines)]
            value = b'{"bench_sent_at":%.6f,' % time.time() + line[1:]
            producer.send(args.topic, key=keys[i % len(keys)], value=value)
        producer.flush()
    finally:
        producer.close(timeout=5)
    late = (time.monotonic() - started) - args.seconds
    print(json.dumps({"sent": total, "late_seconds": round(late, 3)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="design", required=True)
    for name in ("per-message", "quix", "passthrough"):
        sp = sub.add_parser(name)
        sp.add_argument("--bootstrap", required=True)
        sp.add_argument("--input", required=True)
        sp.add_argument("--output", required=True)
        sp.add_argument("--group", required=True)
        sp.add_argument("--model", type=Path, required=name != "passthrough")
        sp.add_argument("--count", type=int, required=True)
    sp = sub.add_parser("produce")
    sp.add_argument("--bootstrap", required=True)
    sp.add_argument("--topic", required=True)
    sp.add_argument("--source", type=Path, required=True, help="JSONL, one message value a line")
    sp.add_argument("--rate", type=float, required=True)
    sp.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    designs = {"per-message": per_message, "quix": quix, "passthrough": passthrough, "produce": produce}
    return designs[args.design](args)


if __name__ == "__main__":
    sys.exit(main())
