# AgentLocator for nginx.
#
#   make test    install what is missing, build the module, run the suite
#   make run     the demo: nginx with the module on 127.0.0.1:8080 (prefix
#                var/), its CRM in a PostgreSQL cluster in var/pg, a mock of
#                Twilio's REST API and a transcriber beside it (tools/run.sh)
#   make call    play a call against it (SCENARIO=normal, no_stream,
#                silence, dropped; tools/simulate-call)
#   make stop    stop it all
#
# Other targets: deps, build, prompts, nginx-static, test-static, fuzz,
# mutate, clean.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

TOP          := $(CURDIR)
BUILD        := $(TOP)/build
VAR          := $(TOP)/var
MODULE_SO    := $(BUILD)/ngx_http_agentlocator_module.so

# Debian's nginx-dev: the headers and configure scripts of the packaged
# nginx, with the flags it was configured with (conf_flags).
NGINX_DEV_SRC ?= /usr/share/nginx/src
NGINX        ?= /usr/sbin/nginx
DYN_SRC      := $(BUILD)/nginx-dev-src

STATIC_SRC   := $(BUILD)/nginx-static-src
STATIC_PREFIX := $(BUILD)/nginx-static
STATIC_NGINX := $(STATIC_PREFIX)/sbin/nginx

# what the nginx built from source has besides the module (static and ASan)
STATIC_MODULES := --with-debug --with-threads --with-compat \
                  --with-http_ssl_module --with-http_v2_module \
                  --with-http_realip_module --with-http_stub_status_module

# The same hardening Debian compiles its nginx with; nginx adds -Werror.
MODULE_CFLAGS ?= -g -O2 -fstack-protector-strong -Wformat \
                 -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2

