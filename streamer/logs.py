"""Logging set-up: JSON lines by default (one object a line, for log shippers), plain text on request.

Fields passed with ``extra={...}`` land as top-level keys of the JSON object.

kafka-python's own warnings and errors are kept: they carry what the worker's retry log cannot (an
authentication failure, a refused topic, a broker-side error code). It repeats them on every reconnect, so
:class:`RepeatFilter` lets each kind through once, then at most once per 30 s with ``repeated``: how many were
dropped since the last one shown. Log level DEBUG keeps everything.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        return base + ("  " + " ".join(f"{k}={v}" for k, v in extra.items()) if extra else "")


@dataclass
class _Seen:
    shown_at: float
    dropped: int = 0


class RepeatFilter(logging.Filter):
    """Rate-limits repeats of one (logger, level, message template) among the loggers under ``prefixes``.

    The first record of a kind passes; later ones pass at most once per ``interval_s`` and carry ``repeated``
    (records dropped since the last one shown; absent when none were). Digits in the template are ignored, so
    messages kafka-python formats itself (f-strings with a node id or a backoff) count as one kind. Drops that no
    later record reports are not counted anywhere: the first one shown already said what is wrong. At most
    ``max_keys`` kinds are remembered (least recently seen forgotten first).
    """

    _DIGITS = re.compile(r"\d+")

    def __init__(self, interval_s: float = 30.0, prefixes: tuple[str, ...] = ("kafka",),
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 1024) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.prefixes = prefixes
        self.clock = clock
        self.max_keys = max_keys
        self._kinds: OrderedDict[tuple[str, int, str], _Seen] = OrderedDict()
        self._lock = threading.Lock()  # kafka-python logs from its own threads; Handler.filter runs unlocked

    def __len__(self) -> int:
        return len(self._kinds)

    def _limited(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._limited(record.name):
            return True
        key = (record.name, record.levelno, self._DIGITS.sub("#", str(record.msg)))
        now = self.clock()
        with self._lock:
            seen = self._kinds.get(key)
            if seen is None:
                self._kinds[key] = _Seen(now)
                if len(self._kinds) > self.max_keys:
                    self._kinds.popitem(last=False)
                return True
            self._kinds.move_to_end(key)
            if now - seen.shown_at < self.interval_s:
                seen.dropped += 1
                return False
            dropped, seen.shown_at, seen.dropped = seen.dropped, now, 0
        if dropped:
            record.repeated = dropped
        return True


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level == "DEBUG":
        logging.getLogger("kafka").setLevel(logging.DEBUG)
    else:
        # kafka-python's INFO is connection chatter; its warnings and errors say why a connection fails.
        logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level]))
        handler.addFilter(RepeatFilter())
