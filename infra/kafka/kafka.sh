#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) without Docker.
#
#   bash infra/kafka/kafka.sh up              # fetch jars if needed, format, start, wait until ready
#   bash infra/kafka/kafka.sh down [--purge]  # stop (and with --purge delete the data dir)
#   bash infra/kafka/kafka.sh clean           # = down --purge
#   bash infra/kafka/kafka.sh status          # exit 0 if the broker is running
#
# Environment:
#   KAFKA_PORT             client port                    default 9092
#   KAFKA_CONTROLLER_PORT  KRaft controller port          default 9093 (both bound to 127.0.0.1)
#   KAFKA_DATA_DIR         config, logs, data, pid file   default <repo>/.kafka-data
#   KAFKA_HEAP             JVM heap (fixed size)          default 1g
#   KAFKA_JVM_OPTS         JVM options (GC)               default: see JVM_OPTS below
#   KAFKA_EXTRA_PROPS      more server.properties lines, separated by ';'
#   KAFKA_READY_TIMEOUT    seconds to wait for readiness  default 60
#   JAVA_HOME              used if set, otherwise `java` from PATH
#   KAFKA_SECURITY         plaintext | scram              default plaintext
#       plaintext: no authentication, no authorization (anyone may do anything).
#       scram: the client port speaks SASL_PLAINTEXT with SCRAM-SHA-256 and is also the
#       inter-broker listener (the broker logs in as admin); the controller port speaks
#       SASL_PLAINTEXT with PLAIN, admin only; no port takes anonymous clients. ACLs are enforced
#       by KRaft's StandardAuthorizer with allow.everyone.if.no.acl.found=false; the one super
#       user is User:admin. See docs/kafka-security.md.
#   KAFKA_SCRAM_USERS      scram mode: 'name:password;name:password', admin among them
#       (name: letters, digits, . _ -; password: no ; , [ ] " ' \ or spaces). The users are created
#       when the storage is formatted, i.e. on the first 'up' of a data dir; 'up' refuses a data
#       dir formatted in the other mode or with other users ('clean' it first). Needed by 'up'
#       only; 'down', 'status', 'clean' ignore it.
#
# Jars come from Maven Central through infra/kafka/pom.xml into infra/kafka/lib/ (git-ignored).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$HERE/lib"
POM="$HERE/pom.xml"

PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
DATA="${KAFKA_DATA_DIR:-$ROOT/.kafka-data}"
HEAP="${KAFKA_HEAP:-1g}"
# Latency on a small box: the throughput collector with half the heap young collects every few
# seconds in ~5 ms, where G1 paused 6-10 ms every 1.5 s; the heap is touched at start, so no
# page fault lands mid-run. (Measured by the latency benchmark: see BENCHMARKS.md.)
JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseParallelGC -XX:NewRatio=1 -XX:+AlwaysPreTouch}"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-60}"
SECURITY="${KAFKA_SECURITY:-plaintext}"
HOST=127.0.0.1

LOG_DIR="$DATA/logs"
PROPS="$DATA/server.properties"
LOG4J="$DATA/log4j2.properties"
BROKER_LOG="$DATA/broker.log"
PID_FILE="$DATA/broker.pid"
# The mode (and, for scram, a digest of the users) the storage was formatted with.
SECURITY_STAMP="$DATA/security"
# Said after the address in messages; empty in plaintext mode (its output stays as it was).
if [[ "$SECURITY" == scram ]]; then MODE_NOTE=" (SASL_PLAINTEXT, SCRAM-SHA-256)"; else MODE_NOTE=""; fi

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi

die() { echo "kafka.sh: $*" >&2; exit 1; }

# scram mode: the users from KAFKA_SCRAM_USERS, checked (error messages never show a password).
SCRAM_NAMES=()
SCRAM_PASSWORDS=()
ADMIN_PASSWORD=""
parse_scram_users() {
  local spec="${KAFKA_SCRAM_USERS:-}" entry name pass i=0
  local -a entries
  # Characters that would break the storage tool's [name=...,password=...] or the JAAS line.
  local bad='[];,["'"'"'\\[:space:]]'
  [[ -n "$spec" ]] || die "KAFKA_SECURITY=scram needs KAFKA_SCRAM_USERS='admin:PASSWORD;NAME:PASSWORD...'"
  IFS=';' read -r -a entries <<<"$spec"
  for entry in "${entries[@]}"; do
    i=$((i + 1))
    [[ -n "$entry" ]] || continue
    [[ "$entry" == *:* ]] || die "KAFKA_SCRAM_USERS: entry $i is not name:password"
    name="${entry%%:*}"
    pass="${entry#*:}"
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "KAFKA_SCRAM_USERS: entry $i: the name may have letters, digits, . _ - only"
    [[ -n "$pass" ]] || die "KAFKA_SCRAM_USERS: user $name has an empty password"
    if [[ "$pass" =~ $bad ]]; then
      die "KAFKA_SCRAM_USERS: the password of $name has one of ; , [ ] \" ' \\ or a space"
    fi
    SCRAM_NAMES+=("$name")
    SCRAM_PASSWORDS+=("$pass")
    if [[ "$name" == admin ]]; then ADMIN_PASSWORD="$pass"; fi
  done
  [[ -n "$ADMIN_PASSWORD" ]] || die "KAFKA_SCRAM_USERS must include the super user admin (admin:PASSWORD)"
}

