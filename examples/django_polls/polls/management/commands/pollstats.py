"""`puff django pollstats`: a custom management command, run inside the Puff runtime."""

import json

import puff
from django.core.management.base import BaseCommand
from django.db.models import Sum

from polls.models import Choice, Question


class Command(BaseCommand):
    help = "Print the number of questions, choices and votes as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--pause-ms", type=int, default=0, help="sleep first (a Puff call)")

    def handle(self, *args, pause_ms=0, **options):
        if pause_ms:
            puff.sleep_ms(pause_ms)  # Puff's own calls work in management commands
        self.stdout.write(json.dumps({
            "questions": Question.objects.count(),
            "choices": Choice.objects.count(),
            "votes": Choice.objects.aggregate(n=Sum("votes"))["n"] or 0,
        }))
