"""Cancels on a shared connection never cost another caller its data.

Killing a greenlet cancels its statement with PQcancel, which stops whatever the server runs when
the signal lands: sometimes a neighbour's statement. The pool runs such a neighbour again. It must
not run it on a connection a transaction pinned meanwhile: there it ran inside that transaction
and was rolled back with it, after its caller had been told it succeeded."""

import collections
import os
import random
import uuid

import pytest

import puff
from puff import postgres as pg

URL = os.environ.get("PUFF_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="PUFF_TEST_POSTGRES_URL is not set")


@pytest.mark.parametrize("hub_connection", [True, False])
def test_an_autocommit_insert_that_succeeded_is_never_rolled_back_by_someone_elses_transaction(hub_connection):
    table = "t_cancel_" + uuid.uuid4().hex[:8]
    inserted, errors = [], collections.Counter()

    def auto_insert(k):
        try:
            cur = pg.connect(autocommit=True).execute(
                f"insert into {table} select %s::int from pg_sleep(0.002) returning k", [k])
            inserted.append(cur.fetchone()[0])
        except pg.Error as e:
            errors[type(e).__name__] += 1

    def transaction_rolled_back():
        try:
            with pg.connect() as c:
                c.execute(f"insert into {table} values (-1)")
                c.execute("select pg_sleep(0.05)")
                raise KeyError("roll back")
        except KeyError:
            pass

    def main():
        # One connection: the transaction pins the connection the shared inserts are pipelined on.
        pg.configure("default", URL, pool_size=1, hub_connection=hub_connection)
        auto = pg.connect(autocommit=True)
        auto.execute(f"create table {table} (k int)")
        try:
            rnd = random.Random(1)
            for batch in range(5):
                handles = [puff.spawn(auto_insert, batch * 1000 + i) for i in range(200)]
                puff.sleep_ms(5)
                handles.append(puff.spawn(transaction_rolled_back))
                for _ in range(40):  # killed mid-statement: their cancels land on neighbours too
                    puff.sleep_ms(rnd.randint(1, 8))
                    handles[rnd.randrange(200)].kill()
                for h in handles:
                    try:
                        h.join()
                    except BaseException:  # noqa: BLE001 - the killed ones
                        pass
            present = {r[0] for r in auto.execute(f"select k from {table}").fetchall()}
            return [k for k in inserted if k not in present], pg.get_pool().stats()
        finally:
            auto.execute(f"drop table {table}")

    missing, stats = puff.run(main)
    assert len(inserted) > 500  # most inserts were not killed
    assert missing == [] and "InFailedSqlTransaction" not in errors, (missing, dict(errors))
    assert stats["pinned"] == 0 and stats["in_flight"] == 0
