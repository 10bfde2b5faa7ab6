# The metrics endpoint ({prefix}metrics of a dynroute_api location) read by
# the real tools: `promtool check metrics` lints what it serves, and a real
# Prometheus scrapes it every second while a canary rollout takes a load in
# which the canary fails exactly 20% of its requests.  PromQL's answers must
# then match what the load saw: the canary's error ratio as a dashboard
# computes it (increase() over a window), the stable variant's (0), the
# request counts of every variant, and the families of the canary's server
# (its upstream has dynroute_servers).
#
# Run by `make test-prometheus` (mk/prometheus.mk installs Debian's
# prometheus package).  Loopback only; starts one nginx and one Prometheus,
# and stops both, by PID, on every way out.  About 20 s.
#
# Environment: as for the prove suite (TEST_NGINX_BINARY,
# TEST_NGINX_LOAD_MODULES, TEST_NGINX_NO_CLEAN), and PROMETHEUS and PROMTOOL
# (default /usr/bin/prometheus and /usr/bin/promtool).
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use HTTP::Tiny ();
use JSON::PP ();
use Time::HiRes ();

my $PROMETHEUS = $ENV{PROMETHEUS} || '/usr/bin/prometheus';
my $PROMTOOL   = $ENV{PROMTOOL}   || '/usr/bin/promtool';

my $ROLLOUT = 'checkout';
my $USERS   = 40;       # u1..u40, spread over both variants by the rollout
my $ROUNDS  = 30;       # each user sends n = 0..29: a multiple of 10
my $PACE    = 0.4;      # seconds per round: the load lasts about 12 s
my $SHARE   = 0.2;      # the canary answers 500 when n ends in 0 or 5

# The canary's backend fails when the request's counter n ends in 0 or 5.
# Every user sends n = 0 .. $ROUNDS-1, a whole number of decades, so
# exactly 2 of every user's 10 requests fail, whichever users the rollout
# gives the canary: exactly 20% of the canary's requests are 5xx, and the
# stable backend never fails.
my $http_config = <<'CONF';
    error_log $TEST_NGINX_PREFIX/logs/error.log info;
    upstream service_stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_canary {
        dynroute_servers;           # its server's families too
        dynroute_health_check interval=1s;  # and the checks'
        server 127.0.0.1:$TEST_NGINX_PORT3;
    }

    map $arg_n $canary_fails {
        ~[05]$   1;
        default  0;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        access_log off;
        location / { return 200 "stable\n"; }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        access_log off;
        location / {
            if ($canary_fails) { return 500 "canary failed\n"; }
            return 200 "canary\n";
        }
    }

    dynroute_zone routes 1m;

    dynroute_rollout checkout {
        variant  stable  service_stable  50%;
        variant  canary  service_canary  50%;
        key      $arg_user;
        # the guard's family: on latency alone, since whole rounds of the
        # canary fail (n = 0 and 5) and must not trip it
        guard    latency=p99:5s;
    }

    dynroute_table main {
        default  checkout;
    }
CONF

my $config = <<'CONF';
    location / {
        dynroute    main;
        proxy_pass  http://$dynroute_upstream;
        add_header  X-Variant $dynroute_variant always;
    }
    location /dynroute/ {
        dynroute_api;
        allow 127.0.0.1;
        deny  all;
    }
CONF

# HTTP on loopback only: never through a proxy of the environment.
my $ua = HTTP::Tiny->new(timeout => 10, keep_alive => 0,
                         proxy => undef, http_proxy => undef,
                         https_proxy => undef);
my $json = JSON::PP->new;

#------------------------------------------------------------------ Prometheus

my ($prom_pid, $prom_port);

