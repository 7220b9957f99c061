#!/usr/bin/env bash
# Smoke test of the hilbertd image through its published port.
#
#   docker/smoke.sh [IMAGE]            IMAGE default: hilbertdb:latest (docker/build-image.sh)
#
# 1. The image carries none of OpenCV, FFmpeg, GStreamer or Qt, and hilbertd runs as a non-root
#    user.
# 2. A container runs it with port 50051 published on 127.0.0.1 (a free host port) and a fresh
#    data volume; the image's own HEALTHCHECK (hilbertd --health-probe) must report "healthy",
#    and a Health check from the host must answer SERVING.
# 3. From the host, through the published port: create a data source and a flat index, upload
#    points, search with min_seq = the upload's last seq (each point must find itself first);
#    the bundled model spaces (fmnist_cnn, fmnist_mlp) must be listed, embed an image and find
#    it again (add_image, find_similar_image with min_seq).
# 4. docker stop sends SIGTERM: the container must exit with code 0 and log "stopped cleanly".
#
# The host side uses Debian's /usr/bin/python3 (python3-grpcio, python3-numpy) with
# PYTHONPATH=clients/python, whose generated stubs a host build makes (cmake --build build).
# Exit status 0 when every check passes; otherwise 1 with a message naming the failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-hilbertdb:latest}
docker=${DOCKER:-docker}
python=${HDB_PYTHON:-/usr/bin/python3}
name=hdb-smoke-$$
volume=hdb-smoke-data-$$

fail() { echo "smoke.sh: FAIL: $*" >&2; exit 1; }
say() { echo "=== $*" >&2; }
cleanup() {
  $docker rm -f "$name" >/dev/null 2>&1 || true
  $docker volume rm "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT

$docker image inspect "$image" >/dev/null 2>&1 || fail "no image $image (docker/build-image.sh)"
[ -f clients/python/hilbert/v1/catalog_pb2.py ] ||
  fail "clients/python has no generated stubs: build on the host first (cmake --build build)"

say "image $image: $($docker image inspect -f '{{.Size}}' "$image") bytes"
heavy=$($docker run --rm --entrypoint /bin/sh "$image" -c \
  'ls /usr/lib/x86_64-linux-gnu | grep -E "opencv|libav(codec|format|util)|libgst|Qt5" || true')
[ -z "$heavy" ] || fail "the image carries $(echo "$heavy" | wc -l) library files of OpenCV," \
  "FFmpeg, GStreamer or Qt, which hilbertd does not load (e.g. $(echo "$heavy" | head -3 | tr '\n' ' '))"
user=$($docker run --rm --entrypoint /usr/bin/id "$image" -un)
[ "$user" = hilbertdb ] || fail "hilbertd runs as $user, not hilbertdb"
say "no OpenCV/FFmpeg/GStreamer/Qt in the image; runs as $user"

port=$($python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$docker run -d --name "$name" -p "127.0.0.1:$port:50051" -v "$volume:/var/lib/hilbertdb" \
  "$image" >/dev/null || fail "docker run failed"
say "container $name, port 127.0.0.1:$port"

status=
for _ in $(seq 120); do
  status=$($docker inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null || echo gone)
  running=$($docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null || echo false)
  [ "$status" = healthy ] && break
  [ "$running" = true ] || { $docker logs "$name" >&2 || true; fail "the container exited"; }
  sleep 1
done
[ "$status" = healthy ] ||
  { $docker logs "$name" >&2 || true; fail "the container's health check says $status after 120 s"; }
say "HEALTHCHECK (hilbertd --health-probe inside the container): $status"

PYTHONPATH=clients/python $python - "127.0.0.1:$port" <<'EOF' || fail "the client checks failed"
import io
import sys

import numpy as np
from hilbertdb import Client

with Client(sys.argv[1], timeout=60) as db:
    db.wait_until_ready(timeout=60)
    health = db.health()
    assert health == "SERVING", health
    print("health from the host:", health)

    db.create_data_source("smoke", dimension=16, permanent_attributes={"id": "int64"},
                          id_attributes=["id"])
    db.create_index("smoke-flat", data_source="smoke", metric="l2")
    x = np.random.default_rng(1).random((200, 16), dtype=np.float32)
    up = db.upload("smoke", x, attributes={"id": np.arange(200)})
    res = db.search("smoke-flat", x[:20], k=3, min_seq=up)
    assert res.applied_seq >= up.last_seq, (res.applied_seq, up)
    firsts = [hits[0].id for hits in res]
    assert firsts == list(range(20)), firsts
    print(f"upload of 200 points: seqs {up.first_seq}..{up.last_seq}; search with "
          f"min_seq={up.last_seq}: applied_seq {res.applied_seq}, 20/20 queries find themselves")

    spaces = sorted(s.name for s in db.list_model_spaces())
    assert {"fmnist_cnn", "fmnist_mlp"} <= set(spaces), spaces
    from PIL import Image
    img = np.zeros((28, 28), dtype=np.uint8)
    img[6:22, 10:18] = 255  # a bright bar on black, Fashion-MNIST sized
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    png = buf.getvalue()
    vecs = db.embed(image=png)
    dims = {k: v.shape[0] for k, v in sorted(vecs.items())}
    assert dims == {"fmnist_cnn": 64, "fmnist_mlp": 32}, dims
    seqs = db.add_image("bar", png)
    found = db.find_similar_image(png, k=1, min_seq=seqs)
    ids = {space: [h.id for h in hits] for space, hits in sorted(found.items())}
    assert ids == {"fmnist_cnn": ["bar"], "fmnist_mlp": ["bar"]}, ids
    print(f"model spaces {', '.join(spaces)}: embed dims {dims}; add_image + "
          f"find_similar_image finds the image in both")
EOF

say "docker stop (SIGTERM)"
$docker stop -t 60 "$name" >/dev/null
code=$($docker inspect -f '{{.State.ExitCode}}' "$name")
logs=$($docker logs "$name" 2>&1)
[ "$code" = 0 ] || { echo "$logs" | tail -20 >&2; fail "exit code $code after SIGTERM"; }
echo "$logs" | grep -q "SIGTERM received" || fail "the log does not say SIGTERM received"
echo "$logs" | grep -q "stopped cleanly" || { echo "$logs" | tail >&2; fail "no clean stop in the log"; }
say "exit code 0, log: $(echo "$logs" | grep -c .) lines, ends with: $(echo "$logs" | tail -1)"
echo "OK: $image passed the smoke test"
