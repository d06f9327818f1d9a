"""No pickle or other code-executing formats in the project's own code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = [ROOT / "layers" / "core" / "mlcore", ROOT / "functions", ROOT / "local", ROOT / "client"]
FORBIDDEN = re.compile(
    r"\bimport pickle\b|\bfrom pickle\b|\bcPickle\b|\bdill\b|\bcloudpickle\b|\bjoblib\.load\b|\bmarshal\.loads\b"
    r"|allow_pickle\s*=\s*True|\beval\(|\bexec\(|\bpd\.read_pickle\b"
)
SAFE_YAML = ("Loader=_CfnLoader", "SafeLoader", "safe_load")  # _CfnLoader is a yaml.SafeLoader


def test_no_pickle_eval_or_unsafe_yaml_in_the_code():
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for base in CODE
        for path in sorted(base.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if FORBIDDEN.search(line) or ("yaml.load(" in line and not any(s in line for s in SAFE_YAML))
    ]
    assert offenders == []


def test_every_numpy_load_refuses_pickles():
    loads = [
        f"{path.relative_to(ROOT)}:{n}"
        for base in CODE
        for path in sorted(base.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "np.load(" in line and "allow_pickle=False" not in line
    ]
    assert loads == []
