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


def compare(baseline: ModelBundle, model: ModelBundle, rows: Sequence[Any], rounds: int = 1000,
            seed: int = 0, classes: dict[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Per head both bundles predict and the rows label: both models' macro-F1, accuracy and per-class F1, the
    difference (model − baseline) with a paired-bootstrap 95 % interval, and a verdict.

    ``verdict`` is ``worse`` when the whole interval of the macro-F1 difference is below 0, ``better`` when it
    is above, else ``same`` (no difference the rows can show). ``worse_classes`` lists the classes whose F1
    dropped, each with its interval and whether that interval is below 0.
    """
    docs = [(r.title or "", r.text) for r in rows]
    preds = {name: b.classify(docs) for name, b in (("baseline", baseline), ("model", model))}
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"rows": len(rows)}
    heads = [h for h in model.taxonomy.labels if h in baseline.taxonomy.labels]
    for head in heads:
        keep = [i for i, r in enumerate(rows) if getattr(r, head, None) is not None]
        if not keep:
            continue
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
        f1_b, f1_m = f1_per_class(y, p["baseline"], k), f1_per_class(y, p["model"], k)
        per_class: dict[str, dict[str, Any]] = {}
        for label, j in index.items():
            if support[j] == 0:
                continue
            per_class[label] = {
                "support": int(support[j]),
                "baseline_f1": round(float(f1_b[j]), 4),
                "model_f1": round(float(f1_m[j]), 4),
                "model_f1_ci95": [round(float(v), 4) for v in np.percentile(pcm[:, j], [2.5, 97.5])],
                "diff_ci95": [round(float(v), 4) for v in np.percentile(pcm[:, j] - pcb[:, j], [2.5, 97.5])],
            }
        interval = [round(float(v), 4) for v in np.percentile(diff, [2.5, 97.5])]
        result = {
            "rows": len(keep),
            "baseline_macro_f1": round(macro_f1(y, p["baseline"], k), 4),
            "model_macro_f1": round(macro_f1(y, p["model"], k), 4),
            "diff": round(macro_f1(y, p["model"], k) - macro_f1(y, p["baseline"], k), 4),
            "diff_ci95": interval,
            "verdict": "worse" if interval[1] < 0 else "better" if interval[0] > 0 else "same",
            "model_accuracy": round(float(np.mean(y == p["model"])), 4),
            "baseline_accuracy": round(float(np.mean(y == p["baseline"])), 4),
            "per_class": per_class,
            "worse_classes": {
                label: {"diff": round(c["model_f1"] - c["baseline_f1"], 4), "diff_ci95": c["diff_ci95"],
                        "significant": c["diff_ci95"][1] < 0}
                for label, c in sorted(per_class.items(), key=lambda kv: kv[1]["model_f1"] - kv[1]["baseline_f1"])
                if c["model_f1"] < c["baseline_f1"]
            },
        }
        none_label = model.taxonomy.head(head).none_label
        if none_label is not None and none_label in index:
            none = index[none_label]
            for name in ("baseline", "model"):  # incident vs none: is there an incident at all
                yt, yp = y != none, p[name] != none
                tp = float(np.sum(yt & yp))
                denom = float(np.sum(yt) + np.sum(yp))
                result[f"{name}_{head}_vs_{none_label}_f1"] = round(2 * tp / denom, 4) if denom else None
        if classes and head in classes:
            sel = [index[c] for c in classes[head] if c in index and support[index[c]] > 0]
            result["weak_classes_macro_f1"] = {
                "baseline": round(float(np.mean([f1_b[j] for j in sel])), 4),
                "model": round(float(np.mean([f1_m[j] for j in sel])), 4),
            }
        out[head] = result
    return out


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per head, then the classes that got worse (the gate's human-readable output)."""
    lines = []
    for head, h in report.items():
        if not isinstance(h, dict) or "diff_ci95" not in h:
            continue
        lines.append(f"{head:9s} rows {h['rows']:5d}  macro-F1 {h['baseline_macro_f1']:.3f} → {h['model_macro_f1']:.3f}"
                     f"  diff {h['diff']:+.3f} [{h['diff_ci95'][0]:+.3f}, {h['diff_ci95'][1]:+.3f}]  "
                     f"accuracy {h['baseline_accuracy']:.3f} → {h['model_accuracy']:.3f}  {h['verdict'].upper()}")
        for label, c in h["worse_classes"].items():
            mark = "worse beyond the interval" if c["significant"] else "within the interval"
            lines.append(f"    {label}: F1 {h['per_class'][label]['baseline_f1']:.3f} → "
                         f"{h['per_class'][label]['model_f1']:.3f} ({c['diff']:+.3f} "
                         f"[{c['diff_ci95'][0]:+.3f}, {c['diff_ci95'][1]:+.3f}], {mark})")
    return lines


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
    print("\n".join(summary_lines(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
