"""Every export format reads back to the values written, with Stata/SPSS labels, and the codebook refuses bad frames."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyreadstat
import pytest
from openpyxl import load_workbook

from endpoints import formats
from endpoints.codebook import Codebook, CodebookError, Variable

ROWS = 50
GUESS = {"ai": "AI-assisted", "manual": "Manual", "dont_know": "Don't know"}
CODEBOOK = Codebook(
    [
        Variable("trial_id", "Trial patient identifier", "string", definition="Pseudonymous id", source="Patient"),
        Variable("site", "Site", "string", source="Site.name"),
        Variable("age", "Age at enrolment", "integer", unit="years", source="Patient"),
        Variable("dice", "Dice, AI vs approved", "float", source="metrics.compare"),
        Variable("volume", "GTV volume, approved", "float", unit="cm³", source="metrics.compare"),
        Variable("randomised_on", "Randomisation date", "date", source="Allocation.created"),
        Variable("submitted_at", "Submission time (UTC)", "datetime", unit="UTC", source="DelineationSession"),
        Variable("allocation", "Allocation (blinded)", "category", value_labels={"A": "Arm A", "B": "Arm B"}),
        Variable("guess", "Panel's blinding guess", "category", value_labels=GUESS, source="PanelReview"),
        Variable("experience", "Experience level", "category", value_labels={1: "< 5 years", 2: "≥ 5 years"}),
        Variable("missing_reason", "Why the endpoint is missing", "string", source="Deviation"),
    ],
    title="ContourTrial endpoint test dataset",
)


def _frame() -> pd.DataFrame:
    """50 rows of every kind, with missing values in each column and awkward text (non-ASCII, "=", commas)."""
    rng = np.random.default_rng(7)
    start = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)
    missing = rng.random((ROWS, 11)) < 0.1
    texts = ["Ærø", "São Paulo", 'Zürich, "Nord"', "=SUM(A1:A2)", "line\nbreak", "NA", "007"]

    def holes(values, column):
        return [None if missing[i, column] else v for i, v in enumerate(values)]

    return pd.DataFrame(
        {
            "trial_id": [f"HN-{i:04d}" for i in range(ROWS)],
            "site": holes([texts[i % len(texts)] for i in range(ROWS)], 1),
            "age": pd.array(holes(rng.integers(18, 90, ROWS).tolist(), 2), dtype="Int64"),
            "dice": np.where(missing[:, 3], np.nan, rng.random(ROWS)),
            "volume": np.where(missing[:, 4], np.nan, rng.lognormal(3, 1, ROWS)),
            "randomised_on": holes([dt.date(2026, 1, 1) + dt.timedelta(days=i * 3) for i in range(ROWS)], 5),
            "submitted_at": pd.Series(
                holes([start + dt.timedelta(seconds=float(s)) for s in rng.uniform(0, 9e6, ROWS)], 6), dtype=object
            ),
            "allocation": holes(rng.choice(["A", "B"], ROWS).tolist(), 7),
            "guess": holes(rng.choice(list(GUESS), ROWS).tolist(), 8),
            "experience": pd.array(holes(rng.integers(1, 3, ROWS).tolist(), 9), dtype="Int64"),
            "missing_reason": [None if i % 7 else "Image upload failed; re-scan" for i in range(ROWS)],
        }
    )


EXACT = pd.Timedelta(0)


def _assert_same(expected: pd.DataFrame, actual: pd.DataFrame, datetime_tolerance=EXACT) -> None:
    assert list(actual.columns) == list(expected.columns)
    for name in expected.columns:
        left, right = expected[name], actual[name]
        assert left.dtype == right.dtype, name
        assert (left.isna() == right.isna()).all(), name
        present = left.notna()
        if isinstance(left.dtype, pd.DatetimeTZDtype):
            assert ((left[present] - right[present]).abs() <= datetime_tolerance).all(), name
        elif left.dtype == "float64":
            np.testing.assert_allclose(right[present], left[present], rtol=1e-12, atol=0, err_msg=name)
        else:
            assert left[present].tolist() == right[present].tolist(), name


# Excel keeps datetimes to the millisecond; Stata and SPSS store doubles (ms since 1960, s since 1582): ±2 µs.
TOLERANCE = {
    "xlsx": pd.Timedelta(milliseconds=1),
    "dta": pd.Timedelta(microseconds=2),
    "sav": pd.Timedelta(microseconds=2),
}


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_each_format_reads_back_the_values_written(fmt, tmp_path):
    expected = CODEBOOK.conform(_frame())
    path = formats.write(_frame(), CODEBOOK, fmt, tmp_path / f"endpoints.{fmt}")
    _assert_same(expected, formats.read(fmt, path, CODEBOOK), TOLERANCE.get(fmt, EXACT))
    assert [p.name for p in tmp_path.iterdir()] == [f"endpoints.{fmt}"]  # no temporary file left


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_a_column_missing_everywhere_reads_back_missing(fmt, tmp_path):
    """E.g. no case approved yet: Stata and SPSS hand an all-missing datetime column back as numbers."""
    frame = _frame()
    for variable in CODEBOOK:
        if variable.kind in ("datetime", "float", "date", "category"):
            frame[variable.name] = None
    expected = CODEBOOK.conform(frame)
    path = formats.write(frame, CODEBOOK, fmt, tmp_path / f"empty.{fmt}")
    _assert_same(expected, formats.read(fmt, path, CODEBOOK), TOLERANCE.get(fmt, EXACT))


def test_floats_are_bit_exact_except_in_excel(tmp_path):
    expected = CODEBOOK.conform(_frame())
    for fmt in ("csv", "parquet", "dta", "sav"):
        back = formats.read(fmt, formats.write(_frame(), CODEBOOK, fmt, tmp_path / f"x.{fmt}"), CODEBOOK)
        assert back["volume"].equals(expected["volume"]) and back["dice"].equals(expected["dice"]), fmt


def test_plain_pandas_reads_the_csv_with_empty_missing_and_utc_iso_datetimes(tmp_path):
    path = formats.write(_frame(), CODEBOOK, "csv", tmp_path / "endpoints.csv")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = _frame()
    assert raw["site"].tolist() == frame["site"].fillna("").tolist()
    stamp = next(v for v in raw["submitted_at"] if v)
    assert stamp.endswith("Z") and dt.datetime.fromisoformat(stamp).utcoffset() == dt.timedelta(0)
    assert next(v for v in raw["randomised_on"] if v) == "2026-01-01"


@pytest.mark.parametrize("fmt", ["dta", "sav"])
def test_stata_and_spss_carry_variable_and_value_labels(fmt, tmp_path):
    path = formats.write(_frame(), CODEBOOK, fmt, tmp_path / f"endpoints.{fmt}")
    data, meta = (pyreadstat.read_dta if fmt == "dta" else pyreadstat.read_sav)(path)
    assert meta.column_names_to_labels == {v.name: v.label for v in CODEBOOK}
    assert meta.variable_value_labels["allocation"] == {1: "Arm A", 2: "Arm B"}
    assert meta.variable_value_labels["guess"] == {1: "AI-assisted", 2: "Manual", 3: "Don't know"}
    assert meta.variable_value_labels["experience"] == {1: "< 5 years", 2: "≥ 5 years"}
    assert set(data["allocation"].dropna()) <= {1, 2}
    assert meta.file_label == CODEBOOK.title
    labelled, _ = (pyreadstat.read_dta if fmt == "dta" else pyreadstat.read_sav)(path, apply_value_formats=True)
    expected = _frame()["guess"].map(GUESS).fillna("")
    assert labelled["guess"].astype(object).fillna("").tolist() == expected.tolist()


def test_xlsx_has_data_and_codebook_sheets_and_keeps_formula_text_as_text(tmp_path):
    path = formats.write(_frame(), CODEBOOK, "xlsx", tmp_path / "endpoints.xlsx")
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["data", "codebook"]
    cells = [c for c in workbook["data"]["B"] if c.value == "=SUM(A1:A2)"]
    assert cells and all(c.data_type == "s" for c in cells)
    codebook = pd.read_excel(path, sheet_name="codebook", engine="openpyxl", keep_default_na=False)
    assert codebook["name"].tolist() == CODEBOOK.names
    assert codebook.set_index("name").loc["guess", "codes"] == "1 = ai; 2 = manual; 3 = dont_know"


def test_parquet_carries_the_codebook_and_real_types(tmp_path):
    path = formats.write(_frame(), CODEBOOK, "parquet", tmp_path / "endpoints.parquet")
    schema = pq.read_schema(path)
    assert (
        Codebook.from_json(schema.metadata[formats.CODEBOOK_METADATA_KEY].decode())
        .as_frame()
        .equals(CODEBOOK.as_frame())
    )
    assert str(schema.field("submitted_at").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("randomised_on").type) == "date32[day]"
    assert schema.field("volume").metadata[b"unit"] == "cm³".encode()


def test_codebook_table_covers_every_variable(tmp_path):
    table = CODEBOOK.as_frame()
    assert table["name"].tolist() == CODEBOOK.names
    assert list(table.columns) == ["name", "label", "type", "unit", "definition", "source", "values", "codes"]
    assert table.set_index("name").loc["allocation", "values"] == "A = Arm A; B = Arm B"
    path = formats.write_codebook(CODEBOOK, tmp_path / "codebook.csv")
    assert pd.read_csv(path)["name"].tolist() == CODEBOOK.names


def test_check_refuses_missing_and_extra_columns():
    with pytest.raises(CodebookError, match=r"missing \['guess'\], extra none"):
        CODEBOOK.check(_frame().drop(columns="guess"))
    with pytest.raises(CodebookError, match=r"extra \['unexpected'\]"):
        CODEBOOK.check(_frame().assign(unexpected=1))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("age", 41.5, "column age .* 41.5"),
        ("age", "41", "column age"),
        ("dice", float("inf"), "column dice .* infinity"),
        ("site", 3, "column site"),
        ("randomised_on", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "column randomised_on"),
        ("submitted_at", dt.datetime(2026, 1, 1, 8), "column submitted_at"),
        ("allocation", "C", "column allocation .* no value label"),
        ("experience", 3, "column experience .* no value label"),
    ],
)
def test_check_refuses_a_value_of_the_wrong_kind_naming_the_column(column, value, message):
    frame = _frame()
    frame[column] = frame[column].astype(object)
    frame.loc[4, column] = value
    with pytest.raises(CodebookError, match=message):
        CODEBOOK.check(frame)


def test_conform_keeps_utc_and_empty_text_is_missing():
    frame = _frame()
    frame["submitted_at"] = pd.Series(
        [dt.datetime(2026, 1, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2)))] * ROWS, dtype=object
    )
    frame["site"] = ""
    data = CODEBOOK.conform(frame)
    assert data["submitted_at"][0] == pd.Timestamp("2026-01-01T08:00:00Z")
    assert data["site"].isna().all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "Trial_ID", "label": "x", "kind": "string"},
        {"name": "a" * 33, "label": "x", "kind": "string"},
        {"name": "if", "label": "x", "kind": "string"},
        {"name": "x", "label": "y" * 81, "kind": "string"},
        {"name": "x", "label": "y", "kind": "boolean"},
        {"name": "x", "label": "y", "kind": "category"},
        {"name": "x", "label": "y", "kind": "string", "value_labels": {"a": "A"}},
        {"name": "x", "label": "y", "kind": "category", "value_labels": {"a": "A", 1: "B"}},
    ],
)
def test_variables_must_suit_stata_and_spss(kwargs):
    with pytest.raises(CodebookError):
        Variable(**kwargs)


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_a_failing_write_leaves_no_file(fmt, tmp_path, monkeypatch):
    def broken(data, codebook, path):
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setitem(formats._WRITERS, fmt, broken)
    with pytest.raises(OSError, match="disk full"):
        formats.write(_frame(), CODEBOOK, fmt, tmp_path / f"endpoints.{fmt}")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_write_keeps_the_previous_file(tmp_path):
    path = formats.write(_frame(), CODEBOOK, "csv", tmp_path / "endpoints.csv")
    before = path.read_bytes()
    with pytest.raises(CodebookError):
        formats.write(_frame().drop(columns="site"), CODEBOOK, "csv", path)
    with pytest.raises(ValueError, match="longer than an Excel cell"):
        formats.write(_frame().assign(missing_reason="x" * 40_000), CODEBOOK, "xlsx", tmp_path / "endpoints.xlsx")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["endpoints.csv"]


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        formats.write(_frame(), CODEBOOK, "json", tmp_path / "x.json")
