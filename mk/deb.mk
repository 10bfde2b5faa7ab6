# The Debian package (issue #16): make deb, make test-deb.
#
#   make deb       builds build/deb/libnginx-mod-http-dynroute_<version>_<arch>.deb
#                  and dynroute-tools_<version>_all.deb (dynroutectl, the
#                  fleet agent, their manual pages and the agent's systemd
#                  unit) with dpkg-buildpackage (debian/), then runs lintian
#                  on both, showing its infos too and failing on a warning
#   make test-deb  installs the module on this machine's nginx, runs part of
#                  the prove suite and t/stream.t against it (the stream
#                  module from libnginx-mod-stream, which make deps installs,
#                  loaded by its own load file before dynroute's), removes
#                  and purges it, upgrades a copy made as 0.5.0 to it; then
#                  installs, checks and purges dynroute-tools
#
# The version comes from debian/changelog alone.

DEB_DIR      := $(BUILD)/deb
DEB_PACKAGES := dpkg-dev debhelper lintian fakeroot nginx-dev libpcre2-dev g++ \
                nlohmann-json3-dev
DEB_VERSION   = $(shell dpkg-parsechangelog -l debian/changelog -S Version)
DEB_ARCH      = $(shell dpkg --print-architecture)
DEB_FILE      = $(DEB_DIR)/libnginx-mod-http-dynroute_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_TOOLS_FILE = $(DEB_DIR)/dynroute-tools_$(DEB_VERSION)_all.deb

.PHONY: deb test-deb

# Built from a copy of the tracked files: dpkg-buildpackage writes its
# results next to the source tree, and the repository's build/ stays out.
deb:
	@scripts/apt-install $(DEB_PACKAGES)
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc -b -J2 \
	    > $(DEB_DIR)/build.log 2>&1 \
	    || { tail -40 $(DEB_DIR)/build.log; exit 1; }
	set -o pipefail; \
	lintian --fail-on error,warning --info --display-info $(DEB_FILE) $(DEB_TOOLS_FILE) \
	    | tee $(DEB_DIR)/lintian.log
	@echo "deb: $(DEB_FILE) $(DEB_TOOLS_FILE)"

test-deb: deps deb
	scripts/test-deb $(DEB_FILE)
	scripts/test-deb-tools $(DEB_TOOLS_FILE)
