from django.db import models


class Item(models.Model):
    """bench/postgres/data.py makes the table and its 1,000 rows."""

    name = models.TextField()
    price = models.DecimalField(max_digits=10, decimal_places=2)
    created = models.DateTimeField()
    active = models.BooleanField()

    class Meta:
        managed = False
        db_table = "bench_item"
