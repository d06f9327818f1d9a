"""Regenerate data/housing.csv, the bundled demo data set (synthetic, seeded, reproducible).

python data/make_housing.py
"""

from pathlib import Path

import numpy as np

rng = np.random.default_rng(2026)
n = 3000
neighborhoods = np.array(["riverside", "old_town", "hills", "harbor"])
premium = {"riverside": 35.0, "old_town": 10.0, "hills": 55.0, "harbor": -5.0}
area = rng.normal(120, 35, n).clip(30, 320)
bedrooms = np.clip(np.round(area / 40 + rng.normal(0, 0.7, n)), 1, 7)
age = rng.uniform(0, 80, n)
distance = rng.gamma(2.0, 3.0, n)
lot = area * rng.uniform(1.2, 4.0, n)
hood = rng.choice(neighborhoods, n, p=[0.3, 0.3, 0.15, 0.25])
price = (
    40
    + 2.1 * area
    + 8.0 * bedrooms
    - 0.9 * age
    - 4.5 * distance
    + 0.05 * lot
    + np.vectorize(premium.get)(hood)
    + rng.normal(0, 25, n)
)

rows = ["area_m2,bedrooms,age_years,distance_km,lot_m2,neighborhood,price_k"]
for i in range(n):
    values = [
        f"{area[i]:.1f}",
        f"{bedrooms[i]:.0f}",
        f"{age[i]:.1f}",
        f"{distance[i]:.2f}",
        f"{lot[i]:.0f}",
        hood[i],
        f"{price[i]:.1f}",
    ]
    for j in range(6):  # about 3% missing per feature column
        if rng.random() < 0.03:
            values[j] = ""
    rows.append(",".join(values))
Path(__file__).with_name("housing.csv").write_text("\n".join(rows) + "\n")
