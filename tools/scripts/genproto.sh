#!/usr/bin/env bash
# Regenerates the committed Go code under proto/*pb from proto/*.proto.
# Pinned generators: protoc 3.21 (Debian protobuf-compiler), protoc-gen-go v1.36.12,
# protoc-gen-go-grpc v1.6.2. tools/test.sh installs them and fails when this script
# would change a byte of the committed code.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export PATH="$(go env GOPATH)/bin:$PATH"
out="${1:-$root}"
mkdir -p "$out"
for f in proto/*.proto; do
  protoc -I proto \
    --experimental_allow_proto3_optional \
    --go_out="$out" --go_opt=module=github.com/danube-messaging/danube-connect-go \
    --go-grpc_out="$out" --go-grpc_opt=module=github.com/danube-messaging/danube-connect-go \
    "$(basename "$f")"
done
