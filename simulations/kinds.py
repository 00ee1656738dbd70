"""The figures of the limit, collections and offer kinds of policy (approval's are in aggregates.py).

Input: the policy (which outputs play which part, found by name and type) and an `Aggregate` counted with the
pairs and offers `counting(policy)` asks for. Output: the kind's figures as JSON values, exact from the counts:

- limit: the granted limit's total and mean (a numeric output named `…limit…`, not `…change…`), and per action
  (`decision`: increase / hold / decrease) its rows, share and the total and mean of the limit change (a numeric
  output named `…change…`);
- collections: per action (`action`) its workload in rows and share, and where the policy outputs the days to
  the next contact (`next_contact_days`), the contacts a day it plans (Σ 1 / days over the rows with days > 0);
- offer: offers made per customer (the mean length of the list output), the share of customers with at least
  one, and per offer the rows it was made to, their share, the total and mean of its value (an offer record's
  first numeric field, such as an expected value `ev`), and with a label its take-up (the label's event value —
  1, true, yes — among the labelled rows offered it); with money columns (`--offer-revenue COL`, the revenue a
  customer brings when they take the offer, and `--offer-cost COL`, what making it costs), its revenue (summed
  over the takers, or over every row offered it without a label), cost (over every row offered it), ROI =
  revenue / cost, and `drop`: ROI below 1.0, the rule marketing teams cut campaigns by.

With a label, the bad rate (roll rate, cure rate, take-up) by action is `label.by_output`'s.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import Any

import orjson

from compiler.policy import Policy
from simulations.aggregates import Aggregate, _is_number, exact_sum_of


def _output(policy: Policy, test) -> str | None:
    return next((item.name for item in policy.outputs if test(item)), None)


def _roles(policy: Policy) -> dict[str, str | None]:
    names = {item.name for item in policy.outputs}
    numeric = {"int", "number"}

    def granted(item: Any) -> bool:
        return item.type in numeric and "limit" in item.name and "change" not in item.name

    return {
        "action": "decision" if "decision" in names else ("action" if "action" in names else None),
        "change": _output(policy, lambda item: item.type in numeric and "change" in item.name),
        "limit": _output(
            policy, lambda item: item.type in numeric and "limit" in item.name and "change" not in item.name
        ),
        "contact_days": _output(policy, lambda item: item.type in numeric and "contact" in item.name),
        "offers": _output(policy, lambda item: item.type == "list"),
    }


def counting(policy: Policy) -> tuple[list[tuple[str, str]], str | None]:
    """The output pairs and the offers list an `Aggregate` of this policy must count for its kind's figures."""
    roles = _roles(policy)
    joints = []
    if policy.kind == "limit" and roles["action"] and roles["change"]:
        joints.append((roles["action"], roles["change"]))
    if policy.kind == "collections" and roles["action"] and roles["contact_days"]:
        joints.append((roles["action"], roles["contact_days"]))
    return joints, roles["offers"] if policy.kind == "offer" else None


def kind_figures(policy: Policy, aggregate: Aggregate, event: str | None) -> dict[str, Any] | None:
    """The figures of the policy's kind (None for approval and generic: approval's come with every run)."""
    roles = _roles(policy)
    decided = aggregate.decided
    if policy.kind == "limit":
        return _limit(aggregate, roles, decided)
    if policy.kind == "collections":
        return _collections(aggregate, roles, decided)
    if policy.kind == "offer":
        return _offer(aggregate, roles, decided, event)
    return None


def _limit(aggregate: Aggregate, roles: dict[str, Any], decided: int) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if roles["limit"]:
        counts = aggregate.values[roles["limit"]]
        granted = sum(n for value, n in counts.items() if _is_number(value))
        total = exact_sum_of(counts)
        body["granted"] = {"rows": granted, "total": float(total), "mean": float(total / granted) if granted else None}
    action, change = roles["action"], roles["change"]
    if action:
        pairs = aggregate.joint.get((action, change), Counter()) if change else Counter()
        actions = []
        for value, rows in sorted(aggregate.values[action].items(), key=lambda item: str(item[0])):
            entry: dict[str, Any] = {"action": value, "rows": rows, "share": rows / decided if decided else 0.0}
            if change:
                changes = Counter({b: n for (a, b), n in pairs.items() if a == value and _is_number(b)})
                amount = exact_sum_of(changes)
                entry["change_total"] = float(amount)
                entry["change_mean"] = float(amount / rows) if rows else None
            actions.append(entry)
        body["actions"] = actions
    return body


def _collections(aggregate: Aggregate, roles: dict[str, Any], decided: int) -> dict[str, Any]:
    action, days = roles["action"], roles["contact_days"]
    if not action:
        return {}
    pairs = aggregate.joint.get((action, days), Counter()) if days else Counter()
    actions = []
    total = Fraction(0)
    for value, rows in sorted(aggregate.values[action].items(), key=lambda item: str(item[0])):
        entry: dict[str, Any] = {"action": value, "rows": rows, "share": rows / decided if decided else 0.0}
        if days:
            per_day = sum(
                (Fraction(n) / Fraction(b) for (a, b), n in pairs.items() if a == value and _is_number(b) and b > 0),
                Fraction(0),
            )
            entry["contacts_per_day"] = float(per_day)
            total += per_day
        actions.append(entry)
    body: dict[str, Any] = {"actions": actions}
    if days:
        body["contacts_per_day"] = float(total)
    return body


def _offer(aggregate: Aggregate, roles: dict[str, Any], decided: int, event: str | None) -> dict[str, Any]:
    name = roles["offers"]
    if not name:
        return {}
    lengths = Counter()
    for text, n in aggregate.values[name].items():
        lengths[len(orjson.loads(text)) if isinstance(text, str) else 0] += n
    offered = sum(n for length, n in lengths.items() if length > 0)
    made = sum(length * n for length, n in lengths.items())
    offers = []
    for offer, counts in sorted(aggregate.offers.items(), key=lambda item: (-sum(item[1].values()), str(item[0]))):
        rows = sum(counts.values())
        entry: dict[str, Any] = {"offer": offer, "rows": rows, "share": rows / decided if decided else 0.0}
        valued: Counter = Counter()
        for (_, value), n in counts.items():
            if _is_number(value):
                valued[value] += n
        if valued:
            total = exact_sum_of(valued)
            entry.update(value_total=float(total), value_mean=float(total / sum(valued.values())))
        if event is not None:
            labelled = sum(n for (seen, _), n in counts.items() if seen is not None)
            taken = sum(n for (seen, _), n in counts.items() if seen == event)
            entry.update(labelled=labelled, taken=taken, take_up=taken / labelled if labelled else None)
        money = aggregate.offer_money.get(offer)
        if money is not None:
            # Revenue is earned where the offer was taken (every offer, without a label); cost where it was made.
            revenue = sum((sums[0] for seen, sums in money.items() if event is None or seen == event), Fraction(0))
            cost = sum((sums[1] for sums in money.values()), Fraction(0))
            entry.update(revenue=float(revenue), cost=float(cost), roi=float(revenue / cost) if cost else None)
            entry["drop"] = bool(cost) and revenue < cost  # the campaign rule: an offer that does not pay its way
        offers.append(entry)
    return {
        "offers_per_customer": made / decided if decided else None,
        "customers_offered": offered,
        "offered_share": offered / decided if decided else None,
        "offers": offers,
    }
