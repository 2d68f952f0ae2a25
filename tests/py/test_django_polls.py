"""examples/django_polls on Puff, black-box: `puff django migrate` / `test` / a custom command,
and `puff serve` with the admin driven over HTTP, against the private Postgres
(PUFF_TEST_POSTGRES_URL). The example runs in a copy, on a database of its own."""

import html.parser
import http.client
import json
import os
import re
import shutil
import urllib.parse
import uuid
from pathlib import Path

import pytest

import puff
from puff import postgres as pg

from conftest import Project
from http_helpers import Server

pytest.importorskip("django")

URL = os.environ.get("PUFF_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="PUFF_TEST_POSTGRES_URL is not set")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_polls"
ADMIN_PASSWORD = "polls-admin-pw-1"


def _url_for(database: str) -> str:
    parts = urllib.parse.urlsplit(URL)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def _admin_sql(*statements: str) -> None:
    """Runs statements on the server's maintenance database (CREATE/DROP DATABASE)."""
    pg.configure("django_tests_admin", _url_for("postgres"), pool_size=1)

    def run():
        conn = pg.connect("django_tests_admin", autocommit=True)
        for sql in statements:
            conn.execute(sql)

    puff.run(run)


@pytest.fixture(scope="module")
def polls(tmp_path_factory):
    """A migrated copy of the example on a fresh database: (project, database name)."""
    root = tmp_path_factory.mktemp("polls")
    shutil.copytree(EXAMPLE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    database = f"puff_dj_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin_sql(f'CREATE DATABASE "{database}"')
    project = Project(root)
    project.env["PUFF_DEFAULT_POSTGRES_URL"] = _url_for(database)
    try:
        r = project.run("django", "migrate", "--no-input")
        assert r.returncode == 0, r.stderr
        assert "Applying polls.0001_initial... OK" in r.stdout
        yield project, database
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
                   f'DROP DATABASE IF EXISTS "test_{database}" WITH (FORCE)')


def test_migrate_is_idempotent_and_introspection(polls):
    project, _db = polls
    r = project.run("django", "migrate", "--no-input")
    assert r.returncode == 0 and "No migrations to apply." in r.stdout, r.stderr
    r = project.run("django", "showmigrations", "polls")
    assert r.returncode == 0 and "[X] 0001_initial" in r.stdout, r.stderr
    r = project.run("django", "sqlmigrate", "polls", "0001")
    assert r.returncode == 0 and 'CREATE TABLE "polls_question"' in r.stdout, r.stderr
    r = project.run("django", "inspectdb", "polls_choice")
    assert r.returncode == 0 and "choice_text = models.CharField(max_length=200)" in r.stdout, r.stderr


def test_dumpdata_and_loaddata(polls):
    project, _db = polls
    r = project.run("django", "shell", "-c", """
from django.utils import timezone
from polls.models import Question
q = Question.objects.create(question_text="Fixture?", pub_date=timezone.now(), tags=["t"], extra={"k": [1]})
q.choice_set.create(choice_text="F1", votes=7)
""")
    assert r.returncode == 0, r.stderr
    r = project.run("django", "dumpdata", "polls", "--output", "polls.json")
    assert r.returncode == 0, r.stderr
    data = json.loads((project.root / "polls.json").read_text())
    fixture = [o for o in data if o["model"] == "polls.question" and o["fields"]["question_text"] == "Fixture?"]
    assert fixture and json.loads(fixture[0]["fields"]["tags"]) == ["t"] and fixture[0]["fields"]["extra"] == {"k": [1]}
    r = project.run("django", "shell", "-c", "from polls.models import Choice; Choice.objects.filter(choice_text='F1').delete()")
    assert r.returncode == 0, r.stderr
    r = project.run("django", "loaddata", "polls.json")  # checks constraints, resets sequences
    assert r.returncode == 0 and "Installed" in r.stdout, r.stderr
    r = project.run("django", "shell", "-c", "from polls.models import Choice; print(Choice.objects.get(choice_text='F1').votes)")
    assert r.returncode == 0 and r.stdout.split()[-1] == "7", r.stderr


MIGRATION_0002 = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("polls", "0001_initial")]
    operations = [
        migrations.AddField("choice", "note", models.CharField(max_length=20, null=True)),
        # null -> not null with a default: "UPDATE ...; SET CONSTRAINTS ALL IMMEDIATE"
        migrations.AlterField("choice", "note", models.CharField(max_length=20, default="n/a")),
        # an inline foreign key: "... REFERENCES ...; SET CONSTRAINTS ... IMMEDIATE"
        migrations.AddField("question", "parent", models.ForeignKey("polls.question", null=True,
                                                                      on_delete=models.SET_NULL)),
        # a new target drops the old constraint: "SET CONSTRAINTS ... IMMEDIATE; ALTER TABLE ..."
        migrations.AlterField("question", "parent", models.ForeignKey("polls.choice", null=True,
                                                                        on_delete=models.SET_NULL)),
        migrations.AddIndex("choice", models.Index(fields=["votes", "note"], name="choice_votes_note")),
        migrations.RenameField("choice", "note", "remark"),
        migrations.RunSQL("UPDATE polls_choice SET remark = 'a;b' WHERE choice_text = '%s;'; SELECT 1",
                          migrations.RunSQL.noop),
    ]
