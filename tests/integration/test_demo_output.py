"""What `make demo` prints (mllocal.demo.run on the bundled housing data): the steps, the comparison with
scikit-learn, the prediction, and the functions it invoked, without the ones it did not."""

from __future__ import annotations

import re

from mllocal import demo


def test_make_demo_prints_its_steps_and_only_the_functions_it_invoked():
    lines: list[str] = []
    result = demo.run(demo.DEFAULT_DATA, "housing", "price_k", 4, out=lines.append)
    assert lines[0] == "ingested   housing version 87d5ec0df9a34372: 3000 rows, 7 columns"
    assert re.fullmatch(
        r"trained    1 round over 4 shards \(solved\), [\d.]+s in the local Step Functions interpreter", lines[2]
    )
    assert abs(result["model"]["metrics"]["r2"] - result["reference"]["r2"]) < 1e-3
    done = re.fullmatch(r"\ndone in [\d.]+s; Lambda invocations: (.*)", lines[-1])
    assert done, lines[-1]
    invoked = dict(part.rsplit(" ", 1) for part in done.group(1).split(", "))
    assert invoked == {
        "Ingest": "1",
        "Preprocess": "1",
        "GradientWorker": "4",
        "Aggregator": "2",
        "Evaluate": "1",
        "Predict": "1",
        "Runs": invoked["Runs"],  # the polls: one a second while the run runs
    }
    assert int(invoked["Runs"]) >= 2
