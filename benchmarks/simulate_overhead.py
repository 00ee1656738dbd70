"""What a back-test costs on top of the engine: `simulations.run` against `evaluate_batch` alone on the same rows,
and the peak memory of a run over ten times as many.

Input: `--rows N` (default 1,000,000) rows of Give Me Some Credit's applicants (the shared file, repeated and
written once as Parquet into a temporary directory; ../shared/data must be present), `--repeat K`. Output, as
text: the best of K wall times of (a) `evaluate_batch` on the whole table already in memory (the engine alone,
the file read before the clock starts), (b) `simulations.run` from the Parquet file (reading, mapping by name,
evaluating batch by batch, counting every figure and hit), (c) (b) and the HTML report; the overhead of (b)
and (c) over (a); then, with `--memory-rows M` (default 10,000,000), the peak resident memory of a child process
running (b) over M rows (its own high-water mark, VmHWM).

    python benchmarks/simulate_overhead.py --rows 1000000 --memory-rows 10000000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SOURCE = REPO.parent / "shared" / "data" / "give_me_some_credit" / "cs-training.csv"
COLUMNS = ("age", "MonthlyIncome", "DebtRatio", "RevolvingUtilizationOfUnsecuredLines",
           "NumberOfOpenCreditLinesAndLoans", "NumberRealEstateLoansOrLines", "NumberOfTimes90DaysLate",
           "NumberOfDependents", "SeriousDlqin2yrs")  # fmt: skip


def write_rows(rows: int, path: Path) -> None:
    """`rows` applicants, the shared file's repeated, as Parquet with the policy's types (DuckDB does the work)."""
    import duckdb

    query = (REPO / "simulations" / "examples" / "give_me_some_credit.sql").read_text()
    copies = -(-rows // 150_000)
    connection = duckdb.connect()
    connection.execute(f"CREATE VIEW data AS SELECT * FROM read_csv('{SOURCE}')")
    connection.execute(
        f"COPY (SELECT mapped.* FROM ({query}) AS mapped CROSS JOIN range({copies}) AS copies(n) LIMIT {rows}) "
        f"TO '{path}' (FORMAT parquet)"
    )


def best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-rows", type=int, default=10_000_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    import pyarrow.parquet as pq

    import simulations
    from compiler.policy import compile_file
    from simulations.report import render_html

    policy = compile_file(REPO / "policies" / "consumer_loan.policy")
    lists = {"blacklist": []}
    if arguments.child:  # the memory run, in a process of its own
        simulations.run(policy, [arguments.child], lists=lists, as_of="2026-12-01", label="SeriousDlqin2yrs")
        # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child would report
        # its parent's peak (here the parent's 10M-row file writing) instead of its own.
        status = Path("/proc/self/status").read_text()
        print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
        return 0
    if not SOURCE.exists():
        print(f"{SOURCE} is absent: this benchmark needs ../shared/data", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="decide-simulate-bench-") as directory:
        path = Path(directory) / "rows.parquet"
        write_rows(arguments.rows, path)
        table = pq.read_table(path)
        inputs = table.drop_columns(["SeriousDlqin2yrs"])
        prepared = policy.prepare_lists(lists)
        engine = best(lambda: policy.evaluate_batch(inputs, lists=prepared, as_of="2026-12-01"), arguments.repeat)

        def simulate():
            return simulations.run(policy, [path], lists=lists, as_of="2026-12-01", label="SeriousDlqin2yrs")

        backtest = best(simulate, arguments.repeat)
        result = simulate()
        with_report = backtest + best(lambda: render_html(result), arguments.repeat)
        print(f"{arguments.rows:,} rows of Parquet, best of {arguments.repeat}:")
        print(f"  evaluate_batch alone (table in memory)   {engine:7.2f} s")
        print(f"  simulations.run (read, evaluate, count)  {backtest:7.2f} s   overhead {backtest / engine - 1:+.0%}")
        overhead = with_report / engine - 1
        print(f"  ... and the HTML report                  {with_report:7.2f} s   overhead {overhead:+.0%}")
        if arguments.memory_rows:
            big = Path(directory) / "big.parquet"
            write_rows(arguments.memory_rows, big)
            child = subprocess.run([sys.executable, __file__, "--child", str(big)], capture_output=True, text=True,
                                   check=True)  # fmt: skip
            peak_kib = int(child.stdout.strip().splitlines()[-1])
            print(f"  peak memory of simulations.run over {arguments.memory_rows:,} rows: {peak_kib / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
