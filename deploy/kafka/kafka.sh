#!/usr/bin/env bash
# Local Apache Kafka for development and tests: one KRaft node (broker + controller) on 127.0.0.1.
#
#   deploy/kafka/kafka.sh start    resolve the broker from Maven Central (once), format storage (once), start, wait until it answers
#   deploy/kafka/kafka.sh stop     stop the broker this script started
#   deploy/kafka/kafka.sh status   exit 0 when a broker answers on the port
#
# Settings (environment): KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_HOME_DIR (<repo>/.kafka:
# data/, logs/broker.log, kafka.pid), KAFKA_HEAP_OPTS (-Xms512m -Xmx1g), KAFKA_START_TIMEOUT (120 s),
# KAFKA_CLASSPATH_FILE (<repo>/.kafka/classpath.txt: the Maven class path, shared by every broker home).
#
# A secured broker (the TLS + SCRAM set-up of a managed Kafka, for tests, `make chaos` and trying the
# PREEMPT_KAFKA_* settings): KAFKA_SECURITY=SASL_SSL serves clients on a SASL_SSL listener only (TLS,
# SCRAM-SHA-512). On the first start it makes a CA, a broker certificate for 127.0.0.1/localhost and a
# client certificate (tls/client.pem, tls/client-key.pem) with openssl in $KAFKA_HOME_DIR/tls/ (ca.pem
# is what clients trust), creates the user KAFKA_SCRAM_USER (preempt) with KAFKA_SCRAM_PASSWORD (random
# when unset; neither may hold , [ ] " \ or white space) while formatting the storage, and writes
# $KAFKA_HOME_DIR/client.env: the PREEMPT_* settings a client needs (source it; values shell-quoted).
# KAFKA_SASL_MECHANISMS (SCRAM-SHA-512) lists the mechanisms the listener offers, any of PLAIN,
# SCRAM-SHA-256, SCRAM-SHA-512 (client.env names the first);
# KAFKA_SSL_CLIENT_AUTH=required adds mutual TLS (client.env then names the client certificate).
# KAFKA_AUTHORIZER=acl turns Kafka's ACLs on, as a managed Kafka has them: only the broker's own user
# (tls/broker.password; admin.env holds its client settings) may do anything until ACLs grant more,
# e.g. to the user of client.env (for tests of a client that lacks one).
# SCRAM users exist only for the mechanisms listed when the storage was formatted (the first start):
# to offer another SCRAM mechanism, start with a fresh KAFKA_HOME_DIR.
# Use it with its own KAFKA_HOME_DIR and ports, e.g.
#   KAFKA_SECURITY=SASL_SSL KAFKA_HOME_DIR=/tmp/k-sasl KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 deploy/kafka/kafka.sh start
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
port="${KAFKA_PORT:-9092}"
cport="${KAFKA_CONTROLLER_PORT:-9093}"
home="${KAFKA_HOME_DIR:-$repo/.kafka}"
heap="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
timeout="${KAFKA_START_TIMEOUT:-120}"
data="$home/data"
logs="$home/logs"
pidfile="$home/kafka.pid"
cpfile="${KAFKA_CLASSPATH_FILE:-$repo/.kafka/classpath.txt}"
props="$home/server.properties"
security="${KAFKA_SECURITY:-PLAINTEXT}"
tls="$home/tls"
scram_user="${KAFKA_SCRAM_USER:-preempt}"
mechanisms="${KAFKA_SASL_MECHANISMS:-SCRAM-SHA-512}"
client_auth="${KAFKA_SSL_CLIENT_AUTH:-none}"
authorizer="${KAFKA_AUTHORIZER:-none}"

