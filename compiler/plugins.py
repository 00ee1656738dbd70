"""Plugins: the hooks a plugin package implements (pluggy), and collecting what each plugin gives.

Input: plugin objects (modules or instances whose functions are marked `@hookimpl`), given directly or found
as setuptools entry points of group "decide". Output: a `pluggy.PluginManager` (`plugin_manager`) and, per
hook, the spec objects the plugins declared (`collect_functions`, `collect_list_sources`, `collect_enrichers`,
`collect_listeners`, or all four at once with `collect_plugins`), with a message for every plugin that was
skipped because its hook raised or returned something that is not a list of that hook's spec objects.

Every hook takes no argument and returns a list of frozen spec objects, so that one plugin's hook can be
called, and fail, on its own: a broken plugin is skipped, never the whole set. Two plugins declaring the
same name (or a function named like a built-in) are refused with a `PluginError` naming both: which one a
policy meant cannot be guessed.

Nothing here runs unless a caller asks: compiling a policy never loads a plugin (`compile_source` takes
`functions=` explicitly).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pluggy

from compiler import types as T
from compiler.builtins import BUILTINS
from dsl.errors import DecideError
from dsl.parser import RESERVED_WORDS

PROJECT = "decide"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Element types a named list can hold (compiler.evaluate.lists.prepare_list).
_LIST_ELEMENT_TYPES = ("string", "int", "number", "date")


class PluginError(DecideError):
    """A plugin or a plugin function that cannot be used as given; `code` says why (docs/language.md)."""

    kind = "plugin"

    def __init__(self, message: str, code: str) -> None:
        self.message = message
        self.code = code
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "code": self.code, "message": self.message}


def _check_name(kind: str, name: object) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED_WORDS:
        raise PluginError(
            f"{kind} name {name!r} is not a name a policy can write (letters, digits and _, not a reserved word)",
            code="bad_plugin_spec",
        )


def _type_name(kind: str, name: str, text: object) -> str:
    """The canonical spelling of a declared type ("list  of int" -> "list of int"), or PluginError."""
    parsed = T.from_name(text) if isinstance(text, str) else None
    if parsed is None:
        raise PluginError(
            f"{kind} {name}: {text!r} is not a type; use int, number, bool, string, date or list of one of them",
            code="bad_plugin_spec",
        )
    return str(parsed)


def _names(kind: str, name: str, what: str, values: object) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise PluginError(f"{kind} {name}: {what} must be a tuple of names, not {values!r}", code="bad_plugin_spec")
    names = tuple(values)
    for value in names:
        _check_name(f"{kind} {name}: {what[:-1]}", value)
    return names


@dataclass(frozen=True)
class FunctionSpec:
    """A function a policy can call like a built-in, with the types the checker checks its calls against.

    `parameters` and `result` are type names as the language writes them ("int", "number", "bool", "string",
    "date", "list of T"). The implementation gets one Python value per parameter (a `number` parameter always
    a float, an `int` an int, a `date` a `datetime.date`, a list a list) and returns a value of the result type,
    or None for missing. With `propagates_missing` (the default) a missing argument gives a missing result
    without calling it; without, it gets None for a missing argument.
    """

    name: str
    parameters: tuple[str, ...]
    result: str
    implementation: Callable[..., Any]
    propagates_missing: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("function", self.name)
        if isinstance(self.parameters, str) or not isinstance(self.parameters, Iterable):
            raise PluginError(
                f"function {self.name}: parameters must be a tuple of type names, not {self.parameters!r}",
                code="bad_plugin_spec",
            )
        # Frozen, so normalised through object.__setattr__: a list given for `parameters` would not hash.
        parameters = tuple(_type_name("function", self.name, p) for p in self.parameters)
        object.__setattr__(self, "parameters", parameters)
        object.__setattr__(self, "result", _type_name("function", self.name, self.result))
        if not callable(self.implementation):
            raise PluginError(f"function {self.name}: the implementation is not callable", code="bad_plugin_spec")
        object.__setattr__(self, "propagates_missing", bool(self.propagates_missing))

    @property
    def usage(self) -> str:
        """How a call is written, with the parameter types: `annual_payment(number, number, int)`."""
        return f"{self.name}({', '.join(self.parameters)})"

    @property
    def signature(self) -> str:
        """`annual_payment(number, number, int) -> number`, with `(passes missing on)` when it is called with
        missing arguments."""
        text = f"{self.usage} -> {self.result}"
        return text if self.propagates_missing else text + " (passes missing on)"

    def signature_json(self) -> dict[str, Any]:
        """What a compiled policy records of the function: everything that decides what a call means."""
        return {
            "name": self.name,
            "parameters": list(self.parameters),
            "result": self.result,
            "propagates_missing": self.propagates_missing,
        }


@dataclass(frozen=True)
class ListSource:
    """Where the members of a named list come from: `fetch()` returns (revision, members)."""

    name: str
    element_type: str
    fetch: Callable[[], tuple[str, list]]

    def __post_init__(self) -> None:
        _check_name("list source", self.name)
        if self.element_type not in _LIST_ELEMENT_TYPES:
            raise PluginError(
                f"list source {self.name}: element type {self.element_type!r} is not one of "
                f"{', '.join(_LIST_ELEMENT_TYPES)}",
                code="bad_plugin_spec",
            )
        if not callable(self.fetch):
            raise PluginError(f"list source {self.name}: fetch is not callable", code="bad_plugin_spec")

    def prepare(self):
        """Fetch and prepare the list once: a `PreparedList` at the revision the source gave."""
        from compiler.evaluate.lists import prepare_list  # the evaluation layer, only when a list is fetched

        revision, members = self.fetch()
        return prepare_list(self.name, self.element_type, members, revision=str(revision))


@dataclass(frozen=True)
class Enricher:
    """Adds `fields` to a record before it is decided: `fetch(record)` returns {field: value}.

    `timeout_seconds` is how long the caller waits for it; `policies` names the policies it applies to
    (None: every policy that declares one of its fields).
    """

    name: str
    fields: tuple[str, ...]
    fetch: Callable[[dict], dict]
    timeout_seconds: float = 0.2
    policies: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_name("enricher", self.name)
        object.__setattr__(self, "fields", _names("enricher", self.name, "fields", self.fields))
        if not self.fields:
            raise PluginError(f"enricher {self.name}: it adds no field", code="bad_plugin_spec")
        if not callable(self.fetch):
            raise PluginError(f"enricher {self.name}: fetch is not callable", code="bad_plugin_spec")
        timeout = self.timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise PluginError(
                f"enricher {self.name}: timeout_seconds must be a positive number of seconds, not {timeout!r}",
                code="bad_plugin_spec",
            )
        object.__setattr__(self, "timeout_seconds", float(timeout))
        if self.policies is not None:
            object.__setattr__(self, "policies", _names("enricher", self.name, "policies", self.policies))


@dataclass(frozen=True)
class Listener:
    """Told about every decision: `on_decision(event)` with the decision as a JSON-able dict."""

    name: str
    on_decision: Callable[[dict], None]

    def __post_init__(self) -> None:
        _check_name("listener", self.name)
        if not callable(self.on_decision):
            raise PluginError(f"listener {self.name}: on_decision is not callable", code="bad_plugin_spec")


class HookSpecs:
    """The hooks, each returning a list of spec objects (so each plugin can be called, and fail, alone)."""

    @hookspec
    def decide_functions(self) -> list[FunctionSpec]:
        """Functions policies can call, with their signatures."""
        raise NotImplementedError

    @hookspec
    def decide_list_sources(self) -> list[ListSource]:
        """Sources of the members of named lists."""
        raise NotImplementedError

    @hookspec
    def decide_enrichers(self) -> list[Enricher]:
        """Fetchers of extra input fields."""
        raise NotImplementedError

    @hookspec
    def decide_listeners(self) -> list[Listener]:
        """Observers of decisions."""
        raise NotImplementedError


def plugin_manager(load_entry_points: bool = True, plugins: Iterable[object] = ()) -> pluggy.PluginManager:
    """A manager with the hook specifications, the installed plugins (setuptools entry points of group
    "decide", unless `load_entry_points=False`) and `plugins` registered.

    A plugin whose module cannot be imported makes this raise (pluggy loads the entry points one after the
    other); a plugin that imports but fails in its hooks is skipped by the `collect_*` helpers.
    """
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(HookSpecs)
    if load_entry_points:
        manager.load_setuptools_entrypoints(PROJECT)
    for plugin in plugins:
        # A module also installed as an entry point is registered once (pluggy refuses it twice).
        if not manager.is_registered(plugin):
            manager.register(plugin, name=_plugin_name(manager, plugin))
    return manager


def _plugin_name(manager: pluggy.PluginManager, plugin: object) -> str:
    """A module's name, or an instance's class name (pluggy's default would be its id()), made unique."""
    name = getattr(plugin, "__name__", None) or type(plugin).__qualname__
    unique, count = name, 1
    while manager.has_plugin(unique):
        count += 1
        unique = f"{name}#{count}"
    return unique


_Spec = TypeVar("_Spec", FunctionSpec, ListSource, Enricher, Listener)


def _collect(manager: pluggy.PluginManager, hook: str, spec_type: type[_Spec]) -> tuple[dict[str, _Spec], list[str]]:
    """Call each plugin's implementation of `hook` on its own; (name -> spec with its plugin, problems)."""
    found: dict[str, _Spec] = {}
    owner: dict[str, str] = {}
    problems: list[str] = []
    word = {FunctionSpec: "function", ListSource: "list source", Enricher: "enricher", Listener: "listener"}[spec_type]
    for impl in getattr(manager.hook, hook).get_hookimpls():  # in the order the plugins were registered
        if impl.hookwrapper or impl.wrapper:
            continue  # a wrapper wraps the others' calls; called alone it would be a generator
        plugin = impl.plugin_name
        try:
            given = impl.function()
        except Exception as exc:  # a plugin's own failure, whatever it is: skip that plugin
            problems.append(f"plugin '{plugin}': {hook} raised {type(exc).__name__}: {exc}; it is skipped")
            continue
        given = [] if given is None else given
        if not isinstance(given, (list, tuple)) or not all(isinstance(item, spec_type) for item in given):
            problems.append(
                f"plugin '{plugin}': {hook} must return a list of {spec_type.__name__}, "
                f"not {_describe(given, spec_type)}; it is skipped"
            )
            continue
        for item in given:
            if spec_type is FunctionSpec and item.name in BUILTINS:
                raise PluginError(
                    f"plugin '{plugin}' declares a function {item.name}, which is the name of a built-in function",
                    code="function_clashes_with_builtin",
                )
            if item.name in owner:
                raise PluginError(
                    f"plugins '{owner[item.name]}' and '{plugin}' both declare a {word} named {item.name}; "
                    "uninstall or unregister one of them",
                    code="duplicate_plugin_name",
                )
            found[item.name], owner[item.name] = item, plugin
    return found, problems


def _describe(value: object, spec_type: type) -> str:
    if isinstance(value, (list, tuple)):
        odd = next(item for item in value if not isinstance(item, spec_type))
        return f"a list holding {type(odd).__name__}"
    return type(value).__name__


def collect_functions(manager: pluggy.PluginManager) -> tuple[dict[str, FunctionSpec], list[str]]:
    """Every plugin's functions by name (what `compile_source(..., functions=)` takes), and the problems."""
    return _collect(manager, "decide_functions", FunctionSpec)


def collect_list_sources(manager: pluggy.PluginManager) -> tuple[dict[str, ListSource], list[str]]:
    """Every plugin's list sources by list name, and the problems."""
    return _collect(manager, "decide_list_sources", ListSource)


def collect_enrichers(manager: pluggy.PluginManager) -> tuple[dict[str, Enricher], list[str]]:
    """Every plugin's enrichers by name, and the problems."""
    return _collect(manager, "decide_enrichers", Enricher)


def collect_listeners(manager: pluggy.PluginManager) -> tuple[dict[str, Listener], list[str]]:
    """Every plugin's listeners by name, and the problems."""
    return _collect(manager, "decide_listeners", Listener)


@dataclass(frozen=True)
class Plugins:
    """Everything the registered plugins give, and what went wrong with the ones that were skipped."""

    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    list_sources: dict[str, ListSource] = field(default_factory=dict)
    enrichers: dict[str, Enricher] = field(default_factory=dict)
    listeners: dict[str, Listener] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def collect_plugins(manager: pluggy.PluginManager) -> Plugins:
    """All four kinds at once; the problems include a `decide_*` hook no specification knows (a misspelling
    would otherwise make a plugin silently do nothing)."""
    functions, function_problems = collect_functions(manager)
    list_sources, list_problems = collect_list_sources(manager)
    enrichers, enricher_problems = collect_enrichers(manager)
    listeners, listener_problems = collect_listeners(manager)
    unknown = [
        f"plugin '{impl.plugin_name}': {name} is not a Decide hook (the hooks are "
        f"{', '.join(sorted(n for n in vars(HookSpecs) if n.startswith('decide_')))}); it is never called"
        for name, caller in sorted(vars(manager.hook).items())
        if name.startswith(f"{PROJECT}_") and not caller.has_spec()
        for impl in caller.get_hookimpls()
    ]
    problems = function_problems + list_problems + enricher_problems + listener_problems + unknown
    return Plugins(functions, list_sources, enrichers, listeners, tuple(problems))


_installed: dict[str, FunctionSpec] | None = None
_installed_lock = threading.Lock()


def installed_functions() -> dict[str, FunctionSpec]:
    """The functions of the installed plugins (entry points of group "decide"), loaded once per process: what the
    registry compiles a submitted version with, so a version may call them like built-ins. A plugin whose
    function hook fails contributes none (its problem is reported by the server's /readyz)."""
    global _installed
    with _installed_lock:
        if _installed is None:
            try:
                manager = plugin_manager()
            except Exception as exc:  # an installed plugin that does not even import: say which, not a traceback
                raise PluginError(
                    f"an installed plugin (entry-point group {PROJECT!r}) could not be loaded: "
                    f"{type(exc).__name__}: {exc}",
                    "plugin_unloadable",
                ) from None
            _installed, _ = collect_functions(manager)
        return _installed
