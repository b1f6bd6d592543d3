"""The fast tier's store tests (tests/unit/test_run_store.py) again, on a real PostgreSQL
(tests/pg_support.py): the same face, the same answers. Each test gets a fresh database."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pg_support import pg_database_url, postgres_server  # noqa: F401 (fixtures)
from webapp.store import Limits, Store

_spec = importlib.util.spec_from_file_location("unit_run_store", Path(__file__).parent / "unit" / "test_run_store.py")
_unit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_unit)
globals().update({name: test for name, test in vars(_unit).items() if name.startswith("test_")})


@pytest.fixture
def database(pg_database_url) -> str:
    return pg_database_url


@pytest.fixture
def store(database):
    with Store(database, Limits()) as s:
        yield s
