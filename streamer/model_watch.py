"""Which model serves, and hot reload.

The model location is either one bundle directory (has ``card.json``) or a directory of bundles, walked newest
first by card ``created_at`` (:func:`streamer.artifact.list_bundles`).

**Start-up** serves the newest bundle that *verifies* (sha256 of ``model.joblib`` against the card, then load and
smoke test). A newer one that does not is skipped with a warning naming its path and the reason (and counted in
``newsstream_model_reloads_total{result="refused"}``, so it shows on a dashboard); only when none verifies does
start-up fail with :class:`~streamer.artifact.ModelError` (the worker exits 3).

**Hot reload.** A background thread looks every ``interval_s`` (or at once on :meth:`ModelHolder.poke`, which
SIGHUP calls). What it compares is a cheap *look* at each bundle: the card's bytes plus ``model.joblib``'s size,
mtime_ns, ctime_ns and inode — no hashing while nothing changes, yet a model file replaced under an unchanged card
is noticed. A changed bundle is verified, loaded and smoke-tested *off the loop*, then staged; the loop swaps
between batches (:meth:`ModelHolder.swap_if_pending`), so one batch is never classified by two models.

What the watcher will move to (the choice made for issue 11):

- only a bundle *newer* (by ``created_at``) than the one serving, or the serving bundle's own directory changed
  in place. It never falls back to an older bundle: when the newest is bad, the current model keeps serving —
  even if the serving bundle's files on disk have since gone bad (the loaded, verified copy is in memory). An
  older good bundle between them is *not* preferred over the serving one; a newer good one below a bad newest
  one is (the walk goes newest first and takes the first newer bundle that verifies).
  A rollback is therefore a restart, or a copy of the old model published with a newer ``created_at``.
- a refused bundle is remembered by its look, so it is counted and logged once, not every interval, and it is
  retried as soon as either of its files changes. A half-copied bundle (card first, model still being written,
  or the reverse) is refused while torn and loaded by the first check after the copy completes.
- the serving directory touched or rewritten with the same bytes (same card, model file still matching it) is
  verified and kept, without a reload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from streamer.artifact import (
    CARD_FILE,
    MODEL_FILE,
    ModelBundle,
    ModelError,
    check_bundle,
    find_latest,
    list_bundles,
    load_bundle,
    verify,
)
from streamer.drift import reference_mix
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


@dataclass(frozen=True)
class Look:
    """One cheap look at a bundle directory: enough to tell that something changed, without hashing the model."""

    path: Path  # resolved
    card_sha256: str  # of the card's bytes (the card holds the model file's sha256)
    model_stat: tuple[int, int, int, int] | None  # model file's size, mtime_ns, ctime_ns, inode; None if missing
    created_at: str

    @property
    def fingerprint(self) -> str:
        stat = "missing" if self.model_stat is None else ",".join(map(str, self.model_stat))
        return f"{self.path}:{self.card_sha256}:{stat}"


def look(bundle_dir: Path) -> Look:
    """Read the card's bytes and stat the model file it names; :class:`ModelError` only if the card is unreadable."""
    bundle_dir = Path(bundle_dir)
    try:
        card_bytes = (bundle_dir / CARD_FILE).read_bytes()
    except OSError as exc:
        raise ModelError(f"{bundle_dir}: cannot read model card: {exc}") from exc
    created_at, model_file = "", MODEL_FILE
    try:
        card = json.loads(card_bytes)
    except ValueError:
        card = None  # a torn card: the look still changes when it is rewritten; verification says what is wrong
    if isinstance(card, dict):
        created_at = str(card.get("created_at", ""))
        artifact = card.get("artifact")
        if isinstance(artifact, dict) and isinstance(artifact.get("file"), str):
            model_file = artifact["file"]
    try:
        st = (bundle_dir / model_file).stat()
        model_stat: tuple[int, int, int, int] | None = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    except OSError:
        model_stat = None
    return Look(bundle_dir.resolve(), hashlib.sha256(card_bytes).hexdigest(), model_stat, created_at)


def fingerprint(bundle_dir: Path) -> str:
    """Identity of a bundle's files as the watcher sees them: path, card bytes, and the model file's stat."""
    return look(bundle_dir).fingerprint


def load_checked(bundle_dir: Path) -> ModelBundle:
    """Verify, load and smoke-test; :class:`ModelError` with the reason otherwise."""
    bundle = load_bundle(bundle_dir)
    try:
        check_bundle(bundle, SMOKE_DOCS)
    except Exception as exc:  # AssertionError from the contract, or anything the model raises
        raise ModelError(f"{bundle_dir}: smoke test failed: {exc or type(exc).__name__}") from exc
    return bundle


