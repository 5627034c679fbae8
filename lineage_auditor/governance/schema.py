"""The policy's JSON Schema, generated from the models (never written by hand)."""

from __future__ import annotations

import json
from pathlib import Path

from lineage_auditor.governance.model import API_VERSION, PolicyDocument

SCHEMA_ID = "https://lineage-audit.dev/schemas/policy-v1.json"
SCHEMA_FILE = Path(__file__).resolve().parent / "policy.schema.json"


def policy_json_schema() -> str:
    """The JSON Schema of ``kind: Policy`` files, as committed text."""
    schema = PolicyDocument.model_json_schema(by_alias=True, mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
              "title": f"lineage-audit governance policy ({API_VERSION})", **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
