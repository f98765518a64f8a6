#!/usr/bin/env bash
# The main job: a realistic exam on SQLite, then the web UI. Installs what it needs first.
# Extra arguments go to `custody demo` (e.g. --scale tiny, --no-serve).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh demo
export CUSTODY_HOME=${CUSTODY_HOME:-$PWD/custody-home}
exec .venv/bin/custody demo "$@"
