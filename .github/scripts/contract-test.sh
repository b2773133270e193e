#!/usr/bin/env bash
# contract-test.sh SERVICE IMAGE
#
# Runs SERVICE's contract tests against the container image IMAGE (a local tag such as
# danube-connect/sink-http:dev, or a pushed repository@sha256:digest): the harness's image checks
# (TestConnectorImages: every image answers --help) and the service's integration suite,
# integration/<service> or integration/<service without dashes>, with IT_<SERVICE>_IMAGE=IMAGE so
# that harness.StartConnector runs the image instead of building the binary. Requires Docker;
# CI_REQUIRE_INTEGRATION=1 turns every missing dependency into a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

service=${1:?usage: contract-test.sh SERVICE IMAGE}
image=${2:?usage: contract-test.sh SERVICE IMAGE}
[ -f "services/$service/main.go" ] || { echo "contract-test.sh: no service $service (services/$service/main.go)" >&2; exit 2; }

var="IT_$(tr 'a-z-' 'A-Z_' <<<"$service")_IMAGE"
export "$var=$image"
export CI_REQUIRE_INTEGRATION=1

pkgs=(./integration/harness/)
run='^TestConnectorImages$'
suite=""
for dir in "integration/$service" "integration/${service//-/}"; do
  if [ -d "$dir" ]; then suite="./$dir/..."; break; fi
done

echo "contract tests of $service against $var=$image"
go test -race -count=1 -timeout 10m -run "$run" "${pkgs[@]}"
if [ -n "$suite" ]; then
  go test -race -count=1 -timeout 30m "$suite"
else
  echo "contract-test.sh: $service has no integration suite (integration/$service); only the image checks ran" >&2
fi
