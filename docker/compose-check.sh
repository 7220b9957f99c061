#!/usr/bin/env bash
# Checks docker/compose.yaml: `up -d` must bring hilbertd to "healthy" (the compose healthcheck,
# hilbertd --health-probe inside the container), a Health check from the host through the
# published port must answer SERVING, `stop` (SIGTERM) must end it with exit code 0 and a clean
# stop in its log, and `down -v` must remove it.
#
#   docker/compose-check.sh            after docker/build-image.sh (uses hilbertdb:latest)
#
# Runs as its own compose project (hdb-compose-check), on a free host port (HILBERTD_PORT), so
# it touches neither a running `docker-compose up` of the repository nor its data volume; its
# own volume is removed at the end. COMPOSE picks the tool (default: docker-compose, Debian's
# 1.29; "docker compose" for the v2 plugin). Exit status 0 when all checks pass, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
compose=${COMPOSE:-docker-compose}
docker=${DOCKER:-docker}
python=${HDB_PYTHON:-/usr/bin/python3}
project=hdb-compose-check

fail() { echo "compose-check.sh: FAIL: $*" >&2; exit 1; }
say() { echo "=== $*" >&2; }
HILBERTD_PORT=$($python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HILBERTD_PORT
run() { $compose -p "$project" -f docker/compose.yaml "$@"; }
trap 'run down -v >/dev/null 2>&1 || true' EXIT

$docker image inspect hilbertdb:latest >/dev/null 2>&1 || fail "no image hilbertdb:latest (docker/build-image.sh)"
say "$compose $(run version --short 2>/dev/null || true): up -d on 127.0.0.1:$HILBERTD_PORT"
run up -d >&2 || fail "$compose up -d failed"
# The container's id is looked up again each second: once (on the first run after the engine
# started) docker-compose answered `ps -q` with an id the engine did not know yet.
id= status=
for _ in $(seq 120); do
  id=$(run ps -q hilbertd 2>/dev/null || true)
  status=$($docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo unknown)
  [ "$status" = healthy ] && break
  [ "$status" = unknown ] || [ "$($docker inspect -f '{{.State.Running}}' "$id")" = true ] || break
  sleep 1
done
[ "$status" = healthy ] || { run logs >&2 || true; fail "health status $status"; }
last=$($docker inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}' "$id" | grep . | tail -1)
say "compose healthcheck: $status (last probe: exit $last)"
PYTHONPATH=clients/python $python -c '
import sys
from hilbertdb import Client
with Client(sys.argv[1]) as db:
    h = db.health()
    assert h == "SERVING", h
    print("health from the host:", h, "; model spaces:", ", ".join(sorted(s.name for s in db.list_model_spaces())))
' "127.0.0.1:$HILBERTD_PORT" || fail "Health from the host through the published port"
# stop (SIGTERM), then down: down removes the container, and with it its exit code and log.
run stop >&2 || fail "$compose stop failed"
code=$($docker inspect -f '{{.State.ExitCode}}' "$id")
[ "$code" = 0 ] || { run logs >&2 || true; fail "exit code $code after SIGTERM"; }
$docker logs "$id" 2>&1 | grep -q "stopped cleanly" || fail "no clean stop in the log"
run down -v >&2 || fail "$compose down failed"
[ -z "$(run ps -q)" ] || fail "containers left after down"
say "stop: exit code 0, stopped cleanly; down -v: removed"
echo "OK: docker/compose.yaml comes up healthy, answers, and stops cleanly"
