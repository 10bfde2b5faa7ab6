# tools/dynroutectl against a real nginx with the runtime API: every command
# changes what the proxy does (checked with requests through it), failures
# name the node and exit 1, and with several nodes one that is down does not
# stop the others.  Before its first write to a node it checks that the URL
# is a dynroute API: one that leads to an application behind proxy_pass gets
# no write.  Everything listens on 127.0.0.1.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use Test::Nginx::Dynroute::Fixtures qw(tools_node);
use File::Temp ();
use JSON::PP ();

unless (-x $PYTHON) {
    fail("$PYTHON is there to run tools/dynroutectl");
    done_testing();
    exit;
}
delete $ENV{DYNROUTE_NODES};

# Runs tools/dynroutectl; returns {exit, out, err}.
sub ctl { return run_cmd(tool_cmd('dynroutectl'), '--timeout', 5, @_) }

# ---- usage errors and a node that is not there: no nginx needed ----------

my $r = ctl();
is($r->{exit}, 2, 'no command: exit 2');
like($r->{err}, qr/usage: dynroutectl/, 'no command: the usage on stderr');

$r = ctl('set-weights', 'checkout', 'canary=ten');
is($r->{exit}, 2, 'a weight that is not a number: exit 2');
like($r->{err}, qr/bad weight 'canary=ten'/, 'a weight that is not a number: said so');

$r = ctl('--node', '127.0.0.1:8081/dynroute/', 'status');
is($r->{exit}, 2, 'a node URL without a scheme: exit 2');

my ($dead) = free_ports(1);     # a port nothing listens on
my $dead_api = "http://127.0.0.1:$dead/dynroute/";
$r = ctl('--node', $dead_api, 'status');
is($r->{exit}, 1, 'nothing listening: exit 1');
like($r->{err}, qr/^dynroutectl: \Q$dead_api\E: connection refused$/m,
     'nothing listening: stderr names the URL tried');
is($r->{out}, '', 'nothing listening: nothing on stdout');

# ---- one node -------------------------------------------------------------

my $dir = File::Temp::tempdir(CLEANUP => 1);
spew("$dir/htpasswd", "ops:{PLAIN}secret\n");

