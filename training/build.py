"""``newsstream train``: labeled rows (+ mapped raw corpora) → a verified bundle in ``models/<name>-<version>/``.

Without ``--select`` the chosen recipe (``training/selection.json``) is trained directly; ``--select`` re-runs the
cross-validated comparison first (slow) and rewrites that file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from streamer.artifact import ModelBundle, load_bundle, save_bundle
from streamer.taxonomy import DEFAULT, Taxonomy, TaxonomyError
from training import annotations as ann
from training import corpora
from training.data import (
    REPO_ROOT,
    DataError,
    LabeledRow,
    LoadReport,
    clean,
    data_dir,
    guardian_docs,
    label_counts,
    read_reserved,
    read_rows,
    sha256_path,
    text_key,
)
from training.metrics import evaluate_rows, format_table, plot_confusion
from training.train import (
    DEFAULT_RECIPE,
    Recipe,
    cross_validate,
    docs_of,
    fit_bundle,
    measure_throughput,
)

SELECTION_FILE = REPO_ROOT / "training" / "selection.json"

#: Card fields (dotted paths) that differ between two runs on the same data, seed and version; everything else in
#: the card, and ``model.joblib`` byte for byte, is the same (see :func:`reproducibility`).
VARIES_BETWEEN_RUNS = (
    "created_at",
    "train_seconds",
    "fit_seconds",
    "peak_rss_bytes",
    "throughput.docs_per_second",
    "cv.fit_seconds",
)
#: Card fields that follow the checkout or where the inputs were read from, not the run.
VARIES_WITH_CHECKOUT = ("git_commit",)
VARIES_WITH_INPUT_PATHS = ("data.root", "data.sources", "data.load.files", "data.dev.path", "data.annotations.files")



def override_recipe(recipe: Recipe, spec: str) -> Recipe:
    """``"featurizer=fast,char_chars=1000"`` → the recipe with those fields replaced, each cast to its field's type.

    >>> override_recipe(Recipe(), "featurizer=fast,char_chars=1000,C=0.5").label()
    'word1-2 fast svm C=0.5 bal chars=2000 cues=0'
    """
    fields = {f.name: f for f in dataclasses.fields(recipe)}
    changes: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = item.partition("=")
        if name not in fields:
            raise ValueError(f"unknown recipe field {name!r} (fields: {', '.join(fields)})")
        current = getattr(recipe, name)
        if isinstance(current, bool):
            changes[name] = value.lower() in ("1", "true", "yes")
        elif isinstance(current, int):
            changes[name] = int(value)
        elif isinstance(current, float):
            changes[name] = float(value)
        else:
            changes[name] = None if value in ("", "none", "None") else value
    return dataclasses.replace(recipe, **changes)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def load_selection() -> tuple[Recipe, list[dict[str, Any]], list[str]]:
    """The chosen recipe and its comparison table (from the last ``--select``), and the default mapped corpora.

    The mapped set is not part of the selection file: it was chosen by its own measurement (training/corpora.py).
    """
    if SELECTION_FILE.is_file():
        saved = json.loads(SELECTION_FILE.read_text(encoding="utf-8"))
        return Recipe(**saved["chosen"]), list(saved.get("table", [])), list(corpora.DEFAULT_MAPPED)
    return DEFAULT_RECIPE, [], list(corpora.DEFAULT_MAPPED)


def _log(args: Any, message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def throughput_docs(
    root: Path, fallback: list[tuple[str, str]], limit: int = 2000
) -> tuple[list[tuple[str, str]], str]:
    """Real full-length articles when the Guardian corpus is there; else whatever labeled text we have."""
    docs = guardian_docs(root, limit)
    if docs:
        return docs, f"articles.jsonl (first {len(docs)})"
    return fallback[:limit], "training rows"


def bundle_dir(args: Any) -> Path:
    return Path(args.out) / f"{args.name}-{args.version}"


def refuse_existing(out_dir: Path, force: bool) -> str | None:
    """The refusal line when ``out_dir`` exists and ``--force`` was not given, else None.

    Why: workers hot-swap by version, and a committed bundle is code; a version names one set of bytes.
    """
    if force or not (out_dir.exists() or out_dir.is_symlink()):
        return None
    return (f"newsstream train: {out_dir} already exists; pass --force to replace it, "
            f"or choose another --version")


def reproducibility() -> dict[str, Any]:
    """What the card says about repeating this run (see ``VARIES_BETWEEN_RUNS``)."""
    return {
        "model_file": (
            "model.joblib is byte-identical (same sha256) for the same data, seed, recipe and environment: "
            "the library versions under 'libraries' and the machine below. Fitting runs on one BLAS/OpenMP "
            "thread, so the core count does not change it; numpy's CPU-specific SIMD code, another zlib or "
            "another scikit-learn/numpy version may."
        ),
        "varies_between_runs": list(VARIES_BETWEEN_RUNS),
        "varies_with_checkout": list(VARIES_WITH_CHECKOUT),
        "varies_with_input_paths": list(VARIES_WITH_INPUT_PATHS),
        "machine": platform.machine(),
    }


def extra_library_versions() -> dict[str, str]:
    """Versions beyond :func:`streamer.artifact.library_versions` that the model file's bytes depend on."""
    import scipy

    return {"scipy": scipy.__version__, "zlib": zlib.ZLIB_RUNTIME_VERSION}


