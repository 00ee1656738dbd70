"""The example plugin's tests import it from this checkout (no `pip install` needed): its directory goes on
`sys.path`, and the tests register the module itself (`plugin_manager(load_entry_points=False, plugins=[...])`)."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
if str(PLUGIN_ROOT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_ROOT))