# The node (tools_node, Test::Nginx::Dynroute::Fixtures): shop.example.com
# goes to the rollout checkout (stable service_a *, canary service_b 0%, key
# X-User), other hosts to service_a; the API at /dynroute/, readiness at /ready.
# Here with a state file, room for 5001 hosts, and two more API locations:
# read-only, and behind a password instead of an address; and /app/, an
# application behind proxy_pass that answers every request with JSON much
# like the API's state and logs what it receives.
# And pool, an upstream with dynroute_servers seeded by service_a's server,
# at /pool/, with two backends of its own that answer p1 and p2; and
# services, the carrier of the services created at run time.
my ($app_port, $pp1, $pp2, $pp3) = free_ports(4);
my $srv = start_nginx(tools_node(
    zone   => 'routes 32m state=$TEST_NGINX_PREFIX/dynroute.state',
    http   => <<"HTTP",
    server {
        listen 127.0.0.1:$app_port;
        access_log \$TEST_NGINX_PREFIX/logs/app.log;
        default_type application/json;
        return 200 '{"generation": 1, "draining": false, "zone": "routes", "tables": {}, "rollouts": {}, "hosts": {}}';
    }
    upstream pool {
        dynroute_servers max=8;
        server 127.0.0.1:\$TEST_NGINX_PORT2;
    }
    server { listen 127.0.0.1:$pp1; return 200 "p1\n"; }
    server { listen 127.0.0.1:$pp2; return 200 "p2\n"; }
    upstream services {
        dynroute_services max_services=2 servers=4;
        keepalive 8;
    }
HTTP
    config => <<"CONF"));
    location /app/      { proxy_pass http://127.0.0.1:$app_port; }
    location /pool/     { proxy_pass http://pool/; }
    location /monitor/  { allow 127.0.0.1; deny all; dynroute_api write=off; }
    location /secured/ {
        auth_basic            "dynroute";
        auth_basic_user_file  $dir/htpasswd;
        dynroute_api          write=on;
    }
CONF
my $node = "127.0.0.1:$srv->{port}";
my $api  = "http://$node/dynroute/";

sub api { return ctl('--node', $api, @_) }

# What answers shop.example.com for users u1..uN: "upstream variant" => count.
sub spread { return variants_of($srv, 'shop.example.com', $_[0]) }

sub host_answer {
    my ($host) = @_;
    return http_get($srv, '/', { Host => $host })->{body};
}

# status
$r = api('status');
is($r->{exit}, 0, 'status: exit 0');
is($r->{err}, '', 'status: nothing on stderr');
like($r->{out}, qr/^\Q$node\E: generation \d+, serving$/m,
     'status: the node, its generation, not draining');
like($r->{out}, qr/^  rollout checkout: primary stable, as configured$/m,
     'status: the rollout and its primary');
like($r->{out}, qr/^    stable\s+100%  service_a$/m, 'status: stable 100% on service_a');
like($r->{out}, qr/^    canary\s+0%  service_b$/m, 'status: canary 0% on service_b');
like($r->{out}, qr/^  runtime hosts: 0$/m, 'status: no runtime hosts');

$r = api('--json', 'status');
my $st = json_of($r->{out});
is($st->{rollouts}{checkout}{variants}{stable}{weight}, 100,
   'status --json: the JSON answer');
my $gen = $st->{generation};

is_deeply(spread(20), { 'service_a stable' => 20 },
          'before any change: every user on stable, service_a');

# set-weights
$r = api('set-weights', 'checkout', 'stable=0', 'canary=100%');
is($r->{exit}, 0, 'set-weights 0/100: exit 0');
like($r->{out}, qr/^\Q$node\E: ok, generation (\d+), stable 0% service_a, canary 100% service_b\n\z/,
     'set-weights 0/100: one line, the new weights');
my ($gen2) = $r->{out} =~ /generation (\d+)/;
ok(defined $gen2 && $gen2 > $gen, 'set-weights: the generation grew');
is_deeply(spread(20), { 'service_b canary' => 20 },
          'set-weights 0/100: every user on canary, service_b');

$r = api('set-weights', 'checkout', 'stable=50', 'canary=50');
is($r->{exit}, 0, 'set-weights 50/50: exit 0');
my $half = spread(40);
ok($half->{'service_a stable'} && $half->{'service_b canary'}
       && $half->{'service_a stable'} + $half->{'service_b canary'} == 40,
   'set-weights 50/50: users on both variants, each on its upstream')
    or diag(JSON::PP->new->canonical->encode($half));

$r = api('set-weights', 'checkout', 'stable=87.5', 'canary=12.5');
is($r->{exit}, 0, 'set-weights 87.5/12.5: exit 0');
$r = api('--json', 'show', 'checkout');
is(json_of($r->{out})->{variants}{canary}{weight}, 12.5, 'show: the canary has 12.5%');

# flip and primary
api('set-weights', 'checkout', 'canary=100');
$r = api('flip', 'checkout', 'canary', 'service_a');
is($r->{exit}, 0, 'flip: exit 0');
like($r->{out}, qr/, canary 100% service_a\n\z/, 'flip: the canary on service_a');
is_deeply(spread(20), { 'service_a canary' => 20 },
          'flip: the canary is served by service_a');

$r = api('primary', 'checkout', 'canary');
is($r->{exit}, 0, 'primary: exit 0');
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, primary canary, stable 0% service_a, canary 100% service_a\n\z/,
     'primary: prints the new primary');
is(json_of(api('--json', 'show', 'checkout')->{out})->{primary}, 'canary',
   'primary: the canary is the primary');

# reset
$r = api('reset', 'checkout');
is($r->{exit}, 0, 'reset: exit 0');
like($r->{out}, qr/, stable 100% service_a, canary 0% service_b\n\z/,
     'reset: the configured weights and upstreams');
my $shown = json_of(api('--json', 'show', 'checkout')->{out});
ok(!$shown->{runtime} && $shown->{primary} eq 'stable',
   'reset: no runtime values, the configured primary');
is_deeply(spread(20), { 'service_a stable' => 20 },
          'reset: every user back on stable, service_a');

# runtime hosts
is(host_answer('tenant1.example.com'), "service_a\n",
   'a host of no rule goes to the default');
$r = api('host', 'add', 'tenant1.example.com', 'service_b');
is($r->{exit}, 0, 'host add: exit 0');
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, new host\n\z/, 'host add: a new host');
is(host_answer('tenant1.example.com'), "service_b\n", 'host add: the host goes to its target');
$r = api('host', 'add', 'tenant1.example.com', 'service_b', '--table', 'main');
like($r->{out}, qr/, replaced\n\z/, 'host add --table: the host is replaced');
$r = api('host', 'list');
like($r->{out}, qr/^  tenant1\.example\.com service_b main$/m, 'host list: the host');
like(api('status')->{out}, qr/^  runtime hosts: 1$/m, 'status: one runtime host');

