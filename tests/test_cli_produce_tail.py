"""``newsstream produce`` and ``newsstream tail`` against the real broker: what users replay and watch with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
from conftest import ROOT, read_all

from streamer.broker import create_topics, free_port
from streamer.settings import Settings


def _env(bootstrap: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSSTREAM_")}
    env["NEWSSTREAM_BOOTSTRAP_SERVERS"] = bootstrap
    return env


def _cli(broker: Any, *args: str, bootstrap: str | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = _env(bootstrap or broker.bootstrap)
    return subprocess.run([sys.executable, "-m", "newsstream", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_produce_then_tail(broker, unique, tmp_path: Path) -> None:
    topic = unique("cli")
    create_topics(broker.bootstrap, {topic: 2})
    lines = [json.dumps({"id": f"c-{i}", "text": f"t {i}"}) for i in range(20)] + ["{broken"]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n\n")
    produced = _cli(broker, "produce", "--file", str(source), "--topic", topic, "--rate", "200")
    assert produced.returncode == 0, produced.stderr
    assert "published 21 of 21 message(s)" in produced.stderr

    records = read_all(broker.bootstrap, topic, 21, timeout_s=20)
    assert sorted(r.value.decode() for r in records) == sorted(lines)  # sent byte for byte, bad line too
    assert {r.key for r in records} == {f"c-{i}".encode() for i in range(20)} | {None}

    tailed = _cli(broker, "tail", "--topic", topic, "--from-beginning", "--max-messages", "21", "--json")
    assert tailed.returncode == 0, tailed.stderr
    assert sorted(tailed.stdout.splitlines()) == sorted(lines)

    idle = _cli(broker, "tail", "--topic", topic, "--timeout", "1")  # only new messages: none come
    assert idle.returncode == 0 and idle.stdout == ""


# ---- the broker cannot be reached ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["produce", "tail"])
def test_unreachable_broker_is_one_line_and_exit_3(command: str, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # a port nothing listens on
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "u-1", "text": "x"}) + "\n")
    args = ["produce", "--file", str(source), "--topic", "t"] if command == "produce" else ["tail", "--topic", "t"]
    started = time.monotonic()
    result = _cli(None, *args, bootstrap=address, timeout=60)
    elapsed = time.monotonic() - started

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"newsstream {command}: ") and address in lines[0], lines[0]
    assert "NEWSSTREAM_BOOTSTRAP_SERVERS" in lines[0]
    assert result.stdout == ""
    assert elapsed < 15, f"took {elapsed:.1f}s to give up"


# ---- produce checks every send ---------------------------------------------------------------------------


def test_produce_reports_a_record_over_max_request_size_and_sends_the_rest(broker, unique, tmp_path: Path) -> None:
    topic = unique("cli-big")
    create_topics(broker.bootstrap, {topic: 2})
    limit = Settings().producer_kwargs()["max_request_size"]
    good = [json.dumps({"id": f"g-{i}", "text": f"fine {i}"}) for i in range(6)]
    big = json.dumps({"id": "big", "text": "x" * (limit + 100_000)})
    lines = [*good[:3], big, *good[3:]]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")

    result = _cli(broker, "produce", "--file", str(source), "--topic", topic)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"published 6 of {len(lines)} message(s)" in result.stderr, result.stderr
    assert "1 message(s) failed" in result.stderr, result.stderr
    assert "MessageSizeTooLarge" in result.stderr, result.stderr
    records = read_all(broker.bootstrap, topic, len(good), timeout_s=20, settle_s=1.0)
    assert sorted(r.value.decode() for r in records) == sorted(good)


# ---- tail: "new" means new offsets ---------------------------------------------------------------------


def _drain(stream: IO[str], into: list[str]) -> None:
    for line in stream:
        into.append(line)


def test_tail_shows_what_arrives_after_it_started_whatever_its_timestamp(broker, unique) -> None:
    from kafka import KafkaProducer

    topic = unique("cli-new")
    create_topics(broker.bootstrap, {topic: 2})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        before = [f"before-{i}".encode() for i in range(6)]
        for value in before:
            producer.send(topic, value=value)
        producer.flush()

        proc = subprocess.Popen([sys.executable, "-m", "newsstream", "tail", "--topic", topic, "--json",
                                 "--max-messages", "2", "--timeout", "20"],
                                cwd=ROOT, env=_env(broker.bootstrap), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        out: list[str] = []
        err: list[str] = []
        readers = [threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
                   threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True)]
        for t in readers:
            t.start()
        try:
            deadline = time.monotonic() + 30
            while not any("tailing" in line for line in err) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert any("tailing" in line for line in err), f"tail never said it was positioned: {''.join(err)}"

            an_hour_ago = int(time.time() * 1000) - 3_600_000
            producer.send(topic, value=b"replayed-old-timestamp", timestamp_ms=an_hour_ago)
            producer.send(topic, value=b"fresh")
            producer.flush()
            code = proc.wait(timeout=40)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for t in readers:
            t.join(timeout=5)
    finally:
        producer.close()

    assert code == 0, "".join(err)
    assert sorted(line.strip() for line in out) == ["fresh", "replayed-old-timestamp"], "".join(err)
    # the replay really carries the old timestamp (else this test would prove nothing about the clock)
    stored = {r.value: r.timestamp for r in read_all(broker.bootstrap, topic, 8, timeout_s=20)}
    assert stored[b"replayed-old-timestamp"] <= an_hour_ago + 1000


def test_tail_from_beginning_reads_committed_transactions(broker, unique, broker_hides_aborted: bool) -> None:
    """Committed records show; an open transaction's do not (both brokers keep those behind the stable offset)."""
    from kafka import KafkaProducer

    topic = unique("cli-tx")
    create_topics(broker.bootstrap, {topic: 1})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"{topic}-tx",
                             enable_idempotence=True)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, value=b"aborted")
        producer.flush()
        producer.abort_transaction()
        producer.begin_transaction()
        for i in range(3):
            producer.send(topic, value=f"committed-{i}".encode())
        producer.commit_transaction()
        producer.begin_transaction()
        producer.send(topic, value=b"still-open")
        producer.flush()  # on the broker, in a transaction nobody has committed yet

        result = _cli(broker, "tail", "--topic", topic, "--from-beginning", "--json", "--timeout", "3")
        producer.abort_transaction()
    finally:
        producer.close()

    assert result.returncode == 0, result.stderr
    shown = result.stdout.splitlines()
    assert [line for line in shown if line.startswith("committed-")] == [f"committed-{i}" for i in range(3)]
    assert "still-open" not in shown  # a read_uncommitted reader prints it
    if broker_hides_aborted:  # real Kafka; Tansu 0.6 hands aborted records to read_committed readers too
        assert "aborted" not in shown
