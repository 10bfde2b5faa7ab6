# Benchmarks: `make bench` runs all eleven (about 18 minutes); see
# bench/README.md.  Knobs are environment variables (BENCH_ROUNDS,
# BENCH_DURATION, ...), documented there.

BENCH_PACKAGES := wrk valgrind libbenchmark-dev python3 time util-linux curl
BENCH_CMAKE    := $(BUILD)/bench-cmake
BENCH_OUT      := $(BUILD)/bench
BENCH_PY       := PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3

.PHONY: bench bench-deps bench-micro bench-e2e bench-callgrind bench-large \
        bench-upstreams bench-zone bench-metrics bench-cost bench-smoke \
        bench-check bench-guard bench-health bench-ramp bench-stream

bench: bench-micro bench-e2e bench-callgrind bench-large bench-upstreams \
       bench-zone bench-metrics bench-cost bench-guard bench-health \
       bench-stream
	@echo "bench: results in $(BENCH_OUT)/*/results.md"

bench-deps:
	@scripts/apt-install $(BENCH_PACKAGES)

BENCH_SCRIPTS := bench/benchlib.py bench/e2e.py bench/callgrind.py \
                 bench/large.py bench/upstreams.py bench/zone.py \
                 bench/metrics.py bench/cost.py bench/guard.py \
                 bench/health.py bench/stream.py
BENCH_SYNTAX  := $(BENCH_PY) -c 'import ast, sys; \
                 [ast.parse(open(f).read(), f) for f in sys.argv[1:]]'

# Google Benchmark over the core, optimised as the module is (-O2 -g), on
# the client core.  Debian's libbenchmark warns that it was "built as
# DEBUG": that concerns the library's own checks, not our code.
bench-micro: deps bench-deps
	cmake -S . -B $(BENCH_CMAKE) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DDYNROUTE_BENCH=ON -DBUILD_TESTING=OFF > /dev/null
	cmake --build $(BENCH_CMAKE) -j2 --target dynroute_micro
	mkdir -p $(BENCH_OUT)/micro
	taskset -c $${BENCH_CLIENT_CPU:-1} $(BENCH_CMAKE)/dynroute_micro \
	    --benchmark_repetitions=$${BENCH_MICRO_REPETITIONS:-5} \
	    --benchmark_report_aggregates_only=true \
	    --benchmark_min_time=$${BENCH_MICRO_MIN_TIME:-0.2} \
	    --benchmark_out=$(BENCH_OUT)/micro/results.json \
	    --benchmark_out_format=json \
	    | tee $(BENCH_OUT)/micro/results.txt

bench-e2e: deps module bench-deps
	BENCH_OUT=$(BENCH_OUT)/e2e MODULE=$(MODULE) NGINX=$(NGINX) \
	    $(BENCH_PY) bench/e2e.py

bench-callgrind: deps module bench-deps
	BENCH_OUT=$(BENCH_OUT)/callgrind MODULE=$(MODULE) NGINX=$(NGINX) \
	    $(BENCH_PY) bench/callgrind.py

bench-large: deps module bench-deps
	BENCH_OUT=$(BENCH_OUT)/large MODULE=$(MODULE) NGINX=$(NGINX) \
	    $(BENCH_PY) bench/large.py

bench-upstreams: deps module bench-deps
	BENCH_OUT=$(BENCH_OUT)/upstreams MODULE=$(MODULE) NGINX=$(NGINX) \
	    $(BENCH_PY) bench/upstreams.py

bench-zone: deps module bench-deps
	BENCH_OUT=$(BENCH_OUT)/zone MODULE=$(MODULE) NGINX=$(NGINX) \
	    $(BENCH_PY) bench/zone.py

bench-metrics: deps module bench-deps
	BENCH_OUT=$(BENCH_OUT)/metrics MODULE=$(MODULE) NGINX=$(NGINX) \
	    $(BENCH_PY) bench/metrics.py

# The guard's reaction: wrk against a 10 % canary that starts failing, the
# time from its first 500 to 0 % in every worker.
bench-guard: deps module bench-deps
	BENCH_OUT=$(BENCH_OUT)/guard MODULE=$(MODULE) NGINX=$(NGINX) \
	    $(BENCH_PY) bench/guard.py

# Ramps alone (bench/guard.py's ramp part, which bench-guard runs too): a
# 5-step ramp under wrk to 100 %, and one whose canary fails at the third
# step.
bench-ramp: deps module bench-deps
	BENCH_OUT=$(BENCH_OUT)/ramp BENCH_PARTS=ramp MODULE=$(MODULE) \
	    NGINX=$(NGINX) $(BENCH_PY) bench/guard.py

# dynroute_health_check: 1,000 servers checked every second, against none
bench-health: deps module bench-deps
	BENCH_OUT=$(BENCH_OUT)/health MODULE=$(MODULE) NGINX=$(NGINX) \
	    $(BENCH_PY) bench/health.py

# TLS passthrough by SNI (issue 26): a stream dynroute_table against
# ssl_preread + map over the same table, connections per second, the
# worker's CPU and callgrind instructions per connection.  The client and
# the backend are bench/stream_load.c.
STREAM_LOAD := $(BENCH_OUT)/stream_load

$(STREAM_LOAD): bench/stream_load.c
	@mkdir -p $(BENCH_OUT)
	cc -O2 -Wall -Wextra -o $@ $<

