#!/usr/bin/env bash
# Builds the hilbertd container image from docker/Dockerfile and prints its size.
#
#   docker/build-image.sh [TAG]        TAG default: hilbertdb:latest (from any directory)
#
# The Dockerfile starts FROM debian:bookworm (build stage) and debian:bookworm-slim (runtime
# stage). Each one that the engine does not have yet is pulled; when no registry is reachable
# (`docker pull` fails), it is made locally instead: debootstrap --variant=minbase bookworm from
# the Debian mirror (DEBIAN_MIRROR, default http://deb.debian.org/debian), the apt sources of
# the official image (bookworm, bookworm-updates, bookworm-security), and for -slim the official
# slim image's dpkg excludes (no documentation, man pages or translations), then `docker import`.
# That needs root (debootstrap); debootstrap is installed with apt-get when missing.
#
# Environment: DOCKER (default docker), DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR,
# DOCKER_BUILD_ARGS (extra arguments for docker build, e.g. "--network host" where the build's
# containers cannot reach the mirror).
# Output: the build log on stderr; on stdout one line with the image's size and the build time.
# Exit status: 0 with the image built, 1 (with a message) otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-hilbertdb:latest}
docker=${DOCKER:-docker}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-${mirror%/debian}/debian-security}

base_root=
trap '[ -z "$base_root" ] || rm -rf "$base_root"' EXIT
fail() { echo "build-image.sh: FAIL: $*" >&2; exit 1; }
say() { echo "=== $*" >&2; }

$docker info >/dev/null 2>&1 || fail "no Docker engine answers ($docker info failed); start dockerd"

# debootstraps the minimal bookworm tree into $base_root, configured as the official image is.
debootstrap_tree() {
  command -v debootstrap >/dev/null ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; }
  base_root=$(mktemp -d /tmp/hdb-base.XXXXXX)
  local root=$base_root
  say "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >&2 ||
    fail "debootstrap failed (is $mirror reachable?)"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
    "$mirror" "$mirror" "$security_mirror" > "$root/etc/apt/sources.list"
  # As in the official image: apt never starts services inside a container, keeps no .deb
  # files and downloads no translations.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  {
    echo 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };'
    echo 'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };'
    echo 'Dir::Cache::pkgcache "";'
    echo 'Dir::Cache::srcpkgcache "";'
  } > "$root/etc/apt/apt.conf.d/docker-clean"
  echo 'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/docker-no-languages"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log \
         "$root"/var/log/apt/* "$root/etc/resolv.conf" "$root/etc/hostname"
}

# Removes what the official slim image leaves out, and keeps dpkg from installing it again.
slim_tree() {
  local root=$base_root
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/groff/*' \
    'path-exclude /usr/share/info/*' 'path-exclude /usr/share/lintian/*' \
    'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/locale/*' \
    > "$root/etc/dpkg/dpkg.cfg.d/docker"
  find "$root/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/*
}

# Makes base image $1 (slim when $2 is 1) from one debootstrap tree shared by both images.
make_base() {
  [ "$(id -u)" = 0 ] || fail "making $1 with debootstrap needs root"
  [ -n "$base_root" ] || debootstrap_tree
  [ "$2" = 1 ] && slim_tree
  tar --numeric-owner -C "$base_root" -c . |
    $docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$1" >&2 ||
    fail "docker import of $1 failed"
}

# bookworm first: the slim tree is made from the plain one.
for base in debian:bookworm debian:bookworm-slim; do
  if $docker image inspect "$base" >/dev/null 2>&1; then
    say "base image $base: present"
  elif timeout 60 $docker pull -q "$base" >/dev/null 2>&1; then
    say "base image $base: pulled"
  else
    say "base image $base: no registry reachable, making it with debootstrap"
    make_base "$base" "$([ "$base" = debian:bookworm-slim ] && echo 1 || echo 0)"
  fi
done

say "docker build ${DOCKER_BUILD_ARGS:-}-f docker/Dockerfile -t $tag ."
start=$(date +%s)
# shellcheck disable=SC2086
$docker build ${DOCKER_BUILD_ARGS:-} -f docker/Dockerfile -t "$tag" . >&2 || fail "docker build failed"
secs=$(( $(date +%s) - start ))
bytes=$($docker image inspect -f '{{.Size}}' "$tag")
echo "image $tag: $bytes bytes ($(( bytes / 1000000 )) MB), built in ${secs}s"
