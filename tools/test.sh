#!/usr/bin/env bash
# The project's one test command (README, .ci/run, GitHub CI).
#
# On a fresh Debian 12 machine with Go 1.26 it installs what it needs (apt packages, Go tools at
# pinned versions, the local integration servers), then runs every check and prints a summary.
# It exits non-zero if any check failed. Steps can be skipped for a quick local loop with
# SKIP="integration lint" (CI never sets it).
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# Pinned tool versions: change them here only.
PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
GAZELLE=github.com/bazelbuild/bazel-gazelle/cmd/gazelle@v0.53.0
BUILDIFIER=github.com/bazelbuild/buildtools/buildifier@v0.0.0-20260904073137-eaa4d125b423
# golangci-lint runs staticcheck (and the other linters in .golangci.yml).
GOLANGCI_LINT=github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
ACTIONLINT=github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
APT_PACKAGES=(protobuf-compiler libprotobuf-dev)

export GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
export PATH="$GOBIN:$PATH"
work="$(mktemp -d)"
trap 'stop_servers; rm -rf "$work"' EXIT

declare -a names results
step() { # step NAME COMMAND...: run a check, remember its result, keep going.
  local name=$1; shift
  if [[ " ${SKIP:-} " == *" $name "* ]]; then
    names+=("$name"); results+=("skipped"); return
  fi
  printf '\n=== %s\n' "$name"
  local start=$SECONDS
  if "$@"; then results+=("ok ($((SECONDS - start))s)"); else results+=("FAILED ($((SECONDS - start))s)"); fi
  names+=("$name")
}

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_go_tool() { # install_go_tool MODULE/PATH/cmd/NAME@VERSION
  local spec=$1 pkg=${1%@*} version=${1#*@} bin
  bin="$GOBIN/$(basename "$pkg")"
  if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -q "[[:space:]]$version"; then return 0; fi
  echo "installing $spec"
  GOFLAGS=-mod=mod go install "$spec"
}

install_tools() {
  install_apt || return 1
  local t
  for t in "$PROTOC_GEN_GO" "$PROTOC_GEN_GO_GRPC" "$GAZELLE" "$BUILDIFIER" "$GOLANGCI_LINT" "$ACTIONLINT"; do
    install_go_tool "$t" || return 1
  done
}

check_gofmt() {
  local bad
  bad=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go'))
  [ -z "$bad" ] || { echo "gofmt would change:"; echo "$bad"; return 1; }
}

check_proto_drift() {
  ./tools/scripts/genproto.sh "$work/gen" || return 1
  local rc=0 f
  for f in $(cd "$work/gen" && find . -name '*.go'); do
    cmp -s "$work/gen/$f" "$f" || { echo "generated code is stale: $f (run ./tools/scripts/genproto.sh)"; rc=1; }
  done
  for f in $(find proto -name '*.pb.go'); do
    [ -f "$work/gen/$f" ] || { echo "generated file has no .proto source: $f"; rc=1; }
  done
  return $rc
}

check_bazel() {
  go run ./tools/bazeldeps || return 1
  go run ./tools/bazeldeps -repo-config "$work/repos.bzl" || return 1
  # gazelle -mode=diff prints the diff and exits 1 when any BUILD.bazel is stale or missing.
  gazelle -mode=diff -repo_root="$root" -repo_config="$work/repos.bzl" || {
    echo "BUILD.bazel files are stale: run gazelle -repo_root=. (see README)"; return 1; }
}

itservers=tools/itservers/itservers.sh
start_servers() {
  [ -x "$itservers" ] || return 0
  "$itservers" start "$work/it.env" || return 1
  # shellcheck disable=SC1091
  source "$work/it.env"
  export CI_REQUIRE_INTEGRATION=1
}
stop_servers() { [ -x "$itservers" ] && [ -f "$work/it.env" ] && "$itservers" stop >/dev/null 2>&1; return 0; }

step tools      install_tools
step gofmt      check_gofmt
step go-mod     go mod tidy -diff
step vet        go vet ./...
step lint       golangci-lint run ./...
step proto      check_proto_drift
step bazel      check_bazel
step buildifier buildifier -mode=check -lint=warn -r .
step actionlint actionlint
step integration start_servers
step test       go test -race -count=1 -timeout 20m ./...

printf '\n=== summary\n'
failed=0
for i in "${!names[@]}"; do
  printf '  %-12s %s\n' "${names[$i]}" "${results[$i]}"
  [[ ${results[$i]} == FAILED* ]] && failed=$((failed + 1))
done
if [ $failed -ne 0 ]; then echo "tools/test.sh: $failed step(s) failed"; exit 1; fi
echo "tools/test.sh: all steps passed"