def publish(out_dir: Path, payload: dict[str, Any], card: dict[str, Any], force: bool) -> ModelBundle:
    """Write, verify and report the bundle in a staging directory, then move it to ``out_dir`` by rename.

    Why: workers watch ``<out>/*/card.json`` and reload a bundle whose files change. Writing into a live bundle
    would show them a new model under the old card (or the reverse) for as long as the write takes; a rename
    shows the old bundle whole, then the new one whole. The staging directory is one level deeper than bundles
    (``<out>/.<name>-<version>.staging-*/<name>-<version>``), so no watcher lists it. With ``force`` the old
    directory is renamed aside first and deleted after; between the two renames (microseconds) the path is
    absent, which a watcher treats as "not there yet", never as a torn bundle.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    keep = False
    try:
        staged = staging / out_dir.name
        save_bundle(staged, payload, card)
        loaded = load_bundle(staged)  # the written bundle, not the in-memory one, is what we vouch for
        write_report(staged, loaded, card)
        replaced = staging / "replaced"
        if force and (out_dir.exists() or out_dir.is_symlink()):
            os.rename(out_dir, replaced)
        try:
            os.rename(staged, out_dir)  # refuses a non-empty directory that appeared meanwhile
        except OSError:
            if replaced.exists() or replaced.is_symlink():
                try:
                    os.rename(replaced, out_dir)  # put the old bundle back; never leave the version missing
                except OSError as exc:
                    keep = True  # the old bundle lives only in the staging directory now: never delete it
                    raise OSError(f"the previous bundle could not be put back; it is kept at {replaced}") from exc
            raise
        return loaded
    finally:
        if not keep:
            shutil.rmtree(staging, ignore_errors=True)


def run(args: Any) -> int:
    started = time.perf_counter()
    out_dir = bundle_dir(args)
    force = bool(getattr(args, "force", False))
    # Before any data is read: a refused run must cost nothing and touch nothing.
    refusal = refuse_existing(out_dir, force)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    root = data_dir(args.data_dir)
    taxonomy = DEFAULT
    if getattr(args, "taxonomy", None) is not None:
        try:
            taxonomy = Taxonomy.load(args.taxonomy)
        except TaxonomyError as exc:
            print(f"newsstream train: {exc}", file=sys.stderr)
            return 2
    custom = taxonomy != DEFAULT
    if custom:
        # Annotations, mappings and the newsevents dev file are labeled with the news taxonomy: they mean nothing
        # to another one, so a custom taxonomy trains on exactly the files given.
        if not args.data:
            print("newsstream train: --taxonomy needs --data FILE (rows labeled with its heads)", file=sys.stderr)
            return 2
        if args.annotations or (args.mapped or "none").strip() not in ("", "none"):
            print("newsstream train: --annotations and --mapped are news-taxonomy data; they do not go with "
                  "--taxonomy", file=sys.stderr)
            return 2
    try:
        reserved = read_reserved(root)
    except DataError as exc:
        if not custom:
            print(f"newsstream train: {exc}", file=sys.stderr)
            return 2
        reserved = frozenset()  # the newsevents reservation guards our held-out split; a user's own data has none
    recipe, table, mapped_names = load_selection()
    if getattr(args, "recipe", None):
        try:
            recipe = override_recipe(recipe, args.recipe)
        except ValueError as exc:
            print(f"newsstream train: --recipe: {exc}", file=sys.stderr)
            return 2
    if args.mapped is not None:
        mapped_names = [] if args.mapped.strip() in ("", "none") else [m.strip() for m in args.mapped.split(",")]
    elif args.data:
        mapped_names = []  # explicit files mean exactly those files
    files = list(args.data) if args.data else [root / "newsevents" / "train.jsonl"]
    # Label-only files (no text) are annotations: their text is joined from the raw corpora by id.
    annotation_files = [p for p in files if ann.is_label_only(p)]
    files = [p for p in files if p not in annotation_files]
    annotation_files += list(args.annotations or [])
    if not args.data and not args.annotations and not args.no_annotations:
        annotation_files = ann.default_files()
    if custom:
        annotation_files, files = [], list(args.data)
    default_dev = None if custom else root / "newsevents" / "dev.jsonl"
    dev_path = None if args.no_dev else (args.dev or default_dev)
    if dev_path is not None and not dev_path.is_file():
        if args.dev:
            print(f"newsstream train: {dev_path}: dev file not found", file=sys.stderr)
            return 2
        dev_path = None

    # 1. Labeled rows: validated, reserved ids and exact duplicates out, before anything is split.
    report = LoadReport()
    try:
        raw: list[LabeledRow] = []
        for path in files:
            raw.extend(read_rows(path, skip_invalid=args.skip_invalid, report=report, taxonomy=taxonomy))
        dev_report = LoadReport()
        dev_rows = (read_rows(dev_path, skip_invalid=args.skip_invalid, report=dev_report, taxonomy=taxonomy)
                    if dev_path else [])
    except DataError as exc:
        print(f"newsstream train: {exc}", file=sys.stderr)
        return 2
    for message in report.errors[:20]:
        print(f"skipped: {message}", file=sys.stderr)
    # Our own held-out rows (the thin-class evaluation set of annotation round 2) are treated like dev: never
    # trained on, and neither are their near-duplicates or mapped rows with their ids.
    eval_ids = frozenset() if custom else ann.eval_ids()
    dev_keys = {text_key(r.title, r.text) for r in dev_rows}
    dev_ids = {r.id for r in dev_rows} | eval_ids
    annotated = clean([r for r in raw if r.id not in dev_ids], reserved, report, exclude_keys=dev_keys)
    n_annotated = len(annotated)

    # 1b. Our own label-only annotations: refused if reserved or already in newsevents; text joined by id.
    ann_report = ann.AnnotationReport()
    extra: list[LabeledRow] = []
    if annotation_files:
        newsevents_ids = {r.id for r in raw} | dev_ids | _newsevents_ids(root)
        try:
            ann_rows, ann_report = ann.load_annotations(
                annotation_files, root, reserved, newsevents_ids,
                heldout=ann.heldout_keys(root, reserved | eval_ids, dev_rows), skip_invalid=args.skip_invalid,
            )
        except DataError as exc:
            print(f"newsstream train: {exc}", file=sys.stderr)
            return 2
        for message in ann_report.errors[:20]:
            print(f"skipped: {message}", file=sys.stderr)
        taken_keys = {text_key(r.title, r.text) for r in annotated} | dev_keys
        extra = clean(ann_rows, reserved, report, exclude_keys=taken_keys)
        _log(args, f"annotations: {len(extra)} rows from {len(annotation_files)} file(s) "
                   f"({ann_report.invalid} invalid, {ann_report.near_duplicates_of_heldout} near-duplicates of "
                   f"held-out documents, {len(ann_rows) - len(extra)} duplicate texts removed)")

    # 2. Mapped raw-corpus rows: never a reserved id, a dev id, or a text already kept.
    sources: list[dict[str, Any]] = [{"path": str(p), "sha256": sha256_path(p), "rows": None} for p in files]
    # Rows are counted where they were kept: an id labeled in two files counts for the first only.
    sources += [{**f, "mapping": "label-only annotations",
                 "rows": ann_report.by_file.get(Path(f["path"]).name, {}).get("rows", 0)} for f in ann_report.files]
    mapped: list[LabeledRow] = []
    taken = {text_key(r.title, r.text) for r in annotated + extra} | dev_keys
    annotated_ids = {r.id for r in annotated + extra}
    for name in mapped_names:
        rows, info = corpora.load_mapped(name, root, exclude_ids=reserved | dev_ids | annotated_ids)
        kept = clean(rows, reserved, report, exclude_keys=taken)
        taken |= {text_key(r.title, r.text) for r in kept}
        mapped.extend(kept)
        sources.append({**info, "rows": len(kept)})
        _log(args, f"mapped {name}: {len(kept)} rows")
    rows = annotated + extra + mapped
    if args.skip_invalid and report.invalid:
        print(f"newsstream train: skipped {report.invalid} invalid row(s)", file=sys.stderr)
    _log(args, f"training rows: {len(rows)} ({n_annotated} annotated + {len(extra)} label-only annotations + "
               f"{len(mapped)} mapped); "
               f"{report.duplicates} duplicates and {report.reserved} reserved ids removed")
    refusal = too_few_rows(rows, taxonomy, args.min_rows_per_label, allow_missing=not custom)
    if refusal:
        print(f"newsstream train: {refusal}", file=sys.stderr)
        return 2

    # 3. Model selection (optional): CV on annotated train (+ annotation and mapped rows in the training folds
    # only, so recipes with and without them are scored on the same rows).
    # Without newsevents rows (label-only files alone) the annotations are what CV can score.
    n_scored = n_annotated or len(extra)
    eval_mask = np.asarray([i < n_scored for i in range(len(rows))])
    if args.select:
        from training.select import run_selection

        recipe, table = run_selection(rows, eval_mask, root, args.seed, args.folds, quiet=args.quiet)
        saved = {"chosen": asdict(recipe), "table": table, "selected_on_mapped": mapped_names}
        SELECTION_FILE.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")

    # 4. The class-aware threshold for `none`, tuned on out-of-fold scores of train (never on dev).
    folds = max(2, min(args.folds, _min_class_count(rows, taxonomy)))
    if (recipe.tune_none_shift or custom) and folds >= 2:
        _log(args, f"cross-validating {recipe.label()} ({folds} folds)")
        cv = cross_validate(recipe, rows, args.seed, folds, eval_mask, taxonomy)
        none_shift = cv.none_shift
        cv_row = cv.row()
    else:
        none_shift, cv_row = 0.0, {}

    # 5. Fit on everything, save, reload through the verifying loader, score.
    _log(args, "fitting final model")
    fit_started = time.perf_counter()
    payload = fit_bundle(recipe, rows, args.seed, none_shift, taxonomy)
    fit_seconds = time.perf_counter() - fit_started
    bundle = ModelBundle({"format": 1, **payload}, {"taxonomy": taxonomy.as_dict()})
    bench_docs, bench_name = throughput_docs(root, docs_of(rows))
    docs_per_second = measure_throughput(bundle.predict_proba, bench_docs, batch_size=256, repeats=3)
    dev_metrics = evaluate_rows(bundle, dev_rows) if dev_rows else {}

    card: dict[str, Any] = {
        "name": args.name,
        "version": args.version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "seed": args.seed,
        "recipe": asdict(recipe),
        "recipe_label": recipe.label(),
        "taxonomy": taxonomy.as_dict(),
        # What prediction drift is measured against (streamer/drift.py): the label mix of the training rows.
        "training_label_mix": {head: {label: round(n / max(1, sum(counts.values())), 6) for label, n in counts.items()}
                               for head, counts in label_counts(rows, taxonomy.labels).items()},
        "none_shift": none_shift,
        "data": {
            "root": str(root),
            "sources": sources,
            "annotations": ann_report.as_dict() if annotation_files else None,
            "dev": {"path": str(dev_path), "sha256": sha256_path(dev_path)} if dev_path else None,
            "load": report.as_dict(),
            "train_counts": label_counts(rows, taxonomy.labels),
            "train_counts_annotated": label_counts(annotated, taxonomy.labels),
            "train_counts_label_only_annotations": label_counts(extra, taxonomy.labels),
            "dev_counts": label_counts(dev_rows, taxonomy.labels),
        },
        "cv": cv_row,
        "dev_metrics": dev_metrics,
        "throughput": {"docs_per_second": round(docs_per_second), "batch_size": 256, "docs": bench_name,
                       "unit": "docs per CPU-second, one thread"},
        "train_seconds": round(time.perf_counter() - started, 1),
        "fit_seconds": round(fit_seconds, 1),
        "peak_rss_bytes": _peak_rss_bytes(),
        "selection": table,
        "libraries": extra_library_versions(),  # save_bundle adds python, scikit-learn, joblib, numpy
        "reproducibility": reproducibility(),
    }
    try:
        publish(out_dir, payload, card, force)
    except OSError as exc:
        print(f"newsstream train: could not publish the new bundle at {out_dir}: {exc}", file=sys.stderr)
        return 2
    _log(args, f"wrote {out_dir}")
    for head, metrics in dev_metrics.items():
        binary = "".join(f", {k[:-3].replace('_vs_', '-vs-')} F1 {v:.3f}" for k, v in metrics.items()
                         if k.endswith("_f1") and "_vs_" in k)
        print(f"dev {head}: macro-F1 {metrics['macro_f1']:.3f}, accuracy {metrics['accuracy']:.3f}{binary}")
    if cv_row:
        scores = ", ".join(f"{k.removeprefix('cv_macro_f1_')} {v:.3f}" for k, v in cv_row.items()
                           if k.startswith("cv_macro_f1_"))
        print(f"cross-validated macro-F1 ({folds} folds): {scores}")
    print(f"throughput: {docs_per_second:.0f} docs/s ({bench_name}); train {card['train_seconds']} s; "
          f"peak RSS {card['peak_rss_bytes'] / 2**20:.0f} MiB")
    return 0


def _newsevents_ids(root: Path) -> set[str]:
    """Ids already labeled in newsevents: annotations must label new documents, never relabel these."""
    ids: set[str] = set()
    for name in ("train.jsonl", "dev.jsonl"):
        path = root / "newsevents" / name
        if path.is_file():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(record, dict) and "id" in record:
                        ids.add(str(record["id"]))
    return ids


def _min_class_count(rows: list[LabeledRow], taxonomy: Taxonomy = DEFAULT) -> int:
    counts = [c for head in label_counts(rows, taxonomy.labels).values() for c in head.values()]
    return min(counts) if counts else 0


def too_few_rows(rows: list[Any], taxonomy: Taxonomy, minimum: int, allow_missing: bool = False) -> str | None:
    """Why a head cannot be trained (a label with fewer than ``minimum`` rows), with the counts; else None.

    ``allow_missing``: labels with no rows at all are left out of the head instead (the news taxonomy: a
    training set may cover part of it, as 1.x allowed); a head still needs two labels."""
    problems = []
    for head, counts in label_counts(rows, taxonomy.labels).items():
        labels = taxonomy.labels[head]
        if allow_missing and sum(1 for c in counts.values() if c) < 2:
            problems.append(f"head {head!r} needs at least two labels in the data, has {sorted(counts)}")
            continue
        thin = [label for label in labels if counts.get(label, 0) < minimum
                and not (allow_missing and counts.get(label, 0) == 0)]
        if thin:
            shown = ", ".join(f"{label} {counts.get(label, 0)}" for label in labels)
            problems.append(f"head {head!r}: {len(thin)} label(s) under {minimum} rows ({', '.join(thin)}); "
                            f"rows per label: {shown}")
    if problems:
        return ("too few labeled rows to train and cross-validate: " + "; ".join(problems)
                + " (label more rows, drop the label from the taxonomy, or lower --min-rows-per-label)")
    return None


def write_report(out_dir: Path, bundle: ModelBundle, card: dict[str, Any]) -> None:
    lines = [
        f"# {card['name']} {card['version']}",
        "",
        f"Created {card['created_at']} from commit `{card['git_commit']}`; recipe `{card['recipe_label']}`, "
        f"none shift {card['none_shift']:+.2f}.",
        f"Throughput {card['throughput']['docs_per_second']} docs/s ({card['throughput']['docs']}, batch 256, "
        f"one core). Train {card['train_seconds']} s, peak RSS {card['peak_rss_bytes'] / 2**20:.0f} MiB.",
        "",
        "## Data",
        "",
    ]
    for source in card["data"]["sources"]:
        lines.append(f"- `{source.get('path')}` rows={source.get('rows')} sha256 `{source.get('sha256', '')[:16]}…`")
    load = card["data"]["load"]
    notes = card["data"].get("annotations")
    if notes:
        by_source = ", ".join(f"{k} {v}" for k, v in sorted(notes["rows_by_source"].items(), key=lambda kv: -kv[1]))
        lines.append(
            f"- label-only annotations: {notes['kept']} rows kept of {notes['read']} read ({notes['unsure']} unsure; "
            f"{notes['repeated_ids_removed']} repeated ids, {notes['repeated_ids_disagreeing']} of them disagreeing; "
            f"{notes['near_duplicates_of_heldout_removed']} near-duplicates of held-out documents removed); "
            f"by source: {by_source}"
        )
    lines += [
        f"- read {load['read']}, invalid {load['invalid']}, duplicates removed {load['duplicates_removed']}, "
        f"reserved removed {load['reserved_removed']}",
        "",
    ]
    if card["cv"]:
        cv = card["cv"]
        scores = ", ".join(f"{k.removeprefix('cv_macro_f1_')} macro-F1 {v}" for k, v in cv.items()
                           if k.startswith("cv_macro_f1_") and not k.endswith("_shifted"))
        shifted = [f" → {v} with none shift {cv['none_shift']:+.2f}" for k, v in cv.items() if k.endswith("_shifted")]
        lines += ["## Cross-validation on train (annotated rows scored)", "", scores + "".join(shifted), ""]
    if card["dev_metrics"]:
        lines += ["## Dev", ""]
        for head, metrics in card["dev_metrics"].items():
            lines += [format_table(head, metrics), "", f"![{head}](confusion-{head}.png)", ""]
            plot_confusion(head, metrics, out_dir / f"confusion-{head}.png")
    if card["selection"]:
        lines += ["## Model selection (CV on train)", "", selection_markdown(card["selection"]), ""]
    (out_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")


def selection_markdown(table: list[dict[str, Any]]) -> str:
    lines = [
        "| recipe | CV topic F1 | CV incident F1 | + none shift | docs/s | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for row in table:
        mark = " **(chosen)**" if row.get("chosen") else ""
        lines.append(
            f"| {row['recipe']}{mark} | {row['cv_macro_f1_topic']:.3f} | {row['cv_macro_f1_incident']:.3f} | "
            f"{row['cv_macro_f1_incident_shifted']:.3f} ({row['none_shift']:+.2f}) | {row['docs_per_second']} | "
            f"{row['fit_seconds']} |"
        )
    return "\n".join(lines)
