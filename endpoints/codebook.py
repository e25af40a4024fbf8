"""The endpoint dataset's codebook: what every column is, and the one place that decides its logical values.

Every export format is written from, and read back into, the frame `Codebook.conform` returns, so "the same
values in every format" has a single definition. Pure Python and pandas (no Django): benchmarked and tested alone.

Canonical dtypes (what `conform` returns):
- string: pandas "str"; missing is NaN, and an empty string counts as missing (CSV, Stata and SPSS cannot tell
  them apart, so no format may keep a distinction the others lose);
- integer: "Int64" (nullable), limited to ±2**53 so Stata, SPSS and Excel, which store doubles, keep it exact;
- float: "float64", finite or NaN (Stata and SPSS have no infinity);
- date: object column of `datetime.date`, missing None;
- datetime: "datetime64[us, UTC]"; naive datetimes are refused, because their time zone would be a guess;
- category: the value-label keys as they are ("str" for string keys, "Int64" for integer keys).
"""

import datetime as dt
import decimal
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

KINDS = ("string", "integer", "float", "date", "datetime", "category")
MAX_EXACT_INTEGER = 2**53
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Stata's reserved words (its _-prefixed ones fail the pattern already) and SPSS's (the last line), so that one
# name works in both.
_RESERVED = """
    aggregate array boolean break byte case catch class colvector complex const continue default delegate delete do
    double else eltypedef end enum explicit export external float for friend function global goto if inline int local
    long mata matrix namespace new numeric nullptr operator orgtype pointer polymorphic pragma private protected public
    quad real return rowvector scalar short signed static str strl string struct super switch template this throw
    transmorphic try typedef typename union unsigned using vector version virtual void volatile while
    all and by eq ge gt le lt ne not or to with
"""
RESERVED_NAMES = frozenset(_RESERVED.split())
MAX_LABEL = 80  # Stata's limit for a variable label
MAX_VALUE_LABEL_BYTES = 120  # SPSS's limit for one value label


class CodebookError(ValueError):
    """A variable definition, or a frame checked against the codebook, breaks the rules; the message names it."""


