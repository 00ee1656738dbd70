"""Decide: a rules and decision management server for lenders."""

from setuptools import find_packages, setup

setup(
    name="decide",
    version="0.1.0",
    description="Rules and decision management for lenders: a policy language compiled to decision trees",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["dsl", "dsl.*", "compiler", "compiler.*", "decide_cli", "decide_cli.*"]),
    package_data={"dsl": ["grammar.lark"]},
    install_requires=[
        "lark>=1.2,<2",
        "orjson>=3.9",
        "click>=8.1",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "pytest-benchmark>=4",
            "ruff>=0.6",
        ],
    },
    entry_points={"console_scripts": ["decide=decide_cli.main:main"]},
)