say() { printf 'kafka: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

our_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid
  pid="$(cat "$pidfile")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

resolve() {
  if [[ -s "$cpfile" && "$cpfile" -nt "$here/pom.xml" ]]; then return; fi
  command -v mvn >/dev/null || { say "Maven (mvn) is required to resolve the broker; install it (apt-get install maven)"; exit 1; }
  command -v java >/dev/null || { say "Java 17+ is required; install it (apt-get install openjdk-17-jre-headless)"; exit 1; }
  say "resolving org.apache.kafka:kafka_2.13 from Maven Central (first run only)…"
  mkdir -p "$home" "$(dirname "$cpfile")"
  mvn -q -B -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$cpfile.tmp" >"$home/maven.log" 2>&1 \
    || { say "Maven failed; see $home/maven.log"; tail -20 "$home/maven.log" >&2; exit 1; }
  mv "$cpfile.tmp" "$cpfile"
}

java_run() {
  # shellcheck disable=SC2086
  java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dkafka.logs.dir="$logs" -Dlog4j2.configurationFile="$here/log4j2.properties" \
    -cp "$(cat "$cpfile")" "$@"
}

write_props() {
  mkdir -p "$data" "$logs"
  cat >"$props" <<PROPS
# Written by deploy/kafka/kafka.sh; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$security://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$security://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=$security
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$security:$security
$(secured_props)
log.dirs=$data
num.partitions=1
# One node: internal topics (offsets, transactions, share state) with replication factor 1,
# so consumer groups and exactly-once transactions work.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Off: a topic auto-created by a producer gets 1 partition and breaks Faust tables (PartitionsMismatch);
# the apps and the CLI create their topics with the configured partition count.
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=168
log.segment.bytes=67108864
num.network.threads=2
num.io.threads=4
PROPS
}

first_mechanism() { printf '%s' "${mechanisms%%,*}"; }

secured_props() {
  [[ "$security" == "SASL_SSL" ]] || return 0
  local broker_password client_password mechanism
  broker_password="$(cat "$tls/broker.password")"
  client_password="$(tr -d '\n' <"$tls/client.password")"
  cat <<SECURED
# SASL_SSL listener: TLS with the PEM files made by make_tls and the SASL mechanisms of
# KAFKA_SASL_MECHANISMS (SCRAM users created at format time, PLAIN users listed below); the broker
# authenticates to itself as the "broker" user. The controller listener stays on 127.0.0.1 in plain
# text: only this process talks to it.
sasl.enabled.mechanisms=$mechanisms
sasl.mechanism.inter.broker.protocol=$(first_mechanism)
ssl.keystore.type=PEM
ssl.keystore.location=$tls/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
# Kafka applies client authentication on a SASL_SSL listener only when set with the listener prefix.
listener.name.sasl_ssl.ssl.client.auth=$client_auth
SECURED
  if [[ "$authorizer" == "acl" ]]; then
    # ACLs on: the broker's own user (inter-broker) and the plain-text controller listener's
    # ANONYMOUS principal may do anything; every other user needs ACLs.
    printf '%s\n' "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" \
      "super.users=User:broker;User:ANONYMOUS" "allow.everyone.if.no.acl.found=false"
  fi
  for mechanism in ${mechanisms//,/ }; do
    case "$mechanism" in
      PLAIN) printf '%s\n' "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"$broker_password\" user_broker=\"$broker_password\" user_$scram_user=\"$client_password\";" ;;
      SCRAM-SHA-256 | SCRAM-SHA-512) printf '%s\n' "listener.name.sasl_ssl.${mechanism,,}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"$broker_password\";" ;;
    esac
  done
}

