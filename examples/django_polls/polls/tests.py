"""The polls app's tests: the tutorial's, plus the ORM features a typical app relies on, run
by Django's test runner on a test database (`puff django test polls`)."""

import datetime

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Avg, Count, F, JSONField, Max, Prefetch, Q, Sum, Value
from django.test import TestCase, TransactionTestCase
from django.urls import reverse
from django.utils import timezone

from puff.contrib.django import query_and_params

from .models import Choice, Question


def create_question(question_text, days, **kwargs):
    """A question published ``days`` from now (negative: in the past)."""
    return Question.objects.create(question_text=question_text,
                                   pub_date=timezone.now() + datetime.timedelta(days=days), **kwargs)


class QuestionModelTests(TestCase):
    def test_was_published_recently_with_future_question(self):
        future = Question(pub_date=timezone.now() + datetime.timedelta(days=30))
        self.assertIs(future.was_published_recently(), False)

    def test_was_published_recently_with_recent_question(self):
        recent = Question(pub_date=timezone.now() - datetime.timedelta(hours=23, minutes=59))
        self.assertIs(recent.was_published_recently(), True)

    def test_datetimes_round_trip_aware(self):
        when = datetime.datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=datetime.timezone.utc)
        q = Question.objects.create(question_text="leap", pub_date=when)
        q.refresh_from_db()
        self.assertEqual(q.pub_date, when)
        self.assertEqual(Question.objects.filter(pub_date__date=datetime.date(2024, 2, 29)).count(), 1)
        self.assertEqual(Question.objects.filter(pub_date__year=2024, pub_date__month=2).count(), 1)


class QuestionIndexViewTests(TestCase):
    def test_no_questions(self):
        response = self.client.get(reverse("polls:index"))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "No polls are available.")
        self.assertQuerySetEqual(response.context["latest_question_list"], [])

    def test_past_and_future_question(self):
        past = create_question("Past question.", days=-30)
        create_question("Future question.", days=30)
        response = self.client.get(reverse("polls:index"))
        self.assertQuerySetEqual(response.context["latest_question_list"], [past])

    def test_detail_and_vote(self):
        q = create_question("Vote?", days=-1)
        c = q.choice_set.create(choice_text="yes")
        self.assertEqual(self.client.get(reverse("polls:detail", args=(q.id,))).status_code, 200)
        response = self.client.post(reverse("polls:vote", args=(q.id,)), {"choice": c.id})
        self.assertRedirects(response, reverse("polls:results", args=(q.id,)))
        c.refresh_from_db()
        self.assertEqual(c.votes, 1)
        self.assertContains(self.client.get(reverse("polls:results", args=(q.id,))), "yes -- 1 vote")

    def test_stats_view(self):
        q = create_question("Stats", days=-1, tags=["a"], extra={"source": "test"})
        q.choice_set.create(choice_text="x", votes=3)
        data = self.client.get(reverse("polls:stats")).json()
        self.assertEqual((data["questions"], data["votes"], data["tagged"], data["with_extra"]), (1, 3, 1, 1))


class OrmTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.q1 = create_question("What's new?", days=-2, tags=["news", "general"],
                                 extra={"source": "web", "rank": 3, "meta": {"lang": "en"}})
        cls.q2 = create_question("What's up?", days=-1, tags=["general"], extra={"source": "app", "rank": 1})
        cls.q3 = create_question("100% sure?", days=-3, tags=[], extra={})
        Choice.objects.bulk_create([
            Choice(question=cls.q1, choice_text="Not much", votes=4),
            Choice(question=cls.q1, choice_text="The sky", votes=1),
            Choice(question=cls.q2, choice_text="Nothing", votes=0),
        ])

    def test_filters(self):
        self.assertEqual(Question.objects.filter(question_text__startswith="What").count(), 2)
        self.assertEqual(Question.objects.filter(question_text__icontains="WHAT'S NEW").get(), self.q1)
        self.assertEqual(Question.objects.filter(question_text__contains="%").get(), self.q3)
        self.assertEqual(Question.objects.filter(question_text__contains="%s").count(), 0)
        self.assertEqual(Question.objects.filter(id__in=[self.q1.id, self.q3.id]).count(), 2)
        self.assertEqual(Question.objects.filter(id__in=[]).count(), 0)
        self.assertEqual(Question.objects.exclude(pub_date__gt=timezone.now()).count(), 3)
        self.assertEqual(Question.objects.filter(question_text__regex=r"^What's (new|up)\?$").count(), 2)

    def test_joins(self):
        texts = Choice.objects.filter(question__question_text__startswith="What's n").values_list("choice_text", flat=True)
        self.assertEqual(sorted(texts), ["Not much", "The sky"])
        self.assertEqual(Question.objects.filter(choice__votes__gte=1).distinct().get(), self.q1)

    def test_select_and_prefetch_related(self):
        with self.assertNumQueries(1):
            choices = list(Choice.objects.select_related("question").order_by("id"))
            self.assertEqual([c.question.question_text for c in choices], ["What's new?", "What's new?", "What's up?"])
        with self.assertNumQueries(2):
            questions = list(Question.objects.prefetch_related(
                Prefetch("choice_set", queryset=Choice.objects.order_by("choice_text"))).order_by("id"))
            self.assertEqual([[c.choice_text for c in q.choice_set.all()] for q in questions],
                             [["Not much", "The sky"], ["Nothing"], []])

    def test_aggregates(self):
        agg = Choice.objects.aggregate(total=Sum("votes"), top=Max("votes"), avg=Avg("votes"), n=Count("id"))
        self.assertEqual((agg["total"], agg["top"], agg["n"]), (5, 4, 3))
        self.assertAlmostEqual(float(agg["avg"]), 5 / 3)
        counts = dict(Question.objects.annotate(n=Count("choice")).values_list("question_text", "n"))
        self.assertEqual(counts, {"What's new?": 2, "What's up?": 1, "100% sure?": 0})

    def test_f_and_q(self):
        Choice.objects.filter(question=self.q1).update(votes=F("votes") * 2 + 1)
        self.assertEqual(sorted(Choice.objects.filter(question=self.q1).values_list("votes", flat=True)), [3, 9])
        found = Question.objects.filter(Q(question_text__endswith="up?") | Q(tags__contains=["news"]))
        self.assertEqual(set(found), {self.q1, self.q2})
        self.assertEqual(Question.objects.filter(~Q(tags__len=0) & Q(extra__rank__gt=1)).get(), self.q1)

    def test_bulk_create_returns_ids(self):
        made = Choice.objects.bulk_create([Choice(question=self.q3, choice_text=f"c{i}") for i in range(50)])
        self.assertTrue(all(c.pk for c in made))
        self.assertEqual(self.q3.choice_set.count(), 50)

    def test_bulk_update(self):
        choices = list(Choice.objects.filter(question=self.q1).order_by("id"))
        for c in choices:
            c.votes += 10
        self.assertEqual(Choice.objects.bulk_update(choices, ["votes"]), 2)
        questions = list(Question.objects.order_by("id"))
        for q in questions:
            q.extra = {"id": q.id, "text": "%s"}
        Question.objects.bulk_update(questions, ["extra"])
        self.assertEqual(sorted(Choice.objects.filter(question=self.q1).values_list("votes", flat=True)), [11, 14])
        self.assertTrue(all(q.extra == {"id": q.id, "text": "%s"} for q in Question.objects.all()))

    def test_update_or_create_and_get_or_create(self):
        choice, created = Choice.objects.update_or_create(
            question=self.q2, choice_text="Nothing", defaults={"votes": 7})
        self.assertFalse(created)
        self.assertEqual(choice.votes, 7)
        choice, created = Choice.objects.update_or_create(
            question=self.q2, choice_text="Something", defaults={"votes": 2})
        self.assertTrue(created)
        _, created = Choice.objects.get_or_create(question=self.q2, choice_text="Something")
        self.assertFalse(created)

    def test_nested_atomic_savepoints(self):
        with transaction.atomic():
            Choice.objects.create(question=self.q3, choice_text="outer")
            try:
                with transaction.atomic():
                    Choice.objects.create(question=self.q3, choice_text="inner")
                    with transaction.atomic():
                        Choice.objects.create(question=self.q3, choice_text="innermost")
                    raise RuntimeError("roll back the inner block")
            except RuntimeError:
                pass
            with transaction.atomic():
                Choice.objects.create(question=self.q3, choice_text="kept")
        self.assertEqual(sorted(self.q3.choice_set.values_list("choice_text", flat=True)), ["kept", "outer"])

    def test_integrity_error_rolls_back_savepoint(self):
        with transaction.atomic():
            with self.assertRaises(IntegrityError):
                with transaction.atomic():
                    Choice.objects.create(question=self.q1, choice_text="Not much")
            self.assertEqual(self.q1.choice_set.count(), 2)  # the connection is usable again
        try:
            with transaction.atomic():
                Choice.objects.create(question=self.q1, choice_text="The sky")
        except IntegrityError as e:
            self.assertEqual(e.__cause__.pgcode, "23505")
            self.assertIn("unique_choice_per_question", str(e))
        else:
            self.fail("no IntegrityError")

    def test_select_for_update(self):
        with transaction.atomic():
            choice = Choice.objects.select_for_update().get(question=self.q1, choice_text="The sky")
            choice.votes = F("votes") + 10
            choice.save()
            locked = list(Question.objects.select_for_update(skip_locked=True, of=("self",)).filter(id=self.q2.id))
            self.assertEqual(locked, [self.q2])
        choice.refresh_from_db()
        self.assertEqual(choice.votes, 11)

    def test_jsonfield_lookups(self):
        self.assertEqual(Question.objects.filter(extra__source="web").get(), self.q1)
        self.assertEqual(Question.objects.filter(extra__meta__lang="en").get(), self.q1)
        self.assertEqual(Question.objects.filter(extra__has_key="rank").count(), 2)
        self.assertEqual(Question.objects.filter(extra__has_keys=["rank", "meta"]).get(), self.q1)
        self.assertEqual(Question.objects.filter(extra__contains={"source": "app"}).get(), self.q2)
        self.assertEqual(Question.objects.filter(extra={}).get(), self.q3)
        self.assertEqual(list(Question.objects.filter(extra__rank__gte=1).order_by("extra__rank")
                              .values_list("extra__rank", flat=True)), [1, 3])
        q = Question.objects.get(pk=self.q1.pk)
        self.assertEqual(q.extra, {"source": "web", "rank": 3, "meta": {"lang": "en"}})
        q.extra = {"text": "a 'quoted' %s \\ value", "list": [1, None, 2.5], "ok": True}
        q.save()
        q.refresh_from_db()
        self.assertEqual(q.extra, {"text": "a 'quoted' %s \\ value", "list": [1, None, 2.5], "ok": True})
        self.assertEqual(Question.objects.get(extra__text="a 'quoted' %s \\ value"), q)
        # A JSON value in the SELECT list (no column to type it): sent as jsonb, read back decoded.
        annotated = Question.objects.annotate(j=Value({"a": [1]}, output_field=JSONField()), s=Value("x", JSONField()))
        self.assertEqual(list(annotated.values_list("j", "s"))[0], ({"a": [1]}, "x"))
        Question.objects.filter(pk=self.q2.pk).update(extra=Value(["x", 2], JSONField()))
        self.assertEqual(Question.objects.get(pk=self.q2.pk).extra, ["x", 2])

    def test_arrayfield(self):
        self.assertEqual(Question.objects.filter(tags__contains=["general"]).count(), 2)
        self.assertEqual(Question.objects.filter(tags__contained_by=["general", "news", "x"]).count(), 3)
        self.assertEqual(Question.objects.filter(tags__overlap=["news", "nope"]).get(), self.q1)
        self.assertEqual(Question.objects.filter(tags__0="news").get(), self.q1)
        self.assertEqual(Question.objects.filter(tags__len=1).get(), self.q2)
        self.assertEqual(Question.objects.get(pk=self.q1.pk).tags, ["news", "general"])
        Question.objects.filter(pk=self.q3.pk).update(tags=["x", "y'z"])
        self.assertEqual(Question.objects.get(pk=self.q3.pk).tags, ["x", "y'z"])

    def test_iterator_and_raw(self):
        self.assertEqual(sorted(q.id for q in Question.objects.iterator(chunk_size=2)),
                         sorted([self.q1.id, self.q2.id, self.q3.id]))
        raw = list(Question.objects.raw("SELECT * FROM polls_question WHERE question_text LIKE %s ORDER BY id",
                                        ["What%"]))
        self.assertEqual(raw, [self.q1, self.q2])
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::int + 1, '%%s is literal', %s", [41, "x"])
            self.assertEqual(cursor.fetchone(), (42, "%s is literal", "x"))

    def test_query_and_params(self):
        sql, params = query_and_params(Question.objects.filter(question_text__contains="%", id__gt=0))
        self.assertIn("$1", sql)
        self.assertCountEqual(params, ["%\\%%", 0])
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            self.assertEqual(len(cursor.fetchall()), 1)


