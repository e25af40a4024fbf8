"""Writes a codebook-described frame as CSV, xlsx, Stata, SPSS or Parquet, and reads each back to the same values.

Every file is written to a temporary file next to its destination and renamed into place, so a failed export
never leaves a half-written file where the statisticians look (files are created owner-only, 0600).

Conventions (the logical values are `Codebook.conform`'s; see endpoints/codebook.py):
- CSV: UTF-8 without BOM, comma, "\\n", header of variable names; missing is an empty field; dates YYYY-MM-DD;
  datetimes UTC ISO 8601 with "Z" (with microseconds only in columns that have any); floats in Python's shortest
  round-trip form; categories as their values ("A", "ai"), explained in the codebook.
- xlsx: a "data" sheet and a "codebook" sheet; real date and datetime cells (datetimes as UTC wall time, which
  Excel keeps to the millisecond); strings starting with "=" stay text, never formulas; missing is an empty cell.
- Stata (.dta, format 118, Stata 14+) and SPSS (.sav): variable labels; categories as numeric codes with value
  labels (string values get 1..k in codebook order, the `codes` column of the codebook); dates and UTC datetimes
  as the formats' own date/datetime types; missing is system missing ("." / sysmis), or an empty string, which
  is why empty strings mean missing everywhere. SPSS drops trailing blanks of strings.
- Parquet: pyarrow types (string, int64, float64, date32, timestamp[us, UTC]); each field carries its label and
  unit, and the schema carries the whole codebook as JSON under "contourtrial.codebook".
Why missing data are missing is a string column of its own, never a special value.
"""

import datetime as dt
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell

from endpoints.codebook import Codebook

FORMATS = ("csv", "xlsx", "dta", "sav", "parquet")
CODEBOOK_METADATA_KEY = b"contourtrial.codebook"
EXCEL_MAX_ROWS = 1_048_575  # below the header row
EXCEL_MAX_CHARS = 32_767


def write(frame: pd.DataFrame, codebook: Codebook, fmt: str, path: str | os.PathLike) -> Path:
    """Check `frame` against `codebook` and write it as `fmt` to `path`, atomically; return the path."""
    writer = _writer(fmt)
    data = codebook.conform(frame)
    return _atomic(Path(path), lambda tmp: writer(data, codebook, tmp))


def write_codebook(codebook: Codebook, path: str | os.PathLike) -> Path:
    """The codebook table on its own, as CSV (for the formats that cannot carry it inside)."""
    return _atomic(Path(path), lambda tmp: _csv_table(codebook.as_frame(), tmp))


def read(fmt: str, path: str | os.PathLike, codebook: Codebook) -> pd.DataFrame:
    """Read a file written by `write` back into the codebook's logical values (category codes decoded).

    The codebook is needed because CSV carries no types and Stata/SPSS codes do not name the values they code.
    """
    if fmt not in _READERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return codebook.conform(_READERS[fmt](Path(path), codebook))


def _writer(fmt: str) -> Callable[[pd.DataFrame, Codebook, Path], None]:
    if fmt not in _WRITERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return _WRITERS[fmt]


