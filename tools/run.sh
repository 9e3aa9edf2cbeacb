#!/bin/sh
# `make run` / `make stop`: nginx with the module, prefix var/, configuration
# generated from nginx.conf.example (only the load_module path changes).
#
# usage: run.sh start|stop NGINX MODULE_SO PREFIX

set -eu

action=$1 nginx=$2 module=$3 prefix=$4
top=$(cd "$(dirname "$0")/.." && pwd)
pidfile=$prefix/logs/nginx.pid

running() {
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

case $action in
start)
    if running; then
        echo "run: already running (pid $(cat "$pidfile")); 'make stop' first"
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
    mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp" "$prefix/recordings"
    ln -sfn "$top/html" "$prefix/html"
    sed "s|^load_module .*agentlocator.*;|load_module $module;|" \
        "$top/nginx.conf.example" > "$prefix/conf/nginx.conf"
    "$nginx" -q -t -p "$prefix/" -c conf/nginx.conf
    "$nginx" -p "$prefix/" -c conf/nginx.conf
    echo "run: nginx with AgentLocator on http://127.0.0.1:8080/ (pid $(cat "$pidfile"))"
    echo "run: try 'curl 127.0.0.1:8080/healthz'; logs in var/logs/; stop with 'make stop'"
    ;;
stop)
    if ! running; then
        echo "stop: not running"
        exit 0
    fi
    pid=$(cat "$pidfile")
    kill -QUIT "$pid"
    # graceful: wait for the master to finish its workers (bounded)
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop: nginx (pid $pid) still running after 10 s; sending TERM"
        kill -TERM "$pid"
    fi
    echo "stop: stopped"
    ;;
*)
    echo "usage: $0 start|stop NGINX MODULE_SO PREFIX" >&2
    exit 2
    ;;
esac
