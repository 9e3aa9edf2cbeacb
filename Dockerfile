# AgentLocator: Debian's nginx with the module, the CRM page, the schema and
# tools/migrate.  README.md, "Docker", says how to run it.
#
#   docker build --build-arg REVISION=$(git rev-parse HEAD) -t agentlocator .
#
# BASE: the Debian 12 image both stages start from (tools/docker-check
# passes one it made with debootstrap, having no registry).
ARG BASE=debian:bookworm


# The .so against Debian's nginx-dev, for the nginx the final stage installs
# from the same suite (the build's `nginx -t` below proves they match); the
# voice prompts (make prompts: espeak-ng and lame).
FROM ${BASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make gcc libc6-dev \
        nginx-dev libpq-dev libcurl4-openssl-dev libyajl-dev libssl-dev \
        espeak-ng lame \
 && rm -rf /var/lib/apt/lists/*
# .git is not in the context: the revision comes from this build-arg
# (docker/git-revision answers build-info.sh for git).
COPY docker/git-revision /usr/local/bin/git
WORKDIR /src
COPY . .
ARG REVISION=
RUN REVISION="$REVISION" make build DEB_ALL= \
 && make prompts \
 && docker/adapt-config nginx.conf.example > build/nginx.conf


FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libpq5 libcurl4 \
        libyajl2 libssl3 ca-certificates curl postgresql-client \
 && rm -rf /var/lib/apt/lists/*

# A fixed uid, so that a host directory mounted for the volumes can be
# given to it (chown 10001).  nginx needs no root to listen on 8080; with
# no root it ignores `user` and its workers run as this user too.
RUN groupadd --gid 10001 agentlocator \
 && useradd --uid 10001 --gid agentlocator --no-create-home \
        --home-dir /srv/agentlocator --shell /usr/sbin/nologin agentlocator

# The prefix: configuration, page, schema and migrate owned by root (the
# server cannot change them); what nginx writes owned by its user.
COPY --from=build /src/build/ngx_http_agentlocator_module.so /usr/lib/nginx/modules/
COPY --from=build /src/build/nginx.conf /srv/agentlocator/conf/nginx.conf
COPY --from=build /src/html /srv/agentlocator/html
COPY sql /srv/agentlocator/sql
COPY tools/migrate /srv/agentlocator/tools/migrate
COPY docker/entrypoint /usr/local/bin/agentlocator-entrypoint
RUN cd /srv/agentlocator \
 && mkdir logs tmp recordings spool \
 && chown agentlocator:agentlocator logs tmp recordings spool \
 && chmod 0750 logs tmp recordings spool

USER agentlocator
WORKDIR /srv/agentlocator

# Configuration and module load, with stand-ins for the secrets (the real
# ones arrive at run time): a module built against another nginx, or a
# configuration nginx refuses, stops the build here.
RUN TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 \
    TWILIO_AUTH_TOKEN=build-time-check \
    DATABASE_URL='host=127.0.0.1 dbname=build-time-check' \
    WA_SHARED_SECRET=build-time-check-0123456789 \
    AGENTLOCATOR_JWT_SECRET=build-time-check-0123456789abcdef0123456789 \
    nginx -q -t -e stderr -p /srv/agentlocator/ -c conf/nginx.conf

# Each call's audio, and the CRM writes not yet in the database: both must
# outlive the container.
VOLUME ["/srv/agentlocator/recordings", "/srv/agentlocator/spool"]
EXPOSE 8080

# A graceful stop: live calls finish (bounded by worker_shutdown_timeout,
# 5m in conf/nginx.conf), so give `docker stop` that long.
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -m 2 -o /dev/null http://127.0.0.1:8080/healthz || exit 1

ENTRYPOINT ["/usr/local/bin/agentlocator-entrypoint"]
CMD ["nginx", "-e", "stderr", "-p", "/srv/agentlocator/", "-c", "conf/nginx.conf", "-g", "daemon off;"]
