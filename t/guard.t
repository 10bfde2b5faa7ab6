# The guard of a rollout (docs/design/canary.md, part 2) through a real
# nginx with 2 workers and a dynroute_zone with a state file: a canary that
# answers 500 under a steady load is taken to 0% within 2 s of its first
# failure, and no request reaches it after; a slow canary trips on latency;
# a primary failing as much (baseline=primary) and min_requests keep a
# canary from tripping; the trip in GET {prefix}rollouts/NAME, the state
# file, the metrics, {prefix}stats and error.log; an operator's PATCH
# clears it, and the canary still failing is tripped again; a reload keeps
# the trip and the new worker 0 judges; requests that reach the rollout
# through an internal redirect count as the counters count them, those of
# auth_request subrequests do not (as the metrics); the refused
# configurations.  Loopback only; every wait is a bounded poll.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api;
use Test::Nginx::Dynroute::Proc qw(slurp stop_proc start_slow_backend wait_for);
use JSON::PP ();
use Time::HiRes qw(time);

my $json = JSON::PP->new->canonical;

sub rollout {
    my ($srv, $name) = @_;
    my (undef, $doc) = api_call($srv, 'GET', "/dynroute/rollouts/$name");
    return $doc // {};
}

# a steady load until cond() holds (checked every 10 requests) or secs
# pass: (the time from the first 5xx to cond() holding, or undef; 5xx
# answers seen; requests sent)
my $user = 0;
sub load_until {
    my ($srv, $secs, $cond, $path) = @_;
    my ($first, $fails, $sent) = (undef, 0, 0);
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $r = http_get($srv, $path // '/', { 'X-User' => 'u' . $user++ });
        $sent++;
        if (($r->{status} // 0) >= 500) {
            $first //= time;
            $fails++;
        }
        if ($sent % 10 == 0 && $cond->()) {
            return ($first ? time - $first : 0, $fails, $sent);
        }
    }
    return (undef, $fails, $sent);
}

sub tripped { my ($srv) = @_; return sub { exists rollout($srv, 'shop')->{guard}{tripped} } }

# A metric's value.  A trip's count and its log line follow the write that
# the API shows by a moment: with $want, wait (up to 5 s) for that value.
sub metric {
    my ($srv, $re, $want) = @_;
    my $v;
    wait_for(5, sub {
        my $res = http_get($srv, '/dynroute/metrics');
        $v = ($res->{body} // '') =~ $re ? $1 : undef;
        return !defined $want || (defined $v && $v == $want);
    }, 0.05);
    return $v;
}

my $backends = <<'CONF';
    log_format canary "$request";
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; access_log off; return 200 "a\n"; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        access_log $TEST_NGINX_PREFIX/logs/canary.log canary;
        return 500 "b\n";
    }
    dynroute_zone routes 1m state=$TEST_NGINX_PREFIX/state.json;
    dynroute_table main { default shop; }
CONF

my $config = <<'CONF';
    location / {
        dynroute    main;
        proxy_pass  http://$dynroute_upstream;
        add_header  X-Variant $dynroute_variant always;
    }
    location /redirect/ { rewrite ^ / last; }
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF

my $shop = <<'CONF';
    dynroute_rollout shop {
        variant  stable  service_a  90%;
        variant  canary  service_b  10%;
        key      $http_x_user;
        guard    errors=5% window=2s interval=100ms min_requests=5;
    }
CONF

# ---- a failing canary, tripped ----------------------------------------------

{
    my $srv = start_nginx(http_config => $backends . $shop, config => $config,
                          workers => 2);
    my $canary_log = "$srv->{prefix}/logs/canary.log";

    my ($took, $fails, $sent) = load_until($srv, 10, tripped($srv));
    ok(defined $took, 'errors: the failing canary is tripped');
    diag(sprintf 'errors: tripped %.3f s after the first failure; %d of %d '
               . 'client requests failed', $took // -1, $fails, $sent);
    ok(defined $took && $took < 2, 'errors: at 0% within 2 s of its first failure');

    my $doc = rollout($srv, 'shop');
    is($doc->{variants}{canary}{weight}, 0, 'errors: the canary at 0%');
    is($doc->{variants}{stable}{weight}, 100, 'errors: the primary takes its weight');
    is($doc->{guard}{tripped}{variant}, 'canary', 'GET rollouts/NAME: the trip, its variant');
    is($doc->{guard}{tripped}{reason}, 'errors', 'GET rollouts/NAME: the trip, its reason');
    is($doc->{guard}{tripped}{origin}, 'local', 'GET rollouts/NAME: judged here');
    is($doc->{guard}{state}, 'tripped', 'GET rollouts/NAME: guard state "tripped"');
    is($json->encode([@{$doc->{guard}}{qw(errors window_s interval_ms min_requests baseline)}]),
       '[5,2,100,5,"primary"]', 'GET rollouts/NAME: the guard\'s parameters');
    like($doc->{guard}{tripped}{detail},
         qr/^5xx 100\.0% of \d+ responses in [\d.]+s; primary 0\.0% of \d+$/,
         'GET rollouts/NAME: the figures');

    # no request reaches the canary any more, in either worker
    my $before = () = slurp($canary_log) =~ /\n/g;
    my $late = 0;
    for my $i (1 .. 200) {
        my $r = http_get($srv, '/', { 'X-User' => 'u' . $user++ });
        $late++ if ($r->{status} // 0) != 200
                   || ($r->{headers}{'x-variant'}[0] // '') ne 'stable';
    }
    my $after = () = slurp($canary_log) =~ /\n/g;
    is($late, 0, 'tripped: 200 requests, all answered by the primary');
    is($after - $before, 0, 'tripped: none reached the canary\'s backend');

    my $state = $json->decode(slurp("$srv->{prefix}/state.json"));
    is($state->{rollouts}{shop}{guard}{tripped}{variant},
       'canary', 'the state file records the trip');

    is(metric($srv, qr/^dynroute_guard_trips_total\{rollout="shop",variant="canary",reason="errors"\} (\d+)$/m, 1),
       1, 'metrics: dynroute_guard_trips_total{reason="errors"} 1');
    is(metric($srv, qr/^dynroute_guard_trips_total\{rollout="shop",variant="canary",reason="latency"\} (\d+)$/m, 0),
       0, 'metrics: no latency trip');
    my (undef, $stats) = api_call($srv, 'GET', '/dynroute/stats');
    is($stats->{rollouts}[0]{tripped}{reason}, 'errors', '{prefix}stats: the trip\'s reason');
    is($stats->{rollouts}[0]{variants}[1]{guard_trips}{errors}, 1, '{prefix}stats: the count');

    like(slurp($srv->{error_log}),
         qr/\[warn\] .*rollout "shop" guard: variant "canary" tripped on errors: 5xx 100\.0% of \d+ responses in [\d.]+s; primary 0\.0% of \d+; weight 10% -> 0%$/m,
         'error.log: the trip at warn');

    # an operator's PATCH clears the trip; the canary, still failing, is
    # judged again from a fresh window and tripped again
    my ($st, $patched) = api_call($srv, 'PATCH', '/dynroute/rollouts/shop',
                                  '{"weights":{"stable":90,"canary":10}}');
    is($st, 200, 'PATCH: 200');
    ok(!exists rollout($srv, 'shop')->{guard}{tripped}, 'PATCH: the trip cleared');
    is(rollout($srv, 'shop')->{variants}{canary}{weight}, 10, 'PATCH: the canary back at 10%');

    ($took) = load_until($srv, 10, tripped($srv));
    ok(defined $took && $took < 2, 'after the PATCH: tripped again within 2 s');
    is(metric($srv, qr/^dynroute_guard_trips_total\{rollout="shop",variant="canary",reason="errors"\} (\d+)$/m, 2),
       2, 'metrics: 2 trips');

    # a reload keeps the trip (the runtime state), and the new worker 0
    # judges once it is cleared
    ok(reload_nginx($srv), 'reload');
    is(rollout($srv, 'shop')->{guard}{tripped}{variant}, 'canary', 'after the reload: still tripped');
    is(rollout($srv, 'shop')->{variants}{canary}{weight}, 0, 'after the reload: still at 0%');
    my $offset = -s $srv->{error_log};
    ($st) = api_call($srv, 'PATCH', '/dynroute/rollouts/shop', '{"weights":{"stable":90,"canary":10}}');
    is($st, 200, 'after the reload: PATCH 200');
    ($took) = load_until($srv, 10, tripped($srv), '/redirect/');
    ok(defined $took && $took < 2,
       'after the reload: the new worker 0 trips it (requests through an internal redirect)');
    ok(wait_for(5, sub { slurp($srv->{error_log}, $offset) =~ /guard: variant "canary" tripped on errors/ }),
       'after the reload: logged');
    is(metric($srv, qr/^dynroute_guard_trips_total\{rollout="shop",variant="canary",reason="errors"\} (\d+)$/m, 3),
       3, 'metrics: 3 trips, counted across the reload');

    # DELETE drops the trip with the rest of the runtime values
    ($st) = api_call($srv, 'DELETE', '/dynroute/rollouts/shop');
    is($st, 200, 'DELETE: 200');
    ok(!exists rollout($srv, 'shop')->{guard}{tripped}, 'DELETE: no trip');

    error_log_ok(stop_nginx($srv), 'errors');
}

# ---- a slow canary, tripped on latency --------------------------------------

{
    my ($pid, $port) = start_slow_backend(0.3, concurrent => 1,
        response => "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nslow\n");
    my $srv = start_nginx(http_config => <<"CONF" . <<'CONF2', config => $config, workers => 2);
    upstream service_slow { server 127.0.0.1:$port; }
CONF
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; access_log off; return 200 "a\n"; }
    dynroute_zone routes 1m;
    dynroute_table main { default shop; }
    dynroute_rollout shop {
        variant  stable  service_a     70%;
        variant  canary  service_slow  30%;
        key      $http_x_user;
        guard    errors=5% latency=p90:100ms window=2s interval=100ms min_requests=3;
    }
CONF2

    my ($took, $fails, $sent) = load_until($srv, 15, tripped($srv));
    ok(defined $took, 'latency: the slow canary is tripped');
    diag("latency: tripped after $sent requests");
    my $doc = rollout($srv, 'shop');
    is($doc->{guard}{tripped}{reason}, 'latency', 'latency: the reason');
    is($doc->{guard}{latency}, 'p90:100ms', 'latency: the threshold shown');
    like($doc->{guard}{tripped}{detail},
         # the primary's figures unless it had fewer than min_requests in
         # the window (a loaded machine): then the rule was the absolute one
         qr/^p90 \d+ms of \d+ responses in [\d.]+s, above 100ms(?:; primary p90 \d+ms of \d+)?$/,
         'latency: the figures');
    is($fails, 0, 'latency: no client request failed');
    is(metric($srv, qr/^dynroute_guard_trips_total\{rollout="shop",variant="canary",reason="latency"\} (\d+)$/m, 1),
       1, 'metrics: a latency trip');
    error_log_ok(stop_nginx($srv), 'latency');
    stop_proc($pid);
}

# ---- no trip: the primary fails as much; too few requests -------------------

{
    my $srv = start_nginx(http_config => <<'CONF', config => $config, workers => 2);
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; access_log off; return 500 "a\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; access_log off; return 500 "b\n"; }
    dynroute_zone routes 1m;
    dynroute_table main { default shop; }
    dynroute_rollout shop {
        variant  stable  service_a  90%;
        variant  canary  service_b  10%;
        key      $http_x_user;
        guard    errors=5% window=1s interval=100ms min_requests=5 baseline=primary;
    }
CONF
    my ($took, $fails, $sent) = load_until($srv, 2.5, tripped($srv));
    ok(!defined $took, "baseline=primary: both failing ($fails of $sent), no trip");
    my $g = rollout($srv, 'shop')->{guard};
    is($g->{state}, 'waiting', 'baseline=primary: guard state "waiting" (no pass: a ramp would hold)');
    ok($g->{window}{canary}{responses} >= 5
       && $g->{window}{canary}{errors} == $g->{window}{canary}{responses}
       && $g->{window}{canary}{state} eq 'waiting',
       'baseline=primary: the canary judged on a full window of failures, and waiting');
    is(rollout($srv, 'shop')->{variants}{canary}{weight}, 10, 'baseline=primary: the canary keeps 10%');
    unlike(slurp($srv->{error_log}), qr/tripped/, 'baseline=primary: nothing logged');
    error_log_ok(stop_nginx($srv), 'baseline=primary');
}

{
    my $srv = start_nginx(http_config => $backends . <<'CONF', config => $config, workers => 2);
    dynroute_rollout shop {
        variant  stable  service_a  90%;
        variant  canary  service_b  10%;
        key      $http_x_user;
        guard    errors=5% window=1s interval=100ms min_requests=100000;
    }
CONF
    my ($took, $fails, $sent) = load_until($srv, 2.5, tripped($srv));
    ok(!defined $took && $fails > 20,
       "min_requests=100000: $fails failures of $sent requests, no trip");
    is(rollout($srv, 'shop')->{variants}{canary}{weight}, 10, 'min_requests: the canary keeps 10%');
    my $g = rollout($srv, 'shop')->{guard};
    is($g->{state}, 'waiting', 'min_requests: guard state "waiting"');
    ok($g->{window}{canary}{responses} > 0 && $g->{window}{canary}{errors} == $g->{window}{canary}{responses},
       "min_requests: the window's figures ($g->{window}{canary}{errors} of $g->{window}{canary}{responses})");
    ok(!exists $g->{window}{stable}, 'min_requests: the primary is not judged');
    error_log_ok(stop_nginx($srv), 'min_requests');
}

# ---- subrequests are not counted, so they trip nothing -----------------------

{
    my $srv = start_nginx(http_config => $backends . $shop, config => $config . <<'CONF',
    location /sub/ { auth_request /auth; proxy_pass http://service_a; }
    location = /auth {
        internal;
        dynroute    main;
        proxy_pass  http://$dynroute_upstream;
    }
CONF
        workers => 2);
    my ($took, $fails, $sent) = load_until($srv, 2, tripped($srv), '/sub/');
    ok(!defined $took && $fails > 10,
       "subrequests: $fails canary failures of $sent auth_request subrequests, no trip");
    ($took) = load_until($srv, 10, tripped($srv));
    ok(defined $took && $took < 2, 'subrequests: the main requests then trip it');
    error_log_ok(stop_nginx($srv), 'subrequests');
}

run_tests();

__DATA__

=== TEST 1: a bad errors= value
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_zone z 1m;
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    errors=120%;
}
--- must_die
--- error_log eval
qr/\[emerg\] invalid guard parameter "errors=120%": expected errors=PERCENT, the share of 5xx allowed, from 0\.01% to 100%, such as errors=5% in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 2: a bad latency= value
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_zone z 1m;
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    latency=p99:20s;
}
--- must_die
--- error_log eval
qr/\[emerg\] invalid guard parameter "latency=p99:20s": expected latency=pNN:TIME, NN from 50 to 99\.9 and TIME from 5ms to 10s, such as latency=p99:500ms in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 3: a window shorter than 4 x interval
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_zone z 1m;
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    errors=5% window=1s interval=500ms;
}
--- must_die
--- error_log eval
qr/\[emerg\] guard window=1s is shorter than 4 x interval=500ms: make window=2s at least, or interval=250ms at most in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 4: neither errors= nor latency=; an unknown parameter
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_zone z 1m;
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    window=10s;
}
--- must_die
--- error_log eval
qr/\[emerg\] guard without errors= or latency=: add one at least, such as errors=5% or latency=p99:500ms in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 5: an unknown parameter
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_zone z 1m;
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    errors=5% threshold=3;
}
--- must_die
--- error_log eval
qr/\[emerg\] unknown guard parameter "threshold=3": expected errors=PERCENT, latency=pNN:TIME, window=TIME, interval=TIME, min_requests=N or baseline=primary\|none in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 6: two guards
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_zone z 1m;
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    errors=5%;
    guard    latency=p99:500ms;
}
--- must_die
--- error_log eval
qr/\[emerg\] duplicate "guard" in dynroute rollout "r", first in \S+nginx\.conf:8: one guard per rollout, with every parameter on its line in \S+nginx\.conf:9$/m



