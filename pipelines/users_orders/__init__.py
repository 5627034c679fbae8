"""The users-orders pipeline (users API + orders CSV to analytics.user_orders)."""
