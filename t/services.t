# Runtime services (dynroute_services) through a real nginx with 2 workers:
# a service created through the API, seen by every worker, its servers
# changed; a runtime host that names it, served through dynroute_balancer
# and a proxy_pass of $dynroute_upstream to the carrier, with the
# carrier's keepalive (connections counted at the backends); deleting it
# (409 while a host targets it); the names and limits the API refuses;
# reload and a restart with state= keep the services.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api;
use Test::Nginx::Dynroute::Proc qw(slurp);

# $n requests for $host on fresh connections: { "status body" => count },
# the workers that answered, the X-Upstream values
sub spread {
    my ($srv, $n, $path, $host) = @_;
    my (%seen, %workers, %up);
    for my $i (1 .. $n) {
        my $r = http_get($srv, "$path$i", { Host => $host });
        chomp(my $b = $r->{body} // '');
        $seen{"$r->{status} $b"}++;
        $workers{ $r->{headers}{'x-worker'}[0] // '' }++;
        $up{ $r->{headers}{'x-upstream'}[0] // '' }++;
    }
    return (\%seen, \%workers, \%up);
}
use IO::Socket::IP;
use Time::HiRes ();
use File::Temp ();

my $state_dir = File::Temp::tempdir(CLEANUP => 1);
$ENV{TEST_NGINX_STATE_DIR} = $state_dir;

my $http = <<"CONF";
    error_log \$TEST_NGINX_PREFIX/logs/error.log info;
    dynroute_zone routes 1m state=\$TEST_NGINX_STATE_DIR/dynroute.json;
    log_format counted "\$server_port \$connection";
    server {
        listen 127.0.0.1:\$TEST_NGINX_PORT2;
        listen 127.0.0.1:\$TEST_NGINX_PORT3;
        access_log \$TEST_NGINX_PREFIX/logs/backends.log counted;
        location / { return 200 "\$server_port\\n"; }
    }
    upstream services {
        dynroute_services max_services=2 servers=3;
        keepalive 8;
    }
    upstream web { server 127.0.0.1:\$TEST_NGINX_PORT2; }
    upstream edge { dynroute_balancer; }
    dynroute_rollout shop {
        variant stable web 100%;
        variant canary web 0%;
    }
    dynroute_table main { shop.example.com shop; default web; }
CONF
my $config = <<'CONF';
    add_header X-Worker $pid always;
    add_header X-Upstream $dynroute_upstream always;
    location / {
        dynroute main;
        proxy_pass http://edge;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /v/ {
        dynroute main;
        proxy_pass http://$dynroute_upstream;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /carrier/ { proxy_pass http://services; }
    location /api/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF

my $srv = start_nginx(workers => 2, http_config => $http, config => $config);
my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
my ($st, $doc);

# ---- the API's services ------------------------------------------------------

($st, $doc) = api_call($srv, 'GET', '/api/services');
is($st, 200, 'GET services with a carrier: 200');
is($doc->{carrier}, 'services', '... the carrier');
is($doc->{max_services}, 2, '... max_services=');
is($doc->{max_servers}, 3, '... servers=');

($st, $doc) = api_call($srv, 'PUT', '/api/services/tenant', qq({"servers": {"127.0.0.1:$p3": {}}}));
is($st, 201, 'PUT a new service: 201');

# every worker: the service (a fresh connection each, either worker)
my (%seen, $shown);
for (1 .. 40) {
    my ($s, $d, $r) = api_call($srv, 'GET', '/api/services/tenant');
    $seen{ $r->{headers}{'x-worker'}[0] // '' }++;
    $shown++ if $s == 200 && exists $d->{servers}{"127.0.0.1:$p3"};
}
is($shown, 40, '... every answer shows it with its server');
is(scalar(keys %seen), 2, '... answered by both workers');

($st) = api_call($srv, 'PUT', "/api/upstreams/tenant/servers/127.0.0.1:$p2", '{"weight": 2}');
is($st, 201, 'a server added to the service: 201');
($st, $doc) = api_call($srv, 'GET', '/api/services/tenant');
is_deeply([sort keys %{ $doc->{servers} }], [sort "127.0.0.1:$p2", "127.0.0.1:$p3"],
          '... the service has both');

# ---- a runtime host routed to the service -----------------------------------

my ($seen, $workers, $up);
($st) = api_call($srv, 'PUT', '/api/hosts/tenant.example.com', '{"table": "main", "target": "tenant"}');
is($st, 201, 'a runtime host naming the service: 201');
my $logged = -s "$srv->{prefix}/logs/backends.log" || 0;
($seen, $workers, $up) = spread($srv, 40, '/', 'tenant.example.com');
is_deeply([sort keys %$seen], [sort "200 $p2", "200 $p3"],
          '40 requests through dynroute_balancer: both servers of the service answer')
    or diag(Test::More::explain($seen));
ok($seen->{"200 $p2"} > $seen->{"200 $p3"}, '... the one of weight 2 more often');
is(scalar(keys %$workers), 2, '... answered by both workers');
is_deeply([keys %$up], ['services'], '... $dynroute_upstream is the carrier');

# keepalive: the carrier's cache, by address
my @conns = grep { length } split /\n/, substr(slurp("$srv->{prefix}/logs/backends.log"), $logged);
my %conn = map { $_ => 1 } @conns;
is(scalar(@conns), 40, '... 40 requests reached the backends');
ok(keys %conn <= 6, '... over at most 6 connections: the carrier\'s keepalive ('
   . scalar(keys %conn) . ')');

# the service's servers in the stats: each try counted in its server's cell
($st, $doc) = api_call($srv, 'GET', '/api/stats');
my ($group) = grep { $_->{name} eq 'tenant' } @{ $doc->{groups} || [] };
is($group && $group->{kind}, 'service', 'stats: the service is a group of kind service');
my %counted = map { $_->{name} => $_->{requests} } @{ $group ? $group->{servers} : [] };
is_deeply(\%counted, { "127.0.0.1:$p2" => $seen->{"200 $p2"}, "127.0.0.1:$p3" => $seen->{"200 $p3"} },
          '... each server\'s requests as the client saw them')
    or diag(Test::More::explain($group));
my %twoxx = map { $_->{name} => $_->{responses}{'2xx'} } @{ $group ? $group->{servers} : [] };
is($twoxx{"127.0.0.1:$p2"}, $seen->{"200 $p2"}, '... and its 2xx');

($seen) = spread($srv, 10, '/v/', 'tenant.example.com');
is_deeply([sort keys %$seen], [sort "200 $p2", "200 $p3"],
          'through proxy_pass http://$dynroute_upstream too');
($seen) = spread($srv, 10, '/', 'other.example.org');
is_deeply($seen, { "200 $p2" => 10 }, 'another host: the table\'s default');

# ---- a rollout's variant flipped to the service -------------------------------

($seen, $workers, $up) = spread($srv, 10, '/', 'shop.example.com');
is_deeply($seen, { "200 $p2" => 10 }, 'the rollout as configured: web');
($st, $doc) = api_call($srv, 'PATCH', '/api/rollouts/shop',
                       '{"weights": {"stable": 0, "canary": 100}, "upstreams": {"canary": "tenant"}}');
is($st, 200, 'PATCH a flip of the canary to the service: 200');
($seen, $workers, $up) = spread($srv, 40, '/', 'shop.example.com');
is_deeply([sort keys %$seen], [sort "200 $p2", "200 $p3"],
          '... its requests reach both servers of the service (dynroute_balancer)')
    or diag(Test::More::explain($seen));
is(scalar(keys %$workers), 2, '... answered by both workers');
is_deeply([keys %$up], ['services'], '... $dynroute_upstream is the carrier');
($seen) = spread($srv, 10, '/v/', 'shop.example.com');
is_deeply([sort keys %$seen], [sort "200 $p2", "200 $p3"], '... and through $dynroute_upstream');
($st, $doc) = api_call($srv, 'DELETE', '/api/services/tenant');
is($st, 409, 'DELETE a service a flip targets: 409');
like($doc->{error} // '', qr/variant "canary" of rollout "shop"/, '... naming the variant');
($st) = api_call($srv, 'PATCH', '/api/rollouts/shop', '{"upstreams": {"canary": "web"}}');
is($st, 200, 'the flip back to web: 200');
($seen) = spread($srv, 10, '/', 'shop.example.com');
is_deeply($seen, { "200 $p2" => 10 }, '... web answers again');

($st) = api_call($srv, 'DELETE', "/api/upstreams/tenant/servers/127.0.0.1:$p2");
is($st, 200, 'a server removed from the service: 200');
($seen, $workers) = spread($srv, 40, '/', 'tenant.example.com');
is_deeply($seen, { "200 $p3" => 40 }, '... every answer after it from the server left');
is(scalar(keys %$workers), 2, '... of both workers');
($st) = api_call($srv, 'PUT', "/api/upstreams/tenant/servers/127.0.0.1:$p2", '{"weight": 2}');
is($st, 201, '... and added again: 201');

($st, $doc) = api_call($srv, 'DELETE', '/api/services/tenant');
is($st, 409, 'DELETE a service a runtime host targets: 409');
like($doc->{error} // '', qr/runtime host "tenant\.example\.com"/, '... naming the host');

my $r = http_get($srv, '/carrier/x');
is($r->{status}, 502, 'a request to the carrier without a service: 502');
like(slurp($srv->{error_log}), qr/upstream "services" carries the services created at run time, and this request was routed to none/,
     '... with an error line');

# a later write keeps the service (the writer reads it back from the zone)
($st) = api_call($srv, 'PUT', '/api/hosts/other.example.com', '{"table": "main", "target": "web"}');
is($st, 201, 'another change: a runtime host');
($st, $doc) = api_call($srv, 'GET', '/api/services');
is_deeply([keys %{ $doc->{services} }], ['tenant'], '... the service is still there');
is($doc->{services}{tenant}{servers}, 2, '... with its servers');

# names a service may not take, limits
for my $case (
    [ 'web',  qr/upstream\{\} "web"/, 'an upstream{}' ],
    [ 'WEB',  qr/"web"/i, 'an upstream{}, letter case aside' ],
    [ 'services', qr/"services"/, 'the carrier' ],
    [ 'shop', qr/rollout "shop"/, 'a rollout' ],
) {
    my ($name, $re, $what) = @$case;
    ($st, $doc) = api_call($srv, 'PUT', "/api/services/$name", '{}');
    is($st, 409, "a service named like $what: 409");
    like($doc->{error} // '', $re, '... naming the clash');
}

($st, $doc) = api_call($srv, 'PUT', '/api/services/two', qq({"servers": {"127.0.0.2:$p2": {}, "127.0.0.3:$p2": {}}}));
is($st, 507, 'more servers than servers=3 together: 507');
like($doc->{error} // '', qr/servers=3/, '... naming the limit');
($st) = api_call($srv, 'PUT', '/api/services/two', '{}');
is($st, 201, 'a second service: 201');
($st, $doc) = api_call($srv, 'PUT', '/api/services/three', '{}');
is($st, 507, 'a third, beyond max_services=2: 507');
like($doc->{error} // '', qr/max_services=2/, '... naming the limit');
($st) = api_call($srv, 'DELETE', '/api/services/two');
is($st, 200, 'DELETE an untargeted service: 200');

# ---- reload and restart keep the services and their hosts ---------------------

ok(reload_nginx($srv), "reload");
($st, $doc) = api_call($srv, 'GET', '/api/services');
is_deeply([keys %{ $doc->{services} }], ['tenant'], 'after a reload: the service');
is($doc->{services}{tenant}{servers}, 2, '... with its servers');
($seen) = spread($srv, 20, '/', 'tenant.example.com');
is_deeply([sort keys %$seen], [sort "200 $p2", "200 $p3"], '... its host routed to it');
error_log_ok(stop_nginx($srv), 'no alert/crit/crash');

# the same backends: the state file names their ports
(my $again = $http) =~ s/\$TEST_NGINX_PORT2/$p2/g;
$again =~ s/\$TEST_NGINX_PORT3/$p3/g;
$srv = start_nginx(workers => 2, http_config => $again, config => $config, port => $srv->{port});
($st, $doc) = api_call($srv, 'GET', '/api/services/tenant');
is($st, 200, 'after a restart with state=: the service');
is_deeply([sort keys %{ $doc->{servers} }], [sort "127.0.0.1:$p2", "127.0.0.1:$p3"],
          '... with its servers');
($seen) = spread($srv, 20, '/', 'tenant.example.com');
is_deeply([sort keys %$seen], [sort "200 $p2", "200 $p3"], '... its host routed to it');

# deleted once no host names it, while a request routed to it sends its
# body: proxy_pass evaluates $dynroute_upstream (the decision) before it
# reads the body, and the upstream begins after it
my $c = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $srv->{port})
    or die "connect: $@";
print $c "POST /v/late HTTP/1.1\r\nHost: tenant.example.com\r\nConnection: close\r\n"
    . "Content-Length: 5\r\n\r\n";
Time::HiRes::sleep(0.3);
($st) = api_call($srv, 'DELETE', '/api/hosts/tenant.example.com');
is($st, 200, 'the host deleted');
($st) = api_call($srv, 'DELETE', '/api/services/tenant');
is($st, 200, '... then the service: 200');
print $c "hello";
my $late = do { local $/; <$c> };
like($late // '', qr{\AHTTP/1\.1 502 }, 'a request routed to it before, its upstream after: 502');
like(slurp($srv->{error_log}), qr/\[error\].*the service this request was routed to was deleted before its upstream began/,
     '... with an error line');
($st) = api_call($srv, 'GET', '/api/services/tenant');
is($st, 404, '... gone');
($seen) = spread($srv, 10, '/', 'tenant.example.com');
is_deeply($seen, { "200 $p2" => 10 }, '... its host name: the table\'s default');
error_log_ok(stop_nginx($srv), 'restart: no alert/crit/crash');

# ---- what nginx -t refuses ---------------------------------------------------

for my $case (
    [ "upstream a { dynroute_services; }\n    upstream b { dynroute_services; }",
      qr/upstream "b" has dynroute_services, which upstream "a" has in \S+:\d+: one upstream carries every service/,
      'a second carrier' ],
    [ "upstream a { dynroute_services; dynroute_services; }",
      qr/"dynroute_services" directive is duplicate/, 'the directive twice' ],
    [ "upstream a { server 127.0.0.1:1; dynroute_services; }",
      qr/upstream "a" has dynroute_services and "server" lines/, 'a server line before it' ],
    [ "upstream a { dynroute_services; server 127.0.0.1:1; }",
      qr/upstream "a" has dynroute_services and "server" lines/, 'a server line after it' ],
    [ "upstream a { dynroute_services; zone z 64k; }",
      qr/upstream "a" has dynroute_services and a zone/, 'a zone' ],
    [ "upstream a { dynroute_services; least_conn; }",
      qr/upstream "a" has dynroute_services and another balancing method|no servers in upstream "a"/, 'least_conn after it' ],
    [ "upstream a { keepalive 4; dynroute_services; }",
      qr/dynroute_services comes after keepalive/, 'keepalive before it' ],
    [ "upstream a { dynroute_servers; dynroute_services; }",
      qr/dynroute_services comes after keepalive or another balancing method/, 'dynroute_servers before it' ],
    [ "upstream a { dynroute_services max_services=0; }",
      qr/invalid parameter "max_services=0": max_services= is the number of services/, 'max_services=0' ],
    [ "upstream a { dynroute_services servers=65537; }",
      qr/invalid parameter "servers=65537": servers= is the number of servers .* from 1 to 65536/, 'servers= too large' ],
    [ "upstream a { dynroute_services max=3; }",
      qr/invalid parameter "max=3": expected max_services=N or servers=N/, 'an unknown parameter' ],
) {
    my ($block, $re, $what) = @$case;
    my ($code, $out) = nginx_test_config(
        http_config => "    $block\n    upstream web { server 127.0.0.1:1; }\n",
        config => "    location / { proxy_pass http://web; }\n");
    isnt($code, 0, "nginx -t refuses $what");
    like($out, $re, '... saying why') or diag($out);
}

{
    my ($code, $out) = nginx_test_config(
        http_config => "    upstream a { dynroute_services max_services=5 servers=7; keepalive 2; }\n",
        config => "    location / { proxy_pass http://a; }\n");
    is($code, 0, 'nginx -t accepts a carrier with keepalive') or diag($out);
}

done_testing();