=== TEST 7: a guard without a dynroute_zone
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    errors=5%;
}
--- must_die
--- error_log eval
qr/\[emerg\] guard in dynroute rollout "r" without a dynroute_zone, in \S+nginx\.conf:7: the guard judges the variants' counters in the zone, add "dynroute_zone NAME SIZE;" to the http\{\} block$/m



=== TEST 8: a guard with metrics=off
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_zone z 1m metrics=off;
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    errors=5%;
}
--- must_die
--- error_log eval
qr/\[emerg\] guard in dynroute rollout "r" with dynroute_zone metrics=off, in \S+nginx\.conf:8: the guard judges the variants' counters, set metrics=tables or metrics=rules$/m



=== TEST 9: a guard in a rollout with one variant
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_zone z 1m;
dynroute_rollout r {
    variant  a  a  100%;
    guard    errors=5%;
}
--- must_die
--- error_log eval
qr/\[emerg\] two variants at least are needed in dynroute rollout "r" in \S+nginx\.conf:5$/m



=== TEST 10: too many parameters
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_zone z 1m;
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    errors=5% latency=p99:1s window=10s interval=1s min_requests=5 baseline=none errors=6%;
}
--- must_die
--- error_log eval
qr/\[emerg\] invalid number of parameters in "guard" of dynroute rollout "r": expected errors=, latency=, window=, interval=, min_requests= or baseline= in \S+nginx\.conf:8$/m



=== TEST 11: a valid guard starts
--- http_config
upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "a\n"; }
dynroute_zone z 1m;
dynroute_table t { default r; }
dynroute_rollout r {
    variant  a  a  90%;
    variant  b  a  10%;
    guard    errors=0.5% latency=p99.9:500ms window=10s interval=100ms min_requests=1 baseline=none;
}
--- config
location / { dynroute t; proxy_pass http://$dynroute_upstream; }
--- request
GET /
--- response_body
a
--- no_error_log
[emerg]
