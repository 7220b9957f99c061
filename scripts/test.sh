#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite twice: on a release build, and
# on an AddressSanitizer + UndefinedBehaviorSanitizer build. Each run is ctest: the cmocka unit
# tests (one executable per module) and the pytest end-to-end suite against the real hilbertd.
#
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --no-asan  the release build only, for a quicker local loop
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test

jobs=$(nproc)
run_suite() { # build-dir, extra cmake args...
  local dir=$1; shift
  echo "=== $dir: configure and build" >&2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHDB_BUILD_TESTS=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "=== $dir: ctest" >&2
  ctest --test-dir "$dir" --output-on-failure -j2
}

start=$(date +%s)
run_suite build -DHDB_SANITIZE=
if [ "${1:-}" != "--no-asan" ]; then
  # LeakSanitizer needs ptrace-like rights that some sandboxes withhold; say so rather than fail
  # for a reason that has nothing to do with the code.
  probe=$(mktemp -d)
  printf 'int main(void){return 0;}\n' > "$probe/p.c"
  if gcc -fsanitize=address "$probe/p.c" -o "$probe/p" && \
     ASAN_OPTIONS=detect_leaks=1 "$probe/p" 2>"$probe/err"; then
    export ASAN_OPTIONS=detect_leaks=1
  else
    echo "WARNING: LeakSanitizer does not work here ($(head -c 200 "$probe/err")); running" \
         "the sanitizer suite with detect_leaks=0" >&2
    export ASAN_OPTIONS=detect_leaks=0
  fi
  rm -rf "$probe"
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_suite build-asan -DHDB_SANITIZE=address,undefined
  # The image decoder takes bytes from clients: 30 s of libFuzzer on it (clang), on the seeds.
  echo "=== build-fuzz: fuzz_image" >&2
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DHDB_FUZZ=ON \
        -DHDB_BUILD_TESTS=OFF >/dev/null
  cmake --build build-fuzz --target fuzz_image -j"$jobs"
  ctest --test-dir build-fuzz -L fuzz --output-on-failure
fi
echo "=== all tests passed in $(( $(date +%s) - start )) s" >&2
