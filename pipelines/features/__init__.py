"""Feature tables for models, built from the reference pipelines' outputs (the AI datasets the auditor audits)."""
