"""jetadmin's PostgreSQL backend: Django's, with a bounded pool that fails fast in an outage (base.py);
and one-statement inserts for the hot paths on any backend (rows.py)."""
