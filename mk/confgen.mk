# make test-confgen: random configurations against nginx and the module built
# with ASan and UBSan (the build of `make test-asan`, mk/hardening.mk).
#
# t/confgen/random.t writes CONFGEN_COUNT configurations from the grammar of
# the module's directives and nginx's own, starting at seed CONFGEN_SEED.
# Each must either fail nginx -t with an [emerg] naming the file and line,
# or start and answer every request the generator made for it, with no
# worker exiting on a signal and no sanitizer report.  Seed N is always the
# same configuration: a failure prints it, and
# `make test-confgen CONFGEN_SEED=N CONFGEN_COUNT=1` runs it again.
#
# t/confgen/ is outside the t/*.t glob, so that the other prove runs do not
# take the extra minute.

# The default count takes about a minute on a 2-core machine under ASan
# (once no configuration crashes: a crashing one takes seconds).
# LeakSanitizer's exit check is most of the time of a configuration: it
# runs for one seed in CONFGEN_LEAK_EVERY (1: every one).
CONFGEN_COUNT      ?= 180
CONFGEN_SEED       ?= 1
CONFGEN_LEAK_EVERY ?= 4

.PHONY: test-confgen

test-confgen: deps asan-build
	d=$(ASAN_OBJS); \
	$(SAN_ENV) TEST_NGINX_BINARY=$$d/nginx \
	TEST_NGINX_LOAD_MODULES=$$d/ngx_http_dynroute_module.so \
	CONFGEN_COUNT=$(CONFGEN_COUNT) CONFGEN_SEED=$(CONFGEN_SEED) \
	CONFGEN_LEAK_EVERY=$(CONFGEN_LEAK_EVERY) \
	    prove -I t/lib t/confgen/random.t
