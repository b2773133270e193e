#!/usr/bin/env bash
# Bazel workspace status for `--config=stamp` (see .bazelrc): the values the image labels and the
# pushed tag are stamped with. VERSION overrides the version (CI sets it from the release tag).
set -euo pipefail
echo "STABLE_GIT_COMMIT $(git rev-parse HEAD 2>/dev/null || echo unknown)"
echo "STABLE_VERSION ${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
