"""Text preparation shared by training and the worker.

Everything a pickled model references must be importable by the worker, and ``streamer`` never imports
``training``: so every custom transformer a bundle may contain lives here.

>>> compose("Quake hits Italy", "Hundreds dead.", max_chars=100)
'Quake hits Italy. Quake hits Italy.\\nHundreds dead.'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

#: A document as the model sees it: ``(title, text)``.
Doc = tuple[str, str]


def compose(title: str, text: str, max_chars: int = 2500) -> str:
    """Title twice (headlines carry the label more often than any body sentence), then the text's head.

    Reading only the first ``max_chars`` characters bounds the cost per article: the incident that makes
    the news is in the headline or the first paragraphs far more often than at the end.
    """
    title = title.strip()
    body = text[:max_chars] if max_chars > 0 else text
    if title:
        return f"{title}. {title}.\n{body}"
    return body


class DocumentText(BaseEstimator, TransformerMixin):
    """``(title, text)`` pairs → one string per document (see :func:`compose`)."""

    def __init__(self, max_chars: int = 2500) -> None:
        self.max_chars = max_chars

    def fit(self, docs: Iterable[Doc], y: Any = None) -> DocumentText:
        return self

    def transform(self, docs: Sequence[Doc]) -> list[str]:
        return [compose(title, text, self.max_chars) for title, text in docs]


def as_docs(rows: Iterable[Any]) -> list[Doc]:
    """Mappings or objects with ``title``/``text`` → model input documents."""
    out: list[Doc] = []
    for row in rows:
        if isinstance(row, tuple):
            out.append((str(row[0] or ""), str(row[1] or "")))
        elif isinstance(row, dict):
            out.append((str(row.get("title") or ""), str(row.get("text") or "")))
        else:
            out.append((str(getattr(row, "title", "") or ""), str(getattr(row, "text", "") or "")))
    return out


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable; used to turn adjusted log-probabilities back into scores."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted
