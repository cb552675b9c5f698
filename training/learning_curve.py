"""Learning curve of the default recipe: dev macro-F1 per head against the share of annotated train used.

    .venv/bin/python -m training.learning_curve [--out models/learning-curve.json]

Reporting only (dev is scored, never tuned on): it answers "would more annotated rows of this kind help?".
The mapped corpora are always added in full; only the annotated newsevents rows are subsampled (stratified).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from streamer.artifact import ModelBundle
from training import corpora
from training.cmd_train import load_selection
from training.data import REPO_ROOT, LoadReport, clean, data_dir, read_reserved, read_rows, text_key
from training.metrics import evaluate_rows
from training.train import fit_bundle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--fractions", default="0.25,0.5,0.75,1.0")
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
    exclude = reserved | {r.id for r in dev} | {r.id for r in annotated}
    taken = dev_keys | {text_key(r.title, r.text) for r in annotated}
    mapped = []
    for name in mapped_names:
        rows, _ = corpora.load_mapped(name, root, exclude)
        mapped.extend(clean(rows, reserved, report, exclude_keys=taken))

    points = []
    strat = [r.incident or "" for r in annotated]
    for fraction in (float(f) for f in args.fractions.split(",")):
        if fraction < 1.0:
            subset, _ = train_test_split(annotated, train_size=fraction, stratify=strat, random_state=args.seed)
        else:
            subset = annotated
        # The none shift is the bundle's; re-tuning it per point would cost a CV each and not change the shape.
        payload = fit_bundle(recipe, [*subset, *mapped], args.seed, 0.0)
        metrics = evaluate_rows(ModelBundle({"format": 1, **payload}, {}), dev)
        point = {
            "fraction": fraction,
            "annotated_rows": len(subset),
            "mapped_rows": len(mapped),
            "dev_macro_f1_topic": metrics["topic"]["macro_f1"],
            "dev_macro_f1_incident": metrics["incident"]["macro_f1"],
        }
        points.append(point)
        print(json.dumps(point), flush=True)
    slope = {
        head: float(np.polyfit(np.log2([p["annotated_rows"] for p in points]),
                               [p[f"dev_macro_f1_{head}"] for p in points], 1)[0])
        for head in ("topic", "incident")
    } if len(points) > 1 else {}
    args.out.write_text(json.dumps({"recipe": recipe.label(), "points": points,
                                    "gain_per_doubling": slope}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}; macro-F1 gain per doubling of annotated rows: {slope}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