class AuthTests(TestCase):
    def test_user_and_admin_login(self):
        User.objects.create_superuser("admin", "admin@example.com", "s3cret-pass")
        self.assertTrue(self.client.login(username="admin", password="s3cret-pass"))
        response = self.client.get(reverse("admin:polls_question_changelist"))
        self.assertEqual(response.status_code, 200)


class CommitTests(TransactionTestCase):
    """Real commits (TestCase wraps each test in a transaction that is rolled back)."""

    def test_commit_is_visible_and_rollback_is_not(self):
        with transaction.atomic():
            create_question("committed", days=-1)
        try:
            with transaction.atomic():
                create_question("rolled back", days=-1)
                raise ValueError
        except ValueError:
            pass
        self.assertEqual(list(Question.objects.values_list("question_text", flat=True)), ["committed"])

    def test_on_commit_runs_after_commit_only(self):
        ran = []
        with transaction.atomic():
            create_question("with callback", days=-1)
            transaction.on_commit(lambda: ran.append(Question.objects.count()))
            self.assertEqual(ran, [])
        self.assertEqual(ran, [1])
        try:
            with transaction.atomic():
                transaction.on_commit(lambda: ran.append("rolled back"))
                raise ValueError
        except ValueError:
            pass
        self.assertEqual(ran, [1])

    def test_autocommit_statements_are_shared(self):
        # Outside atomic, each statement commits on its own (on the pool's shared connections).
        self.assertTrue(transaction.get_autocommit())
        create_question("one", days=-1)
        create_question("two", days=-1)
        self.assertEqual(Question.objects.count(), 2)
        # QuerySet.iterator() outside a transaction: a server-side cursor on a connection of its own
        self.assertEqual([q.question_text for q in Question.objects.order_by("id").iterator(chunk_size=1)],
                         ["one", "two"])
        it = Question.objects.iterator(chunk_size=1)
        next(it)
        it.close()  # abandoned half-way: the cursor is closed and its connection returned
        self.assertEqual(Question.objects.count(), 2)
