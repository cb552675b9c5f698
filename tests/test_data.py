"""Labeled-data loading: validation errors name file, line and field; duplicates and reserved ids are dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.data import DataError, LoadReport, clean, load_labeled, read_rows

GOOD = [
    {"id": "t1", "title": "Rebels shell the harbour town", "text": "Mortar rounds hit the port overnight.",
     "topic": "conflict_war_peace", "incident": "shelling_missile_strike"},
    {"id": "t2", "title": "", "text": "The central bank held rates steady on Thursday.",
     "topic": "economy_business_finance"},
    {"id": "t3", "title": "Dock workers walk out", "text": "Unions began a 48-hour strike at the docks.",
     "incident": "protest"},
]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_good_rows_load_with_one_or_both_heads(tmp_path: Path) -> None:
    rows = read_rows(write_jsonl(tmp_path / "ok.jsonl", GOOD))
    assert [r.id for r in rows] == ["t1", "t2", "t3"]
    assert rows[1].incident is None and rows[1].topic == "economy_business_finance"
    assert rows[2].topic is None and rows[2].incident == "protest"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"id": "b", "title": "x", "text": "y", "topic": "sports"}, "topic"),
        ({"id": "b", "title": "x", "text": "y", "incident": "explosion"}, "incident"),
        ({"id": "b", "title": "x", "text": "", "topic": "sport"}, "text"),
        ({"id": "b", "title": "x", "topic": "sport"}, "text"),
        ({"title": "x", "text": "y", "topic": "sport"}, "id"),
        ({"id": "b", "title": "x", "text": "y"}, "topic/incident"),
    ],
)
def test_bad_row_names_file_line_and_field(tmp_path: Path, bad: dict[str, object], field: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD[0], GOOD[1], bad, GOOD[2]])
    with pytest.raises(DataError) as info:
        read_rows(path)
    message = str(info.value)
    assert f"{path}:3:" in message
    assert field in message


def test_invalid_json_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.jsonl:2: invalid JSON"):
        read_rows(path)


def test_skip_invalid_counts_and_keeps_the_rest(tmp_path: Path) -> None:
    bad = [{"id": "b1", "text": "y", "topic": "nope"}, {"id": "b2", "text": "z"}]
    path = write_jsonl(tmp_path / "mixed.jsonl", [GOOD[0], bad[0], GOOD[1], bad[1], GOOD[2]])
    report = LoadReport()
    rows = read_rows(path, skip_invalid=True, report=report)
    assert [r.id for r in rows] == ["t1", "t2", "t3"]
    assert report.invalid == 2 and report.read == 5
    assert any(":2:" in e for e in report.errors) and any(":4:" in e for e in report.errors)


def test_csv_same_columns_and_empty_label_cells(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        "id,title,text,topic,incident\n"
        'c1,Flood warning,"Rivers burst their banks, homes evacuated.",disaster_accident_emergency,natural_disaster\n'
        "c2,,Shares rose in early trading.,economy_business_finance,\n"
        "c3,Bad,Row with a wrong label.,weather,hail\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r"rows\.csv:4: field 'incident'"):
        read_rows(path)
    report = LoadReport()
    rows = read_rows(path, skip_invalid=True, report=report)
    assert [(r.id, r.incident) for r in rows] == [("c1", "natural_disaster"), ("c2", None)]
    assert report.invalid == 1


def test_exact_duplicates_removed_and_counted(tmp_path: Path) -> None:
    dup = dict(GOOD[0], id="t1-copy")
    near = dict(GOOD[0], id="t1-near", text=GOOD[0]["text"] + " More.")  # type: ignore[operator]
    path = write_jsonl(tmp_path / "dups.jsonl", [*GOOD, dup, near])
    rows, report = load_labeled([path], reserved=frozenset())
    assert [r.id for r in rows] == ["t1", "t2", "t3", "t1-near"]
    assert report.duplicates == 1 and report.kept == 4


def test_reserved_ids_never_survive(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    (root / "newsevents").mkdir(parents=True)
    (root / "newsevents" / "reserved.txt").write_text("t2\nsomething:else\n", encoding="utf-8")
    path = write_jsonl(tmp_path / "rows.jsonl", GOOD)
    rows, report = load_labeled([path], root=root)
    assert "t2" not in {r.id for r in rows}
    assert report.reserved == 1


def test_missing_reserved_list_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", GOOD)
    with pytest.raises(DataError, match="reserved"):
        load_labeled([path], root=tmp_path / "nowhere")


def test_clean_excludes_texts_already_elsewhere(tmp_path: Path) -> None:
    rows = read_rows(write_jsonl(tmp_path / "rows.jsonl", GOOD))
    from training.data import text_key

    report = LoadReport()
    kept = clean(rows, frozenset(), report, exclude_keys={text_key(GOOD[2]["title"], GOOD[2]["text"])})  # type: ignore[arg-type]
    assert [r.id for r in kept] == ["t1", "t2"] and report.duplicates == 1
