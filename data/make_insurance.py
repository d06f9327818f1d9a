"""Regenerate data/insurance.csv, the second demo data set (synthetic, seeded, reproducible).

It needs a preprocessing spec (data/insurance_spec.json): an identifier and an e-mail column to
drop, a high-cardinality column to hash, a skewed income for log1p, an outlier-prone bmi to clip,
and missing values in numeric and categorical columns.

python data/make_insurance.py
"""

from pathlib import Path

import numpy as np

rng = np.random.default_rng(7)
n = 2000
regions = np.array(["north", "south", "east", "west"])
region_cost = {"north": 300.0, "south": -200.0, "east": 0.0, "west": 150.0}
occupations = np.array([f"occupation_{i:02d}" for i in range(60)])
occupation_cost = dict(zip(occupations, rng.normal(0, 400, len(occupations)), strict=True))
age = rng.integers(18, 80, n).astype(float)
bmi = rng.normal(28, 5, n)
bmi[rng.random(n) < 0.01] = 95.0  # data-entry outliers: clipped by the spec
income = np.exp(rng.normal(10.5, 0.6, n))
children = rng.integers(0, 5, n).astype(float)
smoker = rng.choice(["yes", "no"], n, p=[0.2, 0.8])
region = rng.choice(regions, n)
occupation = rng.choice(occupations, n)
charges = (
    1000
    + 45 * age
    + 60 * (np.clip(bmi, 15, 50) - 28)
    + 900 * (np.log1p(income) - 10.5)
    + 250 * children
    + np.where(smoker == "yes", 6000, 0)
    + np.vectorize(region_cost.get)(region)
    + np.vectorize(occupation_cost.get)(occupation)
    + rng.normal(0, 500, n)
)
age_text = np.array([f"{a:.0f}" for a in age], dtype=object)
age_text[rng.random(n) < 0.05] = ""
region_text = region.astype(object)
region_text[rng.random(n) < 0.05] = ""

lines = ["policy_id,email,age,bmi,income,children,smoker,region,occupation,charges"]
for i in range(n):
    lines.append(
        f"P{100000 + i},customer{i}@example.com,{age_text[i]},{bmi[i]:.1f},{income[i]:.0f},{children[i]:.0f},"
        f"{smoker[i]},{region_text[i]},{occupation[i]},{charges[i]:.2f}"
    )
Path(__file__).with_name("insurance.csv").write_text("\n".join(lines) + "\n")
