"""Two bundles on the same labeled rows: macro-F1 and per-class F1 with paired-bootstrap 95 % intervals.

    .venv/bin/python -m training.compare --baseline models/newsstream-1.1.0 --model models/newsstream-2.0.0 \\
        --data ../shared/datasets/newsevents/dev.jsonl --data training/annotations/eval/thin_eval.jsonl

Label-only files (``{"id", "topic", "incident", "sure"}``) are joined to their text in the raw corpora by id, like
training does. Rows are resampled with replacement ``--rounds`` times; each round scores both models on the same
resample, so the interval of the difference is paired. A row may leave a head out (``None``): that head is scored
on the rows that have it.

>>> import numpy as np
>>> round(macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2), 3)
0.733
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamer.artifact import ModelBundle, load_bundle
from training import annotations as ann
from training.data import LabeledRow, data_dir, read_rows
from training.round2 import WEAK_INCIDENTS, WEAK_TOPICS

HEADS = ("topic", "incident")


def f1_per_class(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    tp = np.bincount(y[y == p], minlength=k).astype(float)
    support = np.bincount(y, minlength=k).astype(float)
    predicted = np.bincount(p, minlength=k).astype(float)
    denom = support + predicted
    return np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)


def macro_f1(y: np.ndarray, p: np.ndarray, k: int) -> float:
    present = np.bincount(y, minlength=k) > 0  # macro over the classes the rows contain
    return float(f1_per_class(y, p, k)[present].mean()) if present.any() else float("nan")


def load_rows(paths: Sequence[Path], root: Path) -> list[LabeledRow]:
    rows: list[LabeledRow] = []
    for path in paths:
        if ann.is_label_only(path):
            loaded, _report = ann.load_annotations([path], root, frozenset(), set())
            rows.extend(loaded)
        else:
            rows.extend(read_rows(path))
    return rows


def compare(baseline: ModelBundle, model: ModelBundle, rows: Sequence[LabeledRow], rounds: int = 1000,
            seed: int = 0, classes: dict[str, Sequence[str]] | None = None) -> dict[str, Any]:
    docs = [(r.title or "", r.text) for r in rows]
    preds = {name: b.classify(docs) for name, b in (("baseline", baseline), ("model", model))}
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"rows": len(rows)}
    for head in HEADS:
        keep = [i for i, r in enumerate(rows) if getattr(r, head) is not None]
        labels = sorted({getattr(rows[i], head) for i in keep} | set(model.labels[head]) | set(baseline.labels[head]))
        index = {label: j for j, label in enumerate(labels)}
        k = len(labels)
        y = np.array([index[getattr(rows[i], head)] for i in keep])
        p = {name: np.array([index[preds[name][i][head]["label"]] for i in keep]) for name in preds}
        boot: dict[str, list[Any]] = {"baseline": [], "model": [], "pc_b": [], "pc_m": []}
        for _ in range(rounds):
            s = rng.integers(0, len(y), len(y))
            boot["baseline"].append(macro_f1(y[s], p["baseline"][s], k))
            boot["model"].append(macro_f1(y[s], p["model"][s], k))
            boot["pc_b"].append(f1_per_class(y[s], p["baseline"][s], k))
            boot["pc_m"].append(f1_per_class(y[s], p["model"][s], k))
        diff = np.array(boot["model"]) - np.array(boot["baseline"])
        pcb, pcm = np.array(boot["pc_b"]), np.array(boot["pc_m"])
        support = np.bincount(y, minlength=k)
        per_class = {}
        for label, j in index.items():
            if support[j] == 0:
                continue
            per_class[label] = {
                "support": int(support[j]),
                "baseline_f1": round(float(f1_per_class(y, p["baseline"], k)[j]), 4),
                "model_f1": round(float(f1_per_class(y, p["model"], k)[j]), 4),
                "model_f1_ci95": [round(float(v), 4) for v in np.percentile(pcm[:, j], [2.5, 97.5])],
                "diff_ci95": [round(float(v), 4) for v in np.percentile(pcm[:, j] - pcb[:, j], [2.5, 97.5])],
            }
        result = {
            "rows": len(keep),
            "baseline_macro_f1": round(macro_f1(y, p["baseline"], k), 4),
            "model_macro_f1": round(macro_f1(y, p["model"], k), 4),
            "diff": round(macro_f1(y, p["model"], k) - macro_f1(y, p["baseline"], k), 4),
            "diff_ci95": [round(float(v), 4) for v in np.percentile(diff, [2.5, 97.5])],
            "model_accuracy": round(float(np.mean(y == p["model"])), 4),
            "baseline_accuracy": round(float(np.mean(y == p["baseline"])), 4),
            "per_class": per_class,
        }
        if head == "incident" and "none" in index:
            none = index["none"]
            for name in ("baseline", "model"):  # incident vs none: is there an incident at all
                yt, yp = y != none, p[name] != none
                tp = float(np.sum(yt & yp))
                denom = float(np.sum(yt) + np.sum(yp))
                result[f"{name}_incident_vs_none_f1"] = round(2 * tp / denom, 4) if denom else None
        if classes and head in classes:
            sel = [index[c] for c in classes[head] if c in index and support[index[c]] > 0]
            result["weak_classes_macro_f1"] = {
                "baseline": round(float(np.mean([f1_per_class(y, p["baseline"], k)[j] for j in sel])), 4),
                "model": round(float(np.mean([f1_per_class(y, p["model"], k)[j] for j in sel])), 4),
            }
        out[head] = result
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="Write the report as JSON here too.")
    args = parser.parse_args()
    rows = load_rows(args.data, data_dir(args.data_dir))
    report = {"baseline": str(args.baseline), "model": str(args.model), "data": [str(d) for d in args.data],
              **compare(load_bundle(args.baseline), load_bundle(args.model), rows, args.rounds,
                        classes={"topic": WEAK_TOPICS, "incident": WEAK_INCIDENTS})}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    for head in HEADS:
        h = report[head]
        print(f"{head:9s} rows {h['rows']:5d}  macro-F1 {h['baseline_macro_f1']:.3f} → {h['model_macro_f1']:.3f}  "
              f"diff {h['diff']:+.3f} [{h['diff_ci95'][0]:+.3f}, {h['diff_ci95'][1]:+.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
