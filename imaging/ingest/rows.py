"""Insert an import's many instance and UID-map rows with one statement each.

Why: Django's bulk_create builds a model object for every row and prepares every field value in Python
(some 45 µs a row: 14 ms of a 150-slice import, a tenth of it), though these values are plain already
(text, whole numbers, a stored file's name, a key). On PostgreSQL they go in as one array per column
(`INSERT … SELECT FROM UNNEST(…)`, the statement Django itself sends for bulk_create there), each array cast
to its column's type without the length (a value too long for its column is refused, not cut); on other
databases (the demo's SQLite) through bulk_create as before.
"""

from django.db import connection


def insert_rows(model, columns: dict[str, list], *, ignore_conflicts: bool = False) -> None:
    """Insert one row per position of the equally long value lists in `columns` (field name → values).

    Values must be what the database stores: a foreign key's id, a file's name, None for NULL. Every
    field of the model but its automatic primary key must be given (the caller lists them all)."""
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    names = {field.name for field in fields}
    if set(columns) != names:
        raise ValueError(f"{model.__name__}: give exactly {sorted(names)}, not {sorted(columns)}.")
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"{model.__name__}: the value lists differ in length ({sorted(lengths)}).")
    if not lengths.pop():
        return
    if connection.vendor != "postgresql":
        rows = zip(*(columns[field.name] for field in fields), strict=True)
        objects = [model(**{field.attname: value for field, value in zip(fields, row, strict=True)}) for row in rows]
        model.objects.bulk_create(objects, ignore_conflicts=ignore_conflicts)
        return
    quote = connection.ops.quote_name
    targets = ", ".join(quote(field.column) for field in fields)
    # Cast to the bare type (varchar, not varchar(64)), as Django does: an explicit cast to varchar(64) would
    # cut a longer value silently, where storing it into the column refuses it (DataError).
    arrays = ", ".join(f"%s::{field.db_type(connection).split('(')[0]}[]" for field in fields)
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({targets}) SELECT * FROM UNNEST({arrays}){conflict}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(columns[field.name]) for field in fields])
