"""Fault-injection acceptance tests: killed and frozen workers, Redis and PostgreSQL outages.

They run real processes (``celery worker``, ``manage.py reconcile``, ``manage.py serve``, and their
own ``redis-server`` / PostgreSQL cluster on free ports) and only in the PostgreSQL pass of the suite.
"""