@dataclass(frozen=True)
class Variable:
    """One column of an exported dataset, described for the statisticians who analyse it."""

    name: str
    label: str
    kind: str
    unit: str = ""
    definition: str = ""
    source: str = ""
    value_labels: Mapping[str | int, str] = field(default_factory=dict)

    def __post_init__(self):
        if not NAME_PATTERN.fullmatch(self.name) or self.name in RESERVED_NAMES:
            raise CodebookError(f"{self.name!r}: names are 1-32 of [a-z0-9_], start with a letter, not reserved")
        if not self.label or len(self.label) > MAX_LABEL:
            raise CodebookError(f"{self.name}: the label must have 1-{MAX_LABEL} characters")
        if self.kind not in KINDS:
            raise CodebookError(f"{self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if (self.kind == "category") != bool(self.value_labels):
            raise CodebookError(f"{self.name}: value labels are required for categories and only for them")
        keys = list(self.value_labels)
        if keys and not (all(type(k) is str for k in keys) or all(type(k) is int for k in keys)):
            raise CodebookError(f"{self.name}: value-label keys must be all strings or all integers")
        if any(k == "" for k in keys):
            raise CodebookError(f"{self.name}: an empty string cannot be a category (it means missing)")
        if any(type(k) is int and abs(k) >= 2**31 - 1 for k in keys):
            raise CodebookError(f"{self.name}: integer categories must fit Stata's value labels (32-bit)")
        for text in self.value_labels.values():
            if not text or len(text.encode()) > MAX_VALUE_LABEL_BYTES:
                raise CodebookError(f"{self.name}: value labels must have 1-{MAX_VALUE_LABEL_BYTES} bytes")
        object.__setattr__(self, "value_labels", MappingProxyType(dict(self.value_labels)))

    @property
    def string_keys(self) -> bool:
        """Whether a category's values are strings (which Stata and SPSS get as codes 1..k)."""
        return self.kind == "category" and type(next(iter(self.value_labels))) is str

    @property
    def codes(self) -> dict[str | int, int]:
        """Category value → numeric code for Stata/SPSS: 1..k in label order for strings, the integer itself else."""
        if self.string_keys:
            return {key: code for code, key in enumerate(self.value_labels, start=1)}
        return {key: key for key in self.value_labels}


class Codebook:
    """The ordered variables of one dataset; refuses frames that do not match them."""

    def __init__(self, variables: Iterable[Variable], title: str = ""):
        self.variables = tuple(variables)
        self.title = title
        names = [v.name for v in self.variables]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise CodebookError(f"duplicated variable names: {', '.join(duplicated)}")
        self._by_name = dict(zip(names, self.variables, strict=True))

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    def __getitem__(self, name: str) -> Variable:
        return self._by_name[name]

    def __iter__(self):
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.variables)

    def check(self, frame: pd.DataFrame) -> None:
        """Raise CodebookError, naming the column, if `frame` has other columns or a value breaks its kind."""
        self.conform(frame)

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame in codebook order with canonical dtypes (see the module docstring), after checking it."""
        columns = list(frame.columns)
        missing = [n for n in self.names if n not in columns]
        extra = [str(c) for c in columns if c not in self._by_name]
        if missing or extra:
            problem = f"missing {missing or 'none'}, extra {extra or 'none'}"
            raise CodebookError(f"columns differ from the codebook: {problem}")
        if len(set(columns)) != len(columns):
            raise CodebookError("the frame has duplicated column names")
        out = {}
        for variable in self.variables:
            try:
                column = frame[variable.name].reset_index(drop=True)
                out[variable.name] = _CONVERTERS[variable.kind](column, variable)
            except CodebookError as exc:
                raise CodebookError(f"column {variable.name} ({variable.kind}): {exc}") from None
        return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))

    def as_frame(self) -> pd.DataFrame:
        """The codebook as a table (one row per variable), exported next to the data as CSV or an xlsx sheet.

        `values` lists each category as value = label; `codes` the numeric code that value has in the Stata and
        SPSS files (whose value labels show the label).
        """
        rows = [
            {
                "name": v.name,
                "label": v.label,
                "type": v.kind,
                "unit": v.unit,
                "definition": v.definition,
                "source": v.source,
                "values": "; ".join(f"{key} = {text}" for key, text in v.value_labels.items()),
                "codes": "; ".join(f"{code} = {key}" for key, code in v.codes.items()) if v.kind == "category" else "",
            }
            for v in self.variables
        ]
        return pd.DataFrame(rows, columns=["name", "label", "type", "unit", "definition", "source", "values", "codes"])

    def to_json(self) -> str:
        """The whole codebook as JSON (stored in Parquet's schema metadata)."""
        variables = [
            {
                "name": v.name, "label": v.label, "kind": v.kind, "unit": v.unit, "definition": v.definition,
                "source": v.source, "value_labels": [[key, text] for key, text in v.value_labels.items()],
            }
            for v in self.variables
        ]  # fmt: skip
        return json.dumps({"title": self.title, "variables": variables}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Codebook":
        data = json.loads(text)
        variables = [Variable(**{**v, "value_labels": dict(v["value_labels"])}) for v in data["variables"]]
        return cls(variables, title=data["title"])


def _missing(value) -> bool:
    return value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _bad(series: pd.Series, ok) -> None:
    """Raise naming the first row whose present value fails `ok`."""
    for position, value in enumerate(series.array):
        if not _missing(value) and not ok(value):
            raise CodebookError(f"row {position}: {value!r} ({type(value).__name__})")


def _string(series: pd.Series, variable: Variable) -> pd.Series:
    if not (pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype)):
        if not (pd.api.types.is_object_dtype(series.dtype) or series.isna().all()):
            raise CodebookError(f"expected strings, got dtype {series.dtype}")
        _bad(series, lambda v: isinstance(v, str))
    out = series.astype("str")
    return out.mask(out == "")


def _integer(series: pd.Series, variable: Variable) -> pd.Series:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise CodebookError("expected integers, got booleans")
    if pd.api.types.is_integer_dtype(dtype):
        out = series.astype("Int64")
    elif pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isnan(values) & (values != np.round(values))
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            raise CodebookError(f"row {position}: {values[position]!r} is not a whole number")
        out = series.astype("Int64")
    elif pd.api.types.is_object_dtype(dtype) or series.isna().all():
        _bad(series, lambda v: isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_))
        out = pd.Series([None if _missing(v) else int(v) for v in series.array], dtype="Int64")
    else:
        raise CodebookError(f"expected integers, got dtype {dtype}")
    too_big = out.abs() > MAX_EXACT_INTEGER
    if too_big.any():
        raise CodebookError(f"{out[too_big].iloc[0]} exceeds ±2**53, which doubles (Stata, SPSS, Excel) lose")
    return out


