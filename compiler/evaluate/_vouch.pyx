# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Input checking for the kernel's one-record path: a raw record vouched for and loaded into a machine.

Input: the kernel's `Runner` of a policy, the fast checks made once from the
input validator's plans (`input_checks`), a raw record (a dict of JSON
values), the evaluation date and the named lists. Output: the decision as
JSON values and trace (`evaluate_record`), or None when the record is not
plainly valid (any value the fast checks cannot vouch for, an unknown field)
or the row bails: the caller then validates with `InputValidator`, which
words every error, and evaluates the ordinary way. The interpreter itself
is `compiler/_fastpath.pyx`; this module only checks and loads inputs.
"""

import datetime as _dt

from compiler._fastpath cimport (
    T_BOOL,
    T_DATE,
    T_INT,
    T_NUM,
    T_STR,
    Machine,
    Runner,
    _machine_free,
    _machine_new,
)
from compiler.values import ValueProblem as _ValueProblem, parse_date as _parse_date

cdef double MAX_EXACT_INT = 9007199254740992.0

_ABSENT = object()


def input_checks(plans):
    """The input validator's plans as the checks `evaluate_record` vouches for plainly valid records with.

    Per input: (name, type, optional, closed, low, high, allowed strings). `closed` is -1 without a
    range (else 1 low end closed + 2 high end closed); an input whose allowed values this cannot
    check exactly (a set of numbers, bounds a double does not hold) is never vouched for.
    """
    checks = []
    for name, type_name, type_ref, optional, pii, constraint in plans:
        type_ = {"number": T_NUM, "int": T_INT, "bool": T_BOOL, "string": T_STR, "date": T_DATE}.get(type_name, -1)
        closed, low, high, allowed = -1, 0.0, 0.0, None
        if constraint is not None and constraint[0] == "set":
            if type_ != T_STR or not all(type(member) is str for member in constraint[1]):
                type_ = -1
            allowed = frozenset(constraint[1])
        elif constraint is not None:
            low_value, high_value, low_closed, high_closed = constraint[1]
            if type_ == T_DATE:
                low, high = low_value.toordinal(), high_value.toordinal()
            elif float(low_value) == low_value and float(high_value) == high_value:
                low, high = float(low_value), float(high_value)
            else:
                type_ = -1
            closed = low_closed + 2 * high_closed
        checks.append((name, type_, optional, closed, low, high, allowed))
    return checks


def evaluate_record(Runner runner, list checks, record, today, lists, bint ignore_extra):
    """A raw record straight onto the GIL-free path: (outputs as JSON values, trace), or None.

    `checks` are `input_checks(InputValidator.plans)`: this vouches for the record with the validator's fast checks;
    None when it cannot (any value that is not plainly fine, an unknown field) or when the path
    bails. The caller then validates and evaluates the ordinary way, which words every error.
    """
    if not runner.native or checks is None or type(record) is not dict:
        return None
    cdef Machine* m = _machine_new(runner.n_slots, runner.max_stack, runner.n_trees, runner.n_trace_events, True)
    cdef int i, type_, closed, present = 0
    cdef double x, low, high
    cdef list extra = []
    extra_ids = {}
    cdef dict values = record
    try:
        runner._n_reset(m, <double> today.toordinal())
        for i in range(runner.n_inputs):
            name, type_, optional, closed, low, high, allowed = checks[i]
            raw = values.get(name, _ABSENT)
            if raw is _ABSENT or raw is None:
                if not optional:
                    return None
                present += raw is None
                continue
            present += 1
            kind = type(raw)
            if type_ == T_NUM:
                if not ((kind is float or kind is int) and -MAX_EXACT_INT < raw < MAX_EXACT_INT):
                    return None
                x = <double> raw
            elif type_ == T_INT:
                if not (kind is int and -MAX_EXACT_INT <= raw <= MAX_EXACT_INT):
                    return None
                x = <double> raw
            elif type_ == T_DATE:
                if kind is str:
                    try:
                        raw = _parse_date(raw)
                    except _ValueProblem:
                        return None
                elif kind is not _dt.date:
                    return None
                x = <double> raw.toordinal()
            elif type_ == T_STR:
                if kind is not str or (allowed is not None and raw not in allowed):
                    return None
                runner._load(m, runner.input_slots[i], raw, extra, extra_ids)
                continue
            elif type_ == T_BOOL:
                if kind is not bool:
                    return None
                x = 1.0 if raw else 0.0
            else:
                return None
            if closed >= 0 and not ((x >= low if closed & 1 else x > low) and (x <= high if closed & 2 else x < high)):
                return None
            m.value[runner.input_slots[i]] = x
            m.missing[runner.input_slots[i]] = 0
        if not ignore_extra and present != len(values):
            return None  # a field the policy does not declare: the validator words the error
        return runner._native_outcome(m, lists, extra, True)
    finally:
        _machine_free(m)
