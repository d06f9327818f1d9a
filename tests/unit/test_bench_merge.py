"""`python -m benchmarks.bench --only M` rewrites M's sections of the page in place and keeps the others."""

from __future__ import annotations

from benchmarks import bench

OLD = """# Benchmarks

Written by `make bench` on 2026-11-30 05:58 UTC in 729 s; every figure is ...

## Machine

| cpu | old |

## Quality

| a | 1 |

## Async

| b | 2 |

## Scaling analysis

text

![scaling.png](scaling.png)
"""

NEW = """# Benchmarks

Written by `make bench` on 2026-11-30 09:00 UTC in 60 s; ...

## Machine

| cpu | new |

## Async

| b | 3 |

## Neural networks

| c | 4 |

![scaling.png](scaling.png)
"""


def test_a_partial_run_replaces_its_sections_keeps_the_others_and_says_so():
    page = bench.merge(OLD, NEW, ["benchmarks.async_baseline", "benchmarks.mlp"])
    lines = page.splitlines()
    assert lines[2] == "Written by `make bench` on 2026-11-30 05:58 UTC in 729 s; every figure is ..."
    assert lines[4].startswith("Sections Async, Neural networks rewritten on ")
    assert lines[4].endswith(
        "by `python -m benchmarks.bench --only benchmarks.async_baseline --only benchmarks.mlp` on this machine; "
        "the others are from the run above."
    )
    assert "| cpu | new |" in lines and "| cpu | old |" not in lines
    assert "| a | 1 |" in lines and "| b | 3 |" in lines and "| b | 2 |" not in lines
    assert lines.index("## Quality") < lines.index("## Async") < lines.index("## Scaling analysis")
    assert lines.index("## Scaling analysis") < lines.index("## Neural networks")
    assert lines.count("![scaling.png](scaling.png)") == 1


def test_a_second_partial_run_keeps_one_stamp():
    once = bench.merge(OLD, NEW, ["benchmarks.mlp"])
    twice = bench.merge(once, NEW, ["benchmarks.mlp"])
    assert sum(line.startswith("Sections ") for line in twice.splitlines()) == 1
    assert twice.count("## Neural networks") == 1
