"""Poison messages: every kind of bad input we know of, each with the dead-letter reason it must earn, plus
valid edge cases that must be classified, not dead-lettered.

Decisions this file pins down (the schema is ``streamer.schemas.parse_article``):

- **BOM** (``EF BB BF`` before the object): rejected as ``invalid_json``. RFC 8259 §8.1 says senders MUST NOT
  add one; a producer that does has a bug worth hearing about, and stripping it would hide the bug while
  every other consumer of the topic chokes on it.
- **Duplicate keys**: the last one wins (``{"text": "", "text": "body"}`` is an article with text
  ``"body"``). That is what Python's, JavaScript's and Jackson's default parsers do, so every consumer of the
  input topic reads the same article the worker classified.
- **Raw control characters** inside a string: ``invalid_json`` (RFC 8259 §7); escaped ones (``\\u0000``) are
  legal JSON and pass through untouched.
- **NaN / Infinity** literals and numbers that overflow a double (``1e400``): ``invalid_json``. They are not
  JSON, and passing them through would put ``NaN``/``Infinity`` into the enriched event, which strict JSON
  readers downstream reject.
- **Unpaired surrogate escapes** (``"\\ud800"``): ``invalid_json`` — the string has no UTF-8 form, so the
  enriched event could not be encoded.
- **Nesting deeper than the parser's recursion limit**: ``invalid_json``.
- **Null key**: not a fault by itself (the output key is the article id); a null-keyed bad value is
  dead-lettered with its key still null.
- **Integer ids** are valid and become strings (within 64 bits; ``7.0`` is the integer 7, as JSON Schema says);
  fractional, bool, null, list and object ids are ``invalid_schema``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from streamer.schemas import DeadLetterReason as R


@dataclass(frozen=True)
class Case:
    kind: str
    key: bytes | None
    value: bytes | None
    #: the dead-letter reason; None for a valid edge case that must be enriched
    reason: R | None
    #: valid cases: fields the enriched event must carry exactly (id always included)
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.reason is None


def _j(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def bad_cases(max_bytes: int, tag: str = "0", seed: int = 0) -> list[Case]:
    """At least 25 kinds of bad message. ``tag`` makes keys and values unique across repetitions."""
    rnd = random.Random(f"{seed}-{tag}")
    k = tag

    def key(kind: str) -> bytes:
        return f"poison-{kind}-{k}".encode()

    garbage = bytes([0xFF, 0xFE, 0x00, 0x80]) + rnd.randbytes(64)
    # far past the parser's recursion limit (~1,000), yet under the size limit so the depth is what is tested
    depth = min(100_000, (max_bytes - 64) // 2)
    cases = [
        ("invalid_json", b'{"id": "pj-' + k.encode() + b'", text: unquoted}', R.INVALID_JSON),
        ("truncated_json", b'{"id": "pt-' + k.encode() + b'", "text": "River levels ro', R.INVALID_JSON),
        ("trailing_garbage", _j({"id": f"pg-{k}", "text": "t"}) + b" }{", R.INVALID_JSON),
        ("single_quotes", b"{'id': 'ps-" + k.encode() + b"', 'text': 'python repr'}", R.INVALID_JSON),
        ("empty_value", b"", R.INVALID_JSON),
        ("ascii_garbage", b"\x00\x01\x02 not json " + k.encode(), R.INVALID_JSON),
        ("bom", b"\xef\xbb\xbf" + _j({"id": f"pbom-{k}", "text": "with a byte order mark"}), R.INVALID_JSON),
        ("raw_control_char", b'{"id": "pc-' + k.encode() + b'", "text": "bell\x07 and nul\x00"}', R.INVALID_JSON),
        ("huge_int_literal", b'{"id": "ph-' + k.encode() + b'", "text": "t", "n": ' + b"9" * 5000 + b"}",
         R.INVALID_JSON),
        ("huge_float_literal", b'{"id": "pf-' + k.encode() + b'", "text": "t", "score": 1e400}', R.INVALID_JSON),
        ("nan_literal", b'{"id": "pn-' + k.encode() + b'", "text": "t", "score": NaN}', R.INVALID_JSON),
        ("deeply_nested", b'{"id": "pd-' + k.encode() + b'", "text": "t", "x": ' + b"[" * depth + b"]" * depth
         + b"}", R.INVALID_JSON),
        ("lone_surrogate", b'{"id": "pls-' + k.encode() + b'", "text": "half a pair \\ud83d here"}', R.INVALID_JSON),
        ("json_array", _j([f"pa-{k}", "an array"]), R.INVALID_SCHEMA),
        ("json_number", b"42", R.INVALID_SCHEMA),
        ("json_string", _j(f"just a string {k}"), R.INVALID_SCHEMA),
        ("json_null", b"null", R.INVALID_SCHEMA),
        ("json_bool", b"true", R.INVALID_SCHEMA),
        ("missing_id", _j({"text": f"no id {k}"}), R.INVALID_SCHEMA),
        ("missing_text", _j({"id": f"pmt-{k}"}), R.INVALID_SCHEMA),
        ("title_only", _j({"id": f"pto-{k}", "title": "A headline and nothing else"}), R.INVALID_SCHEMA),
        ("id_null", _j({"id": None, "text": f"t {k}"}), R.INVALID_SCHEMA),
        ("id_bool", _j({"id": True, "text": f"t {k}"}), R.INVALID_SCHEMA),
        ("id_float", _j({"id": 1.5, "text": f"t {k}"}), R.INVALID_SCHEMA),
        ("id_object", _j({"id": {"v": k}, "text": "t"}), R.INVALID_SCHEMA),
        ("id_empty", _j({"id": "", "text": f"t {k}"}), R.INVALID_SCHEMA),
        ("id_too_long", _j({"id": "i" * 513, "text": f"t {k}"}), R.INVALID_SCHEMA),
        ("text_number", _j({"id": f"ptn-{k}", "text": 12345}), R.INVALID_SCHEMA),
        ("text_list", _j({"id": f"ptl-{k}", "text": ["para 1", "para 2"]}), R.INVALID_SCHEMA),
        ("text_null", _j({"id": f"ptnull-{k}", "text": None}), R.INVALID_SCHEMA),
        ("title_wrong_type", _j({"id": f"ptw-{k}", "title": {"en": "x"}, "text": "t"}), R.INVALID_SCHEMA),
        ("empty_text", _j({"id": f"pe-{k}", "text": ""}), R.EMPTY_TEXT),
        ("whitespace_text", _j({"id": f"pw-{k}", "title": "Headline", "text": " \t\r\n  "}), R.EMPTY_TEXT),
        ("unicode_space_text", _j({"id": f"pus-{k}", "text": "\u00a0\u2003\u3000\u2028"}), R.EMPTY_TEXT),
        ("too_large", _j({"id": f"pl-{k}", "text": "word " * (max_bytes // 4)}), R.TOO_LARGE),
        ("too_large_and_broken", b"{" + b"x" * (max_bytes + 1), R.TOO_LARGE),
        ("latin1", b'{"id": "p1-' + k.encode() + b'", "text": "caf\xe9 cr\xe8me"}', R.NOT_UTF8),
        ("utf16", _j({"id": f"p16-{k}", "text": "utf-16"}).decode().encode("utf-16"), R.NOT_UTF8),
        ("overlong_utf8", b'{"id": "po-' + k.encode() + b'", "text": "\xc0\xaf"}', R.NOT_UTF8),
        ("encoded_surrogate", b'{"id": "pes-' + k.encode() + b'", "text": "\xed\xa0\x80"}', R.NOT_UTF8),
        ("binary_garbage", garbage, R.NOT_UTF8),
        ("tombstone", None, R.TOMBSTONE),
    ]
    out = [Case(kind, key(kind), value, reason) for kind, value, reason in cases]
    # A null key is no fault by itself; with a bad value the dead letter keeps the null key.
    out.append(Case("null_key_invalid", None, b'{"id": "pnk-' + k.encode() + b'", "text": ', R.INVALID_JSON))
    return out


def valid_cases(max_bytes: int, tag: str = "0") -> list[Case]:
    """Edge cases that must come out enriched, with the fields they must carry."""
    k = tag
    cases: list[Case] = []

    def add(kind: str, obj: dict[str, Any] | None = None, raw: bytes | None = None, key: bytes | None = b"",
            **expect: Any) -> None:
        assert (obj is None) != (raw is None)
        value = raw if raw is not None else _j(obj)
        ident = expect.pop("id", None) or (obj or {}).get("id")
        cases.append(Case(kind, f"valid-{kind}-{k}".encode() if key == b"" else key, value, None,
                          {"id": str(ident), **expect}))

    add("emoji", {"id": f"ve-{k}", "title": "🌊 Flood 🚨", "text": "Rivers 🌧️ rose; families 👨‍👩‍👧 moved. 🏳️‍🌈"},
        title="🌊 Flood 🚨", text="Rivers 🌧️ rose; families 👨‍👩‍👧 moved. 🏳️‍🌈")
    add("escaped_surrogate_pair", raw=b'{"id": "vsp-' + k.encode() + b'", "text": "smile \\ud83d\\ude00"}',
        id=f"vsp-{k}", text="smile 😀")
    add("rtl_arabic", {"id": f"var-{k}", "text": "ارتفع منسوب المياه في النهر خلال الليل"},
        text="ارتفع منسوب المياه في النهر خلال الليل")
    add("rtl_hebrew_mixed", {"id": f"vhe-{k}", "text": "הנהר עלה ב-3 מטרים \u200fover night\u200e."},
        text="הנהר עלה ב-3 מטרים \u200fover night\u200e.")
    add("combining", {"id": f"vco-{k}", "text": "Cafe\u0301 Z\u0351\u0352\u0353a\u0300\u0301\u0302lgo"},
        text="Cafe\u0301 Z\u0351\u0352\u0353a\u0300\u0301\u0302lgo")
    cjk = "河川の水位が夜間に上昇した。居民已被转移。"
    add("cjk", {"id": f"vcjk-{k}", "text": cjk}, text=cjk)
    add("one_char", {"id": f"v1-{k}", "text": "x"}, text="x")
    add("extra_fields", {"id": f"vx-{k}", "text": "Body", "tags": ["a", "b"], "meta": {"n": 1, "deep": {"ok": True}},
                         "score": 0.5, "count": 2**64},
        tags=["a", "b"], meta={"n": 1, "deep": {"ok": True}}, score=0.5, count=2**64)
    add("moderately_nested", {"id": f"vn-{k}", "text": "Body", "x": json.loads("[" * 50 + "]" * 50)},
        x=json.loads("[" * 50 + "]" * 50))
    add("int_id", {"id": 4200 + sum(map(ord, k)), "text": "Integer id"}, id=str(4200 + sum(map(ord, k))))
    add("nullable_fields_null", {"id": f"vnull-{k}", "title": None, "url": None, "source": None, "text": "Body"},
        title=None, url=None)
    add("escaped_control_chars", {"id": f"vctl-{k}", "text": "tab\there nul\u0000 bell\u0007"},
        text="tab\there nul\u0000 bell\u0007")
    add("duplicate_keys_last_wins", raw=b'{"id": "vdup-' + k.encode() + b'", "text": "", "text": "second wins"}',
        id=f"vdup-{k}", text="second wins")
    add("null_key", {"id": f"vnk-{k}", "text": "Keyless record"}, key=None, text="Keyless record")
    # exactly at the limit is still allowed ("larger input values go to the dead-letter topic")
    head = _j({"id": f"vmax-{k}", "text": ""})
    filler = "y" * (max_bytes - len(head))
    add("at_size_limit", {"id": f"vmax-{k}", "text": filler}, text=filler)
    for case in cases:
        assert case.value is None or len(case.value) <= max_bytes, case.kind
    return cases


def interleave(good: list[tuple[bytes | None, bytes | None]], cases: list[Case], seed: int = 0
               ) -> list[tuple[bytes | None, bytes | None]]:
    """``good`` with every case inserted at a seeded random position, so bad ones sit inside good batches."""
    rnd = random.Random(seed)
    out = list(good)
    for case in cases:
        out.insert(rnd.randrange(len(out) + 1), (case.key, case.value))
    return out
