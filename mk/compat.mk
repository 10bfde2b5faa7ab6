# The whole prove suite against other nginx versions (issue #16): nginx from
# the pristine upstream tarball that another Debian release serves,
# configured --with-compat like the other source builds, the module added
# dynamically.
#
#   make test-compat            every suite in COMPAT_SUITES
#   make test-compat-trixie     nginx 1.26.3 (Debian 13)
#
# Debian 12's own 1.22.1 is covered by make test and make test-source.  sid's
# 1.30.6 was not downloadable when this was written (its tarball answered
# 404); add a suite here when the archive serves a newer one.

COMPAT_SUITES ?= trixie
COMPAT_DIR    := $(BUILD)/compat

.PHONY: test-compat

test-compat: $(addprefix test-compat-,$(COMPAT_SUITES))

$(COMPAT_DIR)/%/.unpacked:
	rm -rf $(COMPAT_DIR)/$* && mkdir -p $(COMPAT_DIR)/$*
	cd $(COMPAT_DIR)/$* && $(REPO)/scripts/fetch-nginx-orig $*
	touch $@

test-compat-%: deps $(COMPAT_DIR)/%/.unpacked
	@scripts/apt-install $(SOURCE_PACKAGES)
	cd $(COMPAT_DIR)/$*/nginx-1.*/ && ./configure --builddir=objs \
	    $(SOURCE_CONFIGURE) --add-dynamic-module=$(REPO) \
	    > $(COMPAT_DIR)/$*/configure.log 2>&1 \
	    || { tail -30 $(COMPAT_DIR)/$*/configure.log; exit 1; }
	$(MAKE) -C $(COMPAT_DIR)/$*/nginx-1.*/ -f objs/Makefile -j2 \
	    > $(COMPAT_DIR)/$*/make.log 2>&1 \
	    || { tail -40 $(COMPAT_DIR)/$*/make.log; exit 1; }
	d=$$(ls -d $(COMPAT_DIR)/$*/nginx-1.*/objs); \
	echo "== $$($$d/nginx -v 2>&1)"; \
	TEST_NGINX_BINARY=$$d/nginx \
	TEST_NGINX_LOAD_MODULES=$$d/ngx_http_dynroute_module.so \
	    prove -I t/lib t/*.t
.PRECIOUS: $(COMPAT_DIR)/%/.unpacked
