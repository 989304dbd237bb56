#!/usr/bin/env bash
# The container images with docker or podman, whichever runs here (MKRICH_CONTAINER_ENGINE
# picks one):
#   .ci/images.sh build     build the role images (`make images`; PUSH=1 pushes them), and write
#                           each image's build time and size to bench/results/images.json;
#                           MKRICH_IMAGE_ROLES="console server" builds only those roles
#   .ci/images.sh prepare   for `make test-images` where no Docker engine runs: install podman
#                           (apt, as root) and make the Dockerfile's base image locally, since no
#                           registry can be reached (MKRICH_PULL_BASE=1 pulls it instead)
#   .ci/images.sh env       print the settings (engine, podman config and storage) as exports
# podman keeps its config and storage apart from any other podman on the machine: settings in
# .ci/images/containers.conf, storage under MKRICH_PODMAN_DIR (default .cache/podman).
set -euo pipefail
cd "$(dirname "$0")/.."

# the roles of make_us_rich.images (the Dockerfile's build argument ROLE)
read -ra ROLES <<< "$(python3 -c 'import ast, sys; print(*next(ast.literal_eval(n.value) for n in ast.parse(open(sys.argv[1]).read()).body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "ROLES"))' src/make_us_rich/images.py)"
if [[ -n ${MKRICH_IMAGE_ROLES:-} ]]; then
  read -ra ONLY <<< "$MKRICH_IMAGE_ROLES"
  for role in "${ONLY[@]}"; do
    [[ " ${ROLES[*]} " == *" $role "* ]] || { echo "error: unknown role $role in MKRICH_IMAGE_ROLES; roles: ${ROLES[*]}" >&2; exit 2; }
  done
  ROLES=("${ONLY[@]}")
fi
STATE=${MKRICH_PODMAN_DIR:-$PWD/.cache/podman}
BASE=$(awk '/^FROM / {print $2; exit}' Dockerfile)
APT_PACKAGES=(podman buildah debootstrap fuse-overlayfs uidmap slirp4netns runc)

die() { echo "error: $*" >&2; exit 2; }

engine() {
  if [[ -n ${MKRICH_CONTAINER_ENGINE:-} ]]; then echo "$MKRICH_CONTAINER_ENGINE"
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker
  elif command -v podman >/dev/null; then echo podman
  else echo none
  fi
}

podman_env() {
  mkdir -p "$STATE"
  export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/.ci/images/containers.conf}
  if [[ -z ${CONTAINERS_STORAGE_CONF:-} ]]; then
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' \
      "$STATE" "$STATE" > "$STATE/storage.conf"
    export CONTAINERS_STORAGE_CONF=$STATE/storage.conf
  fi
}

# docker.io/library/NAME for a bare Docker Hub name, as podman stores it
qualified() { [[ $1 == */* ]] && echo "$1" || echo "docker.io/library/$1"; }

debian_mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
  [[ -n $uri ]] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
  echo "${MKRICH_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

# A stand-in for the official python:3.11-slim-bookworm (Debian's Python 3.11 on bookworm
# minbase), tagged with the Dockerfile's FROM name so the Dockerfile stays the one users build.
# It trusts the host's certificate authorities (pip in the build reaches PyPI through whatever
# TLS inspection the host's network does); nothing of that goes into the Dockerfile.
local_base() {
  local rootfs=$STATE/rootfs started=$SECONDS
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$(debian_mirror)"
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    cp -r /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    - "$(qualified "$BASE")"
  rm -rf "$rootfs"
  echo "local base image $(qualified "$BASE") made in $((SECONDS - started)) s"
}

prepare() {
  local missing=() e
  e=$(engine)
  if [[ $e == docker ]]; then return; fi
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if (( ${#missing[@]} )); then
    [[ $(id -u) == 0 ]] || die "no Docker engine; install podman as root: apt-get install -y ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  podman_env
  if podman image exists "$(qualified "$BASE")"; then return; fi
  if [[ ${MKRICH_PULL_BASE:-0} == 1 ]]; then podman pull "$(qualified "$BASE")"; else local_base; fi
}

image_ref() {
  local registry tag
  registry=${MKRICH_IMAGE_REGISTRY:-ghcr.io/make-us-rich}
  tag=${MKRICH_IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)}
  echo "${registry%/}/make-us-rich-$1:$tag"
}

build() {
  local e ref started seconds size rows=() table=() args=()
  e=$(engine)
  [[ $e != none ]] || die "building the images needs docker or podman; none here (make test-images installs podman)"
  if [[ $e == podman ]]; then
    podman_env
    # HEALTHCHECK needs the docker format; no pull: the base is local (make test-images)
    args=(--format docker "--pull=$([[ ${MKRICH_PULL_BASE:-0} == 1 ]] && echo missing || echo never)")
  fi
  for role in "${ROLES[@]}"; do
    ref=$(image_ref "$role")
    started=$EPOCHREALTIME
    "$e" build "${args[@]}" --build-arg ROLE="$role" -t "$ref" .
    seconds=$(awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $started}")
    size=$("$e" image inspect --format '{{.Size}}' "$ref")
    rows+=("{\"role\": \"$role\", \"image\": \"$ref\", \"build_seconds\": $seconds, \"bytes\": $size}")
    table+=("$(printf '%-8s %8s %9s  %s' "$role" "$seconds" "$((size / 1000000))" "$ref")")
    if [[ -n ${PUSH:-} ]]; then "$e" push "$ref"; fi
  done
  mkdir -p bench/results
  (IFS=,; echo "{\"engine\": \"$e\", \"images\": [${rows[*]}]}") > bench/results/images.json
  echo "role      build s   size MB  image"
  printf '%s\n' "${table[@]}"
}

env_exports() {
  local e
  e=$(engine)
  echo "export MKRICH_CONTAINER_ENGINE=$e"
  if [[ $e == podman ]]; then
    podman_env
    echo "export CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF MKRICH_PODMAN_DIR=$STATE"
  fi
}

case ${1:-} in
  build) build ;;
  prepare) prepare ;;
  env) env_exports ;;
  *) die "usage: $0 build|prepare|env" ;;
esac
