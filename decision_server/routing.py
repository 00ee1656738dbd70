"""Champion/challenger routing: which arm of a deployment answers a request.

Input: the policy's name, the deployment's salt, the value of the input field marked `key` (spec §3) and the
challenger's percentage. Output: "champion" or "challenger". The arm is a pure function of those, so the same
applicant always gets the same arm while the deployment is unchanged, and every worker and every instance
agrees without sharing anything. A new deployment has a new salt, so its split is drawn afresh.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

BUCKETS = 10_000  # percent × 100: the split is exact to a hundredth of a percent


def bucket(policy: str, salt: str, key: Any) -> int:
    """The key's bucket in 0..9999 (BLAKE2b of the three, so buckets are uniform and independent per salt).

    A whole float is its integer (5.0 and 5 are the same JSON number: an `int` key accepts either), so an
    applicant's arm does not depend on how the calling system spells the number."""
    if isinstance(key, float) and key.is_integer() and abs(key) < 2**63:
        key = int(key)
    try:
        encoded = orjson.dumps(key, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an int past 64 bits (the input validator refuses it next, with a 422): its digits
        encoded = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str).encode()
    material = b"\x1f".join((policy.encode(), salt.encode(), encoded))
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big") % BUCKETS


def choose_arm(policy: str, salt: str, key: Any, percent: int | None) -> str:
    if not percent:
        return "champion"
    return "challenger" if bucket(policy, salt, key) < percent * (BUCKETS // 100) else "champion"
