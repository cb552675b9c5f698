"""``newsstream worker``: the long-running Kafka worker. Every setting is a flag and a NEWSSTREAM_ variable."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

HELP = "Run the Kafka worker: consume articles, classify them, publish enriched events and dead letters."


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from streamer.app import StartupError, serve
    from streamer.logs import configure_logging
    from streamer.settings import unknown_variables

    unknown = unknown_variables(os.environ)
    if unknown:
        # Refused, not warned: a misspelt topic or limit silently running on its default is worse than a pod that
        # does not start (a rolling update stops there, with the old replicas still serving).
        for name, closest in unknown:
            hint = f"; did you mean {closest}?" if closest else ""
            print(f"newsstream worker: unknown setting {name}{hint}", file=sys.stderr)
        print("newsstream worker: refusing to start on unknown NEWSSTREAM_* variables "
              "(`newsstream worker --help` lists every setting)", file=sys.stderr)
        return 2
    try:
        settings = from_args(args)
    except ValidationError as exc:
        print(f"newsstream worker: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        return serve(settings)
    except StartupError as exc:
        print(f"newsstream worker: {exc}", file=sys.stderr)
        return exc.exit_code


# ---- CLI generated from the fields ------------------------------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; the help names the environment variable and the default."""
    from streamer.settings import Settings

    group = parser.add_argument_group("settings", "Each setting is a flag or a NEWSSTREAM_<NAME> variable; a flag wins "
                                      "over the variable, which wins over the default.")
    for name, field in Settings.model_fields.items():
        env = "NEWSSTREAM_" + name.upper()
        default = field.default
        shown = "***" if "password" in name else default
        described = (field.description or name).rstrip(".")
        help_text = (f"{described[0].upper()}{described[1:]}. Environment: {env}; default: {shown}."
                     .replace("%", "%%"))
        if field.annotation is bool:
            group.add_argument(
                _flag(name), dest=f"setting_{name}", default=None, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            group.add_argument(_flag(name), dest=f"setting_{name}", default=None, metavar=name.upper(), help=help_text)


def from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    """Settings from the environment, with any flag given on the command line taking precedence."""
    from streamer.settings import Settings

    given = {
        name: getattr(args, f"setting_{name}")
        for name in Settings.model_fields
        if getattr(args, f"setting_{name}", None) is not None
    }
    return Settings(**{**given, **overrides})
