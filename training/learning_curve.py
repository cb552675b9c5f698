"""Learning curve of the default recipe: dev macro-F1 per head against the share of annotated train used.

    .venv/bin/python -m training.learning_curve [--out models/learning-curve.json]

Reporting only (dev is scored, never tuned on): it answers "would more annotated rows of this kind help?".
Two curves: (1) the annotated newsevents rows subsampled (stratified), label-only annotations and mapped corpora
in full; (2) newsevents train in full, the label-only annotations (``training/annotations/*.jsonl``, our own
thin-class rounds) subsampled. Each point keeps the per-class dev F1 of the thin classes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from streamer.artifact import ModelBundle
from training import annotations as ann
from training import corpora
from training.build import load_selection
from training.data import REPO_ROOT, LabeledRow, LoadReport, clean, data_dir, read_reserved, read_rows, text_key
from training.metrics import evaluate_rows
from training.train import fit_bundle

#: The classes the README tracks as thin or weak (per-class dev F1 kept for each point).
THIN = {
    "topic": ("education", "human_interest", "society", "lifestyle_leisure", "religion", "labour", "weather"),
    "incident": ("disease_outbreak", "protest", "armed_assault", "riot"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--fractions", default="0.25,0.5,0.75,1.0")
    parser.add_argument("--annotation-fractions", default="0,0.25,0.5,1.0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "learning-curve.json")
    args = parser.parse_args()

    root = data_dir(args.data_dir)
    reserved = read_reserved(root)
    recipe, _, mapped_names = load_selection()
    dev = read_rows(root / "newsevents" / "dev.jsonl")
    dev_keys = {text_key(r.title, r.text) for r in dev}
    report = LoadReport()
    annotated = clean(read_rows(root / "newsevents" / "train.jsonl"), reserved, report, exclude_keys=dev_keys)
    newsevents_ids = {r.id for r in read_rows(root / "newsevents" / "train.jsonl")} | {r.id for r in dev}
    label_only, _ = ann.load_annotations(ann.default_files(), root, reserved, newsevents_ids,
                                         heldout=ann.heldout_keys(root, reserved, dev))
    label_only = clean(label_only, reserved, report,
                       exclude_keys=dev_keys | {text_key(r.title, r.text) for r in annotated})
    exclude = reserved | {r.id for r in dev} | {r.id for r in annotated} | {r.id for r in label_only}
    taken = dev_keys | {text_key(r.title, r.text) for r in annotated + label_only}
    mapped = []
    for name in mapped_names:
        rows, _ = corpora.load_mapped(name, root, exclude)
        mapped.extend(clean(rows, reserved, report, exclude_keys=taken))

    def score(train: list[LabeledRow]) -> dict[str, Any]:
        # The none shift is the bundle's; re-tuning it per point would cost a CV each and not change the shape.
        payload = fit_bundle(recipe, train, args.seed, 0.0)
        metrics = evaluate_rows(ModelBundle({"format": 1, **payload}, {}), dev)
        return {
            "dev_macro_f1_topic": metrics["topic"]["macro_f1"],
            "dev_macro_f1_incident": metrics["incident"]["macro_f1"],
            "dev_f1_thin": {
                f"{head}/{label}": metrics[head]["per_class"][label]["f1"]
                for head, labels in THIN.items()
                for label in labels
            },
        }

    points = []
    strat = [r.incident or "" for r in annotated]
    for fraction in (float(f) for f in args.fractions.split(",")):
        if fraction < 1.0:
            subset, _ = train_test_split(annotated, train_size=fraction, stratify=strat, random_state=args.seed)
        else:
            subset = annotated
        point = {"fraction": fraction, "annotated_rows": len(subset), "label_only_rows": len(label_only),
                 "mapped_rows": len(mapped), **score([*subset, *label_only, *mapped])}
        points.append(point)
        print(json.dumps(point), flush=True)
    annotation_points = []
    ann_strat = [r.topic or "" for r in label_only]
    for fraction in (float(f) for f in args.annotation_fractions.split(",")):
        if fraction <= 0.0:
            part: list[LabeledRow] = []
        elif fraction < 1.0:
            part, _ = train_test_split(label_only, train_size=fraction, stratify=ann_strat, random_state=args.seed)
        else:
            part = label_only
        point = {"fraction": fraction, "annotated_rows": len(annotated), "label_only_rows": len(part),
                 "mapped_rows": len(mapped), **score([*annotated, *part, *mapped])}
        annotation_points.append(point)
        print(json.dumps(point), flush=True)
    slope = {
        head: float(np.polyfit(np.log2([p["annotated_rows"] for p in points]),
                               [p[f"dev_macro_f1_{head}"] for p in points], 1)[0])
        for head in ("topic", "incident")
    } if len(points) > 1 else {}
    args.out.write_text(json.dumps({"recipe": recipe.label(), "points": points, "gain_per_doubling": slope,
                                    "label_only_annotation_points": annotation_points}, indent=2) + "\n",
                        encoding="utf-8")
    print(f"wrote {args.out}; macro-F1 gain per doubling of annotated rows: {slope}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
