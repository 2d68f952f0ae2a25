"""The tutorial's Question and Choice, plus a few columns for the Postgres types the tests
exercise (JSONField, ArrayField)."""

import datetime

from django.contrib import admin
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class Question(models.Model):
    question_text = models.CharField(max_length=200)
    pub_date = models.DateTimeField("date published")
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    extra = models.JSONField(default=dict, blank=True)

    def __str__(self):
        return self.question_text

    @admin.display(boolean=True, ordering="pub_date", description="Published recently?")
    def was_published_recently(self):
        now = timezone.now()
        return now - datetime.timedelta(days=1) <= self.pub_date <= now


class Choice(models.Model):
    question = models.ForeignKey(Question, on_delete=models.CASCADE)
    choice_text = models.CharField(max_length=200)
    votes = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["question", "choice_text"], name="unique_choice_per_question"),
        ]

    def __str__(self):
        return self.choice_text
