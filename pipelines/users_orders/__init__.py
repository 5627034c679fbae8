"""The users-orders pipeline's SQL model (``sql/``); the pipeline is the spec ``pipelines/specs/users_orders.yml``."""