# What the storage must have been formatted with: the mode, and for scram a digest of the users.
security_stamp() {
  if [[ "$SECURITY" == scram ]]; then
    printf 'scram %s\n' "$(printf '%s' "$KAFKA_SCRAM_USERS" | sha256sum | cut -c1-16)"
  else
    echo plaintext
  fi
}

kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}

ensure_jars() {
  local v
  v="$(kafka_version)"
  [[ -n "$v" ]] || die "cannot read <kafka.version> from $POM"
  if [[ -f "$LIB/kafka_2.13-$v.jar" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed to fetch the Kafka $v jars"
  command -v "$JAVA" >/dev/null 2>&1 || die "Java (17+) is needed to run Kafka"
  echo "kafka.sh: resolving Kafka $v jars into $LIB (Maven Central)..."
  rm -rf "$LIB"
  mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies </dev/null
  [[ -f "$LIB/kafka_2.13-$v.jar" ]] || die "mvn finished but $LIB/kafka_2.13-$v.jar is missing"
}

read_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  echo "$pid"
}

is_running() {
  local pid
  pid="$(read_pid)" || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: it must be our java kafka.Kafka process.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka' || return 1
  fi
  return 0
}

port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

is_ready() {
  is_running || return 1
  port_open "$PORT" || return 1
  grep -q -e 'Kafka Server started' -e 'started (kafka.server.KafkaRaftServer)' "$BROKER_LOG" 2>/dev/null
}

listener_config() {
  if [[ "$SECURITY" == plaintext ]]; then
    cat <<EOF
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
EOF
    return 0
  fi
  # scram: the client listener is also the inter-broker one (the broker's own requests to it,
  # e.g. transaction markers, log in as admin). The controller listener is SASL too, with PLAIN and
  # the admin's password in the broker's JAAS line (SCRAM credentials live in the metadata the
  # controller serves, so it cannot authenticate with them): on a PLAINTEXT controller port the
  # broker's registration arrives as User:ANONYMOUS, which would have to be a super user, and then
  # anyone on the host could create ACLs through that port (Admin with bootstrap.controllers).
  local plain_login="org.apache.kafka.common.security.plain.PlainLoginModule required"
  local scram_login="org.apache.kafka.common.security.scram.ScramLoginModule required"
  cat <<EOF
listeners=SASL_PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=$scram_login username="admin" password="$ADMIN_PASSWORD";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=$plain_login username="admin" password="$ADMIN_PASSWORD" user_admin="$ADMIN_PASSWORD";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
EOF
}

write_config() {
  mkdir -p "$LOG_DIR"
  # The file holds the admin password in scram mode: readable by the owner only.
  (umask 077 && : >"$PROPS")
  cat >"$PROPS" <<EOF
# Generated by infra/kafka/kafka.sh; rewritten on every 'up'.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
$(listener_config)
controller.listener.names=CONTROLLER
log.dirs=$LOG_DIR
metadata.log.dir=$LOG_DIR
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
# A deleted topic's files go within a second, not a minute later in the middle of the next run.
file.delete.delay.ms=1000
# A development broker on a few cores: fewer request threads, fewer context switches.
num.network.threads=1
num.io.threads=2
EOF
  if [[ -n "${KAFKA_EXTRA_PROPS:-}" ]]; then
    printf '%s\n' "$KAFKA_EXTRA_PROPS" | tr ';' '\n' >>"$PROPS"
  fi
  cat >"$LOG4J" <<'EOF'
# Generated by infra/kafka/kafka.sh: everything to stdout (redirected to broker.log).
name = kafka-local
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.common.name = org.apache.kafka.common
logger.common.level = WARN
EOF
}

# A formatted data dir must match the mode (and users) asked for: SCRAM users exist only if they
# were added at format time. A dir formatted before this check existed was plaintext.
check_formatted() {
  [[ -f "$LOG_DIR/meta.properties" ]] || return 0
  local had want
  had="$(cat "$SECURITY_STAMP" 2>/dev/null || echo plaintext)"
  want="$(security_stamp)"
  [[ "$had" == "$want" ]] && return 0
  if [[ "${had%% *}" != "${want%% *}" ]]; then
    die "$DATA was formatted for KAFKA_SECURITY=${had%% *}, not $SECURITY; 'kafka.sh clean' it or use another KAFKA_DATA_DIR"
  fi
  die "KAFKA_SCRAM_USERS differ from the users $DATA was formatted with (users are created at format only); 'kafka.sh clean' it or use another KAFKA_DATA_DIR"
}

format_storage() {
  if [[ -f "$LOG_DIR/meta.properties" ]]; then
    return 0
  fi
  # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding, and (as Kafka's own
  # random-uuid ensures) not starting with '-', which the storage tool would read as an option.
  local cluster_id="-" i
  local -a scram=()
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  for i in "${!SCRAM_NAMES[@]}"; do
    scram+=(--add-scram "SCRAM-SHA-256=[name=${SCRAM_NAMES[$i]},password=${SCRAM_PASSWORDS[$i]}]")
  done
  "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$LOG4J" -cp "$LIB/*" kafka.tools.StorageTool \
    format -t "$cluster_id" -c "$PROPS" --ignore-formatted ${scram[@]+"${scram[@]}"} \
    </dev/null >"$DATA/format.log" 2>&1 \
    || { cat "$DATA/format.log" >&2; die "storage format failed"; }
  (umask 077 && security_stamp >"$SECURITY_STAMP")
}

cmd_up() {
  local start now
  start="$(date +%s)"
  case "$SECURITY" in
    plaintext) ;;
    scram) parse_scram_users ;;
    *) die "KAFKA_SECURITY must be 'plaintext' or 'scram', not '$SECURITY'" ;;
  esac
  check_formatted
  if is_ready; then
    echo "kafka ready on $HOST:$PORT$MODE_NOTE in 0s (already running, pid $(read_pid))"
    return 0
  fi
  if ! is_running; then
    rm -f "$PID_FILE"
    # A second broker of this script needs its own ports and data dir (the pid file lives there).
    local other="start this one elsewhere with KAFKA_PORT, KAFKA_CONTROLLER_PORT and KAFKA_DATA_DIR"
    if port_open "$PORT"; then
      die "port $PORT is already in use by another process; $other (then --bootstrap or MMFLOW_KAFKA__BOOTSTRAP_SERVERS=$HOST:<KAFKA_PORT> for mmflow)"
    fi
    if port_open "$CONTROLLER_PORT"; then
      die "controller port $CONTROLLER_PORT is already in use by another process; $other"
    fi
    ensure_jars
    start="$(date +%s)"   # time the broker start, not the one-off jar download
    write_config
    format_storage
    # shellcheck disable=SC2086  # JVM_OPTS is a list of options
    nohup "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" $JVM_OPTS \
      -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$LOG4J" \
      -cp "$LIB/*" kafka.Kafka "$PROPS" </dev/null >"$BROKER_LOG" 2>&1 &
    echo $! >"$PID_FILE"
  fi
  # Wait until the process is alive, the client port accepts connections and the
  # server logged that startup finished (in combined mode that is after unfencing).
  while :; do
    if is_ready; then
      now="$(date +%s)"
      echo "kafka ready on $HOST:$PORT$MODE_NOTE in $((now - start))s"
      return 0
    fi
    if ! is_running; then
      echo "---- last lines of $BROKER_LOG ----" >&2
      tail -n 40 "$BROKER_LOG" >&2 2>/dev/null || true
      rm -f "$PID_FILE"
      die "broker process exited during startup"
    fi
    now="$(date +%s)"
    if (( now - start >= READY_TIMEOUT )); then
      echo "---- last lines of $BROKER_LOG ----" >&2
      tail -n 40 "$BROKER_LOG" >&2 2>/dev/null || true
      die "broker not ready after ${READY_TIMEOUT}s (still running as pid $(read_pid); 'kafka.sh down' to stop it)"
    fi
    sleep 0.5
  done
}

cmd_down() {
  local purge=0 arg pid i
  for arg in "$@"; do
    case "$arg" in
      --purge) purge=1 ;;
      *) die "down: unknown option '$arg'" ;;
    esac
  done
  if is_running; then
    pid="$(read_pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "kafka.sh: broker pid $pid did not stop within 20s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
      done
    fi
    echo "kafka stopped (pid $pid)"
  else
    echo "kafka not running"
  fi
  rm -f "$PID_FILE"
  if (( purge )); then
    rm -rf "$DATA"
    echo "removed $DATA"
  fi
}

cmd_status() {
  if is_running; then
    if is_ready; then
      echo "kafka running on $HOST:$PORT$MODE_NOTE (pid $(read_pid))"
    else
      echo "kafka starting (pid $(read_pid)), not ready yet"
    fi
    return 0
  fi
  echo "kafka not running"
  return 1
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  clean) shift; cmd_down --purge ;;
  status) shift; cmd_status ;;
  *) echo "usage: $0 {up|down [--purge]|clean|status}" >&2; exit 2 ;;
esac
