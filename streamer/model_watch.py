"""Which model serves, and hot reload.

The model location is either one bundle directory (has ``card.json``) or a directory of bundles (the newest by
``created_at`` wins, see :func:`streamer.artifact.find_latest`). A background thread looks at it every
``interval_s`` (or at once on :meth:`ModelHolder.poke`, which SIGHUP calls); a changed card is verified,
loaded and smoke-tested *off the hot path*, then handed over. The loop swaps between batches, so one batch
is never classified by two models. A version that fails is refused, counted and remembered (not retried until
its card changes again); the old one keeps serving.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from streamer.artifact import CARD_FILE, ModelBundle, ModelError, check_bundle, find_latest, load_bundle
from streamer.metrics import Metrics

log = logging.getLogger(__name__)

#: Short texts every bundle must classify sanely before it serves: structure and taxonomy, not accuracy.
SMOKE_DOCS: list[tuple[str, str]] = [
    ("Storm floods coastal towns", "Heavy rain and wind forced thousands to leave their homes overnight."),
    ("Central bank holds rates", "The bank kept its main rate unchanged and said inflation is slowing."),
    ("", "A short note with no title."),
]


def default_models_dir() -> Path:
    """``./models`` when run from a checkout, else the one beside the installed package (editable install)."""
    here = Path("models")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "models"


def resolve(location: Path) -> Path:
    """The bundle directory a location points at now."""
    location = Path(location)
    if (location / CARD_FILE).is_file():
        return location
    if location.is_dir():
        return find_latest(location)
    raise ModelError(f"model location {location} does not exist")


def fingerprint(bundle_dir: Path) -> str:
    """Identity of what a location points at: the bundle path plus its card's bytes (which hold the sha256)."""
    try:
        card = (bundle_dir / CARD_FILE).read_bytes()
    except OSError as exc:
        raise ModelError(f"{bundle_dir}: cannot read model card: {exc}") from exc
    return f"{bundle_dir.resolve()}:{hashlib.sha256(card).hexdigest()}"


def load_checked(bundle_dir: Path) -> ModelBundle:
    """Verify, load and smoke-test; :class:`ModelError` with the reason otherwise."""
    bundle = load_bundle(bundle_dir)
    try:
        check_bundle(bundle, SMOKE_DOCS)
    except Exception as exc:  # AssertionError from the contract, or anything the model raises
        raise ModelError(f"{bundle_dir}: smoke test failed: {exc or type(exc).__name__}") from exc
    return bundle


class ModelHolder:
    def __init__(self, location: Path, metrics: Metrics, interval_s: float = 5.0) -> None:
        self.location = Path(location)
        self.metrics = metrics
        self.interval_s = interval_s
        bundle_dir = resolve(self.location)
        self.current = load_checked(bundle_dir)  # start-up: a bad model is fatal, raised to the caller
        self._seen = fingerprint(bundle_dir)
        self._pending: ModelBundle | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.set_model(self.current.name, self.current.version)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="model-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def poke(self) -> None:
        """Check now (SIGHUP). Safe from a signal handler: only sets an event."""
        self._wake.set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            # interval 0: only SIGHUP triggers a check
            self._wake.wait(self.interval_s if self.interval_s > 0 else None)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.check()

    def check(self) -> bool:
        """Look once; True when a new version is staged for the loop."""
        try:
            bundle_dir = resolve(self.location)
            seen = fingerprint(bundle_dir)
        except ModelError as exc:
            log.warning("model location unreadable; keeping the current model", extra={"error": str(exc)})
            return False
        if seen == self._seen:
            return False
        self._seen = seen  # a refused version is not retried until its card changes
        try:
            bundle = load_checked(bundle_dir)
        except ModelError as exc:
            self.metrics.model_reloads.labels(result="refused").inc()
            log.error("model refused; the current one keeps serving",
                      extra={"path": str(bundle_dir), "error": str(exc),
                             "serving": self.current.describe()})
            return False
        with self._lock:
            self._pending = bundle
        log.info("new model staged", extra={"path": str(bundle_dir), "model": bundle.describe()})
        return True

    def swap_if_pending(self) -> bool:
        """Called by the loop between batches."""
        if self._pending is None:
            return False
        with self._lock:
            bundle, self._pending = self._pending, None
        if bundle is None:
            return False
        old = self.current.describe()
        self.current = bundle
        self.metrics.set_model(bundle.name, bundle.version)
        self.metrics.model_reloads.labels(result="success").inc()
        log.info("model swapped", extra={"from": old, "to": bundle.describe()})
        return True
