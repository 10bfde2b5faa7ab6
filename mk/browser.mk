# make test-browser: the browser tests.  Headless Chromium (Debian's
# package), driven by playwright-core (pinned in t/browser/package.json and
# its lock file, installed under build/browser): t/browser/cors.t loads a
# page from one loopback origin and calls the proxy on others;
# t/browser/status.t checks the status page ({prefix}ui) under traffic and
# leaves a screenshot in build/status-page.png; t/browser/xsite.t has pages
# of another origin and of a rebound name attack the runtime API.

BROWSER_DIR := $(BUILD)/browser

.PHONY: browser-deps test-browser

# Debian's npm conflicts with a nodejs that bundles its own npm: install
# nodejs and npm only when there is no npm yet.
browser-deps:
	@scripts/apt-install chromium
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	    scripts/apt-install nodejs npm; \
	fi

$(BROWSER_DIR)/node_modules/.package-lock.json: t/browser/package.json \
        t/browser/package-lock.json | browser-deps
	mkdir -p $(BROWSER_DIR)
	cp t/browser/package.json t/browser/package-lock.json $(BROWSER_DIR)/
	cd $(BROWSER_DIR) && npm ci --ignore-scripts --no-audit --no-fund

test-browser: deps module browser-deps $(BROWSER_DIR)/node_modules/.package-lock.json
	TEST_NGINX_BINARY=$(NGINX) TEST_NGINX_LOAD_MODULES=$(MODULE) \
	    prove -v -e node t/browser/cors.t t/browser/status.t t/browser/xsite.t