$r = api('host', 'rm', 'tenant1.example.com');
is($r->{exit}, 0, 'host rm: exit 0');
is(host_answer('tenant1.example.com'), "service_a\n", 'host rm: back to the default');
$r = api('host', 'rm', 'tenant1.example.com');
is($r->{exit}, 1, 'host rm of an unknown host: exit 1');
like($r->{err}, qr/^dynroutectl: \Q${api}\Ehosts\/tenant1\.example\.com: 404 /m,
     'host rm of an unknown host: the URL tried, 404');

# host import: 5001 hosts, two requests
spew("$dir/hosts", join '', "# bulk\n", map { "bulk$_.example.com service_b\n" } 1 .. 5001);
$r = api('host', 'import', "$dir/hosts");
is($r->{exit}, 0, 'host import: exit 0');
like($r->{out}, qr/, added 5001, replaced 0\n\z/, 'host import: 5001 hosts added');
is(file_lines("$srv->{prefix}/logs/access.log", qr{"PATCH /dynroute/hosts HTTP}, 2), 2,
   'host import: in two requests');
is(host_answer('bulk1.example.com') . host_answer('bulk5001.example.com'),
   "service_b\nservice_b\n", 'host import: the first and the last host are routed');

# drain and ready
is(http_get($srv, '/ready')->{status}, 200, 'readiness: 200 before drain');
$r = api('drain');
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, draining\n\z/, 'drain: draining');
is(http_get($srv, '/ready')->{status}, 503, 'drain: readiness answers 503');
like(api('status')->{out}, qr/^\Q$node\E: generation \d+, draining$/m,
     'status: draining');
$r = api('ready');
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, serving\n\z/, 'ready: serving');
is(http_get($srv, '/ready')->{status}, 200, 'ready: readiness answers 200');

# servers and server: the servers of a dynroute_servers upstream
sub pool_answers {
    my ($n) = @_;
    my %seen;
    for (1 .. $n) {
        my $body = http_get($srv, '/pool/')->{body} // 'none';
        chomp $body;
        $seen{$body}++;
    }
    return \%seen;
}
my ($a1, $a2, $a3) = map { "127.0.0.1:$_" } $pp1, $pp2, $pp3;
my $line = "127.0.0.1:$srv->{port2}";
$r = api('servers', 'pool');
is($r->{exit}, 0, 'servers: exit 0');
is($r->{out}, "$node: generation " . ($r->{out} =~ /generation (\d+)/)[0]
              . ", pool: 1 server, its server lines\n"
              . "  $line weight 1, max_fails 1, fail_timeout 10s: up\n",
   'servers: the server line, its weight and state');
