"""The Django database ENGINE ``puff.contrib.django.postgres``: Django's ORM on Puff's pipelined
Postgres pools (docs/django.md). Django loads ``.base``."""
