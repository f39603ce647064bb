"""The journal's numbering: a database trigger gives each run's journal rows ``seq`` 1, 2, 3, …

The trigger bumps the run's ``JournalCounter`` row and stamps the new ``InstanceEvent``, whichever
statement inserts it (the engine's one-statement finishes included). On PostgreSQL it runs before the
insert: the counter row stays locked until the writing transaction commits, so numbers are handed out
in commit order, and ``RETURNING seq`` reads the number. SQLite writes one transaction at a time; its
trigger stamps the row after the insert (``jetadmin.db.rows.insert_rows`` reads it back there).

The trigger is (re)installed after every ``migrate`` (:func:`install`, idempotent): SQLite drops a
table's triggers whenever a migration rebuilds that table.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

_POSTGRESQL = [
    """
CREATE OR REPLACE FUNCTION workflows_number_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE workflows_journalcounter SET last_seq = last_seq + 1 WHERE instance_id = NEW.instance_id
  RETURNING last_seq INTO NEW.seq;
  IF NOT FOUND THEN  -- the run's first row (written by the transaction that creates the run)
    INSERT INTO workflows_journalcounter (instance_id, last_seq) VALUES (NEW.instance_id, 1)
    ON CONFLICT (instance_id) DO UPDATE SET last_seq = workflows_journalcounter.last_seq + 1
    RETURNING last_seq INTO NEW.seq;
  END IF;
  RETURN NEW;
END $$""",
    "DROP TRIGGER IF EXISTS workflows_number_event ON workflows_instanceevent",
    """CREATE TRIGGER workflows_number_event BEFORE INSERT ON workflows_instanceevent
  FOR EACH ROW EXECUTE FUNCTION workflows_number_event()""",
]
_SQLITE = [
    """
CREATE TRIGGER IF NOT EXISTS workflows_number_event AFTER INSERT ON workflows_instanceevent FOR EACH ROW BEGIN
  INSERT INTO workflows_journalcounter (instance_id, last_seq) VALUES (NEW.instance_id, 1)
    ON CONFLICT (instance_id) DO UPDATE SET last_seq = last_seq + 1;
  UPDATE workflows_instanceevent
     SET seq = (SELECT last_seq FROM workflows_journalcounter WHERE instance_id = NEW.instance_id)
   WHERE id = NEW.id;
END"""
]


def install(using: str = "default", **_: Any) -> None:
    connection = connections[using]
    with connection.cursor() as cursor:
        for sql in _POSTGRESQL if connection.vendor == "postgresql" else _SQLITE:
            cursor.execute(sql)