is_deeply(pool_answers(3), { service_a => 3 }, 'pool: its server line answers');

$r = api('server', 'add', 'pool', $a1, '--weight', '3', '--max-fails', '2',
         '--fail-timeout', '5');
is($r->{exit}, 0, 'server add: exit 0') or diag($r->{err});
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, new server \Q$a1\E in pool\n\z/,
     'server add: a new server');
$r = api('server', 'add', 'pool', $a2);
is($r->{exit}, 0, 'server add of a second server: exit 0');
$r = api('server', 'rm', 'pool', $line);
is($r->{exit}, 0, 'server rm: exit 0');
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, \Q$line\E removed from pool\n\z/,
     'server rm: removed');
$r = api('servers', 'pool');
like($r->{out}, qr/, pool: 2 servers, changed at run time\n/, 'servers: the runtime list');
like($r->{out}, qr/^  \Q$a1\E weight 3, max_fails 2, fail_timeout 5s: up$/m,
     'servers: a server with the fields given');
like($r->{out}, qr/^  \Q$a2\E weight 1, max_fails 1, fail_timeout 10s: up$/m,
     'servers: a server with the nodes\' defaults');
is_deeply(pool_answers(8), { p1 => 6, p2 => 2 }, 'server add, rm: traffic 3:1 on the servers added');

$r = api('server', 'add', 'pool', "[0:0::1]:$pp3", '--down', '--backup');
is($r->{exit}, 0, 'server add --down --backup: exit 0') or diag($r->{err});
like($r->{out}, qr/, new server \Q[::1]:$pp3\E in pool\n\z/, 'server add: the address made canonical');
like(api('servers', 'pool')->{out}, qr/^  \Q[::1]:$pp3\E\s+weight 1, max_fails 1, fail_timeout 10s: down backup$/m,
     'servers: a backup server, down');
$r = api('server', 'rm', 'pool', "[::1]:$pp3");
is($r->{exit}, 0, 'server rm of an IPv6 address (percent-encoded in the path): exit 0')
    or diag($r->{err});
is(file_lines("$srv->{prefix}/logs/access.log", qr{"DELETE /dynroute/upstreams/pool/servers/%5B::1%5D:$pp3 HTTP}, 1), 1,
   'server rm: the brackets percent-encoded');

$r = api('server', 'drain', 'pool', $a1);
is($r->{exit}, 0, 'server drain: exit 0');
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, \Q$a1\E draining: no new requests\n\z/, 'server drain: said');
like(api('servers', 'pool')->{out}, qr/^  \Q$a1\E weight 3, max_fails 2, fail_timeout 5s: drain$/m,
     'servers: the server drains, its fields kept');
is_deeply(pool_answers(4), { p2 => 4 }, 'server drain: no new requests to it');
api('server', 'add', 'pool', $a2, '--down');
like(api('servers', 'pool')->{out}, qr/^  \Q$a2\E\s+weight 1, max_fails 1, fail_timeout 10s: down$/m,
     'server add of a server there: its fields replaced');
$r = api('server', 'ready', 'pool', $a1);
is($r->{exit}, 0, 'server ready: exit 0');
like($r->{out}, qr/, \Q$a1\E up\n\z/, 'server ready: up');
$r = api('server', 'ready', 'pool', $a2);
is_deeply(pool_answers(8), { p1 => 6, p2 => 2 }, 'server ready: drain and down cleared');

$r = api('server', 'rm', 'pool', $a3);
is($r->{exit}, 1, 'server rm of a server not in the list: exit 1');
like($r->{err}, qr/^dynroutectl: \Q${api}upstreams\/pool\/servers\/$a3\E: 404 Not Found: \S/,
     'server rm of a server not in the list: the URL, 404 and a text');
$r = api('servers', 'service_a');
is($r->{exit}, 1, 'servers of an upstream without dynroute_servers: exit 1');
like($r->{err}, qr/: 404 Not Found: .*dynroute_servers/, '... the API says it lacks dynroute_servers');
for my $bad (['localhost:80', qr/bad address "localhost:80": "localhost" is a host name/],
             ['127.0.0.1:65536', qr/port "65536" is not a number from 1 to 65535/],
             ['::1', qr/an IPv6 address goes in brackets/]) {
    $r = api('server', 'add', 'pool', $bad->[0]);
    is($r->{exit}, 2, "server add $bad->[0]: a usage error, exit 2");
    like($r->{err}, $bad->[1], "server add $bad->[0]: says why");
}
$r = api('server', 'add', 'pool', $a1, '--weight', '0');
is($r->{exit}, 2, 'server add --weight 0: exit 2');
$r = api('servers', 'po/ol');
is($r->{exit}, 2, 'servers of a name with a slash: exit 2');
api('server', 'rm', 'pool', $_) for $a1, $a2;

# services and service: the services created at run time
$r = api('services');
is($r->{exit}, 0, 'services: exit 0') or diag($r->{err});
like($r->{out}, qr/^\Q$node\E: generation \d+, carrier services: 0 services of at most 2\n\z/,
     'services: the carrier, none yet, its limit');
$r = api('service', 'add', 'shop2');
is($r->{exit}, 0, 'service add: exit 0') or diag($r->{err});
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, new service shop2, balance round_robin, 0 servers\n\z/,
     'service add: a new service');