bench-stream: deps module bench-deps $(STREAM_LOAD)
	BENCH_OUT=$(BENCH_OUT)/stream MODULE=$(MODULE) NGINX=$(NGINX) \
	STREAM_MODULE=$(STREAM_MODULE) STREAM_LOAD=$(STREAM_LOAD) \
	    $(BENCH_PY) bench/stream.py

# The decision's cost in every configuration against a static proxy_pass,
# for one module: `make bench-cost MODULE=path/to/other.so` measures another
# build (one that loads into NGINX) and then neither builds nor overwrites
# it; results in build/bench/cost/<the module's file name>/, named in the
# report by BENCH_COST_LABEL.
BENCH_COST_BUILD := $(if $(filter command line,$(origin MODULE)),,module)

bench-cost: deps bench-deps $(BENCH_COST_BUILD)
	BENCH_OUT=$(BENCH_OUT)/cost/$(notdir $(basename $(MODULE))) \
	MODULE=$(MODULE) NGINX=$(NGINX) $(BENCH_PY) bench/cost.py

# A quick pass through every benchmark (about a minute): checks that the
# scripts still run, not a measurement.
bench-smoke: deps module bench-deps
	$(BENCH_SYNTAX) $(BENCH_SCRIPTS)
	BENCH_OUT=$(BENCH_OUT)/smoke-e2e MODULE=$(MODULE) NGINX=$(NGINX) \
	BENCH_ROUNDS=1 BENCH_DURATION=1 BENCH_WARMUP=0.2 \
	    $(BENCH_PY) bench/e2e.py
	BENCH_OUT=$(BENCH_OUT)/smoke-callgrind MODULE=$(MODULE) NGINX=$(NGINX) \
	BENCH_CALLGRIND_REQUESTS=50 \
	BENCH_CALLGRIND_FRONTS=static,dynroute,dynroute-balancer \
	    $(BENCH_PY) bench/callgrind.py
	BENCH_OUT=$(BENCH_OUT)/smoke-large MODULE=$(MODULE) NGINX=$(NGINX) \
	BENCH_LARGE_SIZES=1000 BENCH_LARGE_REPEAT=1 BENCH_ROUNDS=1 \
	BENCH_DURATION=1 $(BENCH_PY) bench/large.py
	BENCH_OUT=$(BENCH_OUT)/smoke-upstreams MODULE=$(MODULE) NGINX=$(NGINX) \
	BENCH_UPSTREAMS_SIZES=1,1000 BENCH_UPSTREAMS_REPEAT=1 BENCH_ROUNDS=1 \
	BENCH_DURATION=1 BENCH_WARMUP=0.2 $(BENCH_PY) bench/upstreams.py
	BENCH_OUT=$(BENCH_OUT)/smoke-zone MODULE=$(MODULE) NGINX=$(NGINX) \
	BENCH_ZONE_HOSTS=2000 BENCH_ZONE_CHUNK=500 BENCH_ZONE_LOAD_CHUNKS=1000 \
	BENCH_ZONE_FLIPS=2 BENCH_ZONE_MEMBER_CHANGES=3 BENCH_ZONE_CHURN=5 \
	BENCH_CALLGRIND_REQUESTS=50 BENCH_ROUNDS=1 \
	BENCH_DURATION=1 BENCH_WARMUP=0.2 $(BENCH_PY) bench/zone.py
	BENCH_OUT=$(BENCH_OUT)/smoke-metrics MODULE=$(MODULE) NGINX=$(NGINX) \
	BENCH_CALLGRIND_REQUESTS=50 BENCH_ROUNDS=1 BENCH_DURATION=1 \
	BENCH_WARMUP=0.2 $(BENCH_PY) bench/metrics.py
	BENCH_OUT=$(BENCH_OUT)/smoke-cost MODULE=$(MODULE) NGINX=$(NGINX) \
	BENCH_CALLGRIND_REQUESTS=50 BENCH_COST_HOSTS=2000 BENCH_COST_CHUNK=500 \
	    $(BENCH_PY) bench/cost.py
	$(MAKE) $(STREAM_LOAD)
	BENCH_OUT=$(BENCH_OUT)/smoke-stream MODULE=$(MODULE) NGINX=$(NGINX) \
	STREAM_MODULE=$(STREAM_MODULE) STREAM_LOAD=$(STREAM_LOAD) \
	BENCH_ROUNDS=1 BENCH_DURATION=1 BENCH_WARMUP=0 \
	BENCH_STREAM_CALLGRIND=20 $(BENCH_PY) bench/stream.py

# For CI, in seconds: the scripts parse, and the microbenchmarks build and
# run once each (too briefly to mean anything).
bench-check: deps
	@scripts/apt-install libbenchmark-dev python3
	$(BENCH_SYNTAX) $(BENCH_SCRIPTS)
	$(MAKE) $(STREAM_LOAD)
	cmake -S . -B $(BENCH_CMAKE) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DDYNROUTE_BENCH=ON -DBUILD_TESTING=OFF > /dev/null
	cmake --build $(BENCH_CMAKE) -j2 --target dynroute_micro
	$(BENCH_CMAKE)/dynroute_micro --benchmark_min_time=0.001 \
	    --benchmark_filter='/10$$|/100000$$|Classify|Rollout' > /dev/null
	@echo "bench-check: ok"
