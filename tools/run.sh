#!/bin/sh
# `make run` / `make stop`: nginx with the module, prefix var/, configuration
# generated from nginx.conf.example (only the load_module path changes), and
# the CRM in a PostgreSQL cluster of its own under var/pg, unless
# DATABASE_URL already names a database.
#
# usage: run.sh start|stop NGINX MODULE_SO PREFIX
#
# PGPORT_RUN: the local cluster's port (default 54329, away from 5432 so
# that it never meets a system PostgreSQL).

set -eu

action=$1 nginx=$2 module=$3 prefix=$4
top=$(cd "$(dirname "$0")/.." && pwd)
pidfile=$prefix/logs/nginx.pid

pg=$prefix/pg           # data/ (the cluster), sock/ (its socket), server.log
pgdata=$pg/data
pgport=${PGPORT_RUN:-54329}

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

case $action in
start)
    if running; then
        _pg=
        if _pid=$(pg_pid); then
            _pg="; PostgreSQL pid $_pid, port $(pg_port)"
        fi
        echo "run: already running (nginx pid $(cat "$pidfile")$_pg); 'make stop' first"
        exit 0
    fi
    # The example reads Twilio credentials from the environment; a local
    # run without them gets placeholders (signatures will not validate).
    if [ -z "${TWILIO_AUTH_TOKEN:-}" ]; then
        echo "run: TWILIO_AUTH_TOKEN is not set; using a placeholder"
        export TWILIO_AUTH_TOKEN=placeholder-not-a-real-token
    fi
    if [ -z "${TWILIO_ACCOUNT_SID:-}" ]; then
        export TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000
    fi
    mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp" "$prefix/recordings" \
             "$prefix/spool"

    # The bridge's and the API's secrets: made once, kept in var/secrets/
    # (so tokens minted for this run stay valid), unless the environment
    # has them.
    mkdir -p -m 0700 "$prefix/secrets"
    for _s in wa jwt; do
        [ -s "$prefix/secrets/$_s" ] || (umask 077; openssl rand -hex 32 > "$prefix/secrets/$_s")
    done
    export WA_SHARED_SECRET=${WA_SHARED_SECRET:-$(cat "$prefix/secrets/wa")}
    export AGENTLOCATOR_JWT_SECRET=${AGENTLOCATOR_JWT_SECRET:-$(cat "$prefix/secrets/jwt")}

    # Whatever fails from here on stops a cluster this run started: it
    # would otherwise outlive an nginx that never came up.
    pg_started=
    trap '[ -z "$pg_started" ] || { echo "run: stopping the PostgreSQL this run started" >&2; pg_stop; }' EXIT
    trap 'exit 130' INT TERM

    if [ -n "${DATABASE_URL:-}" ]; then
        echo "run: using DATABASE_URL from the environment; no local PostgreSQL" \
             "(apply the schema there with tools/migrate)"
    else
        pg_start
    fi
    export DATABASE_URL

    ln -sfn "$top/html" "$prefix/html"
    sed "s|^load_module .*agentlocator.*;|load_module $module;|" \
        "$top/nginx.conf.example" > "$prefix/conf/nginx.conf"
    if ! "$nginx" -q -t -p "$prefix/" -c conf/nginx.conf; then
        echo "run: nginx -t failed (above)" >&2
        exit 1
    fi
    if ! "$nginx" -p "$prefix/" -c conf/nginx.conf; then
        echo "run: nginx did not start (above; log $prefix/logs/error.log)" >&2
        exit 1
    fi
    pg_started=
    echo "run: nginx with AgentLocator on http://127.0.0.1:8080/ (pid $(cat "$pidfile"))"
    echo "run: try 'curl 127.0.0.1:8080/readyz'; logs in var/logs/; stop with 'make stop'"
    echo "run: an API token: tools/token --secret-file var/secrets/jwt --business 1 --role admin"
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