is(api('server', 'add', 'shop2', $a1)->{exit}, 0, 'server add to the service: exit 0');
$r = api('service', 'add', 'shop2');
like($r->{out}, qr/, service shop2, balance round_robin, 1 server\n\z/,
     'service add of a service there: its servers kept');
$r = api('service', 'add', 'shop2', '--balance', 'hash');
is($r->{exit}, 1, 'service add --balance hash on a carrier without hash=: exit 1');
like($r->{err}, qr{^dynroutectl: \Q${api}services/shop2\E: 400 Bad Request: .*is not available for services},
     '... the URL, 400 and the node\'s reason');
$r = api('service', 'add', 'shop2', '--balance', 'least');
is($r->{exit}, 2, 'service add --balance of no method: a usage error, exit 2');
$r = api('service', 'add', 'sh/op');
is($r->{exit}, 2, 'service add of a name with a slash: exit 2');
$r = api('services');
like($r->{out}, qr/: 1 service of at most 2\n  shop2 round_robin, 1 server\n\z/,
     'services: the service, its balance, its server count');
is(api('host', 'add', 'shop2.example.com', 'shop2')->{exit}, 0, 'a host that targets the service');
is(host_answer('shop2.example.com'), "p1\n", '... routed to the service\'s server');
$r = api('service', 'rm', 'shop2');
is($r->{exit}, 1, 'service rm of a targeted service: exit 1');
like($r->{err}, qr{: 409 Conflict: .*runtime host "shop2\.example\.com"}, '... the node says which host');
api('host', 'rm', 'shop2.example.com');
$r = api('service', 'rm', 'shop2');
is($r->{exit}, 0, 'service rm: exit 0') or diag($r->{err});
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, service shop2 removed\n\z/, 'service rm: said');
like(api('services')->{out}, qr/: 0 services of at most 2\n\z/, 'service rm: gone');
$r = api('service', 'rm', 'shop2');
is($r->{exit}, 1, 'service rm of no service: exit 1');
like($r->{err}, qr{\Q${api}services/shop2\E: 404 Not Found: no service "shop2"}, '... 404');

# failures
my $res = http_get($srv, '/dynroute/rollouts/nope');
my $text = eval { JSON::PP->new->decode($res->{body})->{error} };
is($res->{status}, 404, 'the API: an unknown rollout is a 404');
$r = api('show', 'nope');
is($r->{exit}, 1, 'show of an unknown rollout: exit 1');
ok(defined $text && length $text
       && index($r->{err}, "dynroutectl: ${api}rollouts/nope: 404 Not Found: $text") == 0,
   "show of an unknown rollout: the URL tried, the status and the API's error text")
    or diag("stderr: $r->{err}");
