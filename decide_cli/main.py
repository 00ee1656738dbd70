"""The `decide` command: check, run, test and format policies, and govern them in the registry.

Input: command-line arguments and files. Output: diagnostics and results on
stdout/stderr and the documented exit codes (docs/cli.md):
0 success, 1 policy errors or failing tests, 2 input errors,
3 evaluation errors, 4 the registry refused, 5 not signed in or not allowed, 6 the registry database is
unavailable, 7 the audit chain is broken, 64 wrong usage, 70 an internal error (a bug).
No traceback is ever shown unless DECIDE_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import click
import orjson

from compiler import COMPILER_VERSION, Policy, check_source, compile_source, read_policy_file
from compiler.evaluate import implementation
from compiler.evaluate.results import resolve_as_of
from compiler.plugins import installed_functions
from compiler.testcases import TestFileError, find_test_files, load_cases, run_cases
from decide_cli.bench import register as register_bench
from decide_cli.governance import RegistryExit, register
from decide_cli.inputs import InputFileError, read_list_file, read_records
from decide_cli.server import register as register_server
from decide_cli.simulate import register as register_simulate
from dsl.errors import DecideError, EvaluationError, InputError, PolicyError

EXIT_OK, EXIT_POLICY, EXIT_INPUT, EXIT_EVALUATION, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3, 64, 70


class CliExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class OutputClosed(Exception):
    """Standard output was closed by the reader (e.g. `decide run ... | head`): stop quietly."""


def _out(message: str) -> None:
    # click turns a broken pipe into exit status 1 ("policy errors"); a closed reader is not an error.
    try:
        click.echo(message)
    except BrokenPipeError:
        raise OutputClosed() from None


def _err(message: str) -> None:
    click.echo(message, err=True)


def _load_policy(path: str) -> Policy:
    try:
        return compile_source(read_policy_file(path), path, functions=installed_functions())
    except PolicyError as exc:
        _err(exc.render())
        raise CliExit(EXIT_POLICY) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Decide: check, run, test and format credit policies."""


@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    help="text for people, json for tools.",
)
def check(files: tuple[str, ...], output_format: str) -> None:
    """Report every error and warning in FILES (directories are searched for .policy files)."""
    found_error = False
    all_diagnostics: list[dict[str, Any]] = []
    errors = warnings = 0
    files = tuple(_expand_policy_paths(files))
    for path in files:
        try:
            data = read_policy_file(path)
            diagnostics, source = check_source(data, path, functions=installed_functions()), None
            if output_format == "text":
                from dsl import decode_source

                try:
                    source = decode_source(data, path)
                except PolicyError:
                    source = None
        except PolicyError as exc:
            diagnostics, source = exc.diagnostics, None
        for diagnostic in diagnostics:
            if diagnostic.is_error:
                errors += 1
                found_error = True
            else:
                warnings += 1
            if output_format == "text":
                _out(diagnostic.render(source))
            else:
                all_diagnostics.append(diagnostic.to_json())
    if output_format == "json":
        _out(orjson.dumps(all_diagnostics, option=orjson.OPT_INDENT_2).decode())
    else:
        _err(
            f"checked {len(files)} file{'s' if len(files) != 1 else ''}: "
            f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
        )
    raise CliExit(EXIT_POLICY if found_error else EXIT_OK)


def _expand_policy_paths(paths: tuple[str, ...]) -> list[str]:
    """Files as given; directories replaced by the .policy files below them (sorted)."""
    expanded: list[str] = []
    for path in paths:
        if Path(path).is_dir():
            found = sorted(str(p) for p in Path(path).rglob("*.policy"))
            expanded.extend(found or [path])
        else:
            expanded.append(path)
    return expanded


def _read_lists(policy: Policy, list_specs: tuple[str, ...]) -> dict[str, list[Any]]:
    """The members of each `--list NAME=FILE`; several files for one list are one list of all their members
    (a blacklist split over files must never lose a file)."""
    lists: dict[str, list[Any]] = {}
    for spec in list_specs:
        name, separator, list_path = spec.partition("=")
        if not separator or not name or not list_path:
            raise click.BadParameter(f"expected NAME=FILE, got {spec!r}", param_hint="--list")
        if name not in policy.store_lists:
            inline = any(item.name == name and item.inline for item in policy.info.lists)
            known = ", ".join(policy.store_lists) or "none"
            problem = (
                f"list '{name}' has its members written in the policy and cannot be supplied"
                if inline
                else f"the policy has no list '{name}'"
            )
            raise click.BadParameter(f"{problem} (lists to supply: {known})", param_hint="--list")
        try:
            lists.setdefault(name, []).extend(read_list_file(list_path, policy.store_lists[name]))
        except InputFileError as exc:
            _err(f"error: {exc}")
            raise CliExit(EXIT_INPUT) from None
    return lists


