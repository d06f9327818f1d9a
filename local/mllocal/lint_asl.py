"""Check every state machine in template.yaml with statelint, after DefinitionSubstitutions.

statelint reads plain ASL, so each definition is checked as deployed: with its
``${...}`` placeholders replaced from the template (an unreplaced placeholder is
itself an error). Known statelint false positives are listed in KNOWN_FALSE_POSITIVES.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .template import local_stack

# statelint wrongly rejects fields that Step Functions accepts.
KNOWN_FALSE_POSITIVES = (
    re.compile(r"ItemReader\.ReaderConfig\.InputType"),
    re.compile(r'Field "InputType" not allowed in .*\.ItemReader\.ReaderConfig$'),
)


def main() -> int:
    statelint = shutil.which("statelint") or str(Path(sys.executable).with_name("statelint"))
    failed = False
    for sm in local_stack().state_machines.values():
        leftover = re.findall(r"\$\{[^}]+\}", sm.definition)
        if leftover:
            print(f"{sm.logical_id}: placeholders without a DefinitionSubstitution: {sorted(set(leftover))}")
            failed = True
        with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as tmp:
            tmp.write(sm.definition)
        proc = subprocess.run([statelint, tmp.name], capture_output=True, text=True)
        Path(tmp.name).unlink()
        lines = (proc.stdout + proc.stderr).splitlines()
        findings = [line.strip() for line in lines if line.startswith(" ")]
        problems = [f for f in findings if not any(p.search(f) for p in KNOWN_FALSE_POSITIVES)]
        if problems or (proc.returncode and not findings):  # findings, or statelint itself failed
            print(f"{sm.logical_id}: statelint found {len(problems)} problem(s)")
            print("\n".join(f"  {p}" for p in problems) or proc.stdout + proc.stderr)
            failed = True
        else:
            print(f"{sm.logical_id}: ASL OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
