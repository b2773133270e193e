#!/usr/bin/env bash
# changed-services.sh BASE HEAD | changed-services.sh -
#
# Prints the services whose image a push must rebuild, as a JSON array for a GitHub matrix
# (["sink-http","source-mqtt"]; [] when none). A service is a directory under services/ with a
# main.go. The changed paths come from `git diff --name-only BASE HEAD`, or from stdin (one per
# line) with "-". Every service is rebuilt when BASE is empty, all zeros (a new branch) or not in
# the clone (a force push), or when a change touches what every image is built from: libs/, the
# module and Bazel files, the image declaration and base (tools/images/).
set -euo pipefail
cd "$(dirname "$0")/../.."

services() { local d; for d in services/*/; do [ -f "$d/main.go" ] && basename "$d"; done; }

paths() {
  if [ "${1:-}" = "-" ]; then cat; return; fi
  local base=${1:-} head=${2:-HEAD}
  if [ -z "$base" ] || [ "$base" = 0000000000000000000000000000000000000000 ] ||
    ! git cat-file -e "$base^{commit}" 2>/dev/null; then
    echo "go.mod" # unknown base: rebuild everything
    return
  fi
  git diff --name-only "$base" "$head"
}

selected() {
  local all path svc
  all=$(services)
  while IFS= read -r path; do
    case "$path" in
    libs/* | tools/images/* | go.mod | go.sum | MODULE.bazel | MODULE.bazel.lock | .bazelrc | .bazelversion | BUILD.bazel)
      echo "$all"
      ;;
    services/*/*)
      svc=${path#services/}
      svc=${svc%%/*}
      if grep -qxF "$svc" <<<"$all"; then echo "$svc"; fi
      ;;
    esac
  done < <(paths "$@")
}

json() {
  local first=1 s
  printf '['
  while IFS= read -r s; do
    [ -n "$s" ] || continue
    [ $first -eq 1 ] || printf ','
    printf '"%s"' "$s"
    first=0
  done
  printf ']\n'
}

selected "$@" | sort -u | json