"""


def test_schema_changes_apply_and_reverse(polls):
    """DDL Django sends as several statements in one string, forwards and backwards."""
    project, _db = polls
    project.write("polls/migrations/0002_schema_changes.py", MIGRATION_0002)
    try:
        r = project.run("django", "migrate", "polls", "--no-input")
        assert r.returncode == 0 and "Applying polls.0002_schema_changes... OK" in r.stdout, r.stdout + r.stderr
        r = project.run("django", "sqlmigrate", "polls", "0002")
        assert r.returncode == 0 and "SET CONSTRAINTS ALL IMMEDIATE" in r.stdout, r.stderr
        r = project.run("django", "migrate", "polls", "0001", "--no-input")
        assert r.returncode == 0 and "Unapplying polls.0002_schema_changes... OK" in r.stdout, r.stdout + r.stderr
    finally:
        (project.root / "polls/migrations/0002_schema_changes.py").unlink()
    r = project.run("django", "migrate", "--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_apps_own_test_suite_passes(polls):
    project, database = polls
    r = project.run("django", "test", "polls", "--no-input", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"Ran \d\d+ tests", r.stderr) and "\nOK" in r.stderr, r.stderr
    assert f"Destroying test database for alias 'default'" in r.stderr


def test_custom_command_and_integrity_error_through_the_orm(polls):
    project, _db = polls
    script = """
import json
from django.db import IntegrityError, transaction
from django.utils import timezone
from polls.models import Choice, Question
q = Question.objects.create(question_text="dup?", pub_date=timezone.now())
q.choice_set.create(choice_text="same")
out = {}
try:
    with transaction.atomic():
        q.choice_set.create(choice_text="same")
except IntegrityError as e:
    out["error"] = [type(e).__module__, type(e).__name__, type(e.__cause__).__name__, e.__cause__.pgcode,
                    e.__cause__.diag.constraint_name]
out["after"] = q.choice_set.count()  # the connection is usable after the error
try:  # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at COMMIT
    with transaction.atomic():
        Choice.objects.create(question_id=10**9, choice_text="orphan")
except IntegrityError as e:
    out["fk"] = e.__cause__.pgcode
q.delete()
print(json.dumps(out))
"""
    r = project.run("django", "shell", "-c", script)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"error": ["django.db.utils", "IntegrityError", "UniqueViolation", "23505",
                             "unique_choice_per_question"], "after": 1, "fk": "23503"}
    r = project.run("django", "pollstats", "--pause-ms", "1")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)) == {"questions", "choices", "votes"}


def test_deferred_fk_violation_in_autocommit_raises(polls):
    """Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: outside atomic, the violation is
    found at the implicit COMMIT of the statement, after its own result."""
    project, _db = polls
    r = project.run("django", "shell", "-c", """
from django.db import IntegrityError
from polls.models import Choice
try:
    Choice.objects.create(question_id=10**9, choice_text="orphan")
    print("no error", Choice.objects.filter(question_id=10**9).count())
except IntegrityError as e:
    print("IntegrityError", e.__cause__.pgcode)
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["IntegrityError", "23503"], r.stdout


# ---- the admin over HTTP ------------------------------------------------------------------------


class _Form(html.parser.HTMLParser):
    """The fields of the form with ``id`` (or the first form): what a browser would submit."""

    def __init__(self, form_id=None):
        super().__init__()
        self.form_id, self.inside, self.fields = form_id, False, {}
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (self.form_id is None or a.get("id") == self.form_id):
            self.inside = True
        if not self.inside or "name" not in a:
            return
        if tag == "input" and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields[a["name"]] = a.get("value") or ""
        elif tag == "textarea":
            self._textarea = a["name"]
            self.fields[a["name"]] = ""
        elif tag == "select":
            self.fields.setdefault(a["name"], "")

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self.inside = False


class _Browser:
    """http.client with a cookie jar."""

    def __init__(self, srv: Server) -> None:
        self.srv, self.cookies = srv, {}

    def request(self, method, path, form=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://{self.srv.host}:{self.srv.port}{path}"
        conn = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=20)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            for value in resp.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";")[0]
            return resp.status, resp.headers, resp.read().decode()
        finally:
            conn.close()

    def form(self, path, form_id=None):
        status, _h, page = self.request("GET", path)
        assert status == 200, page[:500]
        parser = _Form(form_id)
        parser.feed(page)
        return parser.fields