# An instant query: the decoded "result" array, or undef (with a diag).
sub query {
    my ($promql) = @_;
    my $url = "http://127.0.0.1:$prom_port/api/v1/query?"
        . $ua->www_form_urlencode({ query => $promql });
    my $res = $ua->get($url);
    unless ($res->{success}) {
        diag("query $promql: $res->{status} $res->{reason}\n$res->{content}");
        return undef;
    }
    my $doc = eval { $json->decode($res->{content}) };
    unless ($doc && ($doc->{status} // '') eq 'success') {
        diag("query $promql: unexpected answer $res->{content}");
        return undef;
    }
    return $doc->{data}{result};
}

# The value of a query with one result (a number, "NaN" and "+Inf" as
# Perl's numbers), or undef when it has none.
sub scalar_query {
    my ($promql) = @_;
    my $r = query($promql);
    return undef unless $r && @$r;
    diag("query $promql: " . scalar(@$r) . ' results, the first one taken')
        if @$r > 1;
    return 0 + $r->[0]{value}[1];
}

# { label value => number } of a query's results, keyed by one label.
sub by_label {
    my ($promql, $label) = @_;
    my $r = query($promql) or return {};
    return { map { (($_->{metric}{$label} // '') => 0 + $_->{value}[1]) } @$r };
}

#------------------------------------------------------------------ the test

for my $bin ($PROMETHEUS, $PROMTOOL) {
    ok(-x $bin, "$bin is there (make test-prometheus installs it)")
        or do { done_testing(); exit 1 };
}

my $srv = start_nginx(http_config => $http_config, config => $config,
                      workers => 2);
my $base = "http://127.0.0.1:$srv->{port}";

# Runs promtool check metrics on what the endpoint serves now.
my $promtool_runs = 0;
sub promtool_ok {
    my ($name) = @_;
    my $res = $ua->get("$base/dynroute/metrics");
    is($res->{status}, 200, "$name: GET /dynroute/metrics answers 200")
        or diag($res->{content});
    my $file = "$srv->{prefix}/metrics-" . ++$promtool_runs . '.txt';
    spew($file, $res->{content} // '');
    my $out = `$PROMTOOL check metrics < '$file' 2>&1`;
    my $st = $?;
    ok($st == 0 && $out !~ /\S/, "$name: promtool check metrics finds no problem")
        or diag("promtool exit " . ($st >> 8) . ", output:\n$out");
    return $res;
}

my $first = promtool_ok('before any request');
is(($first->{headers}{'content-type'} // ''),
   'text/plain; version=0.0.4; charset=utf-8',
   'Content-Type of the Prometheus text format');
ok((grep { my ($l) = /\Adynroute_variant_responses_total\{(.*)\} 0\z/;
            defined $l && $l =~ /(?:\A|,)variant="canary"(?:,|\z)/
                       && $l =~ /(?:\A|,)code="5xx"(?:,|\z)/ }
     split /\n/, $first->{content} // '') == 1,
   "the canary's 5xx series is there, at 0, before any request");
ok((grep { /\Adynroute_server_state\{upstream="service_canary",server="127\.0\.0\.1:\d+",state="up"\} 1\z/ }
     split /\n/, $first->{content} // '') == 1,
   "the canary's server is there, up, before any request");

# Prometheus of our own: its data in the nginx prefix (removed with it).
($prom_port) = free_ports(1);
my $pdir = "$srv->{prefix}/prometheus";
mkdir $pdir or die "mkdir $pdir: $!\n";
spew("$pdir/prometheus.yml", <<"YML");
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: dynroute
    metrics_path: /dynroute/metrics
    static_configs:
      - targets: ['127.0.0.1:$srv->{port}']
YML
# Ours: stopped by its PID at the end (SIGTERM: it shuts down cleanly within
# a second or two; SIGKILL only if it is still there 15 s later), and by the
# process module on any other way out.
$prom_pid = spawn('prometheus', "$pdir/prometheus.log", $PROMETHEUS,
                  "--config.file=$pdir/prometheus.yml", "--storage.tsdb.path=$pdir/data",
                  "--web.listen-address=127.0.0.1:$prom_port", '--log.level=warn');

my $ready = wait_for(20, sub {
    die "prometheus exited:\n" . tail_of(slurp("$pdir/prometheus.log"), 30)
        unless alive($prom_pid);
    my $r = $ua->get("http://127.0.0.1:$prom_port/-/ready");
    return $r->{status} == 200;
}, 0.25);
ok($ready, "prometheus is ready on 127.0.0.1:$prom_port")
    or diag(tail_of(slurp("$pdir/prometheus.log"), 30));

# One scrape before the load: every series starts at 0 in Prometheus, so
# increase() over a window that holds the whole run does not extrapolate
# before the first sample (see the error ratio below).
my $scraped = wait_for(15, sub {
    my $n = scalar_query(qq{count(dynroute_variant_responses_total{rollout="$ROLLOUT"})});
    my $up = scalar_query('up{job="dynroute"}');
    return $n && $up && $up == 1;
}, 0.25);
ok($scraped, 'prometheus scraped the endpoint before the load (up == 1)')
    or diag(tail_of(slurp("$pdir/prometheus.log"), 30));

# The load: $ROUNDS rounds, each user once a round with n = the round, one
# connection a request, paced to about $PACE s a round while Prometheus
# scrapes every second.  Bounded: $USERS * $ROUNDS requests, and no new
# round after 40 s (whole rounds keep the 20% exact).
my (%sent, %failed, $sent, $bad);
my $t0 = Time::HiRes::time();
ROUND: for my $round (0 .. $ROUNDS - 1) {
    last ROUND if Time::HiRes::time() - $t0 > 40;
    for my $u (1 .. $USERS) {
        my $res = $ua->get("$base/?user=u$u&n=$round");
        $sent++;
        my ($body) = ($res->{content} // '') =~ /\A(\w+)/;
        my $variant = $res->{headers}{'x-variant'} // '';
        my $want_status = $variant eq 'canary' && $round % 5 == 0 ? 500 : 200;
        if ($res->{status} != $want_status
            || !defined $body || $body ne $variant) {
            $bad++;
            diag("user u$u n=$round: $res->{status} variant '$variant': "
                 . ($res->{content} // '')) if $bad <= 5;
        }
        $sent{$variant}++;
        $failed{$variant}++ if $res->{status} >= 500;
    }
    my $next = $t0 + ($round + 1) * $PACE;
    my $now = Time::HiRes::time();
    Time::HiRes::sleep($next - $now) if $next > $now;
}
my $t_end = Time::HiRes::time();
is($sent, $USERS * $ROUNDS,
   sprintf('the load sent %d requests in %.1f s', $sent, $t_end - $t0));
ok(!$bad, 'every answer came from its variant, the canary failing exactly when n ends in 0 or 5')
    or diag("$bad bad answers");
ok($sent{stable} && $sent{canary}, 'both variants took requests')
    or diag(join ', ', map { "$_=$sent{$_}" } sort keys %sent);
note("client: " . join ', ', map { "$_: $sent{$_} requests, "
                                   . ($failed{$_} // 0) . ' 500s' } sort keys %sent);

# Wait for a scrape that began after the load (0.5 s after: nginx counts a
# request in its log phase, just after the client has its answer).
my $final = wait_for(15, sub {
    my $ts = scalar_query(qq{max(timestamp(dynroute_variant_requests_total{rollout="$ROLLOUT"}))});
    return defined $ts && $ts >= $t_end + 0.5;
}, 0.25);
ok($final, 'prometheus scraped the endpoint after the load');

# The canary's error ratio as a dashboard computes it.  The window (5m)
# holds the whole run, from the scrape before the load, so every series'
# first sample in it is 0 and increase() extrapolates no series towards the
# window's start; towards its end every series is extrapolated by the same
# factor (they share their scrapes' timestamps).  So the ratio is the exact
# share, 0.2, up to floating point.  The tolerance, +-0.02, is far wider
# than rounding needs, and still fails on what a counting bug would give
# here: the stable variant's responses counted under the canary too (about
# 0.1), 5xx responses counted twice (0.33), or lost (0).
my $ratio = sub {
    my ($variant) = @_;
    my $sel = qq{rollout="$ROLLOUT",variant="$variant"};
    return qq{sum(increase(dynroute_variant_responses_total{$sel,code="5xx"}[5m]))}
         . qq{ / sum(increase(dynroute_variant_responses_total{$sel}[5m]))};
};
my $canary_ratio = scalar_query($ratio->('canary'));
ok(defined $canary_ratio && abs($canary_ratio - $SHARE) <= 0.02,
   "PromQL: the canary's 5xx ratio is $SHARE +- 0.02 (got "
   . ($canary_ratio // 'no result') . ')');
my $stable_ratio = scalar_query($ratio->('stable'));
ok(defined $stable_ratio && $stable_ratio == 0,
   "PromQL: the stable variant's 5xx ratio is 0 (got "
   . ($stable_ratio // 'no result') . ')');

# Counters as scraped last, against what the client counted.
my $total = scalar_query(qq{sum(dynroute_variant_requests_total{rollout="$ROLLOUT"})});
is($total, $sent, 'PromQL: sum(dynroute_variant_requests_total) is the number of requests sent');
is_deeply(by_label(qq{sum by (variant) (dynroute_variant_requests_total{rollout="$ROLLOUT"})}, 'variant'),
          { stable => $sent{stable} // 0, canary => $sent{canary} // 0 },
          'PromQL: requests by variant are those the client saw each variant answer');
is(scalar_query(qq{sum(dynroute_variant_requests_total{rollout="$ROLLOUT",reason!="weight"})}), 0,
   'PromQL: every request was placed by weight');
is_deeply(by_label(qq{sum by (code) (dynroute_variant_responses_total{rollout="$ROLLOUT",variant="canary"})}, 'code'),
          { '1xx' => 0, '2xx' => $sent{canary} - ($failed{canary} // 0),
            '3xx' => 0, '4xx' => 0, '5xx' => $failed{canary} // 0 },
          "PromQL: the canary's responses by class are the client's");
is(scalar_query(qq{sum(dynroute_variant_responses_total{rollout="$ROLLOUT",variant="stable",code="2xx"})}),
   $sent{stable}, 'PromQL: every stable response was a 2xx');
is(scalar_query(qq{sum(dynroute_variant_upstream_response_seconds_count{rollout="$ROLLOUT"})}),
   $sent, 'PromQL: the upstream response time histogram counted every request');
my $p90 = scalar_query(qq{histogram_quantile(0.9, sum by (le) (rate(dynroute_variant_upstream_response_seconds_bucket{rollout="$ROLLOUT"}[5m])))});
ok(defined $p90 && $p90 == $p90 && $p90 >= 0 && $p90 <= 10,
   'PromQL: histogram_quantile(0.9) of the upstream time is a number of seconds (got '
   . ($p90 // 'no result') . ')');
is_deeply(by_label(qq{dynroute_variant_weight_ratio{rollout="$ROLLOUT"}}, 'upstream'),
          { service_stable => 0.5, service_canary => 0.5 },
          'PromQL: the live weights, 0.5 each, labelled with their upstreams');
is(scalar_query('sum(dynroute_table_requests_total{table="main"})'), $sent,
   'PromQL: the table routed every request');
is(scalar_query('sum(dynroute_requests_total{table="main"})'), $sent,
   "PromQL: the table's rules counted every request");
is(scalar_query('sum(dynroute_misdirected_requests_total{table="main"})'), 0,
   'PromQL: no request was misdirected');
is(scalar_query('sum(dynroute_server_requests_total{upstream="service_canary"})'), $sent{canary},
   "PromQL: the canary's server took the canary's requests");
is_deeply(by_label('sum by (code) (dynroute_server_responses_total{upstream="service_canary"})', 'code'),
          { '1xx' => 0, '2xx' => $sent{canary} - ($failed{canary} // 0),
            '3xx' => 0, '4xx' => 0, '5xx' => $failed{canary} // 0 },
          "PromQL: its server's responses by class are the client's");
is(scalar_query('sum(dynroute_server_fails_total{upstream="service_canary"})'), 0,
   'PromQL: no try of it failed (a 500 is no failure without proxy_next_upstream)');
is(scalar_query('sum(dynroute_server_inflight{upstream="service_canary"})'), 0,
   'PromQL: nothing in flight after the load');
is(scalar_query('sum(dynroute_guard_trips_total{rollout="checkout"})'), 0,
   'the guard: its trips counted, none');
ok((scalar_query('sum(dynroute_server_checks_total{upstream="service_canary",result="pass"})') // 0) > 0,
   'the health checks: passed probes of the canary\'s server');
is(scalar_query('sum(dynroute_server_checks_total{upstream="service_canary",result="fail"})'), 0,
   '... and none failed');
is_deeply(by_label('dynroute_server_state{upstream="service_canary"} == 1', 'state'),
          { up => 1 }, 'PromQL: its server is up');
is(scalar_query('dynroute_upstream_servers{upstream="service_canary"}'), 1,
   'PromQL: dynroute_upstream_servers counts it');
is(scalar_query('up{job="dynroute"}'), 1, 'PromQL: the target is still up');

promtool_ok('after the load');

note(sprintf 'PromQL: canary 5xx ratio %s, stable %s, requests %s; p90 %s s',
     map { $_ // 'none' } $canary_ratio, $stable_ratio, $total, $p90);

stop_proc($prom_pid, 'TERM', 15);
ok(!alive($prom_pid), 'prometheus stopped');
my $log = stop_nginx($srv);
error_log_ok($log, 'nginx: no alert/crit/crash in error.log');

done_testing();
