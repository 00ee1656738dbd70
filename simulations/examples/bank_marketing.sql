-- UCI Bank Marketing (bank_full.csv) for policies/cross_sell.policy. DuckDB reads the file's yes/no columns as
-- booleans; the policy's inputs are "yes" / "no". `duration` is left out (it is known only after the call), and
-- the observed response `y` becomes the label `took_offer`.
SELECT
    age, job,
    CASE WHEN "default" THEN 'yes' ELSE 'no' END AS "default",
    balance,
    CASE WHEN housing THEN 'yes' ELSE 'no' END AS housing,
    CASE WHEN loan THEN 'yes' ELSE 'no' END AS loan,
    contact, campaign, pdays, previous, poutcome,
    y AS took_offer
FROM data
