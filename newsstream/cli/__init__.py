"""Classify news from Kafka by topic and incident type; train and check the models it serves.

Every command is one module of this package, imported only when it runs, so ``newsstream worker`` never pays for
(or depends on) the training stack and ``newsstream classify`` never imports kafka-python. A command module
exposes ``HELP`` (one sentence), ``configure(parser)`` and ``run(args) -> int``; it parses, then calls the
runtime code in ``streamer`` or ``training``, which holds no argument parsing.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: command → module under newsstream.cli
COMMANDS: dict[str, str] = {
    "worker": "worker",
    "demo": "demo",
    "classify": "classify",
    "produce": "produce",
    "tail": "tail",
    "top": "top",
    "broker": "broker",
    "train": "train",
    "evaluate": "evaluate",
    "schema": "schema",
    "replay": "replay",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsstream", description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="Run `newsstream COMMAND --help` for the options of one command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = sys.argv[1] if len(sys.argv) > 1 else None
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"newsstream.cli.{module_name}")
        sp = sub.add_parser(name, help=module.HELP, description=module.HELP)
        # Configure only the command being run (or all, for --help); the modules import nothing heavy at the top.
        if chosen in (name, None, "-h", "--help"):
            module.configure(sp)
            sp.set_defaults(_module=module.__name__)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    args = build_parser().parse_args(sys.argv[1:])
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
