"""Named lists, checked and frozen once and shared by every evaluation.

Input: a list's name, element type and members (any iterable), optionally
with the revision they were taken at (`prepare_list`), or a policy's store
lists and what the caller supplies for each (`prepare_lists`). Output: a
`PreparedList` (one list at one revision, usable by every policy that
declares it) and `PreparedLists` (the lists of one policy, what `lists=`
takes). Preparing converts and checks every member; passing prepared lists
makes a call cost nothing per member, whatever the size of the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from compiler.evaluate.messages import Message, evaluation_error
from compiler.evaluate.validate_input import convert_value
from dsl import ast
from dsl.errors import EvaluationError, FieldError, InputError


@dataclass(frozen=True)
class PreparedList:
    """One named list's members at one revision, converted to the element type and frozen."""

    name: str
    element_type: str
    members: frozenset
    revision: str | None = None

    def __len__(self) -> int:
        return len(self.members)


class PreparedLists(dict):
    """The supplied lists of one policy: name -> frozenset of members, plus the revision of each.

    Build it once with `Policy.prepare_lists` and pass it as `lists=` to every call: it is immutable in use
    and safe to share across threads. It carries the policy's list declarations, so passing it to a policy
    that declares other lists is refused rather than trusted.
    """

    def __init__(self, declarations: tuple[tuple[str, str], ...], lists: dict[str, PreparedList]) -> None:
        super().__init__((name, prepared.members) for name, prepared in lists.items())
        self.declarations = declarations
        self.revisions: dict[str, str | None] = {name: prepared.revision for name, prepared in lists.items()}


def prepare_list(name: str, element_type: str, members: Iterable[Any], revision: str | None = None) -> PreparedList:
    """Check and convert every member to `element_type` (string, int, number, date); InputError lists the bad ones.

    Repeated members are one member (a list is a set).
    """
    if isinstance(members, PreparedList):
        if members.element_type != element_type:
            raise InputError(
                [
                    FieldError(
                        f"lists.{name}", "wrong_type", f"expected a list of {element_type}, not {members.element_type}"
                    )
                ]
            )
        return members if members.name == name else PreparedList(name, element_type, members.members, members.revision)
    if isinstance(members, (str, bytes, Mapping)):
        raise InputError([FieldError(f"lists.{name}", "wrong_type", "expected a list of members")])
    converted, errors = [], []
    for position, member in enumerate(members, start=1):
        try:
            converted.append(convert_value(ast.TypeRef(element_type), member))
        except ValueError as exc:
            errors.append(FieldError(f"lists.{name}", "wrong_type", f"member {position}: {exc}"))
    if errors:
        raise InputError(errors[:20])
    return PreparedList(name, element_type, frozenset(converted), revision)


def prepare_lists(
    store_lists: Mapping[str, str],
    lists: Mapping[str, Iterable[Any] | PreparedList] | PreparedLists | None,
    declarations: tuple[tuple[str, str], ...] | None = None,
) -> PreparedLists:
    """Every store list of a policy, prepared; all must be supplied (an empty list is fine), no other may be.

    A list never fails open: a declared list that nobody supplied is an error, not an empty list.
    `declarations` is `tuple(store_lists.items())` when the caller keeps it (the result carries it, so a
    check of the same object is all a later call needs).
    """
    if declarations is None:
        declarations = tuple(store_lists.items())
    if isinstance(lists, PreparedLists):
        if lists.declarations != declarations:
            raise _list_error(
                "these prepared lists were made for a policy with other lists "
                f"({_names(dict(lists.declarations))}; this policy's: {_names(store_lists)})",
                "lists_for_another_policy",
            )
        return lists
    prepared: dict[str, PreparedList] = {}
    for name, members in (lists or {}).items():
        if name not in store_lists:
            raise _list_error(
                f"the policy has no list '{name}' to supply (its lists: {_names(store_lists)})", "unknown_list"
            )
        prepared[name] = prepare_list(name, store_lists[name], members)
    missing = [name for name in store_lists if name not in prepared]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise _list_error(
            f"the members of list {names} were not supplied; supply them (an empty list is allowed)",
            "list_not_supplied",
        )
    return PreparedLists(declarations, prepared)


def _names(store_lists: Mapping[str, str]) -> str:
    return ", ".join(store_lists) or "none"


def _list_error(text: str, code: str) -> EvaluationError:
    return evaluation_error(Message(text, code), None, policy="", statement=None, item=None)
