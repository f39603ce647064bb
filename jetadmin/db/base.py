"""PostgreSQL with a bounded connection pool that fails fast while the database is down and recovers
by itself when it is back (``ENGINE = "jetadmin.db"``, set by settings for every ``postgres://`` URL).

Django's pool (psycopg_pool, ``OPTIONS["pool"]``) hands each thread one of at most ``max_size``
connections and makes the others wait up to ``timeout`` — what a burst of requests needs. During an
outage that same waiting is wrong: every request would hang for the whole timeout, and once the
database is back the pool's reconnection backoff (1 s, 2 s, 4 s, …) keeps requests waiting for seconds
more. So this backend adds two things around the pool:

* a connection handed out is checked with an empty query first (``CONN_HEALTH_CHECKS``; one round
  trip), because after a restart the idle ones are all dead;
* when a check fails, or the pool's last attempt to open a connection failed, one direct connection
  attempt (``PROBE_TIMEOUT_S``) decides: refused → the request fails at once (the API answers 503);
  accepted → the database is back, and the pool is swapped for a fresh one with no backoff left over.

Celery workers do not use the pool (jetadmin/celery.py): a prefork child keeps one connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar, cast

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2
_swap_lock = threading.Lock()


class OutageAwarePool(ConnectionPool):
    """A psycopg pool that remembers whether its last attempt to connect failed."""

    connect_failed = False

    def _connect(self, timeout: float | None = None) -> Any:
        try:
            connection = super()._connect(timeout)
        except Exception:
            self.connect_failed = True
            raise
        self.connect_failed = False
        return connection


POOL_STATS = (
    "pool_min",
    "pool_max",
    "pool_size",
    "pool_available",
    "requests_waiting",
    "requests_num",
    "requests_queued",
    "requests_wait_ms",
    "requests_errors",
    "connections_num",
    "connections_errors",
)


def pool_stats(wrapper: Any) -> dict[str, int] | None:
    """This process's pool figures (psycopg_pool's counters since start), or None without a pool."""
    pool = getattr(wrapper, "pool", None)
    if not isinstance(pool, ConnectionPool):
        return None
    stats = pool.get_stats()
    return {name: int(stats.get(name, 0)) for name in POOL_STATS}


def release_pooled_connection(wrapper: Any) -> None:
    """Give this thread's pooled connection back while it waits for something else (a sync run's end),
    so a waiting request does not keep one of the pool's few connections. No-op without a pool, or
    inside a transaction."""
    if getattr(wrapper, "pool", None) is not None and not wrapper.in_atomic_block:
        wrapper.close()


class DatabaseWrapper(base.DatabaseWrapper):
    _connection_pools: ClassVar[dict[str, Any]]  # Django's, one per alias and process
    _configure_connection: Callable[[Any], None]

    @property
    def pool(self) -> OutageAwarePool | None:
        options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            kwargs = self.get_connection_params()
            kwargs["autocommit"] = True  # Django sets the connection's mode itself later on
            pool = OutageAwarePool(
                kwargs=kwargs,
                open=False,
                configure=self._configure_connection,
                name=f"jetadmin-{self.alias}",
                **({} if options is True else options),
            )
            # Threads racing here each build a pool; the first one stored wins (as in Django).
            self._connection_pools.setdefault(self.alias, pool)
        return cast(OutageAwarePool, self._connection_pools[self.alias])

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        if pool.connect_failed:
            self._recover(pool, conn_params)
        connection = super().get_new_connection(conn_params)
        if not self.settings_dict["CONN_HEALTH_CHECKS"]:
            return connection
        try:
            OutageAwarePool.check_connection(connection)  # keeps the connection's autocommit mode
        except psycopg.Error:
            pool.putconn(connection)  # broken: the pool drops it
            self._recover(pool, conn_params)
            connection = super().get_new_connection(conn_params)
        return connection

    def _recover(self, pool: OutageAwarePool, conn_params: dict[str, Any]) -> None:
        """The pool saw the database fail: raise at once if it still refuses, else start a fresh pool."""
        params = {k: v for k, v in conn_params.items() if k != "cursor_factory"}
        self.Database.connect(**params, connect_timeout=PROBE_TIMEOUT_S).close()  # raises while down
        with _swap_lock:
            if self._connection_pools.get(self.alias) is not pool:
                return  # another thread swapped it already
            del self._connection_pools[self.alias]
        logger.warning("database %r answers again: replacing its connection pool", self.alias)
        # Closing waits for the old pool's threads; connections still lent out are closed when returned.
        threading.Thread(target=pool.close, kwargs={"timeout": 5}, daemon=True).start()
