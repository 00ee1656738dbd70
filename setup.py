"""Decide: a rules and decision management server for lenders.

Builds the Cython kernel `compiler._fastpath` and the Arrow column encoder
`compiler.evaluate._encode_columns` when a C compiler is present;
without one the install still succeeds and the pure-Python twin is used,
unless DECIDE_REQUIRE_CYTHON=1 (CI sets it), which makes a failed build an
error.
"""

import os

from setuptools import Extension, find_packages, setup

REQUIRE_CYTHON = os.environ.get("DECIDE_REQUIRE_CYTHON") == "1"


def extensions() -> list:
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_CYTHON:
            raise
        return []
    built = cythonize(
        [
            Extension("compiler._fastpath", ["compiler/_fastpath.pyx"]),
            Extension("compiler.evaluate._encode_columns", ["compiler/evaluate/_encode_columns.pyx"]),
            Extension("compiler.evaluate._vouch", ["compiler/evaluate/_vouch.pyx"]),
        ],
        compiler_directives={"language_level": "3"},
        quiet=True,
    )
    # cythonize() returns new Extension objects and drops `optional`; set it again on what it returns.
    for extension in built:
        extension.optional = not REQUIRE_CYTHON
    return built


setup(
    name="decide",
    version="0.2.0",
    description="Rules and decision management for lenders: a policy language compiled to decision trees",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(
        include=[
            *("dsl", "dsl.*", "compiler", "compiler.*", "registry", "registry.*"),
            *("decision_server", "decision_server.*", "decide_cli", "decide_cli.*"),
            *("simulations", "simulations.*"),
        ]
    ),
    package_data={
        "dsl": ["grammar.lark"],
        "compiler": ["_fastpath.pyx", "_fastpath.pxd", "_fastpath.pyi", "py.typed"],
        "compiler.evaluate": ["_encode_columns.pyx", "_encode_columns.pyi", "_vouch.pyx", "_vouch.pyi"],
        "registry": ["migrations/script.py.mako", "migrations/env.py", "migrations/versions/*.py"],
    },
    ext_modules=extensions(),
    install_requires=[
        "lark>=1.2,<2",
        "orjson>=3.9",
        "click>=8.1",
        "numpy>=1.26",
        "pyarrow>=15",
        "pluggy>=1.5",  # plugins (compiler/plugins.py): hook specifications, entry points of group "decide"
        # The registry (README, "Dependencies"): tables and sessions, schema migrations, the PostgreSQL driver,
        # password hashing.
        "sqlmodel>=0.0.45",  # UTCDateTime: aware datetimes on SQLite too
        "sqlalchemy>=2.0.30",
        "alembic>=1.13",
        "psycopg[binary]>=3.1",
        "argon2-cffi>=23.1",
        # The decision server (README, "Dependencies"): the web framework and its WSGI server, Prometheus
        # metrics that add up across gunicorn's workers, sealing personal data in the decision log.
        "flask>=3.0",
        "gunicorn>=22",
        "prometheus_client>=0.20",
        "cryptography>=42",
        # Back-testing (simulations/): reads CSV, Parquet and JSON Lines natively and runs the analyst's mapping
        # query in SQL, handing back Arrow batches, instead of a CSV reader and a mapping language of our own.
        "duckdb>=1.1",
        "rich>=13",  # decide simulate's progress bar (rows, rows/s, time left) on a terminal
        "matplotlib>=3.8",  # the back-test report's charts, drawn server-side as inline SVG
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "pytest-benchmark>=4",
            "ruff==0.17.6",
            "pandas>=2,<3",  # below 3 for pyspark 4 (stack notes), which warns and may misbehave on pandas 3
            "pillow>=10",  # reading the report's Chromium screenshot (it also comes with matplotlib)
            # The Spark engine's tests run a local[2] session (Java from Debian, installed by .ci/run).
            "pyspark>=4.0,<5",
            "jsonschema>=4.20",
            # A throwaway PostgreSQL cluster per test session (tests/databases.py).
            "pytest-postgresql>=10,<11",
            # Property-based tests of the HTTP API against its own OpenAPI document.
            "schemathesis>=3.30,<4",
        ],
        # The peers the benchmarks compare against (benchmarks/test_bench_peers.py): GoRules zen-engine, and
        # Cython to build the hand-written columnar loop. A missing peer fails its benchmark.
        "bench": ["zen-engine>=0.40", "cython>=3.0"],
        # Back-tests on Spark (decide simulate --engine spark); pandas below 3 as pyspark 4 asks.
        "spark": ["pyspark>=4.0,<5", "pandas>=2,<3"],
    },
    entry_points={"console_scripts": ["decide=decide_cli.main:main"]},
)
