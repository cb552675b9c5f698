"""Write AG News as labeled rows for ``newsstream train --taxonomy examples/agnews/taxonomy.yaml``.

    python examples/agnews/prepare.py --out build/agnews

- ``train.jsonl``: the 5,000-row AG train sample (``ag-news-train-sample5k``), ``{"id", "text", "category"}``.
- ``test.jsonl``: AG News test rows that are *not* reserved for the project's held-out evaluation
  (``newsevents/reserved.txt``), minus near-duplicates of the training sample (AG repeats items across splits:
  same first 50 letters and digits). The text is cleaned the same way for both files.

The texts are research-licensed (see each SOURCE.md): they are read from ``../shared/datasets`` (or
``$NEWSSTREAM_DATA_DIR``) and written outside the repository, never committed.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import re
from pathlib import Path

TRAIN_LABELS = {"0": "world", "1": "sports", "2": "business", "3": "scitech"}  # train sample: 0-based
TEST_LABELS = {"1": "world", "2": "sports", "3": "business", "4": "scitech"}  # test split: 1-based


def clean(value: str) -> str:
    """AG News escapes entities without the ampersand ("There #39;s") and marks line breaks with a backslash."""
    value = html.unescape(re.sub(r"(?<!&)#(\d+);", r"&#\1;", value))
    return re.sub(r"\s+", " ", value.replace("\\", " ")).strip()


def near_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())[:50]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    default_root = os.environ.get("NEWSSTREAM_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "datasets"
    parser.add_argument("--data-dir", type=Path, default=Path(default_root))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    root: Path = args.data_dir
    reserved_path = root / "newsevents" / "reserved.txt"
    reserved = set(reserved_path.read_text(encoding="utf-8").split()) if reserved_path.is_file() else set()

    train = []
    with (root / "ag-news-train-sample5k" / "train.csv").open(encoding="utf-8", newline="") as fh:
        for n, (text, label) in enumerate(csv.reader(fh)):
            doc_id = f"agnewstrain:{n}"
            if doc_id not in reserved:
                train.append({"id": doc_id, "text": clean(text), "category": TRAIN_LABELS[label]})
    seen = {near_key(row["text"]) for row in train}

    test, near_duplicates, held = [], 0, 0
    with (root / "ag-news-test" / "test.csv").open(encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            doc_id = f"agnews:{n}"
            if doc_id in reserved:
                held += 1
                continue
            title, text = clean(row["title"]), clean(row["description"])
            if near_key(f"{title} {text}") in seen:
                near_duplicates += 1
                continue
            test.append({"id": doc_id, "title": title, "text": text or title, "category": TEST_LABELS[row["label"]]})

    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        with (args.out / name).open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(json.dumps({"train": len(train), "test": len(test), "test_reserved_skipped": held,
                      "test_near_duplicates_removed": near_duplicates, "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