@cli.command()
@click.argument("policy_file", metavar="POLICY")
@click.option(
    "--input",
    "-i",
    "input_path",
    required=True,
    metavar="FILE|-",
    help="A JSON object, a JSON array of objects, or JSON Lines; - reads standard input.",
)
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="The evaluation date (today); defaults to the UTC date.")
@click.option(
    "--list", "list_specs", multiple=True, metavar="NAME=FILE", help="Members of list NAME, one per line (repeatable)."
)
@click.option("--ignore-extra", is_flag=True, help="Ignore input fields the policy does not declare.")
@click.option("--trace/--no-trace", default=True, help="Include the decision trace (default: on).")
@click.option("--pretty", is_flag=True, help="Indent a single result.")
@click.option(
    "--engine",
    type=click.Choice(["compiled", "reference"]),
    default="compiled",
    show_default=True,
    help="The compiled decision trees, or the reference interpreter (identical results).",
)
def run(
    policy_file: str,
    input_path: str,
    as_of: str | None,
    list_specs: tuple[str, ...],
    ignore_extra: bool,
    trace: bool,
    pretty: bool,
    engine: str,
) -> None:
    """Evaluate POLICY on the records in --input and print one result per record."""
    try:
        today = resolve_as_of(as_of)
    except EvaluationError as exc:
        raise click.BadParameter(str(exc).removeprefix("as_of: "), param_hint="--as-of") from None
    policy = _load_policy(policy_file)
    lists = _read_lists(policy, list_specs)
    try:
        single, records = read_records(input_path)
    except InputFileError as exc:
        _err(f"error: {exc}")
        raise CliExit(EXIT_INPUT) from None

    worst = EXIT_OK
    try:
        prepared_lists = policy.prepare_lists(lists)
    except (InputError, EvaluationError) as exc:
        _report_failure(exc, "", True)
        raise CliExit(EXIT_INPUT if isinstance(exc, InputError) else EXIT_EVALUATION) from None
    for position, record in enumerate(records, start=1):
        where = "" if single else f"record {position}: "
        try:
            if isinstance(record, InputFileError):
                raise record
            result = policy.evaluate(
                record, as_of=today, lists=prepared_lists, ignore_extra=ignore_extra, trace=trace, engine=engine
            )
        except (InputError, InputFileError) as exc:
            worst = max(worst, EXIT_INPUT)
            _report_failure(exc, where, single)
            continue
        except EvaluationError as exc:
            worst = max(worst, EXIT_EVALUATION)
            _report_failure(exc, where, single)
            continue
        option = orjson.OPT_INDENT_2 if pretty and single else 0
        _out(orjson.dumps(result, option=option).decode())
    raise CliExit(worst)


def _report_failure(exc: Exception, where: str, single: bool) -> None:
    if isinstance(exc, InputError):
        _err(f"{where}input error:")
        for error in exc.errors:
            _err(f"  {error}")
        body = exc.to_json()
    elif isinstance(exc, EvaluationError):
        _err(f"{where}evaluation error: {exc}")
        body = exc.to_json()
    else:
        _err(f"{where}input error: {exc}")
        body = {"kind": "input", "errors": [{"field": "", "code": "invalid_json", "message": str(exc)}]}
    if not single:
        _out(orjson.dumps({"error": body}).decode())


@cli.command(name="test")
@click.argument("paths", nargs=-1, required=True)
@click.option("--verbose", "-v", is_flag=True, help="Also list the cases that pass.")
def test_command(paths: tuple[str, ...], verbose: bool) -> None:
    """Run the test cases (NAME.tests.json) of the policies in PATHS; directories are searched recursively."""
    try:
        pairs = find_test_files(list(paths))
    except TestFileError as exc:
        _err(f"error: {exc}")
        raise CliExit(EXIT_POLICY) from None
    if not pairs:
        _err("error: no test files found (a policy NAME.policy keeps its cases in NAME.tests.json)")
        raise CliExit(EXIT_POLICY)
    passed = failed = 0
    for policy_path, tests_path in pairs:
        try:
            cases = load_cases(tests_path)
        except TestFileError as exc:
            _err(f"error: {exc}")
            failed += 1
            continue
        if not cases:
            _err(
                f"warning: {tests_path}: no test cases; every policy needs at least one "
                "(the registry refuses to submit a version without)"
            )
        try:
            policy = compile_source(read_policy_file(policy_path), str(policy_path), functions=installed_functions())
        except PolicyError as exc:
            _out(f"FAIL {policy_path}: the policy does not compile")
            _out(exc.render())
            failed += len(cases)
            continue
        for outcome in run_cases(policy, cases):
            if outcome.passed:
                passed += 1
                if verbose:
                    _out(f"ok   {tests_path}: {outcome.name}")
                continue
            failed += 1
            _out(f"FAIL {tests_path}: {outcome.name}")
            for failure in outcome.failures:
                _out(f"    {failure}")
    _out(f"{passed} passed, {failed} failed")
    raise CliExit(EXIT_POLICY if failed else EXIT_OK)