$r = api('set-weights', 'nope', 'a=100');
is($r->{exit}, 1, 'set-weights of an unknown rollout: exit 1');
like($r->{err}, qr/^dynroutectl: \Q${api}\Erollouts\/nope: 404 Not Found: \S/,
     'set-weights of an unknown rollout: the URL, 404 and a text');

$r = api('set-weights', 'checkout', 'stable=60', 'canary=60');
is($r->{exit}, 1, 'weights over 100%: exit 1');
like($r->{err}, qr/^dynroutectl: \Q${api}\Erollouts\/checkout: 400 Bad Request: \S/,
     'weights over 100%: the URL, 400 and a text');
is(json_of(api('--json', 'show', 'checkout')->{out})->{variants}{stable}{weight}, 100,
   'weights over 100%: nothing changed');

$gen = json_of(api('--json', 'status')->{out})->{generation};
$r = api('--if-match', $gen + 1000, 'set-weights', 'checkout', 'canary=100');
is($r->{exit}, 1, 'If-Match of another generation: exit 1');
like($r->{err}, qr/: 409 /, 'If-Match of another generation: 409');
$r = api('--if-match', $gen, 'set-weights', 'checkout', 'stable=100');
is($r->{exit}, 0, 'If-Match of the current generation: exit 0') or diag($r->{err});

$r = ctl('--node', "http://$node/monitor/", 'set-weights', 'checkout', 'canary=100');
is($r->{exit}, 1, 'a write through write=off: exit 1');
like($r->{err}, qr/: 405 /, 'a write through write=off: 405');
is(ctl('--node', "http://$node/monitor/", 'status')->{exit}, 0,
   'status through write=off: exit 0');

$r = ctl('--node', "http://$node/secured/", 'status');
is($r->{exit}, 1, 'auth_basic without --user: exit 1');
like($r->{err}, qr/: 401 /, 'auth_basic without --user: 401');
is(ctl('--node', "http://$node/secured/", '--user', 'ops:wrong', 'status')->{exit}, 1,
   'auth_basic with a wrong password: exit 1');
is(ctl('--node', "http://$node/secured/", '--user', 'ops:secret', 'drain')->{exit}, 0,
   'auth_basic with --user: a write is accepted');
is(http_get($srv, '/ready')->{status}, 503, 'auth_basic with --user: the node drains');
api('ready');

# a weight the API refuses: the message offers what it takes ("*", the
# rest, is the configuration's only)
for my $weight ('"abc"', '"*"') {
    my $body = qq({"weights": {"stable": 100, "canary": $weight}});
    my $res = http_raw($srv, "PATCH /dynroute/rollouts/checkout HTTP/1.1\r\n"
        . "Host: localhost\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body");
    is($res->{status}, 400, "the API, weight $weight: 400");
    is(eval { JSON::PP->new->decode($res->{body})->{error} },
       'the weight of variant "canary" must be a number of percent from 0 to 100, '
       . qq(like 25 or 12.5, or a string such as "12.5%", not $weight),
       "the API, weight $weight: says what it takes, and no \"*\"");
}

