#!/usr/bin/env bash
# The whole test suite: lint, types, migrations, then pytest on SQLite (the embedded default) and on
# PostgreSQL + Redis (the distributed stack) when they can be reached. With CI=true a missing
# PostgreSQL/Redis is started if installed, and is a failure if it cannot be.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BIN=$(dirname "$PYTHON")
PG_URL=${JETADMIN_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/jetadmin}
REDIS_TEST_URL=${JETADMIN_TEST_REDIS_URL:-redis://127.0.0.1:6379/9}
# the tests that need a PostgreSQL server of their own (connectors) read these too
export JETADMIN_TEST_PG_URL=$PG_URL JETADMIN_TEST_REDIS_URL=$REDIS_TEST_URL
CI=${CI:-false}
export JETADMIN_DATA_DIR=${JETADMIN_DATA_DIR:-$PWD/var/test}

step() { printf '\n== %s\n' "$*"; }

step "ruff, mypy, migrations"
"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/mypy" .
env -u DATABASE_URL -u REDIS_URL "$PYTHON" manage.py makemigrations --check --dry-run

if [ "$CI" = "true" ]; then
  scripts/services.sh
fi

step "pytest on SQLite + in-process worker (embedded default)"
env -u DATABASE_URL -u REDIS_URL "$PYTHON" -m pytest "$@"

if "$PYTHON" - "$PG_URL" "$REDIS_TEST_URL" <<'PY'
import sys, psycopg, redis
try:
    psycopg.connect(sys.argv[1].replace("/jetadmin", "/postgres"), connect_timeout=3).close()
    redis.Redis.from_url(sys.argv[2], socket_connect_timeout=3).ping()
except Exception as exc:
    print(f"PostgreSQL/Redis not reachable: {exc}")
    sys.exit(1)
PY
then
  step "pytest on PostgreSQL + Redis (distributed stack)"
  DATABASE_URL=$PG_URL REDIS_URL=$REDIS_TEST_URL "$PYTHON" -m pytest "$@"
elif [ "$CI" = "true" ]; then
  echo "CI=true but PostgreSQL/Redis are not reachable: failing." >&2
  exit 1
else
  step "skipped the PostgreSQL + Redis pass: no server at $PG_URL / $REDIS_TEST_URL (start them, or set JETADMIN_TEST_PG_URL)"
fi
