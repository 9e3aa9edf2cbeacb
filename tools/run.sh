#!/bin/sh
# `make run` / `make stop`: the whole demo.  nginx with the module, prefix
# var/, its configuration generated from nginx.conf.example with only what a
# machine without Twilio needs rewritten (demo_conf below); the CRM in a
# PostgreSQL cluster of its own under var/pg, unless DATABASE_URL already
# names a database; beside them a mock of Twilio's REST API
# (t/mock/twilio_rest.py) and the demo transcriber (tools/transcriber), each
# with its pid and log in var/logs/.  `make call` (tools/simulate-call)
# plays calls against it all, with what var/demo.env and var/secrets/ say.
#
# usage: run.sh start|stop NGINX MODULE_SO PREFIX
#
# PGPORT_RUN: the local cluster's port (default 54329, away from 5432 so
# that it never meets a system PostgreSQL).  DEMO_TWILIO_PORT (8081) and
# DEMO_STT_PORT (8082): the mock's and the transcriber's ports.  nginx
# listens where nginx.conf.example says: 127.0.0.1:8080.

set -eu

action=$1 nginx=$2 module=$3 prefix=$4
top=$(cd "$(dirname "$0")/.." && pwd)
pidfile=$prefix/logs/nginx.pid

pg=$prefix/pg           # data/ (the cluster), sock/ (its socket), server.log
pgdata=$pg/data
pgport=${PGPORT_RUN:-54329}

public_url=http://127.0.0.1:8080
twilio_port=${DEMO_TWILIO_PORT:-8081}
stt_port=${DEMO_STT_PORT:-8082}
twilio_api=http://127.0.0.1:$twilio_port
stt_url=http://127.0.0.1:$stt_port/v1/audio/transcriptions