# a --node that leads to an application, not to the API: no write reaches it
my $app = "http://$node/app/";
for my $cmd (['set-weights', 'checkout', 'canary=100'], ['flip', 'checkout', 'canary', 'service_a'],
             ['primary', 'checkout', 'canary'], ['reset', 'checkout'], ['drain'], ['ready'],
             ['host', 'add', 'x.example.com', 'service_b'], ['host', 'rm', 'x.example.com'],
             ['host', 'import', "$dir/hosts"], ['server', 'add', 'pool', $a3],
             ['server', 'rm', 'pool', $a3], ['server', 'drain', 'pool', $a3]) {
    $r = ctl('--node', $app, @$cmd);
    is($r->{exit}, 1, "@$cmd to an application: exit 1");
    is($r->{err}, "dynroutectl: $app: answers GET, but not as a dynroute API does (the "
                  . "state, with an ETag of its generation): is it the location of "
                  . "dynroute_api? Nothing was written\n",
       "@$cmd to an application: refused, and says why") or diag($r->{err});
}
my @app_requests = map { /"(\S+) (\S+)/ ? "$1 $2" : $_ }
                   split /\n/, slurp("$srv->{prefix}/logs/app.log");
is(scalar(grep { m{^GET /app/$} } @app_requests), 12,
   'the application: the GET of each command reached it');
is_deeply([ grep { !/^GET / } @app_requests ], [],
          'the application: no write reached it') or diag(explain(\@app_requests));

# ---- two nodes, one of them down ------------------------------------------

$r = ctl('--node', $dead_api, '--node', $api, 'set-weights', 'checkout', 'stable=0', 'canary=100');
is($r->{exit}, 1, 'two nodes, the first down: exit 1');
like($r->{err}, qr/^dynroutectl: \Q$dead_api\E: connection refused$/m,
     'two nodes, the first down: stderr names the URL tried');
like($r->{out}, qr/^\Q$node\E: ok, generation \d+, /, 'two nodes, the first down: the second is done');
is_deeply(spread(10), { 'service_b canary' => 10 },
          'two nodes, the first down: the second node routes by the new weights');

{
    local $ENV{DYNROUTE_NODES} = "$api,$dead_api";
    $r = ctl('reset', 'checkout');
}
is($r->{exit}, 1, 'DYNROUTE_NODES, the second down: exit 1');
like($r->{out}, qr/^\Q$node\E: ok, /, 'DYNROUTE_NODES, the second down: the first is done');
like($r->{err}, qr/^dynroutectl: \Q$dead_api\E: connection refused$/m,
     'DYNROUTE_NODES, the second down: stderr names the URL tried');
is_deeply(spread(10), { 'service_a stable' => 10 }, 'DYNROUTE_NODES: the reset took effect');

error_log_ok(stop_nginx($srv), 'no alert/crit/crash');

# ---- a table keyed by a variable ------------------------------------------

# The node again with tenants, a table keyed by X-Tenant, at /tenant/:
# status names its key; the Host table main gets no line, as before.
$srv = start_nginx(tools_node(
    http   => <<'HTTP',
    dynroute_table tenants key=$http_x_tenant {
        acme     service_a;
        default  service_a;
    }
HTTP
    config => <<'CONF'));
    location /tenant/ {
        dynroute    tenants;
        proxy_pass  http://$dynroute_upstream;
    }
CONF
$node = "127.0.0.1:$srv->{port}";
$api  = "http://$node/dynroute/";

$r = api('status');
is($r->{exit}, 0, 'a key table: status exits 0');
like($r->{out}, qr/^  table tenants: key=\$http_x_tenant$/m, 'a key table: status shows its key');
unlike($r->{out}, qr/^  table main\b/m, 'a key table: the Host table is not shown');
like($r->{out}, qr/^  runtime hosts: 0$/m, 'a key table: status still counts the runtime hosts');
is(json_of(api('--json', 'status')->{out})->{tables}{tenants}{key}, '$http_x_tenant',
   'a key table: status --json has the key');

$r = api('host', 'add', 'globex', 'service_b', '--table', 'tenants');
is($r->{exit}, 0, 'a key table: host add --table tenants exits 0');
is(http_get($srv, '/tenant/', { 'X-Tenant' => 'Globex' })->{body}, "service_b\n",
   'a key table: the runtime host is the key\'s value');
like(api('host', 'list')->{out}, qr/^  globex service_b tenants$/m,
     'a key table: host list names the table');

error_log_ok(stop_nginx($srv), 'a key table: no alert/crit/crash');

done_testing();
