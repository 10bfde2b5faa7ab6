# Hardening (issue #5): fuzzing, sanitizers, valgrind, reload soak.
#
#   make fuzz       libFuzzer targets over src/core, FUZZ_SECONDS each
#   make test-asan  the prove suite against nginx + module built with
#                   ASan+UBSan (--with-debug, NGX_DEBUG_PALLOC)
#   make valgrind   a subset of the prove suite under memcheck, nginx in
#                   single-process mode
#   make soak       wrk during 10 reloads, then 1,000 reloads and the
#                   master's RSS growth

HARDEN_PACKAGES := clang libclang-rt-14-dev valgrind wrk procps

.PHONY: fuzz fuzz-build asan-build test-asan valgrind soak soak-reload \
        soak-rss

# ---- fuzzing ---------------------------------------------------------------

FUZZ_DIR      := $(BUILD)/fuzz
FUZZ_SECONDS  ?= 60
# One name per fuzz/<name>.cpp; its seeds are fuzz/corpus/<name>/.
FUZZ_TARGETS  := $(patsubst fuzz/%.cpp,%,$(wildcard fuzz/fuzz_*.cpp))

# Built by CMake with clang (DYNROUTE_FUZZ), from the same source list as
# the unit tests and the module.
fuzz-build:
	@scripts/apt-install $(HARDEN_PACKAGES) cmake libpcre2-dev pkg-config \
	    nlohmann-json3-dev
	CXX=clang++ cmake -S . -B $(FUZZ_DIR) -DDYNROUTE_FUZZ=ON \
	    -DBUILD_TESTING=OFF > /dev/null
	cmake --build $(FUZZ_DIR) -j2

fuzz: fuzz-build
	@scripts/hardening/run-fuzzers $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# ---- nginx + module with ASan and UBSan ------------------------------------

ASAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
               -DNGX_DEBUG_PALLOC=1
ASAN_CONFIGURE := --with-cc-opt='$(ASAN_CFLAGS)' \
                  --with-ld-opt='-fsanitize=address,undefined'
ASAN_OBJS    = $(firstword $(wildcard $(SRCTREE)/nginx-1.*/objs-asan))
SAN_ENV      = ASAN_OPTIONS=detect_odr_violation=0:detect_leaks=1:abort_on_error=1 \
               LSAN_OPTIONS=suppressions=$(REPO)/scripts/hardening/lsan.supp \
               UBSAN_OPTIONS=print_stacktrace=1:suppressions=$(REPO)/scripts/hardening/ubsan.supp

# Configured once (again when `config` changes), then rebuilt incrementally,
# so that a change to the module recompiles only the module.
ASAN_STAMP := $(SRCTREE)/.configured-asan

$(ASAN_STAMP): config Makefile $(SRCTREE)/.unpacked $(HEADERS_LIST)
	cd $(SRCTREE)/nginx-1.*/ && ./configure --builddir=objs-asan \
	    $(SOURCE_CONFIGURE) $(ASAN_CONFIGURE) --add-dynamic-module=$(REPO) \
	    > $(SRCTREE)/configure-asan.log 2>&1 \
	    || { tail -30 $(SRCTREE)/configure-asan.log; exit 1; }
	touch $@

asan-build: $(ASAN_STAMP)
	$(MAKE) -C $(SRCTREE)/nginx-1.*/ -f objs-asan/Makefile -j2 \
	    > $(SRCTREE)/make-asan.log 2>&1 \
	    || { tail -40 $(SRCTREE)/make-asan.log; exit 1; }
	@echo "built: $$(ls $(SRCTREE)/nginx-1.*/objs-asan/nginx)"

test-asan: deps asan-build
	d=$(ASAN_OBJS); \
	$(SAN_ENV) TEST_NGINX_BINARY=$$d/nginx \
	TEST_NGINX_LOAD_MODULES=$$d/ngx_http_dynroute_module.so \
	    prove -I t/lib t/*.t

# ---- valgrind --------------------------------------------------------------

# A representative subset of the suite: routing, IP hosts, health, config
# errors (the error paths free what they built), bad and hostile requests,
# the runtime API through dynroutectl (every endpoint, the state file), what
# the tools send (t/security_tools.t: redirects, TLS; about 7 s), and the
# security files that run in one process (t/security_state.t needs worker
# processes of their own user, and reloads with workers, which memcheck's
# single-process nginx does not have).
VALGRIND_TESTS ?= t/host_routing.t t/ip_hosts.t t/health.t t/config_errors.t \
                  t/rollout.t t/rollout_errors.t \
                  t/bad_requests.t t/hostile.t t/security.t t/balancer.t \
                  t/dynroutectl.t t/metrics.t t/override_from.t \
                  t/security_cookie.t t/security_targets.t t/security_api.t \
                  t/security_rollout.t t/security_tools.t
# Files run two at a time: memcheck runs nginx on one core, so the second
# core would idle.  VALGRIND_JOBS=1 runs them one after the other.  nginx
# under memcheck takes seconds to start, more with two: up to 60 s.
VALGRIND_JOBS ?= 2

valgrind: deps module
	@scripts/apt-install $(HARDEN_PACKAGES)
	rm -rf $(BUILD)/valgrind
	VALGRIND_LOG_DIR=$(BUILD)/valgrind TEST_NGINX_START_TIMEOUT=60 \
	TEST_NGINX_BINARY=$(REPO)/scripts/hardening/valgrind-nginx \
	TEST_NGINX_LOAD_MODULES=$(MODULE) \
	    prove -j$(VALGRIND_JOBS) -I t/lib $(VALGRIND_TESTS); rc=$$?; \
	scripts/hardening/valgrind-summary $(BUILD)/valgrind || rc=1; exit $$rc

# ---- reload soak -----------------------------------------------------------

SOAK_RELOADS     ?= 10
SOAK_RSS_RELOADS ?= 1000

soak: soak-reload soak-rss

soak-reload: deps module
	@scripts/apt-install $(HARDEN_PACKAGES) curl
	scripts/hardening/soak $(NGINX) $(MODULE) $(BUILD)/soak/reload-wrk \
	    reload-wrk $(SOAK_RELOADS)

# 1,000 reloads with the module, then 100 with nginx's map as a control.
soak-rss: deps module
	@scripts/apt-install $(HARDEN_PACKAGES) curl
	scripts/hardening/soak $(NGINX) $(MODULE) $(BUILD)/soak/reload-rss \
	    reload-rss $(SOAK_RSS_RELOADS)
	SOAK_KIND=map scripts/hardening/soak $(NGINX) $(MODULE) \
	    $(BUILD)/soak/reload-rss-map reload-rss 100