def _float(series: pd.Series, variable: Variable) -> pd.Series:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise CodebookError("expected numbers, got booleans")
    if pd.api.types.is_numeric_dtype(dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    elif pd.api.types.is_object_dtype(dtype) or series.isna().all():
        _bad(series, lambda v: isinstance(v, int | float | decimal.Decimal | np.number) and not isinstance(v, bool))
        values = np.array([np.nan if _missing(v) else float(v) for v in series.array], dtype="float64")
    else:
        raise CodebookError(f"expected numbers, got dtype {dtype}")
    if np.isinf(values).any():
        raise CodebookError(f"row {int(np.flatnonzero(np.isinf(values))[0])}: infinity (Stata and SPSS have none)")
    return pd.Series(values, dtype="float64")


def _date(series: pd.Series, variable: Variable) -> pd.Series:
    if pd.api.types.is_datetime64_dtype(series.dtype) and getattr(series.dtype, "tz", None) is None:
        has_time = series.notna() & (series != series.dt.normalize())
        if has_time.any():
            raise CodebookError(f"row {int(np.flatnonzero(has_time)[0])}: a date with a time of day")
        values = [None if _missing(v) else v.date() for v in series.array]
    elif pd.api.types.is_object_dtype(series.dtype) or series.isna().all():
        _bad(series, lambda v: isinstance(v, dt.date) and not isinstance(v, dt.datetime))
        values = [None if _missing(v) else v for v in series.array]
    else:
        raise CodebookError(f"expected dates, got dtype {series.dtype}")
    return pd.Series(values, dtype="object")


def _datetime(series: pd.Series, variable: Variable) -> pd.Series:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        out = series.dt.tz_convert("UTC")
    elif pd.api.types.is_object_dtype(series.dtype) or series.isna().all():
        _bad(series, lambda v: isinstance(v, dt.datetime) and v.utcoffset() is not None)
        out = pd.to_datetime(series.astype("object"), utc=True)
    else:
        raise CodebookError(f"expected time-zone-aware datetimes, got dtype {series.dtype}")
    return out.dt.as_unit("us")


def _category(series: pd.Series, variable: Variable) -> pd.Series:
    if variable.string_keys:
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype("object")
        out = _string(series, variable)
    else:
        out = _integer(series, variable)
    unknown = out.notna() & ~out.isin(list(variable.value_labels))
    if unknown.any():
        raise CodebookError(f"row {int(np.flatnonzero(unknown)[0])}: {out[unknown].iloc[0]!r} has no value label")
    return out


_CONVERTERS = {
    "string": _string,
    "integer": _integer,
    "float": _float,
    "date": _date,
    "datetime": _datetime,
    "category": _category,
}
