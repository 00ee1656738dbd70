-- Give Me Some Credit (cs-training.csv) mapped to consumer_loan's inputs: the file writes a missing
-- MonthlyIncome or NumberOfDependents as NA, which DuckDB reads as text; the rest are named as the policy's.
SELECT
    age,
    TRY_CAST(NULLIF(MonthlyIncome, 'NA') AS DOUBLE) AS MonthlyIncome,
    DebtRatio,
    RevolvingUtilizationOfUnsecuredLines,
    NumberOfOpenCreditLinesAndLoans,
    NumberRealEstateLoansOrLines,
    NumberOfTimes90DaysLate,
    TRY_CAST(NULLIF(NumberOfDependents, 'NA') AS BIGINT) AS NumberOfDependents,
    SeriousDlqin2yrs
FROM data
