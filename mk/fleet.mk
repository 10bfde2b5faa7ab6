# make test-fleet: the routing state of a fleet kept in etcd
# (tools/dynroute-agent, dynroutectl --etcd) against Debian's etcd 3.4:
# t/fleet/agent.t (one etcd, one nginx), t/fleet/tls.t (etcd with TLS,
# client certificates and authentication; certificates made by openssl) and
# t/fleet/cluster.t (three etcd members, three nginx nodes and their
# agents).  The tests run /usr/bin/etcd
# themselves, on loopback ports of their own, with data directories of
# their own, and stop it.  t/fleet/ is outside the t/*.t glob of `make
# prove` and of the other prove runs, so only this target needs etcd.

FLEET_DIR := $(BUILD)/fleet
FLEET_PACKAGES := etcd-server etcd-client python3-etcd3

.PHONY: fleet-deps test-fleet

# The tests need no etcd service, and installing etcd-server must not leave
# one running (it would listen on port 2379 with a data directory of its own):
# - scripts/apt-install holds service starts back while it installs (a
#   policy-rc.d that exits 101; invoke-rc.d and deb-systemd-invoke obey it);
# - on a machine booted with systemd the package still enables etcd.service,
#   which would start at the next boot: when this target installed the
#   package, it disables the unit again (--now: stopped too, should a
#   policy-rc.d of the machine's own have let it start);
# - Recommends are not installed (APT_CONFIG names a file apt reads before
#   its own configuration, and that only turns Recommends off).
fleet-deps:
	@if ! dpkg-query -W -f='$${Status}' etcd-server 2>/dev/null \
	        | grep -q 'ok installed'; then \
	    fresh=1; \
	fi; \
	mkdir -p $(FLEET_DIR) && \
	echo 'APT::Install-Recommends "false";' > $(FLEET_DIR)/apt.conf && \
	APT_CONFIG=$(FLEET_DIR)/apt.conf scripts/apt-install $(FLEET_PACKAGES) && \
	if [ -n "$$fresh" ] && [ -d /run/systemd/system ]; then \
	    systemctl disable --now etcd.service; \
	fi

test-fleet: deps module fleet-deps
	TEST_NGINX_BINARY=$(NGINX) TEST_NGINX_LOAD_MODULES=$(MODULE) \
	TEST_NGINX_STREAM_MODULE=$(STREAM_MODULE) \
	    prove -v -I t/lib t/fleet/*.t
