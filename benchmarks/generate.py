"""Generated policies of a given size, for benchmarks (parse + check of N rules).

`generated_policy(rules)` returns the text of a realistic approval policy with
`rules` rules spread over knockout blocks, plus a band table and a scorecard.
The conditions mix interval tests on several inputs so the exact reachability
analysis has real work to do.
"""

from __future__ import annotations

import random

SEGMENTS = ("retail", "sme", "premier", "student")


def generated_policy(rules: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    lines = [
        "# Generated benchmark policy",
        "policy generated:",
        f'    title: "Generated policy with {rules} rules"',
        "    kind: approval",
        "",
        "input:",
        "    applicant_id: string key",
        "    score: int in [300..900]",
        "    income: number in [0..1000000]",
        "    debt: number",
        "    age: int in [18..120]",
        "    segment: string in {" + ", ".join(f'"{s}"' for s in SEGMENTS) + "}",
        "    delinquencies: int",
        "    utilisation: number optional",
        "",
        "output:",
        '    decision: string in {"approve", "refer", "decline"} = "refer"',
        "    limit: number = 0",
        "",
        "let dti = debt / income",
        "",
    ]
    blocks = max(1, rules // 100)
    per_block = rules // blocks
    made = 0
    for block in range(blocks):
        count = per_block if block < blocks - 1 else rules - made
        lines.append(f"rules block_{block} ({'first' if block % 2 == 0 else 'all'}):")
        for index in range(count):
            rule_id = f"R{made:05d}"
            made += 1
            low = rng.randrange(300, 880)
            parts = [f"score in [{low}..{low + rng.randrange(5, 60)})"]
            if rng.random() < 0.6:
                parts.append(f'segment == "{rng.choice(SEGMENTS)}"')
            if rng.random() < 0.4:
                parts.append(f"delinquencies >= {rng.randrange(0, 6)}")
            if rng.random() < 0.3:
                parts.append(f"(utilisation > {rng.randrange(10, 95)}% or utilisation is missing)")
            if rng.random() < 0.2:
                parts.append(f"age < {rng.randrange(20, 80)}")
            decision = rng.choice(["approve", "refer", "decline"])
            lines.append(f'    rule {rule_id} "Generated rule {index}":')
            lines.append(f"        when {' and '.join(parts)}")
            lines.append(f'        then decision = "{decision}", reason "{rule_id}"')
        lines.append("")
    lines += [
        "table band (first):",
        "    | score  | dti    || band | multiple |",
        '    | >= 750 | < 30%  || "A"  | 6        |',
        '    | >= 650 | < 40%  || "B"  | 4        |',
        '    | >= 550 | -      || "C"  | 2        |',
        '    | -      | -      || "D"  | 0        |',
        "",
        "scorecard risk (base 600):",
        '    score "Bureau score":',
        '        < 580 => -60 reason "S01"',
        "        [580..680) => 0",
        "        >= 680 => 45",
        '    utilisation "Utilisation":',
        '        missing => -10 reason "S02"',
        '        >= 80% => -40 reason "S02"',
        "        otherwise => 10",
        "",
        "rules limits (first):",
        "    rule L01:",
        '        when decision == "approve"',
        "        then limit = round(income * multiple, 0)",
        "",
    ]
    return "\n".join(lines)
