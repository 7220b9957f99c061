#!/usr/bin/env bash
# Installs the Debian (bookworm) packages that HilbertDB needs, when they are missing.
#
#   scripts/install-deps.sh build   what building and running hilbertd needs
#   scripts/install-deps.sh run     build + what the Python client and its example need
#   scripts/install-deps.sh test    run + what the unit and end-to-end tests need
#   scripts/install-deps.sh bench   test + what the benchmarks need
#
# Runs `apt-get update` and `apt-get install` only when something is missing, through sudo when
# not root. Everything else in the repository assumes these packages and nothing more.
set -euo pipefail

BUILD=(cmake make gcc g++ pkg-config
       protobuf-compiler protobuf-c-compiler protobuf-compiler-grpc
       libgrpc-dev libprotobuf-dev libprotobuf-c-dev librocksdb-dev libyaml-dev libopenblas-dev
       libfaiss-dev libhnswlib-dev libtorch-dev libpng-dev libjpeg-dev libmicrohttpd-dev
       libssl-dev libroaring-dev)
RUN=(python3 python3-grpcio python3-protobuf python3-numpy python3-pil python3-matplotlib python3-tqdm
     dataset-fashion-mnist)
TEST=(libcmocka-dev python3-pytest python3-torch clang libclang-rt-14-dev libomp-dev
      python3-prometheus-client python3-pytest-xdist openssl)
BENCH=(python3-faiss python3-hnswlib linux-perf)

case "${1:-build}" in
  build) want=("${BUILD[@]}") ;;
  run)   want=("${BUILD[@]}" "${RUN[@]}") ;;
  test)  want=("${BUILD[@]}" "${RUN[@]}" "${TEST[@]}") ;;
  bench) want=("${BUILD[@]}" "${RUN[@]}" "${TEST[@]}" "${BENCH[@]}") ;;
  *) echo "usage: $0 [build|run|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install-deps: not root and no sudo; install these as root: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
