"""Scoring a bundle on labeled rows: the numbers the card, report.md and ``newsstream evaluate`` print."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from streamer.artifact import ModelBundle
from streamer.taxonomy import DEFAULT, Taxonomy
from training.data import LabeledRow


def evaluate_rows(bundle: ModelBundle, rows: Sequence[LabeledRow], batch_size: int = 512) -> dict[str, Any]:
    """Per head of the bundle's taxonomy that the rows label: accuracy, macro-F1, per-class table, confusion."""
    taxonomy = bundle.taxonomy
    docs = [(row.title, row.text) for row in rows]
    probas: dict[str, list[np.ndarray]] = {head: [] for head in taxonomy.labels}
    for start in range(0, len(docs), batch_size):
        for head, proba in bundle.predict_proba(docs[start : start + batch_size]).items():
            probas[head].append(proba)
    out: dict[str, Any] = {}
    for head in taxonomy.labels:
        keep = [i for i, row in enumerate(rows) if getattr(row, head, None) is not None]
        if not keep:
            continue
        proba = np.vstack(probas[head])[keep] if probas[head] else np.zeros((0, len(bundle.labels[head])))
        pred = [bundle.labels[head][j] for j in proba.argmax(axis=1)]
        out[head] = head_metrics(head, [str(getattr(rows[i], head)) for i in keep], pred, taxonomy)
    return out


def head_metrics(head: str, y_true: Sequence[str], y_pred: Sequence[str],
                 taxonomy: Taxonomy = DEFAULT) -> dict[str, Any]:
    labels = list(taxonomy.labels[head])
    none_label = taxonomy.head(head).none_label
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = [label for label in labels if label in set(y_true)]
    result: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        # Macro over labels present in the gold data: a label with no gold rows has no defined recall.
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)), 4),
        "per_class": {
            label: {
                "precision": round(float(p[i]), 4),
                "recall": round(float(r[i]), 4),
                "f1": round(float(f[i]), 4),
                "support": int(s[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": {
            "labels": labels,
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
    }
    if none_label is not None:
        # The worker's first question: did something happen at all? (``incident_vs_none_f1`` for the news taxonomy)
        gold = [label != none_label for label in y_true]
        said = [label != none_label for label in y_pred]
        result[f"{head}_vs_{none_label}_f1"] = round(float(f1_score(gold, said, zero_division=0)), 4)
    return result


def format_table(head: str, metrics: dict[str, Any]) -> str:
    lines = [
        f"### {head}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} (n={metrics['n']})"
    ]
    for key, value in metrics.items():
        if key.endswith("_f1") and "_vs_" in key:
            lines.append(f"{key[:-3].replace('_vs_', '-vs-')} F1 {value:.3f}")
    lines.append("")
    lines.append("| label | precision | recall | F1 | support |")
    lines.append("|---|---|---|---|---|")
    for label, row in metrics["per_class"].items():
        lines.append(
            f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        )
    return "\n".join(lines)


def plot_confusion(head: str, metrics: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = metrics["confusion"]["labels"]
    matrix = np.asarray(metrics["confusion"]["matrix"], dtype=float)
    # Row-normalised: recall per class is what the thin classes need to be read by.
    norm = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=70, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{head}: dev confusion (row-normalised colour, counts in cells)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
