"""The spec's JSON Schema, generated from the models (never written by hand)."""

from __future__ import annotations

import json

from pipelines.dsl.model import API_VERSION, Pipeline

SCHEMA_ID = "https://lineage-audit.dev/schemas/pipeline-v1.json"


def spec_json_schema() -> str:
    """The JSON Schema of ``apiVersion: lineage-audit/v1`` specs, as committed text."""
    schema = Pipeline.model_json_schema(by_alias=True, mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
              "title": f"lineage-audit pipeline spec ({API_VERSION})", **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
