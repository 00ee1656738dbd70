-- Taiwan credit-card clients (UCI_Credit_Card.csv) for policies/credit_line.policy: the file already uses the
-- policy's input names; the observed default next month becomes the label `defaulted`.
SELECT
    * EXCLUDE ("default.payment.next.month", SEX, EDUCATION, MARRIAGE),
    "default.payment.next.month" AS defaulted
FROM data
