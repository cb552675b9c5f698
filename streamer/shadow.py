"""A shadow model: a second bundle that scores every batch beside the live one and publishes nothing live.

It answers "how would the candidate disagree with the serving model on real traffic?" before a promotion:
``newsstream_shadow_agreement_ratio{head}`` (share of the last window's articles where both models' top labels
agree) and ``newsstream_shadow_inference_seconds`` (what it costs). Optionally its own events go to
``NEWSSTREAM_SHADOW_TOPIC``. Whatever goes wrong with it — a bundle that does not verify, a model that raises, a topic
that refuses — is logged and counted in ``newsstream_shadow_errors_total{stage}``, and the live path goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamer.artifact import ModelBundle, ModelError
from streamer.drift import AgreementWindow
from streamer.metrics import Metrics

log = logging.getLogger("newsstream.shadow")


class Shadow:
    def __init__(self, bundle: ModelBundle, metrics: Metrics, window: int = 1000) -> None:
        self.bundle = bundle
        self.metrics = metrics
        self.windows: dict[str, AgreementWindow] = {}
        self._said: set[str] = set()

    @classmethod
    def load(cls, path: Path, metrics: Metrics, live_heads: Sequence[str], window: int = 1000) -> Shadow | None:
        """The shadow bundle, verified and smoke-tested like the live one; None (logged, counted) if it is not."""
        from streamer.model_watch import load_checked

        for stage in ("load", "classify", "publish"):
            metrics.shadow_errors.labels(stage=stage)
        try:
            bundle = load_checked(Path(path))
        except ModelError as exc:
            metrics.shadow_errors.labels(stage="load").inc()
            log.error("shadow model refused; the worker serves without it", extra={"path": str(path),
                                                                                 "error": str(exc)})
            return None
        shadow = cls(bundle, metrics, window)
        common = [head for head in live_heads if head in bundle.labels]
        if not common:
            log.warning("the shadow model shares no head with the live one: no agreement to measure",
                        extra={"shadow": sorted(bundle.labels), "live": sorted(live_heads)})
        shadow.windows = {head: AgreementWindow(window) for head in common}
        for head in common:
            metrics.shadow_agreement.labels(head=head).set(float("nan"))
        log.info("shadow model loaded", extra={"path": str(path), "model": bundle.describe()})
        return shadow

    def score(self, docs: list[tuple[str, str]], live: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """The shadow's predictions for ``docs`` (None if it failed), with agreement against ``live``."""
        if not docs:
            return []
        started = time.perf_counter()
        try:
            predictions = self.bundle.classify(docs)
        except Exception as exc:  # the shadow must never take the live path down with it
            self.failed("classify", exc)
            return None
        self.metrics.shadow_inference.observe(time.perf_counter() - started)
        for head, window in self.windows.items():
            window.add(s[head]["label"] == p[head]["label"] for s, p in zip(predictions, live, strict=True))
            self.metrics.shadow_agreement.labels(head=head).set(window.ratio())
        return list(predictions)

    def failed(self, stage: str, exc: BaseException) -> None:
        self.metrics.shadow_errors.labels(stage=stage).inc()
        if stage not in self._said:  # once per kind: a broken shadow must not flood the log either
            self._said.add(stage)
            log.error("shadow model failed; the live path goes on", extra={"stage": stage,
                                                                          "error": f"{type(exc).__name__}: {exc}"})
