"""Seeded, deterministic users for the mock users API.

Each user is a pure function of (seed, id), so any page or single user can be produced
without generating the others, and the same seed and count always give the same users: the
orders CSV generator draws ``user_id`` from the same 1..n range, so the two sources join.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

FIRST_NAMES = ("Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances",
               "John", "Radia", "Tim", "Sophie", "Guido", "Hedy", "Edsger", "Katherine", "Donald",
               "Shafi", "Yukihiro", "Anita", "Vint", "Leslie", "Mary")
LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie",
              "Allen", "McCarthy", "Perlman", "Berners-Lee", "Wilson", "van Rossum", "Lamarr",
              "Dijkstra", "Johnson", "Knuth", "Goldwasser", "Matsumoto", "Borg", "Cerf", "Lamport", "Keller")
COUNTRIES = ("US", "DE", "GB", "FR", "JP", "BR", "IN", "CA", "AU", "NL", "ES", "SE")
COUNTRY_WEIGHTS = (30, 12, 10, 8, 8, 6, 8, 5, 4, 3, 4, 2)
PLANS = ("free", "pro", "enterprise")
PLAN_WEIGHTS = (70, 25, 5)
SIGNUP_START = date(2019, 1, 1)
SIGNUP_DAYS = (date(2024, 12, 31) - SIGNUP_START).days

#: The fields every user has, in the order the API returns them.
USER_FIELDS = ("id", "name", "email", "country", "signup_date", "plan", "active")


def make_user(user_id: int, seed: int) -> dict[str, Any]:
    """User ``user_id`` of the population drawn with ``seed`` (JSON-ready values)."""
    rng = random.Random(f"users|{seed}|{user_id}")
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{first}.{last}".lower().replace(" ", "").replace("-", "")
    return {
        "id": user_id,
        "name": f"{first} {last}",
        "email": f"{local}.{user_id}@example.com",
        "country": rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0],
        "signup_date": (SIGNUP_START + timedelta(days=rng.randrange(SIGNUP_DAYS + 1))).isoformat(),
        "plan": rng.choices(PLANS, PLAN_WEIGHTS)[0],
        "active": rng.random() < 0.9,
    }


def make_users(n_users: int, seed: int) -> list[dict[str, Any]]:
    """Users 1..n_users for ``seed``."""
    return [make_user(i, seed) for i in range(1, n_users + 1)]
