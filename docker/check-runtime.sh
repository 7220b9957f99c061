#!/usr/bin/env bash
# Checks the container's runtime stage without a Docker engine: a minimal Debian bookworm root
# (debootstrap --variant=minbase, the same base as bookworm-slim) gets exactly the packages of
# docker/runtime-packages.txt, then the built hilbertd, the bundled models and the default config
# at the paths the Dockerfile uses. hilbertd runs there under chroot on the Dockerfile's command
# line, and must link (ldd finds every library), come up with the bundled model spaces, answer a
# health check and stop cleanly on SIGTERM.
#
#   sudo docker/check-runtime.sh [ROOTFS]      ROOTFS default: build/runtime-rootfs (reused)
#
# Needs root (debootstrap, chroot, mounts), a built build/hilbertd, and the Python client's
# generated modules (the build makes them). It is not part of the test suite: the root takes a
# few minutes and about 1.5 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-build/runtime-rootfs}
[ "$(id -u)" = 0 ] || { echo "check-runtime.sh: needs root" >&2; exit 2; }
[ -x build/hilbertd ] || { echo "check-runtime.sh: build/hilbertd is missing; build first" >&2; exit 2; }
command -v debootstrap >/dev/null || { apt-get update && apt-get install -y debootstrap; }

if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "=== debootstrap bookworm into $root" >&2
  mkdir -p "$root"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >&2
fi
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
for m in proc dev; do mountpoint -q "$root/$m" || mount --bind "/$m" "$root/$m"; done
pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  for m in dev proc; do umount "$root/$m" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "=== runtime packages: $(tr '\n' ' ' < docker/runtime-packages.txt)" >&2
chroot "$root" apt-get update -q >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  $(cat docker/runtime-packages.txt) >&2

install -D -m 755 build/hilbertd "$root/usr/local/bin/hilbertd"
mkdir -p "$root/usr/share/hilbertdb/models" "$root/etc/hilbertdb"
rm -rf "$root/var/lib/hilbertdb" && mkdir -p "$root/var/lib/hilbertdb"
cp models/*.pt "$root/usr/share/hilbertdb/models/"
cp config/hilbertd.yaml "$root/etc/hilbertdb/hilbertd.yaml"

missing=$(chroot "$root" ldd /usr/local/bin/hilbertd | grep "not found" || true)
[ -z "$missing" ] || { echo "FAIL: libraries missing from the runtime packages:" >&2; echo "$missing" >&2; exit 1; }

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
chroot "$root" /bin/sh -c "cd /usr/share/hilbertdb && exec hilbertd --config /etc/hilbertdb/hilbertd.yaml \
  --listen 127.0.0.1:$port --data-dir /var/lib/hilbertdb" 2>"$log" &
pid=$!
for _ in $(seq 300); do grep -q "listening on" "$log" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
grep -q "listening on" "$log" || { echo "FAIL: hilbertd did not start:" >&2; cat "$log" >&2; exit 1; }

PYTHONPATH=clients/python /usr/bin/python3 - "$port" <<'EOF'
import sys
from hilbertdb import Client
with Client(f"127.0.0.1:{sys.argv[1]}") as c:
    assert c.health() == "SERVING", c.health()
    spaces = sorted(s.name for s in c.list_model_spaces())
    assert len(spaces) >= 2, spaces
    print("health SERVING; model spaces:", ", ".join(spaces))
EOF
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] && grep -q "stopped cleanly" "$log" || { echo "FAIL: exit $rc:" >&2; tail "$log" >&2; exit 1; }
rm -f "$log"
echo "OK: the runtime stage's packages run hilbertd with its bundled models" >&2
