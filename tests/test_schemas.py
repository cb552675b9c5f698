"""The event contracts in schemas/: generated from the models, valid AsyncAPI, and in agreement with the worker."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import article, headers_of, produce, read_all
from reliability.poison import bad_cases, valid_cases

from streamer.contracts import DEAD_LETTER_HEADERS, EVENT_HEADERS, files
from streamer.schemas import DeadLetterReason, Rejection, parse_article

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"
ASYNCAPI_SCHEMA = ROOT.parent / "shared" / "schemas" / "asyncapi-3.0.0.json"
MAX_BYTES = 20_000


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def strict_json(value: bytes) -> tuple[bool, Any]:
    """RFC 8259 JSON in UTF-8, as the contract (schemas/asyncapi.yaml) states it: (is it JSON, the document)."""
    def reject(name: str) -> Any:
        raise ValueError(name)

    def finite(text: str) -> float:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(text)
        return number

    try:
        doc = json.loads(value.decode("utf-8"), parse_constant=reject, parse_float=finite)
        json.dumps(doc, ensure_ascii=False).encode("utf-8")  # an unpaired surrogate escape has no UTF-8 form
    except (UnicodeError, ValueError, RecursionError):
        return False, None
    if value.startswith(b"\xef\xbb\xbf"):
        return False, None
    return True, doc


def test_committed_contracts_are_what_the_models_generate(tmp_path: Path) -> None:
    for name, text in files().items():
        assert (SCHEMAS / name).read_text(encoding="utf-8") == text, f"schemas/{name} is stale: run newsstream schema"
    check = [sys.executable, "-m", "newsstream", "schema", "--check"]
    assert subprocess.run(check, cwd=ROOT, capture_output=True).returncode == 0
    # --check can fail: a copy with one change is reported
    for name in files():
        (tmp_path / name).write_text((SCHEMAS / name).read_text(encoding="utf-8"), encoding="utf-8")
    stale = tmp_path / "enriched.schema.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace('"topic"', '"subject"'), encoding="utf-8")
    run = subprocess.run([*check, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1 and "enriched.schema.json" in run.stderr


@pytest.mark.skipif(not ASYNCAPI_SCHEMA.is_file(), reason="needs ../shared/schemas/asyncapi-3.0.0.json")
def test_asyncapi_document_is_valid_asyncapi_3() -> None:
    spec = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    check = jsonschema.Draft7Validator(spec)
    doc = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text(encoding="utf-8"))
    errors = [f"{list(e.path)}: {e.message}" for e in check.iter_errors(doc)]
    assert errors == []
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == {"articles", "articles.enriched", "articles.dlq"}
    messages = doc["components"]["messages"]
    assert set(messages["EnrichedEvent"]["headers"]["properties"]) == set(EVENT_HEADERS)
    assert set(messages["DeadLetter"]["headers"]["properties"]) == set(DEAD_LETTER_HEADERS)
    assert messages["DeadLetter"]["headers"]["properties"]["reason"]["enum"] == [r.value for r in DeadLetterReason]
    # The validation can fail: an unknown field in a channel, or a wrong binding version, is reported.
    broken = json.loads(json.dumps(doc))
    broken["channels"]["articles"]["partitionz"] = 6
    broken["channels"]["articlesEnriched"]["bindings"]["kafka"]["bindingVersion"] = "9.9.9"
    assert len(list(check.iter_errors(broken))) >= 2


def worker_accepts(value: bytes | None) -> bool:
    return value is not None and not isinstance(parse_article(value, MAX_BYTES), Rejection)


def test_schema_and_worker_agree_on_every_poison_and_edge_case() -> None:
    article_schema = validator("article.schema.json")
    checked = 0
    for case in [*bad_cases(MAX_BYTES), *valid_cases(MAX_BYTES)]:
        assert worker_accepts(case.value) == case.valid, case.kind
        if case.reason in (DeadLetterReason.TOO_LARGE, DeadLetterReason.TOMBSTONE):
            continue  # a transport limit and a missing value: not a document for a schema to judge
        is_json, doc = strict_json(case.value or b"")
        schema_accepts = is_json and article_schema.is_valid(doc)
        assert schema_accepts == case.valid, (case.kind, case.reason, is_json)
        if case.reason in (DeadLetterReason.INVALID_JSON, DeadLetterReason.NOT_UTF8):
            assert not is_json, case.kind  # rejected before any schema: not RFC 8259 JSON in UTF-8
        checked += 1
    assert checked >= 50


@pytest.mark.parametrize(("doc", "accepted"), [
    ({"id": 7, "text": "x"}, True),
    ({"id": 2**63 - 1, "text": "x"}, True),
    ({"id": -(2**63), "text": "x"}, True),
    ({"id": 2**63, "text": "x"}, False),
    ({"id": -(2**63) - 1, "text": "x"}, False),
    ({"id": "i" * 512, "text": "x"}, True),
    ({"id": "i" * 513, "text": "x"}, False),
    ({"id": "", "text": "x"}, False),
    ({"id": True, "text": "x"}, False),
    ({"id": 1.0, "text": "x"}, True),  # an integer to JSON Schema (and JSON): the id "1"
    ({"id": 1.5, "text": "x"}, False),
    ({"id": "a", "text": "\u00a0\u2028 \t"}, False),
    ({"id": "a", "text": " a "}, True),
    ({"id": "a", "text": "x", "title": None, "url": None, "extra": {"deep": [1, None]}}, True),
    ({"id": "a", "text": "x", "title": 5}, False),
    ({"id": "a", "text": "x", "published_at": 20260101}, False),
])
def test_schema_and_worker_agree_at_the_edges(doc: dict[str, Any], accepted: bool) -> None:
    value = json.dumps(doc).encode()
    assert worker_accepts(value) is accepted
    assert validator("article.schema.json").is_valid(json.loads(value)) is accepted


def test_real_enriched_events_and_dead_letters_match_the_contract(broker, topics_factory, worker_factory,
                                                                  model_v1: Path) -> None:
    t = topics_factory(partitions=2)
    good = [(f"art-{i}".encode(), json.dumps(article(i)).encode()) for i in range(40)]
    good.append((b"int-id", json.dumps({"id": 12345, "text": "Integer ids are accepted"}).encode()))
    bad = [(b"b1", b"not json"), (b"b2", json.dumps({"id": "x", "text": " "}).encode()), (b"b3", None)]
    produce(broker.bootstrap, t.input, good + bad)
    worker = worker_factory(t, model_v1)
    worker.wait_ready()
    enriched = read_all(broker.bootstrap, t.output, len(good), timeout_s=60)
    dead = read_all(broker.bootstrap, t.dlq, len(bad), timeout_s=30)
    events = validator("enriched.schema.json")
    for rec in enriched:
        event = json.loads(rec.value)
        errors = [e.message for e in events.iter_errors(event)]
        assert errors == [], (event["id"], errors)
        assert rec.key == event["id"].encode()
        for name, (_meaning, schema) in EVENT_HEADERS.items():
            jsonschema.validate(headers_of(rec)[name], schema)
    assert "12345" in {json.loads(r.value)["id"] for r in enriched}
    for rec in dead:
        h = headers_of(rec)
        for name, value in h.items():
            if name in DEAD_LETTER_HEADERS:
                jsonschema.validate(value, DEAD_LETTER_HEADERS[name][1])
        assert {"reason", "error", "origin-topic", "origin-partition", "origin-offset"} <= set(h)
    assert sorted(headers_of(r)["reason"] for r in dead) == ["empty_text", "invalid_json", "tombstone"]
