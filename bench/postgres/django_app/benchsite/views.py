import itertools
import json

from django.http import HttpResponse

from .models import Item

_next = itertools.count()


def items(request):
    """10 ORM queries (a primary-key get each), their rows as JSON."""
    base = next(_next) * 10
    out = []
    for i in range(10):
        it = Item.objects.get(pk=(base + i) % 1000 + 1)
        out.append([it.id, it.name, str(it.price), it.created.isoformat(), it.active])
    return HttpResponse(json.dumps(out), content_type="application/json")
