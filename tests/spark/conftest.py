"""Spark for the engine tests: one ``local[2]`` session for the module, which the commands
run in this process use as it is. Without PySpark or a Java runtime the tests skip with a
message; ``FUNNELPRINT_REQUIRE_SPARK`` (set by CI) turns that into a failure."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator

import pytest

REQUIRE_SPARK = "FUNNELPRINT_REQUIRE_SPARK"


def _missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "PySpark not installed (pip install 'funnelprint[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime on PATH"
    return None


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    missing = _missing()
    if missing:
        if os.environ.get(REQUIRE_SPARK):
            pytest.fail(f"{missing} and {REQUIRE_SPARK} is set")
        pytest.skip(f"{missing}: Spark engine tests skipped")
    from funnelprint.spark.session import spark_session

    with spark_session("local[2]", shuffle_partitions=4) as session:
        yield session
