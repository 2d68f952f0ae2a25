"""bench/postgres's Django scenario: one view doing 10 ORM queries (views.py)."""