BUILD_INFO   := objs/addon/agentlocator/ngx_agentlocator_build_info.h
SOURCES      := config ngx_agentlocator_module.c $(wildcard src/*.c src/*.h) \
                tools/build-info.sh

DEB_BUILD    := nginx nginx-dev libpq-dev libcurl4-openssl-dev libyajl-dev \
                libssl-dev postgresql dpkg-dev libpcre2-dev zlib1g-dev
DEB_TEST     := libtest-base-perl libtest-longstring-perl \
                liblist-moreutils-perl libtext-diff-perl \
                libhttp-message-perl libprotocol-websocket-perl curl \
                python3-websockets sox openssl rsync prometheus \
                chromium

# t/053-crm-spool.t kills a worker at a chosen system call
DEB_TEST     += strace

DEB_ALL      := $(DEB_BUILD) $(DEB_TEST)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PROVE_JOBS   ?= 2
T            ?= t/

# Node.js packages of the test clients and the WhatsApp bridge (npm ci from
# their lockfiles); the bridge's baileys needs Node 20.
NODE_DIRS    := t/clients/node tools/baileys-bridge t/clients/browser

.PHONY: deps node-deps build nginx-static nginx-asan test test-static test-asan \
        fuzz fuzz-ci mutate run stop clean docker-check demo-deps prompts call


# Installs only what is missing; a machine that has everything hears nothing.
deps:
	@tools/apt-ensure $(DEB_ALL)


# Node.js from Debian when there is none; each package directory installed
# again only when its lockfile changed.
node-deps:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	    echo "deps: installing nodejs npm"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    $(SUDO) apt-get update -qq; \
	    $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	fi
	@major=$$(node -p 'process.versions.node.split(".")[0]'); \
	for d in $(NODE_DIRS); do \
	    if [ $$d = tools/baileys-bridge ] && [ "$$major" -lt 20 ]; then \
	        echo "deps: $$d needs Node.js 20 (this is $$(node --version)): its tests are skipped"; \
	        continue; \
	    fi; \
	    [ $$d/node_modules/.package-lock.json -nt $$d/package-lock.json ] && continue; \
	    echo "deps: npm ci in $$d"; \
	    (cd $$d && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
	        || { echo "deps: npm ci failed in $$d"; exit 1; }; \
	done


# The .so against Debian's nginx-dev, loadable by the stock /usr/sbin/nginx.
# configure runs once (about 15 s); later builds only recompile what changed.
build: deps $(DYN_SRC)/objs/Makefile
	@tools/build-info.sh $(DYN_SRC)/$(BUILD_INFO) $(TOP)
	@$(MAKE) -s -C $(DYN_SRC) -f objs/Makefile modules >$(BUILD)/make-dynamic.log 2>&1 \
	    || { cat $(BUILD)/make-dynamic.log; exit 1; }
	@install -m 0644 $(DYN_SRC)/objs/ngx_http_agentlocator_module.so $(MODULE_SO)
	@echo "build: $(MODULE_SO)"

$(DYN_SRC)/objs/Makefile: config
	@rm -rf $(DYN_SRC)
	@mkdir -p $(BUILD)
	@cp -a $(NGINX_DEV_SRC) $(DYN_SRC)
	@echo "build: configuring against $(NGINX_DEV_SRC) (log: build/configure-dynamic.log)"
	@cd $(DYN_SRC) && . ./conf_flags \
	    && ./configure --with-compat "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="$(MODULE_CFLAGS)" \
	        --add-dynamic-module=$(TOP) >$(BUILD)/configure-dynamic.log 2>&1 \
	    || { tail -n 30 $(BUILD)/configure-dynamic.log; rm -f $@; exit 1; }


# nginx from Debian's source package with the module compiled in.
nginx-static: deps $(STATIC_SRC)/objs/Makefile
	@tools/build-info.sh $(STATIC_SRC)/$(BUILD_INFO) $(TOP)
	@$(MAKE) -s -C $(STATIC_SRC) -f objs/Makefile -j2 >$(BUILD)/make-static.log 2>&1 \
	    || { tail -n 40 $(BUILD)/make-static.log; exit 1; }
	@$(MAKE) -s -C $(STATIC_SRC) -f objs/Makefile install >>$(BUILD)/make-static.log 2>&1
	@echo "nginx-static: $(STATIC_NGINX)"
	@$(STATIC_NGINX) -V 2>&1 | grep -o -- '--add-module=[^ ]*'

$(STATIC_SRC)/objs/Makefile: config
	@tools/nginx-source.sh $(STATIC_SRC)
	@echo "nginx-static: configuring (log: build/configure-static.log)"
	@cd $(STATIC_SRC) && ./configure \
	        --prefix=$(STATIC_PREFIX) \
	        $(STATIC_MODULES) \
	        --with-cc-opt="$(MODULE_CFLAGS)" \
	        --add-module=$(TOP) >$(BUILD)/configure-static.log 2>&1 \
	    || { tail -n 30 $(BUILD)/configure-static.log; rm -f $@; exit 1; }


# nginx from the same source with the module compiled in, built by clang
# with AddressSanitizer and UBSan: `make test-asan` runs the suite on it and
# fails on any report (the harness fails a test on a sanitizer line).
# nonnull-attribute is left out: nginx 1.22's own ngx_init_cycle passes
# memcpy() a NULL source with length 0 at every start.  UBSan reports and
# goes on (the report fails the test); t/ubsan.suppress names nginx's own.
ASAN_SRC     := $(BUILD)/nginx-asan-src
ASAN_PREFIX  := $(BUILD)/nginx-asan
ASAN_NGINX   := $(ASAN_PREFIX)/sbin/nginx
ASAN_CFLAGS  := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize=nonnull-attribute -Wno-unused-but-set-variable
# nginx's own allocations live until exit by design; what a worker leaks
# on its way out is not ours to judge here (valgrind's leak check is)
ASAN_OPTIONS_TEST := detect_leaks=0:abort_on_error=0:log_path=stderr

nginx-asan: deps $(ASAN_SRC)/objs/Makefile
	@tools/build-info.sh $(ASAN_SRC)/$(BUILD_INFO) $(TOP)
	@$(MAKE) -s -C $(ASAN_SRC) -f objs/Makefile -j2 >$(BUILD)/make-asan.log 2>&1 \
	    || { tail -n 40 $(BUILD)/make-asan.log; exit 1; }
	@$(MAKE) -s -C $(ASAN_SRC) -f objs/Makefile install >>$(BUILD)/make-asan.log 2>&1
	@echo "nginx-asan: $(ASAN_NGINX)"

$(ASAN_SRC)/objs/Makefile: config
	@tools/apt-ensure clang-14 libclang-rt-14-dev
	@tools/nginx-source.sh $(ASAN_SRC)
	@echo "nginx-asan: configuring (log: build/configure-asan.log)"
	@cd $(ASAN_SRC) && CC=clang-14 ./configure \
	        --prefix=$(ASAN_PREFIX) \
	        $(STATIC_MODULES) \
	        --with-cc-opt="$(ASAN_CFLAGS)" \
	        --with-ld-opt="-fsanitize=address,undefined" \
	        --add-module=$(TOP) >$(BUILD)/configure-asan.log 2>&1 \
	    || { tail -n 30 $(BUILD)/configure-asan.log; rm -f $@; exit 1; }

test-asan: deps node-deps demo-deps nginx-asan
	@ASAN_OPTIONS=$${ASAN_OPTIONS:-$(ASAN_OPTIONS_TEST)} \
	    UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:suppressions=$(TOP)/t/ubsan.suppress} \
	    TEST_NGINX_BINARY=$(ASAN_NGINX) TEST_NGINX_LOAD_MODULE= \
	    prove -j$(PROVE_JOBS) $(T)

test: deps node-deps demo-deps build
	@TEST_NGINX_BINARY=$${TEST_NGINX_BINARY:-$(NGINX)} \
	    prove -j$(PROVE_JOBS) $(T)

# The same suite against the statically linked nginx (no load_module).
test-static: deps node-deps demo-deps nginx-static
	@TEST_NGINX_BINARY=$(STATIC_NGINX) TEST_NGINX_LOAD_MODULE= \
	    prove -j$(PROVE_JOBS) $(T)


# The suite under valgrind's memcheck: any error, and any definite leak,
# fails its test (./valgrind.suppress names nginx's and the libraries' own).
# On the static nginx, built with -g, so that nginx's frames have names as
# well as ours (Debian's /usr/sbin/nginx is stripped: its static functions
# show as ???).  t/lib/Test/AgentLocator/Valgrind.pm has the options.
.PHONY: test-valgrind
test-valgrind: deps node-deps demo-deps nginx-static
	@tools/apt-ensure valgrind
	@TEST_NGINX_USE_VALGRIND=$${TEST_NGINX_USE_VALGRIND:-1} \
	    TEST_NGINX_BINARY=$(STATIC_NGINX) TEST_NGINX_LOAD_MODULE= \
	    prove -j$(PROVE_JOBS) $(T)


# libFuzzer + ASan/UBSan on every parser of outside bytes (the pure cores
# in src/); FUZZ_SECONDS per target (fuzz/README.md).
FUZZ_SECONDS ?= 60

fuzz:
	@$(MAKE) -s -C fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

# What CI runs: the seeds and known reproducers, then a short bounded run.
fuzz-ci:
	@$(MAKE) -s -C fuzz regress
	@$(MAKE) -s -C fuzz run FUZZ_SECONDS=20


# Mutation testing: each of tools/mutate's mutants breaks the module in one
# way; the suite must fail for every one (tools/mutate --list).
mutate: deps
	@tools/mutate


# The voice prompts nginx.conf.example plays (agentlocator_greeting and
# agentlocator_fallback_prompt): Hebrew, spoken by espeak-ng from
# tools/prompts/*.txt, encoded by lame; build output, not committed.
PROMPTS      := html/static/tts/greeting.mp3 html/static/tts/fallback.mp3

prompts: $(PROMPTS)

html/static/tts/%.mp3: tools/prompts/%.txt
	@tools/apt-ensure espeak-ng lame
	@mkdir -p $(@D)
	@espeak-ng -v he -s 150 -f $< -w $@.tmp.wav
	@lame --quiet -m m -b 32 $@.tmp.wav $@.tmp.mp3
	@rm -f $@.tmp.wav
	@mv $@.tmp.mp3 $@
	@echo "prompts: $@"

# What the demo needs besides the build: the prompts' speech and encoder,
# the transcriber's recogniser and model.
DEB_DEMO     := espeak-ng lame pocketsphinx-en-us python3-pocketsphinx

demo-deps:
	@tools/apt-ensure $(DEB_DEMO)

# PGPORT_RUN: the local cluster's port (54329); DATABASE_URL: use that
# database instead of a local cluster; DEMO_TWILIO_PORT, DEMO_STT_PORT: the
# Twilio mock's (8081) and the transcriber's (8082).
run: deps build demo-deps prompts
	@tools/run.sh start $(NGINX) $(MODULE_SO) $(VAR)

# One call against `make run`, as Twilio would make it.
SCENARIO     ?= normal

call:
	@tools/simulate-call --demo $(VAR) --scenario $(SCENARIO)

stop:
	@tools/run.sh stop $(NGINX) $(MODULE_SO) $(VAR)


# The Dockerfile built with podman and the image tried: no registry and no
# Docker daemon needed (tools/docker-check; as root: rootful podman).
docker-check:
	@tools/apt-ensure podman runc debootstrap uidmap slirp4netns \
	    fuse-overlayfs postgresql curl openssl git
	@$(SUDO) tools/docker-check


# (stops what `make run` started first: its PostgreSQL lives in var/)
clean:
	@tools/run.sh stop $(NGINX) $(MODULE_SO) $(VAR) >/dev/null
	rm -rf $(BUILD) $(VAR) t/servroot*
