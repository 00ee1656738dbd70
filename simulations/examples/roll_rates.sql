-- Credit card account-months (credit_record.csv) for policies/early_collections.policy: each month's STATUS,
-- with the next month's beside it, so the label says whether the account rolled into a worse bucket.
-- Severity: C (paid off) and X (no loan) 0; '0' (1-29 days) 1; '1' 2; ... '5' (150+ or written off) 6.
WITH months AS (
    SELECT
        ID,
        CAST(STATUS AS VARCHAR) AS STATUS,
        LEAD(CAST(STATUS AS VARCHAR)) OVER (PARTITION BY ID ORDER BY MONTHS_BALANCE) AS next_status
    FROM data
),
scored AS (
    SELECT *,
        CASE WHEN STATUS IN ('C', 'X') THEN 0 ELSE CAST(STATUS AS INTEGER) + 1 END AS severity,
        CASE WHEN next_status IN ('C', 'X') THEN 0 ELSE CAST(next_status AS INTEGER) + 1 END AS next_severity
    FROM months
    WHERE next_status IS NOT NULL
)
SELECT ID, STATUS, CASE WHEN next_severity > severity THEN 1 ELSE 0 END AS rolled
FROM scored
