"""Back-testing: a policy version replayed over historical data, with metrics that merge across batches.

Stages, each a module with one entry function:

1. `data.open_data` — files (CSV, Parquet, JSON Lines; several, or a directory) and an optional SQL mapping
   query, run by DuckDB, into a stream of Arrow record batches of bounded size.
2. `aggregates.Aggregate` — the partial aggregate of one batch's results (`Aggregate.of`), merged exactly with
   others (`merge`), whatever the batch boundaries.
3. `run.run` — the two together over a policy: evaluate every batch (`evaluate_batch`) and fold the aggregates.

Nothing here imports Flask or the registry: the CLI, the admin UI and Spark executors call the same functions.
"""

from simulations.aggregates import Aggregate
from simulations.data import DataSource, SimulationError, open_data
from simulations.run import SimulationResult, run

__all__ = ["Aggregate", "DataSource", "SimulationError", "SimulationResult", "open_data", "run"]
