"""The one declaration of every connector image, read by Bazel and by `go run ./tools/images`.

Bazel loads it (`load("//tools/images:images.bzl", "IMAGES")`); Go parses it with go.starlark.net
through the package tools/images/imagespec. Adding a service is one entry here plus one
`connector_image()` line in its BUILD.bazel.

Fields of an IMAGES entry (all required):
  repository:  where the image is pushed (without tag)
  base:        "static" (scratch plus the generated base layer: users, /tmp, CA bundle) for pure-Go
               services, or "glibc" (static plus the Debian libraries in GLIBC_PACKAGES) for cgo
  user:        "uid:gid" the entrypoint runs as; always the nonroot user 65532
  entrypoint:  the argv that starts the service; the binary lives at /<service>
  platforms:   "linux/<arch>" values the image is built for
  ports:       TCP ports the service listens on (METRICS_ADDR is 9090)
  title, description: the OCI title and description labels
"""

_REPOSITORY = "ghcr.io/danube-messaging/danube-connect/"

_PURE_GO = ["linux/amd64", "linux/arm64"]

IMAGES = {
    "bridge-kafka": {
        "repository": _REPOSITORY + "bridge-kafka",
        "base": "glibc",
        "user": "65532:65532",
        "entrypoint": ["/bridge-kafka"],
        "platforms": ["linux/amd64"],
        "ports": [9090],
        "title": "Danube Connect Kafka bridge",
        "description": "Bridges Apache Kafka topics and Danube topics in both directions (confluent-kafka-go, bundled librdkafka).",
    },
    "sink-clickhouse": {
        "repository": _REPOSITORY + "sink-clickhouse",
        "base": "static",
        "user": "65532:65532",
        "entrypoint": ["/sink-clickhouse"],
        "platforms": _PURE_GO,
        "ports": [9090],
        "title": "Danube Connect ClickHouse sink",
        "description": "Writes Danube messages into ClickHouse tables in batches.",
    },
    "sink-http": {
        "repository": _REPOSITORY + "sink-http",
        "base": "static",
        "user": "65532:65532",
        "entrypoint": ["/sink-http"],
        "platforms": _PURE_GO,
        "ports": [9090],
        "title": "Danube Connect HTTP sink",
        "description": "Delivers Danube messages to an HTTP endpoint (webhooks).",
    },
    "source-mqtt": {
        "repository": _REPOSITORY + "source-mqtt",
        "base": "static",
        "user": "65532:65532",
        "entrypoint": ["/source-mqtt"],
        "platforms": _PURE_GO,
        "ports": [9090, 1883],
        "title": "Danube Connect MQTT source",
        "description": "Publishes MQTT messages to Danube topics, as an MQTT client or as an embedded MQTT server.",
    },
    "source-postgres": {
        "repository": _REPOSITORY + "source-postgres",
        "base": "static",
        "user": "65532:65532",
        "entrypoint": ["/source-postgres"],
        "platforms": _PURE_GO,
        "ports": [9090],
        "title": "Danube Connect PostgreSQL CDC source",
        "description": "Streams PostgreSQL changes (logical replication, pgoutput) to Danube topics.",
    },
    "source-webhook": {
        "repository": _REPOSITORY + "source-webhook",
        "base": "static",
        "user": "65532:65532",
        "entrypoint": ["/source-webhook"],
        "platforms": _PURE_GO,
        "ports": [9090, 8080],
        "title": "Danube Connect webhook source",
        "description": "Publishes HTTP requests (webhooks) to Danube topics, answering 2xx once Danube has them.",
    },
}

# The Debian bookworm packages whose shared libraries (and the dynamic loader) make up the glibc
# base layer, pinned by version and sha256. Both paths fetch them from deb.debian.org (Bazel also
# from snapshot.debian.org by sha1); MODULE.bazel repeats name, sha256 and URLs in http_file
# repositories (it cannot load this file), and a test keeps the two equal.
GLIBC_PACKAGES = [
    {
        "name": "libc6",
        "version": "2.36-9+deb12u14",
        "arch": "amd64",
        "path": "pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb",
        "sha256": "ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf",
        "sha1": "c534c6c7f912b61ca26b7cf4082235a0343b8751",
    },
    {
        "name": "libgcc-s1",
        "version": "12.2.0-14+deb12u1",
        "arch": "amd64",
        "path": "pool/main/g/gcc-12/libgcc-s1_12.2.0-14+deb12u1_amd64.deb",
        "sha256": "3016e62cb4b7cd8038822870601f5ed131befe942774d0f745622cc77d8a88f7",
        "sha1": "c72798568b9086ecacf3d46e420c6d90b78ce50d",
    },
]
