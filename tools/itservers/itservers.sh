#!/usr/bin/env bash
# itservers.sh installs and runs the external systems of the integration
# suites as plain background processes on 127.0.0.1 — no Docker, no systemd:
#
#   PostgreSQL 15 (wal_level=logical)   IT_PG_PORT          default 25432
#   ClickHouse (Debian's 18.16)         IT_CH_TCP_PORT      default 19000 (native)
#                                       IT_CH_HTTP_PORT     default 18123 (HTTP)
#   Mosquitto (max_inflight_messages 0) IT_MQTT_PORT        default 11883
#   Apache Kafka 4.1 (KRaft, 1 node)    IT_KAFKA_PORT       default 19092 (PLAINTEXT)
#                                       IT_KAFKA_CONTROLLER_PORT default 19093
#
# PostgreSQL, ClickHouse and Mosquitto come from Debian packages (apt). Kafka
# is the broker's Maven Central artifact, KAFKA_ARTIFACT below (the one place
# its version is pinned), with its runtime dependencies copied by the ordinary
# Maven client into IT_KAFKA_CACHE (default ~/.cache/danube-it/<artifact>;
# downloads stay in Maven's local repository ~/.m2), and run with Java 17
# (apt: openjdk-17-jre-headless, maven when missing): storage formatted by
# kafka.tools.StorageTool, the server by kafka.Kafka with a generated
# server.properties (broker and controller in one process, single-replica
# internal topics, heap IT_KAFKA_HEAP, default 512m); ready once a Metadata
# request lists the broker. kfake (tools/kfake) is not started: it stays for
# in-process tests.
#
# Usage:
#   itservers.sh start [ENVFILE]   install what is missing, (re)start all four
#                                  servers with fresh data, wait until each is
#                                  ready, print versions, write `export IT_*=...`
#                                  lines to ENVFILE (default $IT_STATE_DIR/env)
#   itservers.sh stop              stop them by PID; safe to call twice
#   itservers.sh status            show which are running
#   itservers.sh run CMD [ARG...]  start, run CMD with the IT_* variables set,
#                                  stop; exits with CMD's status
#   itservers.sh kafka-config DIR ADDR CONTROLLER_ADDR
#                                  write the configuration of a Kafka broker
#                                  of its own (a test that stops and restarts it)
#
# State (data, logs, pid files, generated configurations) lives in
# IT_STATE_DIR, default /tmp/danube-it; every parent must be traversable by
# the postgres user.
set -euo pipefail

