"""``newsstream <command>``. Each command lives in its own module, imported only when it runs, so
``newsstream worker`` never pays for (or depends on) the training stack.

A command module exposes ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: command → (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("training.cmd_train", "train both heads and write a model bundle"),
    "evaluate": ("training.cmd_evaluate", "score a model bundle on labeled data"),
    "classify": ("streamer.cmd_classify", "classify JSONL articles offline (same schema as the worker)"),
    "worker": ("streamer.cmd_worker", "run the Kafka worker"),
    "broker": ("streamer.cmd_broker", "start/stop the embedded Tansu broker for development"),
    "produce": ("streamer.cmd_produce", "publish JSONL articles to a topic"),
    "tail": ("streamer.cmd_tail", "print enriched events or dead letters readably"),
    "demo": ("newsstream.demo", "the main job: broker + worker + examples, results as a table"),
    "bench": ("bench.harness", "run the benchmark harness"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsstream", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = sys.argv[1] if len(sys.argv) > 1 else None
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        # Configure only the command being run (or all, for --help) to keep start-up cheap.
        if chosen in (name, None, "-h", "--help"):
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if chosen == name:
                    raise SystemExit(f"newsstream {name}: not available ({exc})") from exc
                continue
            module.configure(sp)
            sp.set_defaults(_module=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    args = build_parser().parse_args(sys.argv[1:])
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
