"""The parse-and-validate path as a pure function: the poison catalogue, then hypothesis-generated input.

The contract (``streamer.schemas.parse_article``): it never raises; it returns either an article whose
enriched event can be published (UTF-8, strict JSON) or a :class:`Rejection` with a known input reason; a
valid article keeps its fields exactly.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from poison import bad_cases, valid_cases

from streamer.pipeline import dumps
from streamer.schemas import Article, DeadLetterReason, Rejection, enrich, parse_article

MAX_BYTES = 20_000
#: Reasons the input alone can earn (classification and output size come later, in the worker).
INPUT_REASONS = {DeadLetterReason.INVALID_JSON, DeadLetterReason.INVALID_SCHEMA, DeadLetterReason.EMPTY_TEXT,
                 DeadLetterReason.TOO_LARGE, DeadLetterReason.NOT_UTF8, DeadLetterReason.TOMBSTONE}
PREDICTION = {"topic": {"label": "weather", "score": 0.9}, "topics": [{"label": "weather", "score": 0.9}],
              "incident": {"label": "none", "score": 0.8}, "incidents": [{"label": "none", "score": 0.8}]}
MODEL = {"name": "m", "version": "1"}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(data: bytes) -> Any:
    """What a strict downstream reader accepts: UTF-8, and no NaN / Infinity."""
    return json.loads(data.decode("utf-8"), parse_constant=_no_constant)


def checked(value: bytes | None) -> Article | Rejection:
    """parse_article plus the contract every result must meet."""
    result = parse_article(value, MAX_BYTES)
    assert isinstance(result, Article | Rejection), type(result)
    if isinstance(result, Rejection):
        assert result.reason in INPUT_REASONS and result.error
    else:
        event = dumps(enrich(result, PREDICTION, MODEL, "2026-01-01T00:00:00Z", None))
        assert strict_loads(event)["id"] == result.id
        result.id.encode("utf-8")  # becomes the output key
    return result


# ---- the catalogue -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", bad_cases(MAX_BYTES), ids=lambda c: c.kind)
def test_every_poison_kind_gets_its_reason(case) -> None:
    result = checked(case.value)
    assert isinstance(result, Rejection), f"{case.kind} was accepted"
    assert result.reason is case.reason, (case.kind, result)


@pytest.mark.parametrize("case", valid_cases(MAX_BYTES), ids=lambda c: c.kind)
def test_every_valid_edge_case_is_an_article(case) -> None:
    result = checked(case.value)
    assert isinstance(result, Article), (case.kind, result)
    event = strict_loads(dumps(enrich(result, PREDICTION, MODEL, "t", None)))
    for name, expected in case.expect.items():
        assert event[name] == expected, (case.kind, name)


def test_catalogue_is_wide_enough() -> None:
    bad = bad_cases(MAX_BYTES)
    assert len({c.kind for c in bad}) >= 25
    assert {c.reason for c in bad} == INPUT_REASONS


# ---- property-based --------------------------------------------------------------------------------------

# Every code point, lone surrogates included: JSON's \\uXXXX escapes can carry them.
any_char = st.characters(codec=None)
json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(any_char, max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(any_char, max_size=8), children,
                                                                      max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.binary(max_size=4096))
@example(b"\xef\xbb\xbf{}")
@example(b"[" * 5000)
def test_arbitrary_bytes(value: bytes) -> None:
    checked(value)


@FUZZ
@given(json_values)
@example(float("nan"))
@example({"id": "a", "text": "t", "score": float("inf")})
@example({"id": "a", "text": "half \ud800 a pair"})
def test_arbitrary_json_values(value: Any) -> None:
    # ensure_ascii: surrogates travel as \\uXXXX escapes, as a producer in another language might send them
    checked(json.dumps(value).encode())


@FUZZ
@given(depth=st.integers(1, 9_000), opener=st.sampled_from(["[", '{"k":']), in_article=st.booleans())
@example(depth=5_000, opener="[", in_article=True)
def test_any_nesting_depth(depth: int, opener: str, in_article: bool) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "0" + closer * depth if opener != "[" else opener * depth + closer * depth
    body = f'{{"id": "a", "text": "t", "x": {nested}}}' if in_article else nested
    checked(body.encode())


articles = st.fixed_dictionaries(
    # integer ids within 64 bits (the contract, schemas/article.schema.json; larger ones are invalid_schema)
    {"id": st.text(st.characters(codec="utf-8"), min_size=1, max_size=40) | st.integers(-(2**63), 2**63 - 1),
     "text": st.text(st.characters(codec="utf-8"), max_size=200).filter(lambda s: bool(s.strip()))},
    optional={"title": st.none() | st.text(st.characters(codec="utf-8"), max_size=50),
              "url": st.none() | st.text(max_size=30),
              "language": st.none() | st.sampled_from(["en", "fr", "ar"]),
              "extra": json_values.filter(lambda v: "NaN" not in json.dumps(v) and "Infinity" not in json.dumps(v)
                                          and "\\ud" not in json.dumps(v))},
)


@FUZZ
@given(articles, st.booleans())
def test_valid_articles_round_trip(fields: dict[str, Any], ascii_only: bool) -> None:
    result = checked(json.dumps(fields, ensure_ascii=ascii_only).encode("utf-8"))
    assert isinstance(result, Article), result
    event = strict_loads(dumps(enrich(result, PREDICTION, MODEL, "t", None)))
    expected = {**fields, "id": str(fields["id"])}
    for name, value in expected.items():
        assert event[name] == value, name
