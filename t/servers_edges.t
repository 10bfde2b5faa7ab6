# dynroute_servers and dynroute_services at the edges the other files leave
# out, through a real nginx with 2 workers:
#   - behind realip: a hash=$remote_addr group keys on the address realip
#     set, as nginx's own "hash $remote_addr consistent" does, and only
#     where set_real_ip_from trusts the peer (a stranger's X-Real-IP moves
#     nothing); the API's allow/deny see the same address, so a page
#     behind a trusted proxy cannot change a list for a denied client;
#   - a worker of the previous configuration that holds a request to a
#     server while the new workers replace the list: the request completes,
#     the new list is what every new request gets, nothing is logged at
#     alert or crit.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api;
use Test::Nginx::Dynroute::Proc qw(free_ports stop_proc start_slow_backend);
use IO::Select;
use IO::Socket::IP;
use Time::HiRes ();

sub body_of {
    my ($r) = @_;
    (my $b = $r->{body} // '') =~ s/\n\z//;
    return "$r->{status} $b";
}

my @extra = free_ports(1);
my $http = <<"CONF";
    error_log \$TEST_NGINX_PREFIX/logs/error.log info;
    dynroute_zone routes 1m;
    server {
        listen 127.0.0.1:\$TEST_NGINX_PORT2;
        listen 127.0.0.1:\$TEST_NGINX_PORT3;
        listen 127.0.0.1:$extra[0];
        location / { return 200 "\$server_port\\n"; }
    }
    upstream dyn {
        dynroute_servers max=4 hash=\$remote_addr;
        server 127.0.0.1:\$TEST_NGINX_PORT2;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
    upstream twin {
        hash \$remote_addr consistent;
        server 127.0.0.1:\$TEST_NGINX_PORT2;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
    upstream rr {
        dynroute_servers max=4;
        server 127.0.0.1:\$TEST_NGINX_PORT2;
    }
    upstream services { dynroute_services max_services=2 servers=2; }
CONF
my $config = <<'CONF';
    add_header X-Worker $pid always;
    location /real/ {
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;
        location /real/dyn/ { proxy_pass http://dyn; }
        location /real/twin/ { proxy_pass http://twin; }
    }
    location /stranger/ { proxy_pass http://dyn; }
    location /rr/ { proxy_pass http://rr; }
    location /api/ {
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;
        allow 127.0.0.1;
        deny all;
        dynroute_api write=on;
    }
CONF

my $srv = start_nginx(workers => 2, http_config => $http, config => $config);
my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
my ($st, $doc);

# ---- realip: the key is the address realip set -----------------------------

my @clients = map { "198.51.100.$_" } 1 .. 40;
my $check_twin = sub {
    my ($what) = @_;
    my (%same, %used);
    for my $a (@clients) {
        my $d = body_of(http_get($srv, '/real/dyn/x', { 'X-Real-IP' => $a }));
        my $t = body_of(http_get($srv, '/real/twin/x', { 'X-Real-IP' => $a }));
        $same{ $d eq $t ? 'same' : "$a: $d against $t" }++;
        $used{$d}++;
    }
    is_deeply([sort keys %same], ['same'],
              "$what: 40 clients behind realip land where nginx's hash consistent sends them");
    return \%used;
};
my $used = $check_twin->('server lines');
is(scalar(keys %$used), 2, '... and they spread over both servers');

# the same client again, through either worker, lands in the same place
my %again;
$again{ body_of(http_get($srv, '/real/dyn/y', { 'X-Real-IP' => $clients[7] })) }++ for 1 .. 10;
is(scalar(keys %again), 1, 'one client behind realip: one server, every time');

# a stranger's X-Real-IP, where realip does not trust the peer, is ignored
my %stranger;
$stranger{ body_of(http_get($srv, '/stranger/x', { 'X-Real-IP' => $_ })) }++ for @clients;
is(scalar(keys %stranger), 1, 'a stranger\'s X-Real-IP moves nothing: every request keyed on 127.0.0.1');

# the runtime list keyed the same way
($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers',
                 qq({"127.0.0.1:$p2": {}, "127.0.0.1:$p3": {}}));
is($st, 200, 'the same two servers as a runtime list');
$check_twin->('runtime list');

# ---- realip: the API's allow/deny see the same address ---------------------

for my $case (['PUT', '/api/upstreams/rr/servers', qq({"127.0.0.1:$extra[0]": {}}), 'replace a list'],
              ['PATCH', "/api/upstreams/rr/servers/127.0.0.1:$p2", '{"drain": true}', 'drain a server'],
              ['PUT', '/api/services/tenant', qq({"servers": {"127.0.0.1:$p3": {}}}), 'create a service'])
{
    my ($m, $path, $body, $what) = @$case;
    ($st) = api_call($srv, $m, $path, $body, { 'X-Real-IP' => '203.0.113.9' });
    is($st, 403, "$what for a client the location denies, behind a trusted proxy: 403");
}
($st, $doc) = api_call($srv, 'GET', '/api/upstreams/rr/servers');
is_deeply([sort keys %{ $doc->{servers} }], ["127.0.0.1:$p2"], '... the list is as it was');
ok(!$doc->{servers}{"127.0.0.1:$p2"}{drain}, '... and not drained');
($st, $doc) = api_call($srv, 'GET', '/api/services');
is_deeply($doc->{services}, {}, '... and no service was made');

($st) = api_call($srv, 'PUT', '/api/upstreams/rr/servers', qq({"127.0.0.1:$extra[0]": {}}),
                 { 'X-Real-IP' => '127.0.0.1' });
is($st, 200, 'the same change for a client the location allows: 200');
is(body_of(http_get($srv, '/rr/x')), "200 $extra[0]", '... and routed by');

error_log_ok(stop_nginx($srv), 'realip: no alert/crit/crash');

# ---- a worker of the previous configuration holds a request ---------------

# A slow backend of our own: it answers each request after 3 s, long after
# the reload and the new list.
{
    my ($slow, $sport) = start_slow_backend(3);
    my $srv = start_nginx(workers => 2, http_config => $http, config => $config);
    my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
    ($st) = api_call($srv, 'PUT', '/api/upstreams/rr/servers', qq({"127.0.0.1:$sport": {}}));
    is($st, 200, 'old worker: the slow server alone');

    my $c = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $srv->{port})
        or die "connect: $@";
    print $c "GET /rr/slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    Time::HiRes::sleep(0.3);

    ok(reload_nginx($srv, undef, $config . "    add_header X-Conf 2 always;\n"),
       'reload while the request waits');
    ($st, $doc) = api_call($srv, 'PUT', '/api/upstreams/rr/servers',
                           qq({"127.0.0.1:$p2": {}, "127.0.0.1:$p3": {}}));
    is($st, 200, 'the new workers replace the list');

    my %seen;
    for my $i (1 .. 20) {
        my $r = http_get($srv, "/rr/$i");
        $seen{ body_of($r) . ' conf ' . ($r->{headers}{'x-conf'}[0] // '1') }++;
    }
    is_deeply([sort keys %seen], [sort("200 $p2 conf 2", "200 $p3 conf 2")],
              '... every new request: the new list, the new configuration');

    ok(!IO::Select->new($c)->can_read(0),
       '... while the old worker\'s request still waits for the removed server');
    my $got = do { local $/; <$c> };
    like($got // '', qr{\AHTTP/1\.1 200 .*\r\n\r\nslow\n\z}s,
         'the old worker\'s request to the removed server completes with 200');
    unlike($got // '', qr/^X-Conf:/mi, '... answered by the old configuration');
    stop_proc($slow);

    ($st, $doc) = api_call($srv, 'GET', '/api/upstreams/rr/servers');
    is_deeply([sort keys %{ $doc->{servers} }], [sort("127.0.0.1:$p2", "127.0.0.1:$p3")],
              '... and the list is the new one');
    error_log_ok(stop_nginx($srv), 'old worker: no alert/crit/crash');
}

done_testing();
