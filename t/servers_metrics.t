# The servers' cells through a real nginx with 2 workers: each counter of
# a dynroute_servers upstream's servers ({prefix}stats and {prefix}metrics)
# against what the client saw, for the "server" lines and for a runtime
# list; the states up, down, drain and failed; a removed server listed as
# removed while its last request is in flight and until a write at least a
# second later frees its cell; the counts across a reload; metrics=off.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api;
use Test::Nginx::Dynroute::Proc qw(free_ports stop_proc start_slow_backend);
use IO::Socket::IP;
use Time::HiRes ();

# the servers of upstream dyn in {prefix}stats: { "address" => {...} }
sub servers_of {
    my ($srv) = @_;
    my ($st, $doc) = api_call($srv, 'GET', '/api/stats');
    my ($g) = grep { $_->{name} eq 'dyn' } @{ $doc->{groups} // [] };
    return { map { $_->{name} => $_ } @{ $g->{servers} // [] } };
}

# {prefix}metrics as { 'name{labels}' => value }
sub samples {
    my ($srv) = @_;
    my $text = http_get($srv, '/api/metrics')->{body} // '';
    my %s;
    for (split /\n/, $text) {
        next if /^#/;
        $s{$1} = $2 if /^(\S+(?:\{.*\})?) (\S+)$/;
    }
    return \%s;
}

# $n requests to $path on fresh connections: what the client saw, per
# server ($upstream_addr: every server tried) and per status class of the
# responses the servers sent, and the workers that answered.  The backends
# send 200 and 503 only: a 502 in $upstream_status is nginx's own, for a
# try that got no response, which a server's cell counts in its fails, not
# in its responses.
sub send_n {
    my ($srv, $n, $path, $seen) = @_;
    my %workers;
    for my $i (1 .. $n) {
        my $r = http_get($srv, "$path$i");
        my @tried = split /, /, $r->{headers}{'x-upstream-addr'}[0] // '';
        my @codes = split /, /, $r->{headers}{'x-upstream-status'}[0] // '';
        for my $k (0 .. $#tried) {
            $seen->{ $tried[$k] }{tries}++;
            my $c = $codes[$k] // '';
            $seen->{ $tried[$k] }{ substr($c, 0, 1) . 'xx' }++ if $c =~ /^[1-5]\d\d$/ && $c != 502;
        }
        $seen->{client}{ $r->{status} }++;
        $workers{ $r->{headers}{'x-worker'}[0] // '' }++;
    }
    return scalar keys %workers;
}

# each counter of a server against what the client saw
sub counters_are {
    my ($got, $seen, $what) = @_;
    is($got->{requests}, $seen->{tries} // 0, "$what: requests as tried");
    is($got->{responses}{'2xx'}, $seen->{'2xx'} // 0, "$what: 2xx as seen");
    is($got->{responses}{'5xx'}, $seen->{'5xx'} // 0, "$what: 5xx as seen");
    is($got->{inflight}, 0, "$what: nothing in flight at rest");
}

my ($refuse, $extra) = free_ports(2);     # nothing listens at $refuse
my $http = <<"CONF";
    dynroute_zone routes 1m;
    server {
        listen 127.0.0.1:\$TEST_NGINX_PORT2;
        listen 127.0.0.1:\$TEST_NGINX_PORT3;
        listen 127.0.0.1:$extra;
        location / { return 200 "\$server_port\\n"; }
        location /d/e/ { return 503; }
    }
    upstream dyn {
        dynroute_servers max=8;
        server 127.0.0.1:\$TEST_NGINX_PORT2;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
CONF
my $config = <<'CONF';
    add_header X-Worker $pid always;
    add_header X-Upstream-Addr $upstream_addr always;
    add_header X-Upstream-Status $upstream_status always;
    location /d/ { proxy_pass http://dyn; }
    location /api/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF

my $srv = start_nginx(workers => 2, http_config => $http, config => $config);
my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
my ($a2, $a3, $ar) = map { "127.0.0.1:$_" } $p2, $p3, $refuse;
my ($st, $doc, $got, $s, %seen);

# ---- the "server" lines, before any runtime list ------------------------

$got = servers_of($srv);
is_deeply([sort keys %$got], [sort $a2, $a3], 'stats: the server lines, before any request');
is($got->{$a2}{requests}, 0, '... at 0');
is($got->{$a2}{state}, 'up', '... up');

my $nw = send_n($srv, 40, '/d/', \%seen);
$nw = ngx_max_workers($nw, send_n($srv, 10, '/d/e/', \%seen));
is($nw, 2, '50 requests answered by both workers');
is_deeply($seen{client}, { 200 => 40, 503 => 10 }, '... 40 with 200, 10 with 503');
ok($seen{$a2}{'5xx'} || $seen{$a3}{'5xx'}, '... which the servers sent');
ok($seen{$a2}{tries} && $seen{$a3}{tries}, '... both servers tried');
$got = servers_of($srv);
counters_are($got->{$a2}, $seen{$a2}, "server line $a2");
counters_are($got->{$a3}, $seen{$a3}, "server line $a3");
is($got->{$a2}{fails}, 0, '... no fails');

$s = samples($srv);
is($s->{qq(dynroute_server_requests_total{upstream="dyn",server="$a2"})}, $seen{$a2}{tries},
   'metrics: dynroute_server_requests_total');
is($s->{qq(dynroute_server_responses_total{upstream="dyn",server="$a3",code="5xx"})}, $seen{$a3}{'5xx'} // 0,
   'metrics: dynroute_server_responses_total 5xx');
is($s->{qq(dynroute_server_state{upstream="dyn",server="$a2",state="up"})}, 1,
   'metrics: dynroute_server_state up');
is($s->{qq(dynroute_upstream_servers{upstream="dyn"})}, 2, 'metrics: dynroute_upstream_servers');

# ---- a runtime list keeps a configured address's counts; fails ----------

($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers',
                 qq({"$a2": {}, "$ar": {"max_fails": 1, "fail_timeout": 30}}));
is($st, 200, 'a runtime list: the first server line and a refusing port');
$got = servers_of($srv);
is_deeply([sort keys %$got], [sort $a2, $ar], '... listed');
is($got->{$a2}{requests}, $seen{$a2}{tries}, '... the kept address keeps its counts');

my $ok_before = $seen{client}{200};
send_n($srv, 30, '/d/', \%seen);
is($seen{client}{200} - $ok_before, 30, '30 more requests: 200 each (a refused try goes next)');
ok($seen{$ar}{tries}, 'the refusing port was tried');
$got = servers_of($srv);
counters_are($got->{$a2}, $seen{$a2}, "runtime $a2");
counters_are($got->{$ar}, $seen{$ar}, "refusing $ar");
is($got->{$ar}{fails}, $seen{$ar}{tries}, '... each of its tries a fail');
is($got->{$ar}{state}, 'failed', '... failed: max_fails took it out');
cmp_ok($got->{$ar}{disabled_until}, '>', time + 20, '... until its fail_timeout ends');
is($got->{$a2}{state}, 'up', "$a2 still up");

# ---- down and drain -------------------------------------------------------

($st) = api_call($srv, 'PATCH', "/api/upstreams/dyn/servers/$a2", '{"drain": true}');
is($st, 200, 'drain a server');
is(servers_of($srv)->{$a2}{state}, 'drain', '... its state: drain');
($st) = api_call($srv, 'PATCH', "/api/upstreams/dyn/servers/$a2", '{"drain": false, "down": true}');
is($st, 200, 'down a server');
is(servers_of($srv)->{$a2}{state}, 'down', '... its state: down');
($st) = api_call($srv, 'PATCH', "/api/upstreams/dyn/servers/$a2", '{"down": false}');
is(servers_of($srv)->{$a2}{requests}, $seen{$a2}{tries}, '... and back up, with its counts');
my $before = $seen{$a2}{tries};

# ---- a removed server: listed until its last try is done, then freed ----

{
    my ($slow, $sport) = start_slow_backend(1);
    my $as = "127.0.0.1:$sport";
    ($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', qq({"$as": {}}));
    is($st, 200, 'a list of the slow server alone');
    my $c = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $srv->{port})
        or die "connect: $@";
    print $c "GET /d/slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    Time::HiRes::sleep(0.3);
    ($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', qq({"$a3": {}}));
    is($st, 200, 'a list without it, while a request waits for it');
    my $removed_at = Time::HiRes::time();

    $got = servers_of($srv);
    is($got->{$as}{state}, 'removed', '... listed as removed');
    is($got->{$as}{inflight}, 1, '... with its try in flight');
    is($got->{$a3}{state}, 'up', '... beside the new list');
    $s = samples($srv);
    is($s->{qq(dynroute_server_state{upstream="dyn",server="$as",state="removed"})}, 1,
       'metrics: state="removed"');
    is($s->{qq(dynroute_upstream_servers{upstream="dyn"})}, 1, 'metrics: the removed one not counted as listed');

    ($st) = api_call($srv, 'PATCH', "/api/upstreams/dyn/servers/$a3", '{"weight": 2}');
    is($st, 200, 'a write while the try is in flight');
    is(servers_of($srv)->{$as}{state}, 'removed', '... keeps it listed');

    my $answer = do { local $/; <$c> };
    like($answer // '', qr{\AHTTP/1\.1 200 .*\r\n\r\nslow\n\z}s, 'the request in flight completes');
    $got = servers_of($srv);
    is($got->{$as}{inflight}, 0, '... nothing in flight now');
    is($got->{$as}{requests}, 1, '... its one request counted');
    is($got->{$as}{responses}{'2xx'}, 1, '... with its 2xx');
    is($got->{$as}{state}, 'removed', '... still listed: no write since');
    stop_proc($slow);

    my $wait = $removed_at + 1.2 - Time::HiRes::time();
    Time::HiRes::sleep($wait) if $wait > 0;
    ($st) = api_call($srv, 'PATCH', "/api/upstreams/dyn/servers/$a3", '{"weight": 1}');
    is($st, 200, 'a write a second after the removal');
    $got = servers_of($srv);
    ok(!exists $got->{$as}, '... frees its cell: no longer listed');
    ok(!exists samples($srv)->{qq(dynroute_server_requests_total{upstream="dyn",server="$as"})},
       '... nor in the metrics');
}

# ---- a reload keeps a runtime server's counts -----------------------------

{
    my $ax = "127.0.0.1:$extra";
    ($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', qq({"$ax": {}}));
    is($st, 200, 'a runtime server of no server line');
    my %x;
    send_n($srv, 10, '/d/', \%x);
    is(servers_of($srv)->{$ax}{requests}, 10, '... took 10 requests');
    ok(reload_nginx($srv), 'reload');
    is(servers_of($srv)->{$ax}{requests}, 10, '... its counts kept across the reload');
    send_n($srv, 5, '/d/', \%x);
    is(servers_of($srv)->{$ax}{requests}, 15, '... and counted on by the new workers');
    is(servers_of($srv)->{$ax}{inflight}, 0, '... nothing in flight');
}

# ---- a reset, and a reload, keep the server lines' counts ----------------

($st) = api_call($srv, 'DELETE', '/api/upstreams/dyn/servers');
is($st, 200, 'a reset: back to the server lines');
is(servers_of($srv)->{$a2}{requests}, $before, "... $a2 keeps its counts");
ok(reload_nginx($srv), 'reload');
is(servers_of($srv)->{$a2}{requests}, $before, "after a reload: $a2 keeps its counts");
my %more;
send_n($srv, 10, '/d/', \%more);
is(servers_of($srv)->{$a2}{requests}, $before + ($more{$a2}{tries} // 0), '... and counts on');
error_log_ok(stop_nginx($srv), 'no alert/crit/crash');

# ---- metrics=off: the servers route, nothing is rendered ----------------

{
    (my $off = $http) =~ s/dynroute_zone routes 1m;/dynroute_zone routes 1m metrics=off;/;
    my $srv = start_nginx(workers => 2, http_config => $off, config => $config);
    my %seen;
    send_n($srv, 10, '/d/', \%seen);
    is($seen{client}{200}, 10, 'metrics=off: the servers answer');
    is(http_get($srv, '/api/metrics')->{status}, 404, '... {prefix}metrics is 404');
    is(http_get($srv, '/api/stats')->{status}, 404, '... {prefix}stats too');
    error_log_ok(stop_nginx($srv), 'metrics=off: no alert/crit/crash');
}

sub ngx_max_workers { my ($x, $y) = @_; return $x > $y ? $x : $y }

done_testing();
