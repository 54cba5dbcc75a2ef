"""The trait pipeline on Spark: journeys prepared on the executors, the model fitted on the
driver from a sample of customers, every customer profiled on the executors.

* :func:`spark_dataset` reads an event file on Spark (:mod:`funnelprint.spark.events`) and
  brings a sample of whole customers to the driver as the :class:`~funnelprint.data.dataset.
  Dataset` the local pipeline would build from those customers' events. Customers are drawn by
  a hash of their id (``crc32("<seed>:<id>")``), so the same seed draws the same customers on
  any engine; a log under ``sample_events`` is taken whole, and then the fitted model is the
  one ``funnelprint fit`` fits locally.
* :func:`profile_spark` profiles every customer with a fitted model: the model directory is
  shipped to the executors (``SparkContext.addArchive``), loaded once per Python worker, and each
  group of customers (a hash bucket) is profiled by the model's own ``profile_events``; the
  profiles are written as partitioned Parquet.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from funnelprint.data.dataset import Dataset
from funnelprint.data.load import DEFAULT_TIME_BOUNDS, OnError
from funnelprint.data.schema import ColumnMapping
from funnelprint.data.sessions import SessionConfig
from funnelprint.spark.events import SparkEvents, read_journeys, to_local
from funnelprint.spark.session import spark_session

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from funnelprint.models.traits import TraitsRecommender

log = logging.getLogger(__name__)

#: Events of the customer sample the model is fitted on, by default.
SAMPLE_EVENTS = 10_000_000
#: Events per group of customers profiled together on an executor.
GROUP_EVENTS = 250_000
_MODELS: dict[str, Any] = {}


def in_sample(seed: int, fraction: float) -> Any:
    """Spark condition: the customer's ``crc32("<seed>:<id>")`` falls in the first
    ``fraction`` of its range (:func:`sample_customers` is the same rule in Python)."""
    from pyspark.sql import functions as F

    threshold = int(fraction * 2**32)
    return F.crc32(F.concat(F.lit(f"{seed}:"), F.col("customer_id"))) < threshold


def sample_customers(customer_ids: pl.Series, seed: int, fraction: float) -> pl.Series:
    """Whether each customer is in the sample of :func:`in_sample`."""
    import zlib

    threshold = int(fraction * 2**32)
    return customer_ids.map_elements(lambda c: zlib.crc32(f"{seed}:{c}".encode()) < threshold,
                                     return_dtype=pl.Boolean)


def _work_dir(parent: Path | None) -> Path:
    return Path(tempfile.mkdtemp(prefix="funnelprint-spark-", dir=parent))


def prepare(spark: SparkSession, path: Path, work: Path, mapping: ColumnMapping | None,
            on_error: OnError, gap_minutes: float) -> SparkEvents:
    prepared = read_journeys(spark, path, work, mapping, on_error,
                             SessionConfig(gap_minutes=gap_minutes), DEFAULT_TIME_BOUNDS)
    # Written once: the sample, the counts and the profiles read the journeys again.
    journeys = str(work / "journeys")
    prepared.frame.write.mode("overwrite").parquet(journeys)
    prepared.frame = spark.read.parquet(journeys)
    prepared.events = prepared.frame.count()
    for reason, count in sorted(prepared.dropped.items()):
        log.warning("%s: dropped %d row(s): %s", path, count, reason)
    if not prepared.rows_read:
        raise ValueError(f"{path}: no events in the file (a header and no rows)")
    if not prepared.events:
        dropped = ", ".join(f"{n:,} {r}" for r, n in prepared.dropped.items())
        raise ValueError(f"{path}: no events left to use (dropped: {dropped})")
    return prepared


def spark_dataset(path: Path, mapping: ColumnMapping | None = None,
                  on_error: OnError = "raise", gap_minutes: float = 30.0,
                  products: pl.DataFrame | None = None, master: str | None = None,
                  sample_events: int = SAMPLE_EVENTS, seed: int = 0,
                  work_parent: Path | None = None) -> tuple[Dataset, dict[str, Any]]:
    """The dataset of a customer sample of an event file, prepared on Spark (see the module
    docstring), and a summary of the run (events read, dropped, sampled)."""
    work = _work_dir(work_parent)
    try:
        with spark_session(master) as spark:
            return _sample_dataset(spark, path, work, mapping, on_error, gap_minutes, products,
                                   sample_events, seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sample_dataset(spark: SparkSession, path: Path, work: Path, mapping: ColumnMapping | None,
                    on_error: OnError, gap_minutes: float, products: pl.DataFrame | None,
                    sample_events: int, seed: int) -> tuple[Dataset, dict[str, Any]]:
    prepared = prepare(spark, path, work, mapping, on_error, gap_minutes)
    fraction = min(1.0, sample_events / prepared.events)
    sample = prepared.frame if fraction >= 1.0 else prepared.frame.filter(
        in_sample(seed, fraction))
    frame = to_local(sample.toArrow())
    if not frame.height:
        raise ValueError(f"{path}: the customer sample is empty; raise --sample-events")
    dataset = Dataset.from_events(frame.drop("__pos"), name=path.stem,
                                  collapse_repeats=False, products=products)
    summary = {"engine": "spark", "master": spark.sparkContext.master,
               "events": prepared.events, "rows_read": prepared.rows_read,
               "dropped": dict(prepared.dropped), "sample_fraction": round(fraction, 6),
               "sample_events": frame.height, "sample_customers": dataset.n_customers}
    return dataset, summary


def _executor_model(path: str) -> TraitsRecommender:
    """The model of a shipped directory, loaded once per Python worker."""
    model: TraitsRecommender | None = _MODELS.get(path)
    if model is None:
        from funnelprint.models import load
        from funnelprint.models.traits import TraitsRecommender

        loaded = load(path)
        assert isinstance(loaded, TraitsRecommender)
        _MODELS.clear()
        _MODELS[path] = model = loaded
    return model


def _profile_schema(traits: int) -> Any:
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    return StructType([StructField("customer_id", StringType()),
                       *(StructField(f"trait_{j}", DoubleType()) for j in range(traits)),
                       StructField("segment", LongType()), StructField("cold_start", BooleanType()),
                       StructField("known_tokens", LongType()),
                       StructField("guess", StringType()), StructField("confidence", DoubleType())])


def profile_frame(prepared: DataFrame, model_dir: Path, traits: int, events: int, work: Path
                  ) -> DataFrame:
    """Profiles of every customer of ``prepared`` (Spark), groups of customers profiled by
    the model of ``model_dir`` on the executors."""
    from pyspark import SparkFiles
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import to_arrow_schema

    spark = prepared.sparkSession
    # Shipped as an archive (a cluster takes no directories), unpacked on every executor.
    name = f"funnelprint-model-{uuid.uuid4().hex}"
    archive = shutil.make_archive(str(work / name), "zip", root_dir=model_dir)
    spark.sparkContext.addArchive(archive)
    name += ".zip"
    buckets = max(1, events // GROUP_EVENTS)
    bucketed = prepared.withColumn("__bucket", F.pmod(F.crc32(F.col("customer_id")), buckets))
    schema = _profile_schema(traits)
    arrow_schema = to_arrow_schema(schema)

    def profile_group(table: pa.Table) -> pa.Table:
        model = _executor_model(SparkFiles.get(name))
        frame = to_local(table.drop(["__bucket"]))
        out = model.profile_events(frame.drop("__pos"))
        return out.to_arrow().cast(arrow_schema)

    return bucketed.groupBy("__bucket").applyInArrow(profile_group, schema)


def profile_spark(path: Path, model_dir: Path, out: Path, traits: int,
                  mapping: ColumnMapping | None = None, on_error: OnError = "raise",
                  gap_minutes: float = 30.0, master: str | None = None,
                  work_parent: Path | None = None) -> dict[str, Any]:
    """Profile every customer of an event file on Spark into a Parquet directory ``out``
    (replaced once complete); returns a summary of the run."""
    work = _work_dir(work_parent)
    try:
        with spark_session(master) as spark:
            return _profile_all(spark, path, model_dir, out, traits, work, mapping, on_error,
                                gap_minutes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _profile_all(spark: SparkSession, path: Path, model_dir: Path, out: Path, traits: int,
                 work: Path, mapping: ColumnMapping | None, on_error: OnError,
                 gap_minutes: float) -> dict[str, Any]:
    from pyspark.sql import functions as F

    prepared = prepare(spark, path, work, mapping, on_error, gap_minutes)
    profiles = profile_frame(prepared.frame, model_dir.resolve(), traits, prepared.events,
                             work)
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    profiles.write.mode("overwrite").parquet(str(partial))
    written = spark.read.parquet(str(partial)).agg(
        F.count("*").alias("profiles"),
        F.sum(F.col("cold_start").cast("long")).alias("cold")).first()
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    partial.replace(out)
    return {"engine": "spark", "master": spark.sparkContext.master,
            "events": prepared.events, "dropped": dict(prepared.dropped),
            "profiles": int(written["profiles"]) if written else 0,
            "cold_start": int(written["cold"] or 0) if written else 0}


__all__ = ["GROUP_EVENTS", "SAMPLE_EVENTS", "in_sample", "profile_frame", "profile_spark",
           "sample_customers", "spark_dataset"]
