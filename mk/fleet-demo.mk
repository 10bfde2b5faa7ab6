# make fleet-demo: a fleet on loopback in one command (docs/fleet.md, "Try it
# on one machine"): a 3-member etcd (Debian's etcd-server, installed by
# fleet-deps), three nginx nodes of nginx.conf.example (edge1 to edge3 on
# 127.0.0.1:8081 to :8083, their backends on :9111 to :9134, and the
# upstream pool whose instances edge1 answers for on :9141 to :9143) and a
# tools/dynroute-agent for each, all under build/fleet-demo/ (scripts/
# fleet-demo says which ports, PID files and logs).  It prints the commands
# to try.  make fleet-demo-stop stops those processes by their PID files;
# fleet-demo stops a previous one first.  make demo (8080, 9001 to 9004)
# can run beside it.
#
# make test-fleet-demo (scripts/fleet-demo-check) starts it, runs the
# walkthroughs of docs/fleet.md, README.md ("Service discovery") and
# docs/service-discovery.md (their ```sh fleet-demo and ```console
# fleet-demo blocks) as written, checks that every node follows, stops it
# and checks that none of its processes is left.

FLEET_DEMO := $(BUILD)/fleet-demo

.PHONY: fleet-demo fleet-demo-stop test-fleet-demo

fleet-demo: deps module fleet-deps fleet-demo-stop
	@scripts/fleet-demo start $(NGINX) $(MODULE) $(FLEET_DEMO)

fleet-demo-stop:
	@scripts/fleet-demo stop $(FLEET_DEMO)

test-fleet-demo: deps module fleet-deps
	scripts/fleet-demo-check
