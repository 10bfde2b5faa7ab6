# dynroute: `make demo` and `make test` work on a fresh Debian 12 as root.
SHELL := /bin/bash
.DEFAULT_GOAL := module

REPO    := $(CURDIR)
BUILD   := $(REPO)/build
MODULE  := $(BUILD)/ngx_http_dynroute_module.so
NGINX   ?= /usr/sbin/nginx
# nginx reads $NGINX as the sockets a binary upgrade hands over: given on
# the command line (make demo NGINX=...), it must not reach the nginx a
# recipe starts.  Recipes that want it pass it by name.
unexport NGINX
DEMO    := $(BUILD)/demo

# Debian's nginx-dev: nginx's configure, auto/ and headers for building a
# module that loads into the packaged /usr/sbin/nginx.
NGX_DEV := /usr/share/nginx/src
DEVTREE := $(BUILD)/nginx-dev

# Route B: nginx from Debian's source package, as users of upstream nginx do.
SRCTREE := $(BUILD)/nginx-source

PACKAGES := nginx nginx-dev libpcre2-dev g++ make cmake pkg-config dpkg-dev \
            libgtest-dev perl libtest-base-perl libtext-diff-perl curl openssl \
            nlohmann-json3-dev python3 groff-base libnginx-mod-stream \
            libio-socket-ssl-perl
SOURCE_PACKAGES := dpkg-dev zlib1g-dev libpcre2-dev libssl-dev nlohmann-json3-dev

.PHONY: deps module unit prove test demo demo-stop source-build \
        source-build-static test-source test-source-smoke test-static \
        check-example clean

# Only the targets that people run (test, demo, the test-*, bench, fuzz,
# valgrind and soak targets) install packages; module and unit do not.
deps:
	@scripts/apt-install $(PACKAGES)

# ---- the module against the packaged nginx ---------------------------------

# nginx's configure lists the headers each object depends on: a header
# added, renamed or removed (not one edited) needs it run again.  The list's
# file changes only when the list does.
HEADERS_LIST := $(BUILD)/headers.list

$(HEADERS_LIST): FORCE
	@mkdir -p $(BUILD) && ls src/*.hpp src/core/*.hpp > $@.new \
	    && { cmp -s $@.new $@ || mv $@.new $@; } && rm -f $@.new

.PHONY: FORCE
FORCE:

# Debian's nginx has stream as a dynamic module (libnginx-mod-stream) with
# its TLS modules: configured alike, so that the stream part of the .so is
# built against the same structures.  Only the dynroute .so is built.
DEV_STREAM := --with-stream=dynamic --with-stream_ssl_module \
              --with-stream_ssl_preread_module

$(DEVTREE)/objs/Makefile: config src/core/sources.list $(HEADERS_LIST)
	rm -rf $(DEVTREE) && mkdir -p $(BUILD) && cp -r $(NGX_DEV) $(DEVTREE)
	cd $(DEVTREE) && . ./conf_flags && ./configure \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC" \
	    "$${NGX_CONF_FLAGS[@]}" $(DEV_STREAM) --add-dynamic-module=$(REPO) \
	    > $(BUILD)/configure.log 2>&1 \
	    || { tail -30 $(BUILD)/configure.log; exit 1; }

module: $(DEVTREE)/objs/Makefile
	$(MAKE) -C $(DEVTREE) -f objs/Makefile objs/ngx_http_dynroute_module.so -j2
	cp $(DEVTREE)/objs/ngx_http_dynroute_module.so $(MODULE)
	@echo "module: $(MODULE)"

# ---- tests -----------------------------------------------------------------

unit:
	cmake -S . -B $(BUILD)/cmake -DDYNROUTE_WERROR=ON > /dev/null
	cmake --build $(BUILD)/cmake -j2
	cd $(BUILD)/cmake && ctest --output-on-failure

# The packaged nginx's stream module (libnginx-mod-stream), loaded before
# the dynroute .so (t/stream.t).  Builds from source have stream compiled in.
STREAM_MODULE := /usr/lib/nginx/modules/ngx_stream_module.so

prove: module
	TEST_NGINX_BINARY=$(NGINX) TEST_NGINX_LOAD_MODULES=$(MODULE) \
	TEST_NGINX_STREAM_MODULE=$(STREAM_MODULE) \
	    prove -I t/lib t/*.t

test: deps
	$(MAKE) unit prove

check-example: deps module
	@scripts/check-example $(NGINX) $(MODULE)

# ---- nginx built from source with --add-dynamic-module (CI) ----------------

$(SRCTREE)/.unpacked:
	@scripts/apt-install --source $(SOURCE_PACKAGES)
	rm -rf $(SRCTREE) && mkdir -p $(SRCTREE)
	cd $(SRCTREE) && $(REPO)/scripts/fetch-nginx-source
	touch $@

# nginx's own modules that the tests use, for every build from source (the
# packaged nginx has them all): realip, auth_request, what t/security.t
# needs to reach every kind of subrequest and HTTP/2, and stream with TLS
# and ssl_preread (t/stream.t; compiled in, so nothing to load first).
SOURCE_CONFIGURE := --with-compat --with-debug --with-threads \
    --with-http_ssl_module --with-http_realip_module \
    --with-http_auth_request_module --with-http_v2_module \
    --with-http_slice_module --with-http_addition_module --with-pcre-jit \
    --with-stream --with-stream_ssl_module --with-stream_ssl_preread_module

# $(1): dynamic or static; $(2): the configure option that adds the module
define source_build
	cd $(SRCTREE)/nginx-1.*/ && ./configure --builddir=objs-$(1) \
	    $(SOURCE_CONFIGURE) $(2)=$(REPO) > $(SRCTREE)/configure-$(1).log 2>&1 \
	    || { tail -30 $(SRCTREE)/configure-$(1).log; exit 1; }
	$(MAKE) -C $(SRCTREE)/nginx-1.*/ -f objs-$(1)/Makefile -j2 \
	    > $(SRCTREE)/make-$(1).log 2>&1 \
	    || { tail -40 $(SRCTREE)/make-$(1).log; exit 1; }
	@echo "built: $$(ls $(SRCTREE)/nginx-1.*/objs-$(1)/nginx)"