@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True, help="Only report files that are not formatted; change nothing.")
def fmt(files: tuple[str, ...], check_only: bool) -> None:
    """Rewrite FILES in the canonical layout (meaning never changes)."""
    from dsl.format import format_source

    status = EXIT_OK
    for path in _expand_policy_paths(files):
        try:
            data = read_policy_file(path)
            from dsl import decode_source

            original = decode_source(data, path)
            formatted = format_source(original, path)
        except PolicyError as exc:
            _err(exc.render())
            status = EXIT_POLICY
            continue
        if formatted == original:
            continue
        if check_only:
            _out(f"would reformat {path}")
            status = EXIT_POLICY
            continue
        _write_atomically(Path(path), formatted)
        _out(f"reformatted {path}")
    raise CliExit(status)


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so a crash never leaves half a policy. The file
    keeps the mode it had (a new one gets the usual 0666 less the umask, not mkstemp's 0600)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if path.exists():
            mode = path.stat().st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temporary, mode)
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@cli.command()
@click.argument("policy_file", metavar="POLICY")
@click.option("--dot", is_flag=True, help="Print the trees as a Graphviz digraph.")
@click.option("--input", "-i", "input_path", metavar="FILE|-", help="Show the path one record (a JSON object) takes.")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="The evaluation date for --input.")
@click.option("--list", "list_specs", multiple=True, metavar="NAME=FILE", help="List members for --input.")
@click.option("--ignore-extra", is_flag=True, help="Ignore input fields the policy does not declare.")
def explain(
    policy_file: str,
    dot: bool,
    input_path: str | None,
    as_of: str | None,
    list_specs: tuple[str, ...],
    ignore_extra: bool,
) -> None:
    """Print POLICY's compiled decision trees, or the path one record takes through them."""
    from compiler.explain import explain_dot, explain_path, explain_trees

    policy = _load_policy(policy_file)
    if input_path is None:
        _out((explain_dot(policy) if dot else explain_trees(policy)).rstrip("\n"))
        raise CliExit(EXIT_OK)
    try:
        today = resolve_as_of(as_of)
    except EvaluationError as exc:
        raise click.BadParameter(str(exc).removeprefix("as_of: "), param_hint="--as-of") from None
    lists = _read_lists(policy, list_specs)
    try:
        single, records = read_records(input_path)
        record = next(iter(records))
        if not single:
            raise InputFileError(f"{input_path}: explain takes one JSON object")
        _out(explain_path(policy, record, as_of=today, lists=lists, ignore_extra=ignore_extra).rstrip("\n"))
    except (InputFileError, InputError) as exc:
        _report_failure(exc, "", True)
        raise CliExit(EXIT_INPUT) from None
    except EvaluationError as exc:
        _report_failure(exc, "", True)
        raise CliExit(EXIT_EVALUATION) from None
    raise CliExit(EXIT_OK)


@cli.command()
def version() -> None:
    """Print the version and which evaluator is active."""
    _out(f"decide {COMPILER_VERSION}")
    _out(f"evaluator: {implementation.describe()}")


register(cli)
register_server(cli)
register_bench(cli)
register_simulate(cli)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns (and exits with) the documented exit code."""
    try:
        cli.main(args=argv, prog_name="decide", standalone_mode=False)
        code = EXIT_OK
    except (CliExit, RegistryExit) as exc:
        code = exc.code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE
    except click.exceptions.Abort:
        _err("aborted")
        code = 130
    except (BrokenPipeError, OutputClosed):
        code = EXIT_OK
        _silence_stdout()
    except DecideError as exc:
        _err(f"error: {exc}")
        code = EXIT_POLICY
    except Exception as exc:
        if os.environ.get("DECIDE_DEBUG"):
            traceback.print_exc()
        _err(f"internal error: {type(exc).__name__}: {exc} (this is a bug in Decide; set DECIDE_DEBUG=1 for details)")
        code = EXIT_INTERNAL
    if __name__ == "__main__" or argv is None:
        sys.exit(code)
    return code


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    main()
