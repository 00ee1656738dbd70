-- Boston HMDA (AER_HMDA.csv) mapped to policies/mortgage.policy's inputs, which use the file's own names.
-- DuckDB reads the file's yes/no columns as booleans; the policy's inputs are "yes" / "no". The recorded
-- decision (`deny`: true when the lender declined) and race (`afam`) come along for the read-out; the policy
-- reads neither.
SELECT
    pirat, hirat, lvrat,
    CAST(chist AS BIGINT) AS chist,
    CAST(mhist AS BIGINT) AS mhist,
    CASE WHEN phist THEN 'yes' ELSE 'no' END AS phist,
    CASE WHEN insurance THEN 'yes' ELSE 'no' END AS insurance,
    deny,
    CASE WHEN afam THEN 'African American' ELSE 'other' END AS afam
FROM data
