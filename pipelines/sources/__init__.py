"""Data sources of the reference pipelines.

One module per job, imported directly (this package stays import-light):

- ``open_meteo``: hourly weather from the Open-Meteo forecast API.
- ``replay_server``: a local HTTP server replaying recorded Open-Meteo responses.
- ``mock_api``: the mock users REST API (FastAPI) with fault injection
  (``fake_users``: its seeded population; ``faults``: what can go wrong, reproducibly).
- ``orders_csv``: the orders CSV generator and validating reader.
- ``dead_letter``: the append-only JSONL file where rejected records go.
- ``resilience``: the one retry / backoff / circuit-breaker policy every HTTP source uses.
- ``errors``: the errors a source raises.
- ``cli``: the ``mock-api`` and ``generate-orders`` commands.
"""
