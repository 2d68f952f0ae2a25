from django.db import transaction
from django.db.models import Count, F, Sum
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views import generic

from .models import Choice, Question


class IndexView(generic.ListView):
    template_name = "polls/index.html"
    context_object_name = "latest_question_list"

    def get_queryset(self):
        """The last five published questions (not those set in the future)."""
        return Question.objects.filter(pub_date__lte=timezone.now()).order_by("-pub_date")[:5]


class DetailView(generic.DetailView):
    model = Question
    template_name = "polls/detail.html"

    def get_queryset(self):
        return Question.objects.filter(pub_date__lte=timezone.now())


class ResultsView(generic.DetailView):
    model = Question
    template_name = "polls/results.html"


def vote(request, question_id):
    question = get_object_or_404(Question, pk=question_id)
    try:
        selected_choice = question.choice_set.get(pk=request.POST["choice"])
    except (KeyError, Choice.DoesNotExist):
        return render(request, "polls/detail.html",
                      {"question": question, "error_message": "You didn't select a choice."})
    with transaction.atomic():
        Choice.objects.filter(pk=selected_choice.pk).update(votes=F("votes") + 1)
    return HttpResponseRedirect(reverse("polls:results", args=(question.id,)))


def stats(request):
    """Ten ORM queries in one view (the shape of a typical dashboard page; bench/postgres uses it)."""
    now = timezone.now()
    published = Question.objects.filter(pub_date__lte=now)
    data = {
        "questions": published.count(),
        "choices": Choice.objects.count(),
        "votes": Choice.objects.aggregate(total=Sum("votes"))["total"] or 0,
        "latest": list(published.order_by("-pub_date").values_list("question_text", flat=True)[:5]),
        "popular": [c.choice_text for c in Choice.objects.select_related("question").order_by("-votes", "id")[:5]],
        "per_question": list(Question.objects.annotate(n=Count("choice")).order_by("-n", "id")
                             .values_list("id", "n")[:5]),
        "tagged": Question.objects.filter(tags__len__gt=0).count(),
        "with_extra": Question.objects.filter(extra__has_key="source").count(),
        "unvoted": Choice.objects.filter(votes=0).count(),
        "first": Question.objects.order_by("id").values_list("id", flat=True).first(),
    }
    return JsonResponse(data)
