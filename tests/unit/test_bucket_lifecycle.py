"""The data bucket's lifecycle rules in template.yaml: what nothing else cleans up expires."""

from __future__ import annotations

from mlcore.infra import layout
from mllocal.template import load_template


def _rules() -> dict[str, dict]:
    bucket = load_template()["Resources"]["DataBucket"]["Properties"]
    return {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}


def test_abandoned_uploads_expire_after_two_days():
    """A presigned upload never made (or a file Ingest never got to) is not kept forever."""
    assert _rules()["expire-abandoned-uploads"] == {
        "Id": "expire-abandoned-uploads",
        "Status": "Enabled",
        "Prefix": layout.UPLOADS,
        "ExpirationInDays": 2,
    }


def test_scratch_expires_after_seven_days():
    assert _rules()["expire-scratch"] == {
        "Id": "expire-scratch",
        "Status": "Enabled",
        "Prefix": layout.SCRATCH,
        "ExpirationInDays": 7,
    }


def test_only_the_transient_prefixes_expire():
    expiring = {rule["Prefix"] for rule in _rules().values() if "ExpirationInDays" in rule}
    assert expiring == {layout.UPLOADS, layout.SCRATCH}
