"""The plugins a decision server runs with: functions for the policy language, list sources, enrichers and
listeners, from the `decide` entry-point group (compiler.plugins holds the hook specifications).

Input: whether to load entry points, and plugin objects given directly (tests, embedding). Output:
`compiler.plugins.Plugins`, every hook's results collected one plugin at a time — a plugin whose hook raises is
left out and named in `problems` (and in /readyz), never allowed to stop the others or the server.
"""

from __future__ import annotations

from collections.abc import Iterable

from compiler.plugins import Plugins, collect_plugins, plugin_manager

__all__ = ["Plugins", "load_plugins"]


def load_plugins(load_entry_points: bool = True, extra: Iterable[object] = ()) -> Plugins:
    return collect_plugins(plugin_manager(load_entry_points=load_entry_points, plugins=extra))
