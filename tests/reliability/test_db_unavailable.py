"""Which database errors answer 503 + Retry-After (trial.db_unavailable): a server that cannot be reached does;
errors that a retry would not cure stay 500s. The full path under a real restart: test_postgres_restart.py."""

import pytest
from django.db import IntegrityError, OperationalError, connections

from tests.reliability.postgres_cluster import free_port
from trial.db_unavailable import is_database_unavailable


@pytest.mark.django_db
def test_a_server_that_refuses_connections_is_unavailable():
    default = connections["default"]
    unreachable = type(default)({**default.settings_dict, "PORT": str(free_port())})  # its own second connection
    try:
        unreachable.ensure_connection()
    except OperationalError as error:  # Django's error, wrapping the driver's
        assert error.__cause__ is not None and is_database_unavailable(error)
    else:
        raise AssertionError("nothing listens on that port")


def test_errors_a_retry_would_not_cure_stay_server_errors():
    assert not is_database_unavailable(IntegrityError("duplicate key value violates unique constraint"))
    assert not is_database_unavailable(ValueError("a bug"))
    assert not is_database_unavailable(None)
