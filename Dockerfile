# Debian's nginx with the AgentLocator module loaded.  Minimal for now:
# build the .so against nginx-dev, then ship it beside the stock binary.
#
#   docker build -t agentlocator .
#   docker run -p 8080:8080 agentlocator

FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make git ca-certificates \
        nginx nginx-dev libpq-dev libcurl4-openssl-dev libyajl-dev libssl-dev \
        gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make build DEB_ALL=

FROM debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libpq5 libcurl4 \
        libyajl2 libssl3 curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/ngx_http_agentlocator_module.so \
     /usr/lib/nginx/modules/ngx_http_agentlocator_module.so
COPY nginx.conf.example /srv/agentlocator/conf/nginx.conf
COPY html /srv/agentlocator/html
RUN sed -i 's|^load_module .*agentlocator.*;|load_module /usr/lib/nginx/modules/ngx_http_agentlocator_module.so;|; s|listen  *127.0.0.1:8080;|listen 8080;|' \
        /srv/agentlocator/conf/nginx.conf \
 && mkdir -p /srv/agentlocator/logs /srv/agentlocator/tmp \
 && nginx -t -p /srv/agentlocator/ -c conf/nginx.conf
EXPOSE 8080
HEALTHCHECK CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["nginx", "-p", "/srv/agentlocator/", "-c", "conf/nginx.conf", "-g", "daemon off;"]