running() {
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# The local cluster's postmaster pid, if it runs.
pg_pid() {
    [ -f "$pgdata/postmaster.pid" ] || return 1
    _pid=$(sed -n 1p "$pgdata/postmaster.pid")
    [ -n "$_pid" ] && kill -0 "$_pid" 2>/dev/null && echo "$_pid"
}

# The port it listens on: the one it was started with, which a later
# PGPORT_RUN does not change.
pg_port() {
    sed -n 4p "$pgdata/postmaster.pid"
}

# The server programs of the cluster's own major version once it exists
# (Debian installs each version apart, and a cluster needs its own).
pg_bindir() {
    if [ -f "$pgdata/PG_VERSION" ]; then
        set -- "/usr/lib/postgresql/$(cat "$pgdata/PG_VERSION")/bin"
    else
        set -- /usr/lib/postgresql/*/bin
    fi
    for _d; do
        if [ -x "$_d/initdb" ] && [ -x "$_d/pg_ctl" ]; then
            echo "$_d"
            return 0
        fi
    done
    return 1
}

# PostgreSQL refuses to run as root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Wait up to $2 seconds for process $1 to exit.
wait_gone() {
    _i=0
    while kill -0 "$1" 2>/dev/null && [ $_i -lt $(($2 * 10)) ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
    ! kill -0 "$1" 2>/dev/null
}

# SIGINT is PostgreSQL's fast shutdown (what `pg_ctl -m fast` sends); a
# signal needs no server binaries, so a cluster whose version was removed
# still stops.
pg_stop() {
    _pid=$(pg_pid) || return 0
    kill -INT "$_pid"
    if ! wait_gone "$_pid" 30; then
        echo "stop: PostgreSQL (pid $_pid) still running after 30 s; see $pg/server.log" >&2
        return 1
    fi
}

# Creates the cluster once, starts it unless it runs, and leaves the
# schema current.  Sets pg_started when this run started the server.
pg_start() {
    if ! bin=$(pg_bindir); then
        if [ -f "$pgdata/PG_VERSION" ]; then
            echo "run: $pgdata was made by PostgreSQL $(cat "$pgdata/PG_VERSION")," \
                 "which is not installed; install it or remove $pg" >&2
        else
            echo "run: the PostgreSQL server is not installed (Debian: 'apt-get install" \
                 "postgresql', or 'make deps'); or set DATABASE_URL to use an existing database" >&2
        fi
        exit 1
    fi
    mkdir -p "$pg/sock"
    # nginx's workers (nobody, when started as root) reach the socket through these
    chmod 0755 "$pg" "$pg/sock"
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "run: running as root and there is no 'postgres' user to run PostgreSQL as" >&2
            exit 1
        fi
        chown postgres: "$pg" "$pg/sock"
        if ! as_pg test -w "$pg/sock"; then
            echo "run: the postgres user cannot reach $pg (a directory above it is closed to it)" >&2
            exit 1
        fi
    fi

    if [ ! -f "$pgdata/PG_VERSION" ]; then
        rm -rf "$pgdata"    # what an interrupted initdb left
        echo "run: creating the CRM's PostgreSQL cluster in $pgdata (once)"
        if ! as_pg "$bin/initdb" -D "$pgdata" -U agentlocator --auth=trust \
                -E UTF8 --no-locale >"$pg/initdb.log" 2>&1; then
            cat "$pg/initdb.log" >&2
            rm -rf "$pgdata"
            echo "run: initdb failed (above)" >&2
            exit 1
        fi
    fi

    if _pid=$(pg_pid); then
        echo "run: PostgreSQL already running (pid $_pid, port $(pg_port))"
    else
        if ! as_pg "$bin/pg_ctl" -D "$pgdata" -l "$pg/server.log" -w -t 30 \
                -o "-p $pgport -k '$pg/sock' -c listen_addresses=127.0.0.1" \
                start >/dev/null 2>&1; then
            tail -n 5 "$pg/server.log" >&2
            echo "run: PostgreSQL did not start (above; log $pg/server.log)." \
                 "Port $pgport taken? Set PGPORT_RUN to another." >&2
            pg_stop
            exit 1
        fi
        pg_started=1
        echo "run: PostgreSQL $(cat "$pgdata/PG_VERSION") on port $pgport and $pg/sock (pid $(pg_pid))"
    fi

    _url="host=$pg/sock port=$(pg_port) user=agentlocator"
    if [ "$("$bin/psql" -X -At "$_url dbname=postgres" \
            -c "SELECT 1 FROM pg_database WHERE datname = 'agentlocator'")" != 1 ]; then
        "$bin/psql" -X -q "$_url dbname=postgres" -c "CREATE DATABASE agentlocator"
    fi
    DATABASE_URL="$_url dbname=agentlocator"
    if ! PATH=$bin:$PATH "$top/tools/migrate" "$DATABASE_URL"; then
        echo "run: tools/migrate failed (above)" >&2
        exit 1
    fi
}

# The pid of a helper started by `make run` (twilio-mock, transcriber), if
# it runs: the pid in its file, checked to still be that program.
service_pid() {
    [ -f "$prefix/logs/$1.pid" ] || return 1
    _pid=$(cat "$prefix/logs/$1.pid")
    [ -n "$_pid" ] && kill -0 "$_pid" 2>/dev/null \
        && tr '\0' ' ' < "/proc/$_pid/cmdline" 2>/dev/null | grep -q "$2" \
        && echo "$_pid"
}

# start_service NAME PROGRAM ARGS...: in the background, its log and pid in
# var/logs/; returns once it said "PORT n" (both helpers do when they
# listen).  Background commands of a script ignore ^C, and nohup keeps them
# past the terminal: they run until `make stop`.
start_service() {
    _name=$1
    shift
    if _pid=$(service_pid "$_name" "$1"); then
        echo "run: $_name already running (pid $_pid)"
        return 0
    fi
    nohup "$@" > "$prefix/logs/$_name.log" 2>&1 < /dev/null &
    echo $! > "$prefix/logs/$_name.pid"
    services_started="$services_started $_name"
    _i=0
    until grep -q '^PORT ' "$prefix/logs/$_name.log" 2>/dev/null; do
        if ! kill -0 "$(cat "$prefix/logs/$_name.pid")" 2>/dev/null \
           || [ $_i -ge 100 ]; then
            tail -n 5 "$prefix/logs/$_name.log" >&2
            echo "run: $_name did not start (above; log $prefix/logs/$_name.log);" \
                 "a port taken? DEMO_TWILIO_PORT and DEMO_STT_PORT choose others" >&2
            exit 1
        fi
        sleep 0.1
        _i=$((_i + 1))
    done
    echo "run: $_name on $(sed -n 's/^PORT /127.0.0.1:/p' "$prefix/logs/$_name.log") (pid $(cat "$prefix/logs/$_name.pid"); log var/logs/$_name.log)"
}

stop_service() {
    if _pid=$(service_pid "$1" "$2"); then
        kill -TERM "$_pid"
        wait_gone "$_pid" 5 || kill -KILL "$_pid"
        echo "stop: $1 stopped"
    fi
    rm -f "$prefix/logs/$1.pid"
}

stop_services() {
    stop_service transcriber tools/transcriber
    stop_service twilio-mock t/mock/twilio_rest.py
}

# nginx.conf.example as it is, but for: our module's path; Twilio's REST API
# at the mock; a public URL this machine answers on (so the prompts and the
# stream URL in TwiML are reachable, and signatures are over URLs that
# tools/simulate-call signs); the transcriber in place of the example's
# agentlocator_transcribe_url, commented there (it names a service that
# needs a key) or not.  Each rewrite must have matched: a demo must never
# reach the real Twilio.
demo_conf() {
    sed -e "s|^load_module .*agentlocator.*;|load_module $module;|" \
        -e "s|^\([[:space:]]*agentlocator_twilio_api_url[[:space:]]\{1,\}\)[^;]*;|\1$twilio_api;|" \
        -e "s|^\([[:space:]]*agentlocator_public_url[[:space:]]\{1,\}\)[^;]*;|\1$public_url;|" \
        -e "/^[[:space:]]*#\{0,1\}[[:space:]]*agentlocator_transcribe_url[[:space:]]/{
:more
/;/!{N;b more
}
s|^\([[:space:]]*\).*|\1agentlocator_transcribe_url $stt_url model=pocketsphinx-en-us language=en;|
}" "$top/nginx.conf.example"
}

demo_conf_check() {
    for _want in "load_module $module;" "agentlocator_twilio_api_url $twilio_api;" \
                 "agentlocator_public_url $public_url;"; do
        if ! tr -s ' ' < "$1" | grep -qF " $_want" \
           && ! tr -s ' ' < "$1" | grep -qxF "$_want"; then
            echo "run: could not rewrite nginx.conf.example for the demo: no '$_want' in $1" >&2
            exit 1
        fi
    done
    if ! grep -q "^[[:space:]]*agentlocator_transcribe_url $stt_url " "$1"; then
        echo "run: nginx.conf.example has no agentlocator_transcribe_url to point at" \
             "the transcriber: calls are not transcribed" >&2
    fi
}

# How to reach the demo, once it runs.
hints() {
    _token=$(AGENTLOCATOR_JWT_SECRET=$AGENTLOCATOR_JWT_SECRET "$top/tools/token" \
                 --business 1 --role admin)
    echo "run: the CRM page (sign-in good for 8 h):"
    echo "     $public_url/app/#token=$_token"
    echo "run: then play a call: 'make call' (or SCENARIO=no_stream, silence, dropped);"
    echo "     logs in var/logs/; stop everything with 'make stop'"
}

case $action in
start)
    if running; then
        _pg=
        if _pid=$(pg_pid); then
            _pg="; PostgreSQL pid $_pid, port $(pg_port)"
        fi
        echo "run: already running (nginx pid $(cat "$pidfile")$_pg); 'make stop' first"
        if [ -s "$prefix/secrets/jwt" ]; then
            AGENTLOCATOR_JWT_SECRET=${AGENTLOCATOR_JWT_SECRET:-$(cat "$prefix/secrets/jwt")}
            hints
        fi
        exit 0
    fi
    mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp" "$prefix/recordings" \
             "$prefix/spool"

    # The bridge's and the API's secrets: made once, kept in var/secrets/
    # (so tokens minted for this run stay valid), unless the environment
    # has them.
    mkdir -p -m 0700 "$prefix/secrets"
    for _s in wa jwt twilio_auth_token; do
        [ -s "$prefix/secrets/$_s" ] || (umask 077; openssl rand -hex 32 > "$prefix/secrets/$_s")
    done
    [ -s "$prefix/secrets/twilio_account_sid" ] \
        || (umask 077; echo "AC$(openssl rand -hex 16)" > "$prefix/secrets/twilio_account_sid")
    export WA_SHARED_SECRET=${WA_SHARED_SECRET:-$(cat "$prefix/secrets/wa")}
    export AGENTLOCATOR_JWT_SECRET=${AGENTLOCATOR_JWT_SECRET:-$(cat "$prefix/secrets/jwt")}
    # The demo's Twilio is the mock: it has its own account, whatever the
    # environment says (tools/simulate-call signs with the same token).
    TWILIO_ACCOUNT_SID=$(cat "$prefix/secrets/twilio_account_sid")
    TWILIO_AUTH_TOKEN=$(cat "$prefix/secrets/twilio_auth_token")
    export TWILIO_ACCOUNT_SID TWILIO_AUTH_TOKEN

    # Whatever fails from here on stops what this run started: it would
    # otherwise outlive an nginx that never came up.
    pg_started=
    services_started=
    trap '[ -z "$services_started" ] || stop_services >&2
          [ -z "$pg_started" ] || { echo "run: stopping the PostgreSQL this run started" >&2; pg_stop; }' EXIT
    trap 'exit 130' INT TERM

    if [ -n "${DATABASE_URL:-}" ]; then
        echo "run: using DATABASE_URL from the environment; no local PostgreSQL" \
             "(apply the schema there with tools/migrate)"
    else
        pg_start
    fi
    export DATABASE_URL

    start_service twilio-mock "$top/t/mock/twilio_rest.py" --port "$twilio_port" \
        --account-sid "$TWILIO_ACCOUNT_SID" --auth-token "$TWILIO_AUTH_TOKEN"
    start_service transcriber "$top/tools/transcriber/transcriber" --port "$stt_port"

    ln -sfn "$top/html" "$prefix/html"
    demo_conf > "$prefix/conf/nginx.conf"
    demo_conf_check "$prefix/conf/nginx.conf"
    printf 'PUBLIC_URL=%s\nTWILIO_API_URL=%s\nTRANSCRIBE_URL=%s\n' \
        "$public_url" "$twilio_api" "$stt_url" > "$prefix/demo.env"
    if ! "$nginx" -q -t -p "$prefix/" -c conf/nginx.conf; then
        echo "run: nginx -t failed (above)" >&2
        exit 1
    fi
    if ! "$nginx" -p "$prefix/" -c conf/nginx.conf; then
        echo "run: nginx did not start (above; log $prefix/logs/error.log)" >&2
        exit 1
    fi
    pg_started=
    services_started=
    echo "run: nginx with AgentLocator on $public_url/ (pid $(cat "$pidfile"))"
    hints
    ;;
stop)
    if running; then
        pid=$(cat "$pidfile")
        kill -QUIT "$pid"
        # graceful: the master finishes its workers first
        if ! wait_gone "$pid" 10; then
            echo "stop: nginx (pid $pid) still running after 10 s; sending TERM"
            kill -TERM "$pid"
        fi
        echo "stop: nginx stopped"
    else
        echo "stop: nginx was not running"
    fi
    stop_services
    # after nginx, so that no worker loses the database while it serves
    if pg_pid >/dev/null; then
        pg_stop
        echo "stop: PostgreSQL stopped"
    elif [ -d "$pgdata" ]; then
        echo "stop: PostgreSQL was not running"
    fi
    ;;
*)
    echo "usage: $0 start|stop NGINX MODULE_SO PREFIX" >&2
    exit 2
    ;;
esac