STATE_DIR=${IT_STATE_DIR:-/tmp/danube-it}
PG_PORT=${IT_PG_PORT:-25432}
CH_TCP_PORT=${IT_CH_TCP_PORT:-19000}
CH_HTTP_PORT=${IT_CH_HTTP_PORT:-18123}
MQTT_PORT=${IT_MQTT_PORT:-11883}
KAFKA_PORT=${IT_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${IT_KAFKA_CONTROLLER_PORT:-19093}
KAFKA_HEAP=${IT_KAFKA_HEAP:-512m}
# The Kafka broker, by Maven coordinates: change the version here only (the
# harness's container, harness.KafkaImage, runs the same release, as
# integration/harness/kafka_test.go checks).
KAFKA_ARTIFACT=org.apache.kafka:kafka_2.13:4.1.0
# The SLF4J 1.x binding for the log4j-core that KAFKA_ARTIFACT depends on;
# a fetch that brings another log4j-core says which version to set.
KAFKA_LOG4J_VERSION=2.24.3
KAFKA_CACHE=${IT_KAFKA_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/danube-it/${KAFKA_ARTIFACT//:/_}}
READY_TIMEOUT=${IT_READY_TIMEOUT:-60} # seconds, per server
HOST=127.0.0.1

PG_BIN=/usr/lib/postgresql/15/bin
SERVICES=(kafka mqtt clickhouse postgres) # stop order; start is the reverse

log() { printf 'itservers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- install

# install_missing installs the Debian packages whose binaries are absent. It
# runs apt-get update once, and only when something is missing.
install_missing() {
	local pkgs=()
	[[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || pkgs+=(postgresql-15)
	find_bin clickhouse-server >/dev/null || pkgs+=(clickhouse-server)
	find_bin clickhouse-client >/dev/null || pkgs+=(clickhouse-client)
	find_bin mosquitto >/dev/null || pkgs+=(mosquitto)
	command -v curl >/dev/null || pkgs+=(curl)
	command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
	command -v mvn >/dev/null || pkgs+=(maven)
	command -v flock >/dev/null || pkgs+=(util-linux)
	((${#pkgs[@]} == 0)) && return 0
	[[ $(id -u) == 0 ]] || die "packages ${pkgs[*]} are missing and installing them needs root"
	log "installing ${pkgs[*]}"
	# Debian starts services from postinst; keep the packaged ones stopped.
	local own_policy=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		own_policy=1
	fi
	local rc=0
	{ DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } \
		>"$STATE_DIR/apt.log" 2>&1 || rc=$?
	[[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
	if ((rc != 0)); then
		tail -n 30 "$STATE_DIR/apt.log" >&2
		die "apt-get install ${pkgs[*]} failed (exit $rc); full log in $STATE_DIR/apt.log"
	fi
}

# find_bin prints the path of a binary that may live in an sbin directory
# missing from PATH.
find_bin() {
	command -v "$1" 2>/dev/null && return 0
	local d
	for d in /usr/sbin /usr/bin /sbin; do
		[[ -x $d/$1 ]] && { echo "$d/$1"; return 0; }
	done
	return 1
}

# ---------------------------------------------------------------- helpers

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

require_free_port() { # name var port
	if port_open "$3"; then
		die "$1: port $HOST:$3 is already in use by another process; choose another with $2=PORT"
	fi
}

# alive reports whether process $1 runs. A server that exited stays a
# zombie until PID 1 reaps it, which may take seconds: that counts as gone.
alive() {
	[[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
	local stat
	stat=$(<"/proc/$1/stat") 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# wait_ready polls CHECK (a command) every 100 ms until it succeeds, the
# process PID dies, or READY_TIMEOUT passes; on failure it prints the tail of
# the server's log and exits.
wait_ready() { # name pid logfile check...
	local name=$1 pid=$2 logfile=$3
	shift 3
	local deadline=$((SECONDS + READY_TIMEOUT))
	until "$@" >/dev/null 2>&1; do
		if ! alive "$pid"; then
			fail_start "$name" "$logfile" "exited before it was ready"
		fi
		if ((SECONDS >= deadline)); then
			fail_start "$name" "$logfile" "not ready after ${READY_TIMEOUT}s (IT_READY_TIMEOUT)"
		fi
		sleep 0.1
	done
}

fail_start() { # name logfile reason
	log "$1 $3; last lines of $2:"
	tail -n 40 "$2" >&2 || true
	die "$1 failed to start"
}

write_pid() { echo "$2" >"$STATE_DIR/$1.pid"; }

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- postgres

start_postgres() {
	local t0
	t0=$(now_ms)
	require_free_port postgres IT_PG_PORT "$PG_PORT"
	local data=$STATE_DIR/postgres logfile=$STATE_DIR/postgres.log
	rm -rf "$data"
	mkdir -p "$data"
	chown postgres:postgres "$data"
	chmod 700 "$data"
	if ! runuser -u postgres -- test -x "$STATE_DIR"; then
		die "postgres: user postgres cannot enter $STATE_DIR; set IT_STATE_DIR to a directory whose parents are all world-traversable (e.g. under /tmp)"
	fi
	runuser -u postgres -- "$PG_BIN/initdb" -D "$data" -A trust -U postgres -E UTF8 --no-sync >"$logfile" 2>&1 ||
		fail_start postgres "$logfile" "initdb failed"
	: >"$logfile"
	chown postgres:postgres "$logfile"
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -l "$logfile" -w -t "$READY_TIMEOUT" \
		-o "-c listen_addresses=$HOST -p $PG_PORT -k $data -c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null || fail_start postgres "$logfile" "pg_ctl start failed"
	local pid
	pid=$(head -n 1 "$data/postmaster.pid")
	write_pid postgres "$pid"
	wait_ready postgres "$pid" "$logfile" runuser -u postgres -- "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT"
	log "postgres ready on $HOST:$PG_PORT (pid $pid) in $(($(now_ms) - t0)) ms: $("$PG_BIN/postgres" --version)"
}

# ---------------------------------------------------------------- clickhouse

start_clickhouse() {
	local t0
	t0=$(now_ms)
	require_free_port clickhouse IT_CH_TCP_PORT "$CH_TCP_PORT"
	require_free_port clickhouse IT_CH_HTTP_PORT "$CH_HTTP_PORT"
	local dir=$STATE_DIR/clickhouse logfile=$STATE_DIR/clickhouse.log bin
	bin=$(find_bin clickhouse-server) || die "clickhouse-server is not installed"
	rm -rf "$dir"
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
	cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <console>1</console>
    </logger>
    <listen_host>$HOST</listen_host>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <http_port>$CH_HTTP_PORT</http_port>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <timezone>UTC</timezone>
</yandex>
XML
	cat >"$dir/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
	(cd "$dir" && exec "$bin" --config-file="$dir/config.xml") </dev/null >"$logfile" 2>&1 &
	local pid=$!
	write_pid clickhouse "$pid"
	wait_ready clickhouse "$pid" "$logfile" curl -fsS "http://$HOST:$CH_HTTP_PORT/ping"
	wait_ready clickhouse "$pid" "$logfile" port_open "$CH_TCP_PORT"
	local version
	version=$(curl -fsS "http://$HOST:$CH_HTTP_PORT/?query=SELECT%20version()")
	log "clickhouse ready on $HOST:$CH_TCP_PORT (native), $HOST:$CH_HTTP_PORT (http) (pid $pid) in $(($(now_ms) - t0)) ms: ClickHouse $version"
}

# ---------------------------------------------------------------- mosquitto

start_mqtt() {
	local t0
	t0=$(now_ms)
	require_free_port mosquitto IT_MQTT_PORT "$MQTT_PORT"
	local conf=$STATE_DIR/mosquitto.conf logfile=$STATE_DIR/mosquitto.log bin
	bin=$(find_bin mosquitto) || die "mosquitto is not installed"
	# max_inflight_messages 0: with the default 20 a QoS 2 publisher with more
	# than 20 messages outstanding silently loses messages.
	cat >"$conf" <<CONF
listener $MQTT_PORT $HOST
allow_anonymous true
max_inflight_messages 0
max_queued_messages 0
persistence false
user root
log_dest stdout
log_type error
log_type warning
log_type notice
CONF
	"$bin" -c "$conf" </dev/null >"$logfile" 2>&1 &
	local pid=$!
	write_pid mqtt "$pid"
	wait_ready mosquitto "$pid" "$logfile" port_open "$MQTT_PORT"
	MQTT_SERVER=$("$bin" -h 2>/dev/null | head -n 1 || true)
	log "mosquitto ready on $HOST:$MQTT_PORT (pid $pid) in $(($(now_ms) - t0)) ms: $MQTT_SERVER"
}

# ---------------------------------------------------------------- kafka

# kafka_libs sets KAFKA_LIBS to the directory of the broker's jars, fetching
# them first when the cache lacks them: a generated pom names KAFKA_ARTIFACT (and the
# log4j-slf4j binding, which the published pom leaves out), and Maven copies
# its runtime dependencies. Maven keeps the downloads in its local repository
# (~/.m2); the copied jars stay in KAFKA_CACHE, so a warm start runs no Maven
# at all. A lock keeps concurrent starts from fetching into one directory.
kafka_libs() {
	local dir=$KAFKA_CACHE/libs stamp=$KAFKA_CACHE/libs.complete
	KAFKA_LIBS=$dir
	[[ -f $stamp && $(<"$stamp") == "$KAFKA_ARTIFACT" ]] && return 0
	mkdir -p "$KAFKA_CACHE"
	exec 9>"$KAFKA_CACHE/lock"
	flock 9
	if ! [[ -f $stamp && $(<"$stamp") == "$KAFKA_ARTIFACT" ]]; then
		local t0 g a v tmp=$KAFKA_CACHE/libs.tmp logfile=$KAFKA_CACHE/mvn.log
		t0=$(now_ms)
		IFS=: read -r g a v <<<"$KAFKA_ARTIFACT"
		log "fetching $KAFKA_ARTIFACT and its runtime dependencies with Maven into $dir"
		cat >"$KAFKA_CACHE/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by tools/itservers/itservers.sh: the Apache Kafka broker's runtime classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.danube-it</groupId>
  <artifactId>kafka-broker-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$KAFKA_LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
		rm -rf "$tmp" "$stamp"
		if ! mvn -B -q -f "$KAFKA_CACHE/pom.xml" dependency:copy-dependencies \
			-DincludeScope=runtime -DoutputDirectory="$tmp" >"$logfile" 2>&1; then
			tail -n 30 "$logfile" >&2
			die "kafka: Maven could not fetch $KAFKA_ARTIFACT; full log in $logfile"
		fi
		[[ -f $tmp/$a-$v.jar ]] || die "kafka: Maven copied no $a-$v.jar to $tmp; see $logfile"
		if [[ ! -f $tmp/log4j-core-$KAFKA_LOG4J_VERSION.jar ]]; then
			die "kafka: $KAFKA_ARTIFACT uses $(cd "$tmp" && echo log4j-core-*.jar), not log4j-core-$KAFKA_LOG4J_VERSION.jar: set KAFKA_LOG4J_VERSION in $0 to its version"
		fi
		rm -rf "$dir"
		mv "$tmp" "$dir"
		echo "$KAFKA_ARTIFACT" >"$stamp"
		log "fetched $(find "$dir" -name '*.jar' | wc -l) jars ($(du -sh "$dir" | cut -f1)) in $(($(now_ms) - t0)) ms"
	fi
	exec 9>&-
}

# kafka_metadata_ready sends a Metadata v4 request (all topics) to the
# broker and succeeds when the response names at least one broker: the
# broker answers requests only once it has registered with the controller.
kafka_metadata_ready() { # port
	local hex
	# size 17 | api key 3 | version 4 | correlation id 7 | client id "it" | topics null | no auto-create
	hex=$(
		exec 3<>"/dev/tcp/$HOST/$1" || exit 1
		printf '\x00\x00\x00\x11\x00\x03\x00\x04\x00\x00\x00\x07\x00\x02it\xff\xff\xff\xff\x00' >&3
		timeout 5 head -c 16 <&3 | od -An -v -tx1 | tr -d ' \n'
	) || return 1
	# size | correlation id | throttle time | broker count
	[[ ${#hex} == 32 && ${hex:8:8} == 00000007 ]] && ((16#${hex:24:8} >= 1))
}

# write_kafka_config writes DIR/server.properties (a single-node KRaft broker
# listening on ADDR, its controller on CONTROLLER_ADDR, data in DIR/data) and
# DIR/log4j2.yaml. The bridge's outage test writes its own broker's with the
# kafka-config command.
write_kafka_config() { # dir addr controller_addr
	local dir=$1 addr=$2 ctrl=$3
	mkdir -p "$dir/data"
	cat >"$dir/server.properties" <<PROPS
# Generated by tools/itservers/itservers.sh: a single-node KRaft cluster on $addr.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$ctrl
listeners=PLAINTEXT://$addr,CONTROLLER://$ctrl
advertised.listeners=PLAINTEXT://$addr
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
	# WARN and up, plus the lines that say which broker started.
	cat >"$dir/log4j2.yaml" <<'YAML'
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: org.apache.kafka.common.utils.AppInfoParser
        level: INFO
      - name: kafka.server.KafkaRaftServer
        level: INFO
YAML
}

start_kafka() {
	local t0
	t0=$(now_ms)
	require_free_port kafka IT_KAFKA_PORT "$KAFKA_PORT"
	require_free_port kafka IT_KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
	local dir=$STATE_DIR/kafka logfile=$STATE_DIR/kafka.log
	kafka_libs
	rm -rf "$dir"
	write_kafka_config "$dir" "$HOST:$KAFKA_PORT" "$HOST:$KAFKA_CONTROLLER_PORT"
	# A test broker on a shared 2-core machine: the serial collector and C1
	# only (no C2 compilation in the background) start it in about half the
	# time and leave the cores to the tests.
	local java_opts=("-Xms${KAFKA_HEAP}" "-Xmx${KAFKA_HEAP}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
		"-Dlog4j2.configurationFile=$dir/log4j2.yaml" -cp "$KAFKA_LIBS/*")
	local cluster_id
	cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	java "${java_opts[@]}" kafka.tools.StorageTool format --cluster-id="$cluster_id" -c "$dir/server.properties" \
		</dev/null >"$logfile" 2>&1 || fail_start kafka "$logfile" "kafka-storage format failed"
	: >"$logfile"
	java "${java_opts[@]}" kafka.Kafka "$dir/server.properties" </dev/null >"$logfile" 2>&1 &
	local pid=$!
	write_pid kafka "$pid"
	wait_ready kafka "$pid" "$logfile" kafka_metadata_ready "$KAFKA_PORT"
	local version commit
	version=$(sed -n 's/.*Kafka version: \([^ ]*\).*/\1/p' "$logfile" | head -n 1)
	commit=$(sed -n 's/.*Kafka commitId: \([^ ]*\).*/\1/p' "$logfile" | head -n 1)
	KAFKA_SERVER="Apache Kafka ${version:-?} (commit ${commit:-?}, KRaft, single node)"
	log "kafka ready on $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT) (pid $pid) in $(($(now_ms) - t0)) ms: $KAFKA_SERVER"
}

# ---------------------------------------------------------------- stop

# stop_one signals the process in NAME's pid file if it is still the server
# we started (its command line names PATTERN), waits for it to exit and
# removes the pid file.
stop_one() { # name pattern signal
	local name=$1 pattern=$2 sig=$3 pidfile=$STATE_DIR/$1.pid pid
	[[ -f $pidfile ]] || return 0
	pid=$(<"$pidfile")
	if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"; then
		kill "-$sig" "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 20))
		while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
		if alive "$pid"; then
			log "$name (pid $pid) did not stop after SIG$sig; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			while alive "$pid"; do sleep 0.1; done
		fi
		log "stopped $name (pid $pid)"
	fi
	rm -f "$pidfile"
}

stop_all() {
	[[ -d $STATE_DIR ]] || return 0
	# kfake: what an older version of this script started as kafka
	stop_one kafka 'kafka\.Kafka \|/kfake ' TERM
	stop_one mqtt mosquitto TERM
	stop_one clickhouse clickhouse TERM
	stop_one postgres postgres INT # fast shutdown
}

status() {
	local name pid
	for name in "${SERVICES[@]}"; do
		pid=$(cat "$STATE_DIR/$name.pid" 2>/dev/null || true)
		if alive "$pid"; then echo "$name: running (pid $pid)"; else echo "$name: stopped"; fi
	done
}

# ---------------------------------------------------------------- start

write_env() { # file
	local file=$1 tmp
	mkdir -p "$(dirname "$file")"
	tmp=$(mktemp "$file.XXXXXX")
	cat >"$tmp" <<ENV
# Written by tools/itservers/itservers.sh start; source it before go test.
export IT_POSTGRES_DSN='postgres://postgres@$HOST:$PG_PORT/postgres?sslmode=disable'
export IT_CLICKHOUSE_NATIVE_ADDR='$HOST:$CH_TCP_PORT'
export IT_CLICKHOUSE_HTTP_ADDR='$HOST:$CH_HTTP_PORT'
export IT_KAFKA_BOOTSTRAP='$HOST:$KAFKA_PORT'
export IT_KAFKA_SERVER='$KAFKA_SERVER'
export IT_MQTT_URL='tcp://$HOST:$MQTT_PORT'
export IT_MQTT_SERVER='$MQTT_SERVER'
ENV
	mv "$tmp" "$file"
	log "wrote $file"
}

start_all() { # envfile
	local envfile=${1:-$STATE_DIR/env}
	mkdir -p "$STATE_DIR"
	chmod 755 "$STATE_DIR"
	install_missing
	stop_all # idempotent: a second start restarts cleanly with fresh data
	# Check every port before starting anything.
	require_free_port postgres IT_PG_PORT "$PG_PORT"
	require_free_port clickhouse IT_CH_TCP_PORT "$CH_TCP_PORT"
	require_free_port clickhouse IT_CH_HTTP_PORT "$CH_HTTP_PORT"
	require_free_port mosquitto IT_MQTT_PORT "$MQTT_PORT"
	require_free_port kafka IT_KAFKA_PORT "$KAFKA_PORT"
	require_free_port kafka IT_KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
	# On any failure below (die exits), stop whatever did start.
	trap 'rc=$?; if ((rc != 0)); then log "start failed; stopping what started"; stop_all; fi' EXIT
	start_postgres
	start_clickhouse
	start_mqtt
	start_kafka
	write_env "$envfile"
	trap - EXIT
}

main() {
	local cmd=${1:-}
	shift || true
	case $cmd in
	start) start_all "$@" ;;
	stop) stop_all ;;
	status) status ;;
	kafka-config)
		(($# == 3)) || die "usage: $0 kafka-config DIR ADDR CONTROLLER_ADDR"
		write_kafka_config "$@"
		;;
	run)
		(($# > 0)) || die "usage: $0 run CMD [ARG...]"
		start_all "$STATE_DIR/env"
		trap stop_all EXIT
		# shellcheck disable=SC1091
		source "$STATE_DIR/env"
		local rc=0
		"$@" || rc=$?
		return "$rc"
		;;
	*) die "usage: $0 start [ENVFILE] | stop | status | run CMD [ARG...] | kafka-config DIR ADDR CONTROLLER_ADDR" ;;
	esac
}

main "$@"