make_tls() {
  # A CA and a broker certificate (SAN 127.0.0.1, localhost) signed by it, and the two SCRAM passwords.
  [[ -s "$tls/broker-keystore.pem" ]] && return 0
  command -v openssl >/dev/null || { say "openssl is required for KAFKA_SECURITY=SASL_SSL"; exit 1; }
  mkdir -p "$tls"
  chmod 700 "$tls"
  (
    cd "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Preempt test CA" \
      -keyout ca-key.pem -out ca.pem >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker-key.pem -out broker.csr >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
      -extfile broker.ext -out broker.pem >/dev/null 2>&1
    # Kafka's PEM keystore wants an unencrypted PKCS#8 key followed by the certificate.
    openssl pkcs8 -topk8 -nocrypt -in broker-key.pem -out broker-key.pk8 2>/dev/null
    cat broker-key.pk8 broker.pem >broker-keystore.pem
    # A client certificate for mutual TLS (KAFKA_SSL_CLIENT_AUTH=required).
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$scram_user" -keyout client-key.pem -out client.csr >/dev/null 2>&1
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
      -extfile client.ext -out client.pem >/dev/null 2>&1
    openssl rand -hex 24 >broker.password
    if [[ -n "${KAFKA_SCRAM_PASSWORD:-}" ]]; then printf '%s' "$KAFKA_SCRAM_PASSWORD" >client.password
    else openssl rand -hex 16 >client.password; fi
    chmod 600 ./*.pem ./*.password ./*.pk8
  ) || { say "making the test certificates failed"; exit 1; }
}

scram_args() {
  [[ "$security" == "SASL_SSL" ]] || return 0
  local mechanism
  for mechanism in ${mechanisms//,/ }; do
    [[ "$mechanism" == SCRAM-* ]] || continue
    printf '%s\n' --add-scram "$mechanism=[name=broker,password=$(cat "$tls/broker.password")]" \
      --add-scram "$mechanism=[name=$scram_user,password=$(tr -d '\n' <"$tls/client.password")]"
  done
}

write_client_env() {
  [[ "$security" == "SASL_SSL" ]] || return 0
  cat >"$home/client.env" <<ENV
# The settings a Preempt client needs for this broker (written by deploy/kafka/kafka.sh).
export PREEMPT_BROKER=kafka://127.0.0.1:$port
export PREEMPT_KAFKA_SECURITY_PROTOCOL=SASL_SSL
export PREEMPT_KAFKA_SASL_MECHANISM=$(first_mechanism)
export PREEMPT_KAFKA_SASL_USERNAME=$(printf '%q' "$scram_user")
export PREEMPT_KAFKA_SASL_PASSWORD=$(printf '%q' "$(tr -d '\n' <"$tls/client.password")")
export PREEMPT_KAFKA_SSL_CA_FILE=$(printf '%q' "$tls/ca.pem")
ENV
  if [[ "$client_auth" == "required" ]]; then
    printf 'export PREEMPT_KAFKA_SSL_CERT_FILE=%s\nexport PREEMPT_KAFKA_SSL_KEY_FILE=%s\n' \
      "$tls/client.pem" "$tls/client-key.pem" >>"$home/client.env"
  fi
  chmod 600 "$home/client.env"
  if [[ "$authorizer" == "acl" ]]; then
    # The broker's own user, which ACLs do not bind: for granting ACLs and adding users.
    sed -e "s/^export PREEMPT_KAFKA_SASL_USERNAME=.*/export PREEMPT_KAFKA_SASL_USERNAME=broker/" \
      -e "s/^export PREEMPT_KAFKA_SASL_PASSWORD=.*/export PREEMPT_KAFKA_SASL_PASSWORD=$(cat "$tls/broker.password")/" \
      "$home/client.env" >"$home/admin.env"
    chmod 600 "$home/admin.env"
  fi
}

start() {
  case "$security" in
    PLAINTEXT | SASL_SSL) ;;
    *) say "KAFKA_SECURITY must be PLAINTEXT or SASL_SSL, not '$security'"; exit 2 ;;
  esac
  local mechanism
  for mechanism in ${mechanisms//,/ }; do
    case "$mechanism" in
      PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512) ;;
      *) say "KAFKA_SASL_MECHANISMS: '$mechanism' is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"; exit 2 ;;
    esac
  done
  case "$client_auth" in
    none | required) ;;
    *) say "KAFKA_SSL_CLIENT_AUTH must be none or required, not '$client_auth'"; exit 2 ;;
  esac
  if [[ "$security" == "SASL_SSL" ]]; then
    # Kafka's StorageTool splits --add-scram '[name=…,password=…]' at every comma (quotes do not help) and the
    # PLAIN JAAS line ends a value at a double quote: a user or password with one of these failed the format
    # with "Unknown SCRAM configurations: …" or a broker that would not start.
    local bad='[],"\\[:space:]]'
    if [[ "$scram_user" =~ $bad || "$scram_user" == *=* || -z "$scram_user" ]]; then
      say "KAFKA_SCRAM_USER='$scram_user': a user name may not be empty or hold , = [ ] \" \\ or white space"; exit 2
    fi
    if [[ -n "${KAFKA_SCRAM_PASSWORD:-}" && "$KAFKA_SCRAM_PASSWORD" =~ $bad ]]; then
      say "KAFKA_SCRAM_PASSWORD may not hold , [ ] \" \\ or white space (Kafka's storage tool cannot carry them); choose another"
      exit 2
    fi
  fi
  case "$authorizer" in
    none) ;;
    acl) [[ "$security" == "SASL_SSL" ]] || { say "KAFKA_AUTHORIZER=acl needs KAFKA_SECURITY=SASL_SSL (users to grant ACLs to)"; exit 2; } ;;
    *) say "KAFKA_AUTHORIZER must be none or acl, not '$authorizer'"; exit 2 ;;
  esac
  if pid="$(our_pid)" && port_open "$port"; then
    say "already running (pid $pid) on 127.0.0.1:$port; nothing to do"
    return 0
  fi
  if port_open "$port"; then
    say "a broker not started by this script already answers on 127.0.0.1:$port; using it"
    return 0
  fi
  resolve
  if [[ "$security" == "SASL_SSL" ]]; then make_tls; fi
  write_props
  write_client_env
  if [[ ! -f "$data/meta.properties" ]]; then
    cluster_id="$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    local extra=()
    mapfile -t extra < <(scram_args)
    java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$props" "${extra[@]}" >"$logs/format.log" 2>&1 \
      || { say "formatting KRaft storage failed; see $logs/format.log"; cat "$logs/format.log" >&2; exit 1; }
  fi
  say "starting on 127.0.0.1:$port (data $data, log $logs/broker.log)"
  # setsid: the broker gets its own session, so Ctrl-C in a terminal (make demo) does not reach it
  # unless we choose to stop it.
  setsid bash -c "exec java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dkafka.logs.dir='$logs' -Dlog4j2.configurationFile='$here/log4j2.properties' \
    -cp '$(cat "$cpfile")' kafka.Kafka '$props'" >"$logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local pid
  pid="$(cat "$pidfile")"
  local deadline=$((SECONDS + timeout))
  until port_open "$port" && grep -q "Kafka Server started" "$logs/broker.log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "broker exited during start; last lines of $logs/broker.log and stdout.log:"
      tail -20 "$logs/broker.log" "$logs/stdout.log" >&2 2>/dev/null || true
      rm -f "$pidfile"
      exit 1
    fi
    if ((SECONDS > deadline)); then
      say "broker did not answer within ${timeout}s; see $logs/broker.log"
      exit 1
    fi
    sleep 0.5
  done
  say "up (pid $pid) on 127.0.0.1:$port"
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then
    say "not running (no live pid in $pidfile)"
    rm -f "$pidfile"
    return 0
  fi
  say "stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "still alive after 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  say "stopped"
}

status() {
  if port_open "$port"; then
    say "answering on 127.0.0.1:$port${pid:+ (pid $pid)}"
    return 0
  fi
  say "not answering on 127.0.0.1:$port"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) pid="$(our_pid || true)"; status ;;
  *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