def test_admin_login_and_edit_over_http_then_pages_read_the_db(polls):
    project, _db = polls
    r = project.run("django", "createsuperuser", "--no-input", "--username", "admin",
                    "--email", "admin@example.com", env={"DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD})
    assert r.returncode == 0, r.stderr
    r = project.run("django", "shell", "-c", """
from django.utils import timezone
from polls.models import Question
q = Question.objects.create(question_text="Original?", pub_date=timezone.now())
q.choice_set.create(choice_text="Yes", votes=2)
print(q.id)
""")
    assert r.returncode == 0, r.stderr
    qid = int(r.stdout.split()[-1])
    srv = Server(project, "--bind", "127.0.0.1:0")
    try:
        browser = _Browser(srv)
        # Not logged in: the admin redirects to its login page.
        status, headers, _ = browser.request("GET", "/admin/")
        assert status == 302 and "/admin/login/" in headers["Location"]
        fields = browser.form("/admin/login/?next=/admin/", "login-form")
        assert fields["csrfmiddlewaretoken"] and "csrftoken" in browser.cookies
        # A POST without the CSRF token is refused.
        status, _h, _ = browser.request("POST", "/admin/login/", {"username": "admin", "password": "x"})
        assert status == 403
        fields.update(username="admin", password="wrong")
        status, _h, page = browser.request("POST", "/admin/login/?next=/admin/", fields)
        assert status == 200 and "Please enter the correct username and password" in page
        fields.update(password=ADMIN_PASSWORD)
        status, headers, _ = browser.request("POST", "/admin/login/?next=/admin/", fields)
        assert status == 302 and headers["Location"] == "/admin/" and "sessionid" in browser.cookies
        status, _h, page = browser.request("GET", "/admin/polls/question/")
        assert status == 200 and "Original?" in page
        # Edit the question and its inline choice, as the change form would.
        change = f"/admin/polls/question/{qid}/change/"
        fields = browser.form(change, "question_form")
        assert fields["question_text"] == "Original?" and fields["choice_set-0-choice_text"] == "Yes"
        fields.update({"question_text": "Edited over HTTP?", "choice_set-0-votes": "5", "_save": "Save"})
        fields.update({"choice_set-1-choice_text": "Added", "choice_set-1-votes": "1"})
        status, headers, page = browser.request("POST", change, fields)
        assert status == 302, re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S) or page[:2000]
        assert headers["Location"] == "/admin/polls/question/"
        status, _h, page = browser.request("GET", "/admin/polls/question/")
        assert "Edited over HTTP?" in page and "was changed successfully" in page
        # The app's pages read what the admin wrote.
        status, _h, page = browser.request("GET", "/polls/")
        assert status == 200 and "Edited over HTTP?" in page
        status, _h, page = browser.request("GET", f"/polls/{qid}/results/")
        assert status == 200 and "Yes -- 5 votes" in page and "Added -- 1 vote" in page
        status, _h, body = browser.request("GET", "/polls/stats/")
        stats = json.loads(body)
        assert status == 200 and stats["votes"] >= 6 and "Edited over HTTP?" in stats["latest"]
        # The admin's history of the change (LogEntry, a JSON change message).
        status, _h, page = browser.request("GET", f"/admin/polls/question/{qid}/history/")
        assert status == 200 and "Changed Question text" in page
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("asyncio_on", [False, True], ids=["greenlets", "asyncio-loop-running"])
def test_concurrent_requests_get_their_own_connections(polls, asyncio_on):
    """Votes (transaction.atomic) and the 10-query stats page from 8 concurrent clients: each
    request greenlet has its own Django connection, with or without Puff's asyncio loop."""
    import threading

    project, _db = polls
    r = project.run("django", "shell", "-c", """
from django.utils import timezone
from polls.models import Question
q = Question.objects.create(question_text="Concurrent?", pub_date=timezone.now())
print(q.id, q.choice_set.create(choice_text="A").id)
""")
    assert r.returncode == 0, r.stderr
    qid, cid = map(int, r.stdout.split()[-2:])
    toml = (project.root / "puff.toml").read_text()
    if asyncio_on:
        (project.root / "puff.toml").write_text(toml.replace("django = true\n", "django = true\nasyncio = true\n"))
    srv = Server(project, "--bind", "127.0.0.1:0")
    errors = []

    def client():
        try:
            browser = _Browser(srv)
            token = browser.form(f"/polls/{qid}/")["csrfmiddlewaretoken"]
            for _ in range(5):
                status, _h, body = browser.request("POST", f"/polls/{qid}/vote/",
                                                   {"csrfmiddlewaretoken": token, "choice": str(cid)})
                if status != 302:
                    errors.append((status, body[:300]))
                status, _h, body = browser.request("GET", "/polls/stats/")
                if status != 200:
                    errors.append((status, body[:300]))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    try:
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        status, _h, page = _Browser(srv).request("GET", f"/polls/{qid}/results/")
        assert status == 200 and "A -- 40 votes" in page
    finally:
        (project.root / "puff.toml").write_text(toml)
        assert srv.stop() == 0
