"""The Spark session the engine runs in: ``local[N]`` or a cluster master, times in UTC,
Arrow transfers, and executors that run this Python (so they import this funnelprint)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"


def require_spark() -> None:
    """Refuse clearly where PySpark or a Java runtime is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ValueError("--engine spark needs PySpark: pip install 'funnelprint[spark]'"
                         ) from None
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ValueError("--engine spark needs a Java runtime (17 or later) on PATH or in "
                         "JAVA_HOME (Debian: apt-get install openjdk-17-jre-headless)")


@contextlib.contextmanager
def spark_session(master: str | None = None, shuffle_partitions: int = 8,
                  driver_memory: str | None = None) -> Iterator[SparkSession]:
    """A session on ``master`` (default ``local[2]``; ``spark://HOST:PORT`` for a
    standalone cluster), stopped afterwards. A session already running in this process on
    the same master is used as it is (and left running)."""
    require_spark()
    from pyspark.sql import SparkSession

    master = master or DEFAULT_MASTER
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master == master:
        yield active
        return
    if master.startswith("local") or "127.0.0.1" in master or "localhost" in master:
        # A laptop or CI machine: keep Spark off the network interfaces.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master).appName("funnelprint")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.executorEnv.PYSPARK_PYTHON", sys.executable)
    )
    # The customer sample is gathered on the driver (Arrow batches through its JVM).
    memory = driver_memory or os.environ.get("FUNNELPRINT_SPARK_DRIVER_MEMORY", "4g")
    builder = builder.config("spark.driver.memory", memory).config(
        "spark.driver.maxResultSize", memory)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


__all__ = ["DEFAULT_MASTER", "require_spark", "spark_session"]
