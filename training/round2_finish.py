"""Annotation round 2, after labeling: agreement of the double-labeled rows, and the thin-class evaluation set.

    .venv/bin/python -m training.round2_finish [--per-class 40] [--seed 7]

1. **Agreement.** Each ``training/annotations/agreement/round2_second_bNN.jsonl`` is a second, independent pass over
   batch NN. Per head: raw agreement and Cohen's kappa. Where the two passes disagree the first pass's labels stay,
   marked ``sure: false`` (as in round 1, DATASHEET.md).
2. **Thin-class evaluation set.** For each weak class, ``--per-class`` of the round-2 rows labeled with it (``sure``
   ones first, seeded) move from ``round2_b*.jsonl`` to ``training/annotations/eval/thin_eval.jsonl``. That folder is
   not read by training (``annotations.default_files`` takes ``*.jsonl`` of the top folder only), and
   ``training.build`` treats those ids as held out (their near-duplicates are dropped from training too).

Writes ``training/annotations/eval/round2_agreement.json``. Idempotent: rows already in the eval set stay there.

>>> round(cohen_kappa(["a", "a", "b", "b"], ["a", "a", "b", "a"]), 3)
0.5
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.annotations import ANNOTATION_DIR
from training.round2 import WEAK_INCIDENTS, WEAK_TOPICS

EVAL_DIR = ANNOTATION_DIR / "eval"
EVAL_FILE = EVAL_DIR / "thin_eval.jsonl"
HEADS = ("topic", "incident")


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    return (observed - expected) / (1 - expected) if expected < 1 else 1.0


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def agreement() -> dict[str, Any]:
    """Kappa per head over the double-labeled rows; their disagreements become ``sure: false`` in the first pass."""
    first_files = [*sorted(ANNOTATION_DIR.glob("round2_b*.jsonl")), EVAL_FILE]
    first = {r["id"]: r for p in first_files if p.is_file() for r in _read(p)}
    pairs = [(first[s["id"]], s) for p in sorted((ANNOTATION_DIR / "agreement").glob("round2_second_b*.jsonl"))
             for s in _read(p) if s["id"] in first]
    out: dict[str, Any] = {"rows": len(pairs)}
    for head in HEADS:
        a, b = [f[head] for f, _ in pairs], [s[head] for _, s in pairs]
        out[head] = {"agreement": round(sum(x == y for x, y in zip(a, b, strict=True)) / max(1, len(a)), 4),
                     "kappa": round(cohen_kappa(a, b), 4) if pairs else None}
    disagree = {f["id"] for f, s in pairs if any(f[h] != s[h] for h in HEADS)}
    out["disagreements"] = len(disagree)
    for path in first_files:
        if not path.is_file():
            continue
        rows = _read(path)
        if any(r["id"] in disagree and r["sure"] for r in rows):
            _write(path, [{**r, "sure": False} if r["id"] in disagree else r for r in rows])
    return out


def thin_eval(per_class: int, seed: int) -> dict[str, int]:
    existing = _read(EVAL_FILE) if EVAL_FILE.is_file() else []
    taken = {r["id"] for r in existing}
    files = {p: _read(p) for p in sorted(ANNOTATION_DIR.glob("round2_b*.jsonl"))}
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    chosen: list[dict[str, Any]] = list(existing)
    for head, weak in (("topic", WEAK_TOPICS), ("incident", WEAK_INCIDENTS)):
        for label in weak:
            have = sum(1 for r in chosen if r[head] == label)
            pool = [r for rows in files.values() for r in rows if r[head] == label and r["id"] not in taken]
            rng.shuffle(pool)
            pool.sort(key=lambda r: not r["sure"])  # sure rows first
            for r in pool[: max(0, per_class - have)]:
                chosen.append(r)
                taken.add(r["id"])
            counts[f"{head}:{label}"] = sum(1 for r in chosen if r[head] == label)
    for path, rows in files.items():
        kept = [r for r in rows if r["id"] not in taken]
        if len(kept) != len(rows):
            _write(path, kept)
    _write(EVAL_FILE, sorted(chosen, key=lambda r: r["id"]))
    counts["rows"] = len(chosen)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    agree = agreement()
    counts = thin_eval(args.per_class, args.seed)
    report = {"agreement": agree, "thin_eval": counts}
    _write_json = json.dumps(report, indent=2) + "\n"
    (EVAL_DIR / "round2_agreement.json").write_text(_write_json, encoding="utf-8")
    print(_write_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