class ModelHolder:
    def __init__(self, location: Path, metrics: Metrics, interval_s: float = 5.0,
                 allow_taxonomy_change: bool = False,
                 drift_reference: dict[str, dict[str, float]] | None = None) -> None:
        self.location = Path(location)
        #: what drift is measured against: the operator's mix, else each bundle's training mix (its card)
        self.drift_reference = drift_reference
        #: Downstream consumers rely on the heads and labels: a bundle that changes them is refused on hot reload
        #: unless the operator says otherwise (NEWSSTREAM_MODEL_ALLOW_TAXONOMY_CHANGE).
        self.allow_taxonomy_change = allow_taxonomy_change
        self.metrics = metrics
        self.interval_s = interval_s
        #: bundles refused (at start-up or by the watcher): resolved path → the fingerprint that was refused
        self._refused: dict[Path, str] = {}
        self._location_error: str | None = None
        self.current, seen = self._first()  # start-up: no bundle that verifies is fatal, raised to the caller
        #: what serves, or is staged to serve next: the watcher compares against it (touched by check() only)
        self._target = seen
        self._pending: ModelBundle | None = None
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.set_model(self.current.name, self.current.version, self.current.taxonomy.labels,
                          self.drift_reference or reference_mix(self.current.card))

    def _bundles(self) -> list[Path]:
        """The bundle directories the location holds, newest first."""
        if (self.location / CARD_FILE).is_file():
            return [self.location]
        if self.location.is_dir():
            bundles = list_bundles(self.location)
            if not bundles:
                raise ModelError(f"no model bundle found under {self.location}")
            return bundles
        raise ModelError(f"model location {self.location} does not exist")

    def _first(self) -> tuple[ModelBundle, Look]:
        """The newest bundle that verifies, and the look it was loaded at."""
        bundles = self._bundles()
        if not (self.location / CARD_FILE).is_file():
            listed = {b.resolve() for b in bundles}
            for card in sorted(self.location.glob(f"*/{CARD_FILE}")):
                if card.parent.resolve() not in listed:
                    log.warning("model bundle skipped at start-up: its card is not a readable JSON object",
                                extra={"path": str(card.parent), "error": f"{card}: unreadable model card"})
        failures: list[ModelError] = []
        for bundle_dir in bundles:
            seen: Look | None = None
            try:
                seen = look(bundle_dir)
                bundle = load_checked(bundle_dir)
            except ModelError as exc:
                named = exc if str(bundle_dir) in str(exc) else ModelError(f"{bundle_dir}: {exc}")
                failures.append(named)
                self.metrics.model_reloads.labels(result="refused").inc()
                if seen is not None:
                    self._refused[seen.path] = seen.fingerprint  # the watcher retries it only once it changes
                if len(bundles) > 1:
                    log.warning("model bundle skipped at start-up: it does not verify; trying the next newest",
                                extra={"path": str(bundle_dir), "error": str(named)})
                continue
            if failures:
                log.warning("serving an older model: every newer bundle was skipped",
                            extra={"path": str(bundle_dir), "model": bundle.describe(), "skipped": len(failures)})
            return bundle, seen
        if len(failures) == 1:
            raise failures[0]
        raise ModelError(f"none of the {len(failures)} bundles under {self.location} verifies: "
                         + "; ".join(str(exc) for exc in failures))

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
        with self._check_lock:
            return self._check()

    def _check(self) -> bool:
        try:
            bundles = self._bundles()
        except ModelError as exc:
            if str(exc) != self._location_error:  # said once, not every interval
                log.warning("model location unreadable; keeping the current model", extra={"error": str(exc)})
            self._location_error = str(exc)
            return False
        self._location_error = None
        listed = {b.resolve() for b in bundles}
        self._refused = {path: fp for path, fp in self._refused.items() if path in listed}
        target = self._target
        for bundle_dir in bundles:
            try:
                seen = look(bundle_dir)
            except ModelError:
                continue  # its card went away since the listing: gone, or being replaced (seen next time)
            in_place = seen.path == target.path
            if not in_place and seen.created_at <= target.created_at:
                break  # older than what serves: hot reload never goes back (module docstring)
            if seen == target:
                break  # reached the serving bundle, unchanged: nothing to do
            if self._refused.get(seen.path) != seen.fingerprint and self._consider(bundle_dir, seen, in_place):
                return True
            if in_place:
                break
        return False

    def _consider(self, bundle_dir: Path, seen: Look, in_place: bool) -> bool:
        """Verify and load one changed bundle (in this thread, off the loop); stage it if it passes."""
        try:
            if in_place and seen.card_sha256 == self._target.card_sha256:
                # Same card, only the model file's stat moved: still the file the card describes? Then it is
                # the model that serves (touched, or copied over with the same bytes) and there is nothing to load.
                verify(bundle_dir)
                self._refused.pop(seen.path, None)
                self._target = seen
                log.info("model file rewritten with the same content; nothing to reload",
                         extra={"path": str(bundle_dir)})
                return False
            bundle = load_checked(bundle_dir)
            changes = self.current.taxonomy.differences(bundle.taxonomy)
            if changes and not self.allow_taxonomy_change:
                raise ModelError(f"{bundle_dir}: its taxonomy differs from the serving model's ({'; '.join(changes)}); "
                                 "consumers of the events rely on the labels. Set "
                                 "NEWSSTREAM_MODEL_ALLOW_TAXONOMY_CHANGE=true to allow it")
        except ModelError as exc:
            self._refused[seen.path] = seen.fingerprint  # retried when either file changes
            self.metrics.model_reloads.labels(result="refused").inc()
            log.error("model refused; the current one keeps serving",
                      extra={"path": str(bundle_dir), "error": str(exc), "serving": self.current.describe()})
            return False
        self._refused.pop(seen.path, None)
        with self._lock:
            self._pending = bundle
        self._target = seen
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
        self.metrics.set_model(bundle.name, bundle.version, bundle.taxonomy.labels,
                               self.drift_reference or reference_mix(bundle.card))
        self.metrics.model_reloads.labels(result="success").inc()
        log.info("model swapped", extra={"from": old, "to": bundle.describe()})
        return True
