# The metrics of a dynroute_zone through a real nginx with 2 workers: each
# counter counts exactly what was sent (per rule, per variant and reason,
# per status class, the upstream time histogram, fallbacks, 421s), across a
# reload; $dynroute_reason and $dynroute_served in a JSON access log;
# subrequests, internal redirects and realip; strangers' Host and override
# headers adding no series; metrics=tables and metrics=off; a zone too small
# for its counters; {prefix}stats and {prefix}ui.  Loopback only.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp wait_for);
use JSON::PP ();

my $json = JSON::PP->new->canonical;

my $http = <<'CONF';
    log_format routes escape=json
        '{"host":"$host","rule":"$dynroute_rule","variant":"$dynroute_variant",'
        '"served":"$dynroute_served","reason":"$dynroute_reason","status":$status}';

    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    upstream down      { server 127.0.0.1:1; }   # refuses
    upstream edge_pass { dynroute_balancer fallback=primary; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "a\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 503 "b\n"; }

    dynroute_zone routes 1m;

    dynroute_rollout checkout {
        variant  stable  service_a  50%;
        variant  canary  service_b  50%;
        key      $http_x_user;
        header   X-Canary;
        cookie   canary;
        override_from 127.0.0.1;
    }

    dynroute_rollout office {
        variant  stable  service_a  100%;
        variant  canary  service_b  0%;
        source   10.0.0.0/8  canary;
        key      $http_x_user;
    }

    dynroute_rollout risky {
        variant  stable  service_a  0%;
        variant  canary  down       100%;
        primary  stable;
        key      $http_x_user;
    }

    dynroute_table main {
        shop.example.com     checkout;
        office.example.com   office;
        risky.example.com    risky;
        a.example.com        service_a;
        *.wild.example.com   service_a;
        default              service_a;
    }

    dynroute_table strict {
        a.example.com  service_a;
    }
CONF

my $config = <<'CONF';
    location / {
        set_real_ip_from  127.0.0.1;
        real_ip_header    X-Real-IP;
        dynroute    main;
        proxy_pass  http://$dynroute_upstream;
        access_log  $TEST_NGINX_PREFIX/logs/routes.log routes;
        add_header  X-Variant $dynroute_variant always;
        add_header  X-Served $dynroute_served always;
        add_header  X-Reason $dynroute_reason always;
    }
    location /b/ {
        dynroute    main;
        proxy_pass  http://edge_pass;
        access_log  $TEST_NGINX_PREFIX/logs/routes.log routes;
        add_header  X-Variant $dynroute_variant always;
        add_header  X-Served $dynroute_served always;
        add_header  X-Reason $dynroute_reason always;
    }
    location /strict/ {
        dynroute    strict;
        proxy_pass  http://$dynroute_upstream;
    }
    location /redirect/ {
        dynroute  main;
        set       $seen $dynroute_upstream;
        rewrite   ^ /after-redirect last;
    }
    location /guarded/ {
        auth_request  /auth;
        dynroute      main;
        proxy_pass    http://$dynroute_upstream;
    }
    location = /auth {
        internal;
        dynroute    main;
        proxy_pass  http://$dynroute_upstream/;
    }
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }

    # the metrics behind realip, after internal redirects, to subrequests
    location /viaproxy/ {
        set_real_ip_from  127.0.0.1;
        real_ip_header    X-Real-IP;
        allow  127.0.0.1;
        deny   all;
        dynroute_api;
    }
    location /closed/      { deny all; dynroute_api; }
    location = /old-metrics { rewrite ^ /dynroute/metrics last; }
    location = /old-closed  { rewrite ^ /closed/metrics last; }
    location = /sub-metrics { auth_request /dynroute/metrics; proxy_pass http://service_a; }
CONF

# ---- reading the metrics ------------------------------------------------------

# [name, {labels}, value] for each sample of the text format
sub samples {
    my ($text) = @_;
    my @out;
    for my $line (split /\n/, $text) {
        next if $line =~ /^#/ || $line eq '';
        $line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
            or die "not a sample: $line\n";
        my ($name, $labels, $value) = ($1, $2 // '', $3);
        my %l;
        while ($labels =~ /\G([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)",?/gc) {
            $l{$1} = $2 =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ger;
        }
        push @out, [$name, \%l, $value];
    }
    return \@out;
}

# the value of the one sample of $name whose labels include %want
sub value {
    my ($samples, $name, %want) = @_;
    my @hit = grep {
        my $s = $_;
        $s->[0] eq $name && !grep { ($s->[1]{$_} // "\0") ne $want{$_} } keys %want
    } @$samples;
    return scalar(@hit) == 1 ? $hit[0][2] : 'missing or ambiguous (' . scalar(@hit) . ')';
}

sub scrape {
    my ($srv, $path) = @_;
    my $res = http_get($srv, $path // '/dynroute/metrics');
    return ($res->{status} // 0, $res->{body} // '', $res);
}

# The log phase runs just after the response is sent: wait until the
# counters stop moving (bounded) before comparing.
sub settled {
    my ($srv) = @_;
    my $last = '';
    wait_for(2, sub {
        my (undef, $text) = scrape($srv);
        my $same = $text eq $last;
        $last = $text;
        return $same;
    }, 0.02);
    return samples($last);
}

# ---- sending requests, and what the client saw ----------------------------

my %sent;   # "rollout variant reason" => n, "rollout variant 5xx" => n, ...

sub send_one {
    my ($srv, $path, $headers, $rollout) = @_;
    my $res = http_get($srv, $path, $headers);
    my $status = $res->{status} // 0;
    if ($rollout) {
        my $served = ($res->{headers}{'x-served'} // [''])->[0];
        my $reason = ($res->{headers}{'x-reason'} // [''])->[0];
        my $variant = ($res->{headers}{'x-variant'} // [''])->[0];
        $sent{"$rollout $served $reason"}++;
        $sent{"$rollout $served " . int($status / 100) . 'xx'}++;
        $sent{"$rollout $variant fallback-from"}++ if $reason eq 'fallback';
    }
    return $status;
}

sub traffic {
    my ($srv) = @_;
    send_one($srv, '/', { Host => 'shop.example.com', 'X-User' => "u$_" }, 'checkout') for 1 .. 20;
    send_one($srv, '/', { Host => 'shop.example.com', 'X-User' => "h$_", 'X-Canary' => 'canary' }, 'checkout') for 1 .. 5;
    send_one($srv, '/', { Host => 'shop.example.com', 'X-User' => "c$_", Cookie => 'canary=stable' }, 'checkout') for 1 .. 3;
    send_one($srv, '/', { Host => 'office.example.com', 'X-User' => "o$_", 'X-Real-IP' => "10.1.2.$_" }, 'office') for 1 .. 4;
    send_one($srv, '/', { Host => 'office.example.com', 'X-User' => "p$_" }, 'office') for 1 .. 2;
    send_one($srv, '/b/', { Host => 'risky.example.com', 'X-User' => "r$_" }, 'risky') for 1 .. 3;
    send_one($srv, '/', { Host => 'a.example.com' }) for 1 .. 2;
    send_one($srv, '/', { Host => 'x.wild.example.com' }) for 1 .. 2;
    send_one($srv, '/', { Host => 'unknown.example.org' }) for 1 .. 3;
    send_one($srv, '/strict/', { Host => 'unknown.example.org' }) for 1 .. 3;
    send_one($srv, '/redirect/', { Host => 'a.example.com' });
    send_one($srv, '/guarded/', { Host => 'a.example.com' });
}

# every per-variant counter against what the client saw, times $times
sub check_counts {
    my ($srv, $times, $when) = @_;
    my $m = settled($srv);
    my $x = sub { ($sent{$_[0]} // 0) };

    for my $ro (qw(checkout office risky)) {
        for my $v (qw(stable canary)) {
            for my $reason (qw(weight header cookie source fallback)) {
                is(value($m, 'dynroute_variant_requests_total', rollout => $ro, variant => $v, reason => $reason),
                   $x->("$ro $v $reason"), "$when: $ro/$v requests by $reason");
            }
            for my $class (qw(1xx 2xx 3xx 4xx 5xx)) {
                is(value($m, 'dynroute_variant_responses_total', rollout => $ro, variant => $v, code => $class),
                   $x->("$ro $v $class"), "$when: $ro/$v $class responses");
            }
            my $served = 0;
            $served += $x->("$ro $v $_") for qw(weight header cookie source fallback);
            is(value($m, 'dynroute_variant_upstream_response_seconds_count', rollout => $ro, variant => $v),
               $served, "$when: $ro/$v every served request timed");
            is(value($m, 'dynroute_variant_upstream_response_seconds_bucket', rollout => $ro, variant => $v, le => '+Inf'),
               $served, "$when: $ro/$v +Inf bucket = count");
            is(value($m, 'dynroute_variant_fallbacks_total', rollout => $ro, variant => $v),
               $x->("$ro $v fallback-from"), "$when: $ro/$v fallbacks");
        }
    }

    # the rules: 28 shop, 6 office, 3 risky, 2 + 1 + 1 a.example.com
    # (direct, after the internal redirect, guarded), 2 wildcard, 3 default
    my %rules = ('shop.example.com' => 28, 'office.example.com' => 6,
                 'risky.example.com' => 3, 'a.example.com' => 4,
                 '*.wild.example.com' => 2, 'default' => 3);
    for my $rule (sort keys %rules) {
        is(value($m, 'dynroute_requests_total', table => 'main', rule => $rule),
           $rules{$rule} * $times, "$when: main/$rule requests");
    }
    is(value($m, 'dynroute_table_requests_total', table => 'main'), 46 * $times, "$when: main requests");
    is(value($m, 'dynroute_misdirected_requests_total', table => 'main'), 0, "$when: main 421s");
    is(value($m, 'dynroute_table_requests_total', table => 'strict'), 3 * $times, "$when: strict requests");
    is(value($m, 'dynroute_misdirected_requests_total', table => 'strict'), 3 * $times, "$when: strict 421s");
    is(value($m, 'dynroute_requests_total', table => 'strict', rule => 'a.example.com'), 0,
       "$when: strict/a.example.com untouched");
    return $m;
}

# ---- nginx -t -----------------------------------------------------------------

{
    my ($code, $out) = nginx_test_config(
        http_config => 'dynroute_zone routes 1m metrics=some;', config => '');
    isnt($code, 0, 'nginx -t: a bad metrics= fails');
    like($out, qr/invalid parameter "metrics=some": dynroute_zone takes NAME SIZE \[state=PATH\] \[metrics=rules\|tables\|off\] in \S+nginx\.conf:\d+/,
         '... naming the parameter, the syntax, file and line');

    ($code, $out) = nginx_test_config(
        http_config => "dynroute_zone routes 1m state=\$TEST_NGINX_PREFIX/state.json metrics=tables;",
        config => '');
    is($code, 0, 'nginx -t: state= and metrics= together') or diag($out);

    my $rules = join "\n", map { "        host$_.example.com  a;" } 1 .. 3000;
    my $big = "upstream a { server 127.0.0.1:1; }\n    dynroute_table big {\n$rules\n    }\n";
    ($code, $out) = nginx_test_config(http_config => "$big    dynroute_zone routes 64k;", config => '');
    isnt($code, 0, 'nginx -t: a zone too small for its counters fails');
    like($out, qr/\[emerg\].*dynroute_zone in \S+nginx\.conf:\d+ is too small for the metrics of 3000 rules and 0 variants \(\d+k more of counters\): make it (\d+)k at least, or set metrics=tables or metrics=off/,
         '... saying how large it must be');
    my ($need) = $out =~ /make it (\d+)k at least/;
    ($code, $out) = nginx_test_config(http_config => "$big    dynroute_zone routes ${need}k;", config => '');
    is($code, 0, "nginx -t: the size it asked for (${need}k) is enough") or diag($out);
    ($code, $out) = nginx_test_config(http_config => "$big    dynroute_zone routes 64k metrics=tables;", config => '');
    is($code, 0, 'nginx -t: metrics=tables needs no counter per rule') or diag($out);
}

# ---- counting, across 2 workers and a reload --------------------------------

my $srv = start_nginx(http_config => $http, config => $config, workers => 2);

my ($st, $text, $res) = scrape($srv);
is($st, 200, 'GET {prefix}metrics: 200');
is($res->{headers}{'content-type'}[0], 'text/plain; version=0.0.4; charset=utf-8',
   '... in the text exposition format');
like($text, qr/^# TYPE dynroute_variant_upstream_response_seconds histogram$/m, '... with TYPE lines');
is(value(samples($text), 'dynroute_variant_requests_total', rollout => 'checkout', variant => 'canary', reason => 'header'),
   0, 'every series is there before any traffic');

traffic($srv);

ok(($sent{'checkout stable weight'} // 0) > 3 && ($sent{'checkout canary weight'} // 0) > 3,
   'the weighted split sent users to both sides: '
   . join(', ', map { "$_=$sent{$_}" } sort keys %sent));
is($sent{'checkout canary header'}, 5, 'the client saw 5 header overrides ($dynroute_reason)');
is($sent{'checkout stable cookie'}, 3, 'the client saw 3 cookie overrides');
is($sent{'office canary source'}, 4, 'the client saw 4 source picks behind realip');
is($sent{'risky stable fallback'}, 3, 'the client saw 3 fallbacks ($dynroute_served = primary)');
is($sent{'checkout canary 5xx'}, ($sent{'checkout canary weight'} // 0) + 5, 'the canary failed every request');

check_counts($srv, 1, 'after one round');

my $m = settled($srv);
is(value($m, 'dynroute_table_rules', table => 'main'), 6, 'dynroute_table_rules');
is(value($m, 'dynroute_variant_weight_ratio', rollout => 'checkout', variant => 'canary', upstream => 'service_b'),
   '0.5', 'the live weight');
is(value($m, 'dynroute_state_generation'), 0, 'the generation');
is(value($m, 'dynroute_draining'), 0, 'not draining');

# the JSON access log
my @log = map { $json->decode($_) } grep { /\S/ } split /\n/,
          slurp("$srv->{prefix}/logs/routes.log");
my ($hdr) = grep { $_->{reason} eq 'header' } @log;
is($hdr && "$hdr->{variant} $hdr->{served} $hdr->{status}", 'canary canary 503',
   'access log: a header override, chosen and served by the canary');
my ($fb) = grep { $_->{reason} eq 'fallback' } @log;
is($fb && "$fb->{rule} $fb->{variant} $fb->{served} $fb->{status}", 'risky.example.com canary stable 200',
   'access log: a fallback names the variant chosen and the one that served');
my ($plain) = grep { $_->{host} eq 'a.example.com' } @log;
is($plain && "$plain->{reason} $plain->{variant}", 'rule ', 'access log: a plain rule has reason "rule"');

# the runtime API: a flip and new weights show at once
my $patch = http_raw($srv, "PATCH /dynroute/rollouts/checkout HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                 . "Content-Type: application/json\r\n"
                 . "Content-Length: " . length('{"weights":{"stable":75,"canary":25}}') . "\r\n\r\n"
                 . '{"weights":{"stable":75,"canary":25}}');
is($patch->{status}, 200, 'PATCH weights through the API');
$m = settled($srv);
is(value($m, 'dynroute_variant_weight_ratio', rollout => 'checkout', variant => 'canary', upstream => 'service_b'),
   '0.25', 'the live weight follows the API');
is(value($m, 'dynroute_state_generation'), 1, 'and the generation');
my $reset = http_raw($srv, "DELETE /dynroute/rollouts/checkout HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
is($reset->{status}, 200, 'reset the rollout');

# a reload keeps every counter, and the next round adds to them
# (valgrind: nginx in single-process mode cannot reload.)
SKIP: {
    skip 'single-process nginx (valgrind) cannot reload', 3
        if ($ENV{TEST_NGINX_BINARY} // '') =~ /valgrind/;
    my $http2 = $http =~ s/default              service_a;/default              service_a;\n        new.example.com      service_a;/r;
    ok(reload_nginx($srv, $http2), 'reload with a new rule');
    $m = settled($srv);
    is(value($m, 'dynroute_requests_total', table => 'main', rule => 'shop.example.com'), 28,
       'after the reload: the counters are kept');
    is(value($m, 'dynroute_requests_total', table => 'main', rule => 'new.example.com'), 0,
       'after the reload: the new rule starts at 0');
}
traffic($srv);
check_counts($srv, 2, 'after a reload and a second round');

# strangers' Host and override headers add no series
my $before = scalar @{ settled($srv) };
for my $i (1 .. 30) {
    my $junk = join '', map { chr(97 + int rand 26) } 1 .. 12;
    send_one($srv, '/', { Host => "$junk.example.net", 'X-Canary' => $junk, Cookie => "canary=$junk" });
    send_one($srv, '/', { Host => 'shop.example.com', 'X-Canary' => "\"$junk\\", 'X-User' => $junk });
}
$m = settled($srv);
is(scalar @$m, $before, 'strangers\' hosts and override values add no series');
is(value($m, 'dynroute_requests_total', table => 'main', rule => 'default'), 6 + 30,
   '... they count under the rule that matched');

# {prefix}stats and {prefix}ui
($st, $text, $res) = scrape($srv, '/dynroute/stats');
is($st, 200, 'GET {prefix}stats: 200');
is($res->{headers}{'content-type'}[0], 'application/json', '... JSON');
my $stats = eval { $json->decode($text) } || {};
my ($co) = grep { $_->{name} eq 'checkout' } @{ $stats->{rollouts} || [] };
is($co && join(',', map { "$_->{name}:$_->{upstream}:$_->{weight}" } @{ $co->{variants} }),
   'stable:service_a:50,canary:service_b:50', '... the rollout with its live values');
is($co && $co->{variants}[1]{requests}{header}, 10, '... and its counters');
is(scalar @{ $co->{variants}[0]{latency}{buckets} || [] }, 12, '... and its histogram');
($st, $text, $res) = scrape($srv, '/dynroute/ui');
is($st, 200, 'GET {prefix}ui: 200');
like($res->{headers}{'content-type'}[0], qr{^text/html; charset=utf-8$}, '... HTML');
like($res->{headers}{'content-security-policy'}[0], qr/default-src 'none'.*connect-src 'self'/,
     '... under a strict Content-Security-Policy');
like($text, qr/^<!DOCTYPE html>/i, '... a page');
unlike($text, qr{https?://}, '... loading nothing from elsewhere');
# the access rules of the API location hold for its metrics and page
for my $case (['/viaproxy/metrics', {}, 200, 'realip: the proxy itself'],
              ['/viaproxy/metrics', { 'X-Real-IP' => '203.0.113.9' }, 403, 'realip: a client the location denies'],
              ['/viaproxy/ui', { 'X-Real-IP' => '203.0.113.9' }, 403, 'realip: the status page too'],
              ['/viaproxy/metrics', { 'X-Real-IP' => '127.0.0.1' }, 200, 'realip: a client the location allows'],
              ['/closed/metrics', {}, 403, 'deny all: 403'],
              ['/old-metrics', {}, 200, 'an internal redirect into the API location'],
              ['/old-closed', {}, 403, 'an internal redirect into a denied API location: 403'],
              ['/sub-metrics', {}, 403, 'an auth_request subrequest to the metrics: refused, access denied']) {
    my ($path, $h, $want, $name) = @$case;
    my $r = http_get($srv, $path, $h);
    is($r->{status}, $want, "$name ($path)");
    unlike($r->{body} // "", qr/dynroute_|^a$/m, "... no counters, no content") if $want != 200;
}

my $post = http_raw($srv, "POST /dynroute/metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
is($post->{status}, 405, 'POST {prefix}metrics: 405');
is($post->{headers}{allow}[0], 'GET, HEAD', '... with Allow');

my $log = stop_nginx($srv);
error_log_ok($log, 'no [alert] or [emerg] in the error log');

# ---- metrics=tables and metrics=off ---------------------------------------------

$srv = start_nginx(http_config => $http =~ s/routes 1m;/routes 1m metrics=tables;/r, config => $config);
send_one($srv, '/', { Host => 'a.example.com' }) for 1 .. 3;
$m = settled($srv);
is(scalar(grep { $_->[0] eq 'dynroute_requests_total' } @$m), 0, 'metrics=tables: no series per rule');
is(value($m, 'dynroute_table_requests_total', table => 'main'), 3, 'metrics=tables: the table counts');
stop_nginx($srv);

$srv = start_nginx(http_config => $http =~ s/routes 1m;/routes 1m metrics=off;/r, config => $config);
send_one($srv, '/', { Host => 'a.example.com' });
($st, $text) = scrape($srv);
is($st, 404, 'metrics=off: {prefix}metrics is 404');
like($text, qr/"error":"the metrics are off/, '... saying why');
($st) = scrape($srv, '/dynroute/ui');
is($st, 404, 'metrics=off: no status page either');
stop_nginx($srv);

done_testing();
