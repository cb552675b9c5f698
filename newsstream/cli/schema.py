"""``newsstream schema``: write (or check) the event contracts in ``schemas/``."""

from __future__ import annotations

import argparse
from pathlib import Path

from newsstream.cli.paths import REPO_ROOT

HELP = ("Write the JSON Schemas of the input article and enriched event, the AsyncAPI document and the dead-letter "
        "contract.")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "schemas",
                        help="The directory to write (default: schemas/).")
    parser.add_argument("--model", type=Path, default=None,
                        help="A bundle: the enriched event follows its taxonomy (default: the news taxonomy).")
    parser.add_argument("--check", action="store_true",
                        help="Write nothing; exit 1 if a file in --out differs from what would be written.")


def run(args: argparse.Namespace) -> int:
    import sys

    from streamer.artifact import ModelError, read_card
    from streamer.contracts import files
    from streamer.taxonomy import DEFAULT, Taxonomy, TaxonomyError

    taxonomy = DEFAULT
    if args.model is not None:
        try:
            taxonomy = Taxonomy.of_card(read_card(args.model))
        except (ModelError, TaxonomyError) as exc:
            print(f"newsstream schema: {exc}", file=sys.stderr)
            return 2
    stale = []
    for name, text in files(taxonomy).items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("newsstream schema: out of date (run `newsstream schema`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
