"""Prediction drift: how far the label mix of the last N predictions is from the mix the model was trained on.

The distance is the **Jensen–Shannon distance** (base 2): the square root of the JS divergence between the two label
distributions, 0 for the same mix and 1 for mixes with no label in common. Chosen over PSI because it is bounded
(one alert threshold works for every head and taxonomy size), symmetric, and defined when a label is absent from
one side (PSI divides by zero there and needs an arbitrary floor that dominates its value for thin labels).

>>> window = LabelWindow(("sport", "politics"), {"sport": 0.5, "politics": 0.5}, size=4)
>>> window.add(["sport", "politics"]); round(window.distance(), 3)
0.0
>>> window.add(["sport", "sport", "sport", "sport"]); round(window.distance(), 3)
0.558
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2) of two distributions over the same labels; inputs need not be normalised."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


class LabelWindow:
    """The last ``size`` predicted labels of one head, counted, against a reference mix."""

    def __init__(self, labels: Sequence[str], reference: Mapping[str, float], size: int = 1000) -> None:
        self.labels = tuple(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.reference = np.array([float(reference.get(label, 0.0)) for label in self.labels])
        self.counts = np.zeros(len(self.labels), dtype=np.int64)
        self.window: deque[int] = deque()
        self.size = size

    def add(self, labels: Iterable[str]) -> None:
        for label in labels:
            i = self.index.get(label)
            if i is None:
                continue
            self.window.append(i)
            self.counts[i] += 1
            if len(self.window) > self.size:
                self.counts[self.window.popleft()] -= 1

    def __len__(self) -> int:
        return len(self.window)

    def distance(self) -> float:
        return js_distance(self.counts, self.reference)


class AgreementWindow:
    """The last ``size`` comparisons of two models' top labels: the share that agree."""

    def __init__(self, size: int = 1000) -> None:
        self.window: deque[bool] = deque()
        self.agree = 0
        self.size = size

    def add(self, same: Iterable[bool]) -> None:
        for value in same:
            self.window.append(value)
            self.agree += value
            if len(self.window) > self.size:
                self.agree -= self.window.popleft()

    def ratio(self) -> float:
        return self.agree / len(self.window) if self.window else float("nan")


def reference_mix(card: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The training label mix per head from a model card: ``training_label_mix`` (written by ``newsstream train``
    since 2.1), else the label counts every card since 1.0 records (``data.train_counts``); {} when neither."""
    mix = card.get("training_label_mix")
    if isinstance(mix, Mapping) and mix:
        return {str(h): {str(k): float(v) for k, v in m.items()} for h, m in mix.items() if isinstance(m, Mapping)}
    counts = (card.get("data") or {}).get("train_counts") or {}
    out = {}
    for head, by_label in counts.items():
        total = float(sum(by_label.values()))
        if total > 0:
            out[str(head)] = {str(label): n / total for label, n in by_label.items()}
    return out
