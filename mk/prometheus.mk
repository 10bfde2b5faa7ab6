# make test-prometheus: the metrics of a dynroute_api location
# ({prefix}metrics) read by the real tools, Debian's `prometheus` package:
# `promtool check metrics` lints the exposition, and a Prometheus of the
# test's own scrapes nginx every second under a canary rollout's load, then
# PromQL's answers (the canary's error ratio, the request counts) are checked
# against what the load sent: t/prometheus/scrape.t.
#
# t/prometheus/ is outside the t/*.t glob of `make prove` and of the source,
# static, compat and ASan runs, so only this target needs Prometheus.

PROM_DIR := $(BUILD)/prometheus

.PHONY: prometheus-deps test-prometheus

# The test runs /usr/bin/prometheus itself, on a loopback port of its own,
# and stops it; it needs no Prometheus service, and installing the package
# must not leave one running:
# - scripts/apt-install holds service starts back while it installs (a
#   policy-rc.d that exits 101, made only when the machine has none and
#   removed afterwards; invoke-rc.d and deb-systemd-invoke obey it), so
#   neither the init script nor the systemd unit is started;
# - on a machine booted with systemd the package still enables
#   prometheus.service, which would start at the next boot and listen on
#   every address (port 9090): when this target installed the package, it
#   disables the unit again (--now: stopped too, should a policy-rc.d of the
#   machine's own have let it start);
# - the package's Recommends (prometheus-node-exporter, another service on
#   every address) are not installed: APT_CONFIG names a file that apt reads
#   before its own configuration, and that only turns Recommends off.
prometheus-deps:
	@if ! dpkg-query -W -f='$${Status}' prometheus 2>/dev/null \
	        | grep -q 'ok installed'; then \
	    mkdir -p $(PROM_DIR) && \
	    echo 'APT::Install-Recommends "false";' > $(PROM_DIR)/apt.conf && \
	    APT_CONFIG=$(PROM_DIR)/apt.conf scripts/apt-install prometheus && \
	    if [ -d /run/systemd/system ]; then \
	        systemctl disable --now prometheus.service; \
	    fi; \
	fi

test-prometheus: deps module prometheus-deps
	TEST_NGINX_BINARY=$(NGINX) TEST_NGINX_LOAD_MODULES=$(MODULE) \
	    prove -v -I t/lib t/prometheus/*.t
