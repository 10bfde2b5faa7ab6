# Runtime lists of dynroute_servers upstreams through a real nginx with 2
# workers: every resource of {prefix}upstreams and its errors, a change
# that every worker routes by, a request in flight to a removed server,
# max_fails state that a weight change keeps, the list across a reload and
# a restart with state=, a full max= and a full zone.  Backends answer with
# their port and count what reaches them in access logs of their own.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api;
use Test::Nginx::Dynroute::Proc qw(slurp free_ports stop_proc start_slow_backend);
use IO::Socket::IP;
use File::Temp ();
use Time::HiRes ();

my $state_dir = File::Temp::tempdir(CLEANUP => 1);
$ENV{TEST_NGINX_STATE_DIR} = $state_dir;

# $n requests on fresh connections: { "port" => count }, and the workers
# that answered
sub spread {
    my ($srv, $n, $path) = @_;
    my (%seen, %workers);
    for my $i (1 .. $n) {
        my $r = http_get($srv, ($path // '/d/') . $i);
        chomp(my $b = $r->{body} // '');
        $seen{"$r->{status} $b"}++;
        $workers{ $r->{headers}{'x-worker'}[0] // '' }++;
    }
    return (\%seen, \%workers);
}

my @extra = free_ports(2);
my $http = <<"CONF";
    error_log \$TEST_NGINX_PREFIX/logs/error.log info;
    dynroute_zone routes 1m state=\$TEST_NGINX_STATE_DIR/dynroute.json;
    log_format counted "\$server_port \$request \$connection";
    server {
        listen 127.0.0.1:\$TEST_NGINX_PORT2;
        listen 127.0.0.1:\$TEST_NGINX_PORT3;
        listen 127.0.0.1:$extra[0];
        listen [::1]:$extra[1];
        listen unix:\$TEST_NGINX_PREFIX/back.sock;
        access_log \$TEST_NGINX_PREFIX/logs/backends.log counted;
        location / { return 200 "\$server_port\\n"; }
    }
    upstream dyn {
        dynroute_servers max=4;
        server 127.0.0.1:\$TEST_NGINX_PORT2;
        keepalive 8;
    }
    upstream plain { server 127.0.0.1:\$TEST_NGINX_PORT2; }
    upstream edge { dynroute_balancer; }
    dynroute_table main { default dyn; }
CONF
my $config = <<'CONF';
    add_header X-Worker $pid always;
    add_header X-Upstream-Addr $upstream_addr always;
    location /d/ {
        proxy_pass http://dyn;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /b/ {
        dynroute main;
        proxy_pass http://edge;
    }
    location /api/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF

my $srv = start_nginx(workers => 2, http_config => $http, config => $config);
my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
my ($st, $doc, $res, $seen, $workers);

# ---- reading --------------------------------------------------------------

($st, $doc) = api_call($srv, 'GET', '/api/upstreams');
is($st, 200, 'GET upstreams: 200');
is($doc->{upstreams}{dyn}{max}, 4, '... dyn with its max=');
ok(!exists $doc->{upstreams}{plain}, '... not an upstream without dynroute_servers');

($st, $doc) = api_call($srv, 'GET', '/api/upstreams/dyn/servers');
is($st, 200, 'GET upstreams/dyn/servers: 200');
is_deeply([sort keys %{ $doc->{servers} }], ["127.0.0.1:$p2"], '... its server line');

($st, $doc) = api_call($srv, 'GET', "/api/upstreams/dyn/servers/127.0.0.1:$p2");
is($st, 200, 'GET one server: 200');
is($doc->{weight}, 1, '... with its fields');

# ---- PUT, PATCH, DELETE one server; every worker routes by the change ----

($st, $doc) = api_call($srv, 'PUT', "/api/upstreams/dyn/servers/127.0.0.1:$p3", '{"weight": 2}');
is($st, 201, 'PUT a new server: 201');
($st, $doc) = api_call($srv, 'PUT', "/api/upstreams/dyn/servers/127.0.0.1:$p3", '{"weight": 1}');
is($st, 200, 'PUT it again: 200');
($seen, $workers) = spread($srv, 40);
is_deeply([sort keys %$seen], [sort "200 $p2", "200 $p3"],
          '40 requests on fresh connections: both servers answer');
is(scalar(keys %$workers), 2, '... answered by both workers');

($st, $doc) = api_call($srv, 'PATCH', "/api/upstreams/dyn/servers/127.0.0.1:$p3", '{"weight": 3}');
is($st, 200, 'PATCH a server: 200');
is($doc->{weight}, 3, '... its new weight');
($st, $doc) = api_call($srv, 'GET', "/api/upstreams/dyn/servers/127.0.0.1:$p3");
is($doc->{weight}, 3, '... read back');

($st, $doc) = api_call($srv, 'DELETE', "/api/upstreams/dyn/servers/127.0.0.1:$p2");
is($st, 200, 'DELETE the configured server: 200');
($seen, $workers) = spread($srv, 40);
is_deeply($seen, { "200 $p3" => 40 }, 'every answer after it from the new list');
is(scalar(keys %$workers), 2, '... of both workers');
($seen) = spread($srv, 10, '/b/');
is_deeply($seen, { "200 $p3" => 10 }, '... through dynroute_balancer too');

# ---- POST, PUT and PATCH of the list -------------------------------------

($st, $doc) = api_call($srv, 'POST', '/api/upstreams/dyn/servers', qq({"server": "127.0.0.1:$p2", "weight": 1}));
is($st, 201, 'POST a server: 201');
is($doc->{server}, "127.0.0.1:$p2", '... named canonically');
($st, $doc) = api_call($srv, 'POST', '/api/upstreams/dyn/servers', qq({"server": "127.0.0.1:$p2"}));
is($st, 409, 'POST it again: 409');
like($doc->{error}, qr/127\.0\.0\.1:$p2/, '... naming it');

($st, $doc) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', qq({"127.0.0.1:$extra[0]": {}}));
is($st, 200, 'PUT the whole list: 200');
($seen) = spread($srv, 20);
is_deeply($seen, { "200 $extra[0]" => 20 }, '... only its server answers');

($st, $doc) = api_call($srv, 'PATCH', '/api/upstreams/dyn/servers',
                       qq({"127.0.0.1:$extra[0]": null, "%5B::1%5D:$extra[1]": {}}));
is($st, 400, 'PATCH: a percent-encoded address in a body is not an address') or Test::More::diag($res);

($st, $doc) = api_call($srv, 'PATCH', '/api/upstreams/dyn/servers',
                       qq({"127.0.0.1:$extra[0]": null, "[::1]:$extra[1]": {}}));
is($st, 200, 'PATCH many: 200');
($seen) = spread($srv, 10);
is_deeply($seen, { "200 $extra[1]" => 10 }, '... an IPv6 server answers alone');

# percent-encoded in the path: IPv6 and a unix socket
($st, $doc) = api_call($srv, 'PUT', "/api/upstreams/dyn/servers/%5B0:0::1%5D:$extra[1]", '{"weight": 1}');
is($st, 200, 'PUT [0:0::1] percent-encoded: the same server (200)');
my $sock = "$srv->{prefix}/back.sock";
(my $enc = $sock) =~ s{/}{%2F}g;
($st, $doc) = api_call($srv, 'PUT', "/api/upstreams/dyn/servers/unix:$enc", '{}');
is($st, 201, 'PUT unix:%2F... : 201');
($st, $doc) = api_call($srv, 'GET', "/api/upstreams/dyn/servers/unix:$enc");
is($doc->{server}, "unix:$sock", '... read back by its decoded path');
($st, $doc) = api_call($srv, 'DELETE', "/api/upstreams/dyn/servers/%5B::1%5D:$extra[1]");
is($st, 200, 'DELETE [::1] percent-encoded: 200');
($seen) = spread($srv, 10);
is_deeply($seen, { "200 " => 10 }, '... the unix socket answers alone');
like(http_get($srv, '/d/x')->{headers}{'x-upstream-addr'}[0], qr/^unix:\Q$sock\E$/,
     '... $upstream_addr names it');

# ---- errors ----------------------------------------------------------------

my $g0 = api_call($srv, 'GET', '/api/upstreams/dyn/servers') && (api_call($srv, 'GET', '/api/upstreams/dyn/servers'))[1]{generation};
for my $case (
    [ 'PUT', '/api/upstreams/dyn/servers/10.0.0.300:80', '{}', 400, qr/10\.0\.0\.300/, 'a bad address' ],
    [ 'PUT', '/api/upstreams/dyn/servers/host.example:80', '{}', 400, qr/host\.example/, 'a host name' ],
    [ 'PUT', '/api/upstreams/dyn/servers/127.0.0.1:0', '{}', 400, qr/port/, 'port 0' ],
    [ 'PUT', '/api/upstreams/dyn/servers/127.0.0.1:65536', '{}', 400, qr/port/, 'port 65536' ],
    [ 'PUT', "/api/upstreams/dyn/servers/127.0.0.1:$p2", '{"weight": 0}', 400, qr/weight/, 'weight 0' ],
    [ 'PUT', "/api/upstreams/dyn/servers/127.0.0.1:$p2", '{"weight": 10001}', 400, qr/weight/, 'weight 10001' ],
    [ 'PUT', '/api/upstreams/dyn/servers', '{"127.0.0.1:80": {}, "127.0.0.1": {}}', 400, qr/127\.0\.0\.1:80.*127\.0\.0\.1|127\.0\.0\.1.*127\.0\.0\.1:80/, 'the same address twice' ],
    [ 'PUT', '/api/upstreams/dyn/servers', '{"127.0.0.1:1": {}, "127.0.0.1:2": {}, "127.0.0.1:3": {}, "127.0.0.1:4": {}, "127.0.0.1:5": {}}', 507, qr/max=4/, 'more than max=' ],
    [ 'GET', '/api/upstreams/dyx/servers', undef, 404, qr/did you mean "dyn"/, 'an unknown upstream' ],
    [ 'GET', '/api/upstreams/plain/servers', undef, 404, qr/has no dynroute_servers/, 'an upstream without dynroute_servers' ],
    [ 'GET', "/api/upstreams/dyn/servers/127.0.0.1:$p3", undef, 404, qr/no server/, 'a server not in the list' ],
    [ 'DELETE', "/api/upstreams/dyn/servers/127.0.0.1:$p3", undef, 404, qr/no server/, 'DELETE of a server not in the list' ],
    [ 'POST', '/api/upstreams/dyn/servers', '{"weight": 1}', 400, qr/server/, 'POST without "server"' ],
    [ 'PUT', '/api/upstreams/dyn/servers', '{"127.0.0.1:1": ', 400, qr/./, 'a body that does not parse' ],
    [ 'GET', '/api/services', undef, 404, qr/dynroute_services/, 'services without a carrier' ],
    [ 'PUT', '/api/services/tenant', '{}', 409, qr/dynroute_services/, 'a service without a carrier' ],
) {
    my ($m, $path, $body, $want, $re, $what) = @$case;
    ($st, $doc) = api_call($srv, $m, $path, $body);
    is($st, $want, "$what: $want");
    like($doc->{error} // '', $re, "... says what is wrong");
}
($st, $doc) = api_call($srv, 'GET', '/api/upstreams/dyn/servers');
is($doc->{generation}, $g0, 'the refused changes changed nothing');

($st, $doc, $res) = api_call($srv, 'DELETE', '/api/upstreams');
is($st, 405, 'DELETE upstreams: 405');
is($res->{headers}{allow}[0], 'GET, HEAD', '... Allow: GET, HEAD');
($st, $doc, $res) = api_call($srv, 'POST', "/api/upstreams/dyn/servers/127.0.0.1:$p2", '{}');
is($st, 405, 'POST to one server: 405');
is($res->{headers}{allow}[0], 'GET, HEAD, PUT, PATCH, DELETE', '... with Allow');
($st, $doc, $res) = api_call($srv, 'PATCH', '/api/services/x', '{}');
is($st, 405, 'PATCH a service: 405');

($st, $doc) = api_call($srv, 'PUT', "/api/upstreams/dyn/servers/127.0.0.1:$p2", '{}', { 'If-Match' => $g0 - 1 });
is($st, 409, 'If-Match of another generation: 409');
($st, $doc, $res) = api_call($srv, 'PUT', "/api/upstreams/dyn/servers/127.0.0.1:$p2", '{}', { 'If-Match' => $g0 });
is($st, 201, 'If-Match of this generation: 201');
is($res->{headers}{etag}[0], '"' . ($g0 + 1) . '"', '... ETag: the new generation');
($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', '{"a": "' . ('x' x (1024 * 1024)) . '"}');
is($st, 413, 'a body over 1 MiB: 413');
($st) = api_call($srv, 'PUT', "/api/upstreams/dyn/servers/127.0.0.1:$p2", '{}', { 'Content-Type' => 'text/plain' });
is($st, 415, 'a write that is not JSON: 415');

# ---- DELETE .../servers: back to the server lines -------------------------

($st, $doc) = api_call($srv, 'DELETE', '/api/upstreams/dyn/servers');
is($st, 200, 'DELETE upstreams/dyn/servers: 200');
ok(!$doc->{runtime}, '... no runtime list');
($seen, $workers) = spread($srv, 20);
is_deeply($seen, { "200 $p2" => 20 }, '... the server line answers again, on every worker');

# a reset gives the ids out again: a worker that had not seen the reset
# must not take the new server with an old id for the old one
($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', qq({"127.0.0.1:$p3": {}}));
is($st, 200, 'ids again: a runtime list');
($seen, $workers) = spread($srv, 10);
is_deeply($seen, { "200 $p3" => 10 }, '... served by every worker');
($st) = api_call($srv, 'DELETE', '/api/upstreams/dyn/servers');
is($st, 200, '... reset');
($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', qq({"127.0.0.1:$extra[0]": {}}));
is($st, 200, '... and another list at once, its server with the id the first had');
($seen, $workers) = spread($srv, 20);
is_deeply($seen, { "200 $extra[0]" => 20 }, '... every worker serves the new server');

# ---- across a reload and a restart with state= ---------------------------

($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', qq({"127.0.0.1:$p3": {"weight": 2}}));
is($st, 200, 'a runtime list again');
ok(reload_nginx($srv), 'reload');
($seen, $workers) = spread($srv, 20);
is_deeply($seen, { "200 $p3" => 20 }, 'after a reload: the runtime list, on every worker');
error_log_ok(stop_nginx($srv), 'API: no alert/crit/crash');

$srv = start_nginx(workers => 2, http_config => $http, config => $config, port => $srv->{port});
{
    # the same ports: the state file names them
    ($st, $doc) = api_call($srv, 'GET', '/api/upstreams/dyn/servers');
    is_deeply([keys %{ $doc->{servers} }], ["127.0.0.1:$p3"], 'after a restart with state=: the runtime list');
    is($doc->{servers}{"127.0.0.1:$p3"}{weight}, 2, '... with its weight');
}
error_log_ok(stop_nginx($srv), 'restart: no alert/crit/crash');
unlink "$state_dir/dynroute.json";

# ---- a request in flight to a server that is removed ----------------------

{
    my ($slow, $sport) = start_slow_backend(1);
    my @b = free_ports(8);
    my $more = "    server {\n" . join('', map { "        listen 127.0.0.1:$_;\n" } @b)
        . "        location / { return 200 \"\$server_port\\n\"; }\n    }\n";
    my $srv = start_nginx(workers => 2, http_config => $http . $more, config => $config);
    ($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', qq({"127.0.0.1:$sport": {}}));
    is($st, 200, 'in flight: the slow server alone');
    my $c = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $srv->{port})
        or die "connect: $@";
    print $c "GET /d/slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    Time::HiRes::sleep(0.3);

    # lists of max=4 servers, each worker's answers by server
    my $serve = sub {
        my ($half, $what) = @_;
        my $list = join ', ', map { qq("127.0.0.1:$_": {}) } @$half;
        ($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', "{$list}");
        is($st, 200, "$what: a list of 4 new servers");
        my %by;
        for my $i (1 .. 60) {
            my $r = http_get($srv, "/d/$i");
            (my $body = $r->{body} // '') =~ s/\n\z//;
            $by{ $r->{headers}{'x-worker'}[0] // '' }{"$r->{status} $body"}++;
        }
        is(scalar(keys %by), 2, '... both workers answer');
        for my $w (sort keys %by) {
            is_deeply([sort keys %{ $by{$w} }], [sort map { "200 $_" } @$half],
                      "... worker $w serves every one of them, nothing else");
        }
    };
    $serve->([@b[0 .. 3]], 'while a request waits for the slow server');
    my $got = do { local $/; <$c> };
    like($got // '', qr{\AHTTP/1\.1 200 .*\r\n\r\nslow\n\z}s, '... the request in flight completes with 200');
    stop_proc($slow);

    # The slow server's slot is free once its last request is done: the
    # next list needs 4 slots beside the 4 of the list in use, all a
    # worker has.
    $serve->([@b[4 .. 7]], 'after it');
    error_log_ok(stop_nginx($srv), 'in flight: no alert/crit/crash');
}

# ---- max_fails state survives a weight change -----------------------------

{
    my ($dead) = free_ports(1);
    my $srv = start_nginx(workers => 2, http_config => $http, config => $config);
    my $p2 = $srv->{port2};
    ($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers',
                     qq({"127.0.0.1:$dead": {"max_fails": 1, "fail_timeout": "60s"}, "127.0.0.1:$p2": {}}));
    is($st, 200, 'max_fails: a list with a port that refuses');
    my $refused = sub {
        my $n = () = slurp($srv->{error_log}) =~ /connect\(\) failed .*127\.0\.0\.1:$dead/g;
        return $n;
    };
    ($seen, $workers) = spread($srv, 40);
    is_deeply($seen, { "200 $p2" => 40 }, '... every request answered');
    ok(!grep({ $_ < 2 } values %$workers) && keys %$workers == 2,
       '... each worker served at least 2 (and so tried the refusing server)');
    my $before = $refused->();
    ok($before >= 1 && $before <= 2, "... which each worker tried once ($before)");
    ($st) = api_call($srv, 'PATCH', "/api/upstreams/dyn/servers/127.0.0.1:$dead", '{"weight": 3}');
    is($st, 200, '... its weight changed');
    ($seen) = spread($srv, 40);
    is_deeply($seen, { "200 $p2" => 40 }, '... every request answered');
    is($refused->(), $before, '... and no worker tried it again: its failures were kept');
    error_log_ok(stop_nginx($srv), 'max_fails: no alert/crit/crash');
}

# ---- 507: a zone too small for the list ------------------------------------

{
    (my $small = $http) =~ s/dynroute_zone routes 1m state=\S+;/dynroute_zone routes 64k;/;
    $small =~ s/dynroute_servers max=4;/dynroute_servers max=65536;/;
    my $srv = start_nginx(workers => 2, http_config => $small, config => $config);
    my $p2 = $srv->{port2};
    my $body = '{' . join(', ', map { sprintf '"10.%d.%d.%d:8080": {}', $_ >> 16, ($_ >> 8) & 255, $_ & 255 } 1 .. 3000) . '}';
    ($st, $doc) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', $body);
    is($st, 507, 'a list the zone cannot hold: 507');
    like($doc->{error} // '', qr/dynroute_zone "routes" is full, nothing changed/, '... saying so');
    ($st, $doc) = api_call($srv, 'GET', '/api/upstreams/dyn/servers');
    ok(!$doc->{runtime}, '... nothing changed');
    ($seen) = spread($srv, 10);
    is_deeply($seen, { "200 $p2" => 10 }, '... the server line answers');
    error_log_ok(stop_nginx($srv), '507: no alert/crit/crash');
}

done_testing();
