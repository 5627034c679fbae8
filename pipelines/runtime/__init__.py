"""Runtime shared by the reference pipelines: specs, run context and events, targets, naming."""
