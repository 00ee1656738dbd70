"""The Spark engine (`--engine spark`) on a real local[2] session: its figures equal the local engine's exactly
— every metric, the other version's, the comparison with its sample — on data Spark splits into several
partitions; a query Spark cannot analyse is a clear error. Needs Java and pyspark (installed by CI).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import simulations
from tests.components import require_executable, require_module
from tests.simulations.test_compare import STRICTER
from tests.simulations.test_run import LISTS, POLICY, applicants

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark():
    require_executable("Java (Debian package default-jre-headless)", "java")
    require_module("pyspark", "pyspark")
    from simulations import spark_engine

    session = spark_engine.session()
    session.conf.set("spark.sql.files.maxPartitionBytes", "16k")  # several partitions even for this small file
    return session


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = applicants(4000, seed=17)
    frame["group"] = (frame["age"] % 3).astype(str)
    path = tmp_path_factory.mktemp("spark") / "applicants.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=250)
    return path


def test_spark_gives_exactly_the_local_figures(spark, data: Path) -> None:
    options = dict(against=POLICY, lists=LISTS, as_of="2026-12-01", label="bad",
                   segments=["NumberRealEstateLoansOrLines"], protected=["group"], batch_rows=300)  # fmt: skip
    local = simulations.run(STRICTER, [data], **options).to_json()
    distributed = simulations.run(STRICTER, [data], engine="spark", **options)
    assert distributed.batches > 1
    remote = distributed.to_json()
    assert spark.read.parquet(str(data)).rdd.getNumPartitions() > 1
    for part in ("metrics", "against", "comparison"):
        assert remote[part] == local[part], part
    assert remote["metrics"]["rows"] == 4000 and remote["comparison"]["sample"]


def test_a_query_spark_cannot_analyse_is_a_clear_error(spark, data: Path) -> None:
    with pytest.raises(simulations.SimulationError, match=r"the mapping query failed on Spark: .*nowhere"):
        simulations.run(POLICY, [data], query="SELECT nowhere FROM data", lists=LISTS, engine="spark")


def test_baseline_is_not_yet_on_spark(data: Path) -> None:
    with pytest.raises(simulations.SimulationError, match="--baseline and --decisions are not available with --engine"):
        simulations.run(POLICY, [data], baseline=[data], lists=LISTS, engine="spark")
