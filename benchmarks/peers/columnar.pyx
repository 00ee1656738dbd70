# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Peer: `policies/consumer_loan.policy` as a hand-written Cython loop over numpy columns.

The floor for batch evaluation: one pass over typed memoryviews with the GIL released, no
validation, no objects per row. Build it with `benchmarks.peers.build.load_columnar()`.

Inputs (one array per input field, all of one length; `build.columns_from_table` makes them from
`data.load_table`): age, open lines, real estate loans and 90+ days late as int64; MonthlyIncome,
DebtRatio and RevolvingUtilizationOfUnsecuredLines as float64, with NaN for a missing income;
NumberOfDependents as int64 with -1 for missing. `blacklisted` is an optional uint8 array (1 = the
applicant's national_id is on the blacklist); string membership is left to the caller, and the
benchmark data has no national_id.

Outputs (a dict of new numpy arrays):

* `decision`  int8: 0 approve, 1 refer, 2 decline (`DECISIONS[code]`);
* `limit`     float64;
* `apr`       float64, NaN when missing (knockouts);
* `score`     int32, -1 when missing (knockouts; a real score is 400..720);
* `risk_band` int8: 0 missing, 1 A, 2 B, 3 C, 4 D (`BANDS[code]`).

**Reasons are left out** of this floor: adverse-action codes are variable-length lists of strings,
which have no flat numeric column form; `plain_python.decide` gives them.

The arithmetic is the policy's, in IEEE doubles in the same order of operations as Decide's reference
interpreter (build with -ffp-contract=off so no fused multiply-add changes a rounding), so it agrees
with `plain_python.decide` on every row (`test_bench_peers.py::test_columnar_agrees`).
"""

import numpy as np

cimport numpy as cnp
from libc.math cimport floor, isnan

cnp.import_array()

DECISIONS = ("approve", "refer", "decline")
BANDS = (None, "A", "B", "C", "D")
SCORE_MISSING = -1


def decide_columns(
    const cnp.int64_t[::1] age,
    const double[::1] income,
    const double[::1] debt_ratio,
    const double[::1] utilisation,
    const cnp.int64_t[::1] open_lines,
    const cnp.int64_t[::1] real_estate,
    const cnp.int64_t[::1] late_90,
    const cnp.int64_t[::1] dependants,
    blacklisted=None,
):
    """Evaluate consumer_loan on columns; returns {'decision', 'limit', 'apr', 'score', 'risk_band'} arrays."""
    cdef Py_ssize_t n = age.shape[0]
    if not (income.shape[0] == debt_ratio.shape[0] == utilisation.shape[0] == open_lines.shape[0]
            == real_estate.shape[0] == late_90.shape[0] == dependants.shape[0] == n):
        raise ValueError("every input column must have the same length")
    cdef const cnp.uint8_t[::1] black
    cdef bint check_black = blacklisted is not None
    if check_black:
        black = np.ascontiguousarray(blacklisted, dtype=np.uint8)
        if black.shape[0] != n:
            raise ValueError("blacklisted must have one entry per row")
    else:
        black = np.zeros(1, dtype=np.uint8)

    decision_out = np.empty(n, dtype=np.int8)
    limit_out = np.empty(n, dtype=np.float64)
    apr_out = np.empty(n, dtype=np.float64)
    score_out = np.empty(n, dtype=np.int32)
    band_out = np.empty(n, dtype=np.int8)
    cdef cnp.int8_t[::1] decision = decision_out
    cdef double[::1] limit = limit_out
    cdef double[::1] apr = apr_out
    cdef cnp.int32_t[::1] score = score_out
    cdef cnp.int8_t[::1] band = band_out

    cdef Py_ssize_t i
    cdef long a, late, lines, deps
    cdef int points, b
    cdef double inc, util, dr, multiple, free_cash, cap, lim, nan = float("nan")

    with nogil:
        for i in range(n):
            a = age[i]
            late = late_90[i]
            util = utilisation[i]
            # 1. Knockouts: decline and stop, nothing scored.
            if (check_black and black[i]) or a < 18 or late >= 3 or util > 1.5:
                decision[i] = 2
                limit[i] = 0.0
                apr[i] = nan
                score[i] = -1
                band[i] = 0
                continue
            inc = income[i]
            dr = debt_ratio[i]
            lines = open_lines[i]
            # 2. Scorecard.
            points = 600
            if a < 25:
                points -= 30
            elif a < 35:
                points -= 10
            elif a < 60:
                points += 10
            else:
                points += 25
            if util < 0.1:
                points += 30
            elif util < 0.5:
                points += 5
            elif util < 0.9:
                points -= 25
            else:
                points -= 60
            if dr < 0.35:
                points += 15
            elif dr < 0.5:
                points -= 10
            else:
                points -= 35
            if isnan(inc):
                points -= 15
            elif inc < 2500:
                points -= 20
            elif inc >= 6000:
                points += 20
            if lines < 3:
                points -= 15
            elif lines <= 15:
                points += 10
            else:
                points -= 5
            if late == 0:
                points += 20
            else:
                points -= 40
            score[i] = points
            # 3. Band.
            if points >= 680 and late == 0:
                b = 1
                multiple = 3.0
            elif points >= 630:
                b = 2
                multiple = 2.0
            elif points >= 580 and late == 0:
                b = 3
                multiple = 1.5
            else:
                b = 4
                multiple = 0.0
            band[i] = b
            # 4. Pricing.
            if b == 1:
                apr[i] = 0.079 if real_estate[i] >= 1 else 0.089
            elif b == 2 or b == 3:
                apr[i] = 0.119 if util < 0.5 else 0.149
            else:
                apr[i] = 0.199
            # 5. Final decision.
            limit[i] = 0.0
            if b == 4:
                decision[i] = 2
                continue
            if isnan(inc):
                decision[i] = 1
                continue
            deps = dependants[i]
            if deps < 0:
                deps = 0
            free_cash = inc - dr * inc - <double>(900 + 350 * deps)
            if free_cash < 500.0:
                decision[i] = 2
                continue
            decision[i] = 0
            cap = free_cash * 6.0
            lim = inc * multiple
            if cap < lim:
                lim = cap
            lim = floor(lim / 100.0) * 100.0
            if lim < 1000.0:
                lim = 1000.0
            elif lim > 35000.0:
                lim = 35000.0
            limit[i] = lim
    return {"decision": decision_out, "limit": limit_out, "apr": apr_out, "score": score_out, "risk_band": band_out}