endef

source-build: $(SRCTREE)/.unpacked
	$(call source_build,dynamic,--add-dynamic-module)

source-build-static: $(SRCTREE)/.unpacked
	$(call source_build,static,--add-module)

# The same prove suite against nginx built from source, with the module
# loaded dynamically, then compiled in.  SOURCE_TESTS picks the files.
SOURCE_TESTS ?= t/*.t

test-source: deps source-build
	d=$$(ls -d $(SRCTREE)/nginx-1.*/objs-dynamic); \
	TEST_NGINX_BINARY=$$d/nginx \
	TEST_NGINX_LOAD_MODULES=$$d/ngx_http_dynroute_module.so \
	    prove -I t/lib $(SOURCE_TESTS)

# CI's part of test-source.  The whole suite runs against this same build
# (this nginx source, these configure options, the module loaded with
# load_module) in test-asan, with the sanitizers on; here the build without
# them, and the files that start, reload and stop it every way the suite
# does: the harness, configuration errors, the example, reloads, every
# kind of subrequest and HTTP/2 (security.t), the balancer.
SOURCE_SMOKE_TESTS := t/harness.t t/config_errors.t t/example_conf.t \
    t/host_routing.t t/reload.t t/security.t t/balancer.t t/servers.t

test-source-smoke: SOURCE_TESTS = $(SOURCE_SMOKE_TESTS)
test-source-smoke: test-source

test-static: deps source-build-static
	d=$$(ls -d $(SRCTREE)/nginx-1.*/objs-static); \
	TEST_NGINX_BINARY=$$d/nginx TEST_NGINX_LOAD_MODULES= \
	    prove -I t/lib t/*.t

# ---- demo ------------------------------------------------------------------

demo: deps module demo-stop
	mkdir -p $(DEMO)/logs $(DEMO)/modules $(DEMO)/tmp
	ln -sf $(MODULE) $(DEMO)/modules/ngx_http_dynroute_module.so
	$(NGINX) -t -q -p $(DEMO)/ -c $(REPO)/nginx.conf.example
	$(NGINX) -p $(DEMO)/ -c $(REPO)/nginx.conf.example
	@scripts/demo-banner

demo-stop:
	@scripts/demo-stop $(DEMO)/logs/nginx.pid

clean:
	rm -rf $(BUILD) t/servroot*

# Further targets, one file per concern (benchmarks, hardening, browser).
include $(wildcard mk/*.mk)