def _atomic(path: Path, write_to: Callable[[Path], None]) -> Path:
    """Write through a temporary file in the same directory, fsync it, then rename it over `path`."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write_to(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --- CSV ---------------------------------------------------------------------------------------------------------


def _iso_utc(series: pd.Series) -> pd.Series:
    fraction = ".%f" if (series.dropna().dt.microsecond != 0).any() else ""
    return series.dt.strftime(f"%Y-%m-%dT%H:%M:%S{fraction}Z")


def _write_csv(data: pd.DataFrame, codebook: Codebook, path: Path) -> None:
    out = data.copy()
    for variable in codebook:
        if variable.kind == "datetime":
            out[variable.name] = _iso_utc(out[variable.name])
        elif variable.kind == "date":
            out[variable.name] = [None if v is None else v.isoformat() for v in out[variable.name]]
    _csv_table(out, path)


def _csv_table(table: pd.DataFrame, path: Path) -> None:
    table.to_csv(path, index=False, encoding="utf-8", lineterminator="\n", na_rep="")


_CSV_DTYPES = {"integer": "Int64", "float": "float64"}  # everything else is read as text, then parsed


def _read_csv(path: Path, codebook: Codebook) -> pd.DataFrame:
    dtypes = {v.name: _CSV_DTYPES.get(v.kind, "str") for v in codebook}
    dtypes.update({v.name: "Int64" for v in codebook if v.kind == "category" and not v.string_keys})
    data = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""], encoding="utf-8")
    for variable in codebook:
        column = data[variable.name]
        if variable.kind == "datetime":
            data[variable.name] = pd.to_datetime(column, format="ISO8601", utc=True)
        elif variable.kind == "date":
            data[variable.name] = [None if pd.isna(v) else dt.date.fromisoformat(v) for v in column]
    return data


# --- xlsx --------------------------------------------------------------------------------------------------------


def _write_xlsx(data: pd.DataFrame, codebook: Codebook, path: Path) -> None:
    if len(data) > EXCEL_MAX_ROWS:
        raise ValueError(f"{len(data)} rows do not fit an Excel sheet ({EXCEL_MAX_ROWS} at most)")
    _check_excel_text(data, codebook)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("data")
    sheet.freeze_panes = "A2"
    sheet.append(codebook.names)
    columns = [_excel_values(data[v.name], v.kind, sheet) for v in codebook]
    for row in zip(*columns, strict=True):
        sheet.append(row)
    table = codebook.as_frame()
    codebook_sheet = workbook.create_sheet("codebook")
    codebook_sheet.append(list(table.columns))
    for row in table.itertuples(index=False):
        codebook_sheet.append([_text_cell(codebook_sheet, v) if v.startswith("=") else v for v in row])
    workbook.save(path)


def _excel_values(series: pd.Series, kind: str, sheet) -> list:
    """Python values for openpyxl: None for missing, naive UTC datetimes, formula-looking text kept as text."""
    if kind == "datetime":
        series = series.dt.tz_localize(None)
        return [None if pd.isna(v) else v.to_pydatetime() for v in series]
    values = series.astype(object).where(series.notna(), None).tolist()
    if isinstance(series.dtype, pd.StringDtype):
        for i in np.flatnonzero(series.str.startswith("=").fillna(False).to_numpy()):
            values[i] = _text_cell(sheet, values[i])
    return values


def _check_excel_text(data: pd.DataFrame, codebook: Codebook) -> None:
    """Refuse text an Excel cell cannot hold before openpyxl starts writing."""
    for variable in codebook:
        column = data[variable.name]
        if isinstance(column.dtype, pd.StringDtype):
            too_long = column.str.len().fillna(0).to_numpy() > EXCEL_MAX_CHARS
            if too_long.any():
                row = int(np.flatnonzero(too_long)[0])
                raise ValueError(f"column {variable.name}, row {row}: longer than an Excel cell ({EXCEL_MAX_CHARS})")


def _text_cell(sheet, value: str):
    """A cell that Excel shows as the text itself even when it starts with "=" (no formula, no injection)."""
    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"
    return cell


def _read_xlsx(path: Path, codebook: Codebook) -> pd.DataFrame:
    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = workbook["data"].iter_rows(values_only=True)
        header = list(next(rows))
        width = len(header)
        records = [tuple(row) + (None,) * (width - len(row)) for row in rows]
    finally:
        workbook.close()
    data = pd.DataFrame.from_records(records, columns=header) if records else pd.DataFrame(columns=header)
    data = data.astype(object)
    for variable in codebook:
        column = data[variable.name]
        if variable.kind == "datetime":
            data[variable.name] = pd.to_datetime(column, utc=True)
        elif variable.kind == "date":
            data[variable.name] = [None if pd.isna(v) else v.date() for v in column]
        elif variable.kind == "float":
            data[variable.name] = pd.to_numeric(column).astype("float64")
        elif variable.kind == "integer" or (variable.kind == "category" and not variable.string_keys):
            data[variable.name] = [None if pd.isna(v) else int(v) for v in column]
    return data


# --- Stata and SPSS ----------------------------------------------------------------------------------------------


def _labelled(data: pd.DataFrame, codebook: Codebook) -> tuple[pd.DataFrame, dict, dict]:
    """The frame as pyreadstat writes it (numeric codes, naive UTC, "" for missing text), its labels by column."""
    out = {}
    value_labels = {}
    for variable in codebook:
        column = data[variable.name]
        if variable.kind == "category":
            codes = variable.codes
            out[variable.name] = column.map(codes).astype("float64")
            value_labels[variable.name] = {codes[key]: text for key, text in variable.value_labels.items()}
        elif variable.kind == "string":
            out[variable.name] = column.fillna("")  # Stata has no missing string; readstat refuses None in strL
        elif variable.kind == "integer":
            out[variable.name] = column.astype("float64")
        elif variable.kind == "datetime":
            out[variable.name] = column.dt.tz_localize(None)
        else:
            out[variable.name] = column
    labels = {v.name: v.label for v in codebook}
    return pd.DataFrame(out), labels, value_labels


def _write_dta(data: pd.DataFrame, codebook: Codebook, path: Path) -> None:
    frame, labels, value_labels = _labelled(data, codebook)
    formats = {v.name: "%12.0g" for v in codebook if v.kind == "integer"}
    pyreadstat.write_dta(
        frame, path, file_label=codebook.title[:80], column_labels=labels, version=14,
        variable_value_labels=value_labels, variable_format=formats,
    )  # fmt: skip


def _write_sav(data: pd.DataFrame, codebook: Codebook, path: Path) -> None:
    frame, labels, value_labels = _labelled(data, codebook)
    formats = {
        v.name: {"integer": "F12.0", "float": "F16.6"}[v.kind] for v in codebook if v.kind in ("integer", "float")
    }
    measures = {v.name: "scale" if v.kind in ("integer", "float") else "nominal" for v in codebook}
    pyreadstat.write_sav(
        frame, path, file_label=codebook.title[:64], column_labels=labels, variable_value_labels=value_labels,
        variable_format=formats, variable_measure=measures,
    )  # fmt: skip


def _read_labelled(path: Path, codebook: Codebook, reader) -> pd.DataFrame:
    """Stata or SPSS back to logical values: codes to category values, naive datetimes to UTC."""
    data, _ = reader(path)
    for variable in codebook:
        column = data[variable.name]
        if variable.kind == "category":
            keys = {code: key for key, code in variable.codes.items()}
            data[variable.name] = pd.Series([None if pd.isna(v) else keys[int(v)] for v in column], dtype=object)
        elif variable.kind == "datetime":
            if column.isna().all():  # an all-missing column comes back as numbers, not datetimes
                column = pd.Series(pd.NaT, index=column.index, dtype="datetime64[us]")
            data[variable.name] = column.dt.tz_localize("UTC")
        elif variable.kind == "date":  # an all-missing date column comes back as empty text
            data[variable.name] = pd.Series([None if pd.isna(v) or v == "" else v for v in column], dtype=object)
    return data


# --- Parquet -----------------------------------------------------------------------------------------------------


def _arrow_schema(codebook: Codebook):
    types = {
        "string": pa.string(), "integer": pa.int64(), "float": pa.float64(), "date": pa.date32(),
        "datetime": pa.timestamp("us", tz="UTC"),
    }  # fmt: skip
    fields = [
        pa.field(
            v.name,
            types[v.kind] if v.kind != "category" else (pa.string() if v.string_keys else pa.int64()),
            metadata={"label": v.label, "unit": v.unit, "kind": v.kind},
        )
        for v in codebook
    ]
    return pa.schema(fields, metadata={CODEBOOK_METADATA_KEY: codebook.to_json().encode()})


def _write_parquet(data: pd.DataFrame, codebook: Codebook, path: Path) -> None:
    schema = _arrow_schema(codebook)
    table = pa.Table.from_pandas(data, schema=schema, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(schema.metadata), path)


def _read_parquet(path: Path, codebook: Codebook) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


_WRITERS = {"csv": _write_csv, "xlsx": _write_xlsx, "dta": _write_dta, "sav": _write_sav, "parquet": _write_parquet}
_READERS = {
    "csv": _read_csv,
    "xlsx": _read_xlsx,
    "dta": lambda path, codebook: _read_labelled(path, codebook, pyreadstat.read_dta),
    "sav": lambda path, codebook: _read_labelled(path, codebook, pyreadstat.read_sav),
    "parquet": _read_parquet,
}
