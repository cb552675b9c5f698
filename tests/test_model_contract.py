"""Every bundle under models/ meets the contract; loading refuses tampered or incompatible bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streamer.artifact import CARD_FILE, MODEL_FILE, ModelError, check_bundle, load_bundle

MODELS = Path(__file__).resolve().parent.parent / "models"
BUNDLES = sorted(p.parent for p in MODELS.glob(f"*/{CARD_FILE}"))
#: The shipped default model (what ``find_latest`` serves).
DEFAULT = MODELS / "newsstream-1.1.0"

#: Our own short texts (no corpus text in the repo): a mix of incident reports and non-incident news.
DOCS = [
    ("Air strikes hit rebel positions near the border", "Warplanes bombed the town overnight, killing 12 fighters."),
    ("Central bank holds interest rates", "The bank kept its main rate unchanged, citing slowing inflation."),
    ("", "Thousands marched through the capital on Sunday demanding the minister resign."),
    ("Cup final ends in penalty drama", "The home side won 5-4 on penalties after a goalless draw."),
    ("Earthquake shakes coastal towns", "A magnitude 6.8 quake damaged hundreds of homes; at least 30 died."),
    ("Hackers lock hospital records", "A ransomware attack encrypted patient files and demanded payment."),
    ("New album tops the charts", ""),
]


def test_there_is_a_committed_default_bundle() -> None:
    assert (DEFAULT / CARD_FILE).is_file(), "the default model must be committed"


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=[p.name for p in BUNDLES])
def test_bundle_contract(bundle_dir: Path, tmp_path: Path) -> None:
    bundle = load_bundle(bundle_dir)
    check_bundle(bundle, DOCS, tmp_path / "roundtrip")
    card = bundle.card
    for key in ("name", "version", "created_at", "labels", "libraries", "artifact", "git_commit"):
        assert key in card, f"card lacks {key}"
    assert (bundle_dir / MODEL_FILE).stat().st_size + (bundle_dir / CARD_FILE).stat().st_size < 25 * 2**20


@pytest.fixture
def copy_of_default(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(DEFAULT, target)
    return target


def _edit_card(directory: Path, **changes: object) -> None:
    card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        node = card
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (directory / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")


def test_refuses_tampered_model_file(copy_of_default: Path) -> None:
    with (copy_of_default / MODEL_FILE).open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        load_bundle(copy_of_default)


def test_refuses_card_with_other_sha(copy_of_default: Path) -> None:
    _edit_card(copy_of_default, artifact__sha256="0" * 64)
    with pytest.raises(ModelError, match="does not match"):
        load_bundle(copy_of_default)


def test_refuses_other_sklearn_minor(copy_of_default: Path) -> None:
    card = json.loads((copy_of_default / CARD_FILE).read_text(encoding="utf-8"))
    card["libraries"]["scikit-learn"] = "0.1.0"
    (copy_of_default / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelError, match=r"scikit-learn 0\.1\.0"):
        load_bundle(copy_of_default)


def test_refuses_labels_outside_taxonomy(copy_of_default: Path) -> None:
    card = json.loads((copy_of_default / CARD_FILE).read_text(encoding="utf-8"))
    card["labels"]["incident"] = [*card["labels"]["incident"], "alien_invasion"]
    (copy_of_default / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelError, match="alien_invasion"):
        load_bundle(copy_of_default)


def test_seed_style_article_is_an_air_strike() -> None:
    """Our own paraphrase of the seed case: a coalition air strike reported mid-article."""
    bundle = load_bundle(DEFAULT)
    title = "Coalition raid kills dozens of soldiers near Deir ez-Zor"
    text = (
        "The coalition expressed regret after dozens of soldiers were killed. "
        "Officials said coalition aircraft carried out the air strike on positions they believed were held "
        "by militants; the airstrike was halted when they were told the targets were army troops."
    )
    result = bundle.classify([(title, text)])[0]
    assert result["incident"]["label"] == "air_drone_strike"
