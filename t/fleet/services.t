# Services created at run time, through etcd: one etcd and one nginx whose
# carrier (dynroute_services) holds the services and whose
# dynroute_balancer routes to them.  A registration for a service that etcd
# does not have yet is refused (404) and kept, and applied once
# services/NAME is put; a runtime host of etcd that targets the service
# routes to its registered instances; an instance killed with SIGKILL
# leaves within its TTL plus 1 s; services/NAME deleted while a host
# targets it is refused by the node (409) and reported; host then service
# deleted: gone from the node; an agent started again converges (services
# of etcd created, the node's others deleted).  dynroutectl --etcd
# services, service add and service rm.  make fleet-deps installs etcd.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use File::Temp ();
use Test::More ();
use Time::HiRes ();
use JSON::PP ();

Test::More::plan(skip_all => "$ETCD is missing (make fleet-deps installs Debian's etcd-server)")
    unless -x $ETCD;

delete $ENV{$_} for qw(DYNROUTE_NODES DYNROUTE_ETCD_PASSWORD http_proxy HTTP_PROXY
                       ETCDCTL_ENDPOINTS);
$ENV{ETCDCTL_API} = 3;

my $dir = File::Temp::tempdir(CLEANUP => 1);
my ($agent_log, $etcd_log, @logs);

END {
    my $status = $?;
    if ($agent_log && !Test::More->builder->is_passing) {
        Test::More::diag("--- the agent's log:\n" . slurp($agent_log));
        Test::More::diag("--- $_:\n" . slurp($_)) for @logs;
        Test::More::diag("--- etcd's log (the end):\n" . tail_of(slurp($etcd_log), 40));
    }
    $? = $status;
}

my ($etcd_port, $peer_port, $p_web, $p1, $p2) = free_ports(5);
$etcd_log = "$dir/etcd.log";
my $etcd = { name => 'member1', dir => "$dir/etcd", log => $etcd_log,
             client => $etcd_port, peer => $peer_port };
my $endpoint = etcd_endpoint($etcd);
ok(start_etcd($etcd) && etcd_ready(20, $etcd), 'etcd started')
    or BAIL_OUT("etcd did not start:\n" . slurp($etcd_log));

sub ctl { return run_cmd(tool_cmd('dynroutectl'), '--etcd', $endpoint, @_) }

# The node: the carrier, the balancer that routes to what the table (or a
# runtime host) names, and three backends that answer their name.
my $backends = join '', map {
    "    server { listen 127.0.0.1:$_->[1]; return 200 \"$_->[0]\\n\"; }\n"
} (['web', $p_web], ['i1', $p1], ['i2', $p2]);
my $srv = start_nginx(http_config => <<"CONF" . $backends, config => <<'CONF');
    dynroute_zone routes 4m;
    upstream services {
        dynroute_services max_services=8 servers=32;
        keepalive 8;
    }
    upstream web { server 127.0.0.1:$p_web; }
    upstream edge { dynroute_balancer; }
    dynroute_table main { web.example.com web; default web; }
CONF
    location / {
        dynroute main;
        proxy_pass http://edge;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF
my $api = "http://127.0.0.1:$srv->{port}/dynroute/";

# The node's service NAME: (status, balance, "its servers", sorted)
sub service_now {
    my ($name) = @_;
    my $res = http_get($srv, "/dynroute/services/$name");
    my $j = json_of($res->{body}) || {};
    return ($res->{status}, $j->{balance} // '', join ' ', sort keys %{ $j->{servers} || {} });
}
sub servers_of { return (service_now($_[0]))[2] }
sub list_of { return join ' ', sort map { "127.0.0.1:$_" } @_ }

# Which backends answer n requests for shop.example.com: "name" => count.
sub answers {
    my ($n) = @_;
    my %seen;
    for (1 .. $n) {
        my $body = http_get($srv, '/', { Host => 'shop.example.com' })->{body} // 'none';
        chomp $body;
        $seen{$body}++;
    }
    return \%seen;
}

sub agent_errors {
    my $r = etcdctl($etcd, 'get', '/dynroute/agents/n1', '--print-value-only');
    my $j = json_of($r->{out}) || {};
    return $j->{errors} || [];
}

$agent_log = "$dir/agent.log";
my $agent_pid;
sub start_agent {
    $agent_pid = spawn('agent', $agent_log, tool_cmd('dynroute-agent'),
                       '--etcd', $endpoint, '--node', 'n1', '--api', $api);
}

my $n = 0;
sub register {
    my (@argv) = @_;
    my $log = "$dir/register-" . ++$n . ".log";
    push @logs, $log;
    my $pid = spawn("register $n", $log, tool_cmd('dynroutectl'), '--etcd', $endpoint,
                    'register', @argv);
    ok(wait_for(10, sub { slurp($log) =~ /^etcd: registered /m }), "register @argv: registered")
        or diag(slurp($log));
    return { pid => $pid, log => $log };
}

start_agent();
ok(wait_for(15, sub { slurp($agent_log) =~ /applied everything/ }), 'the agent read etcd')
    or diag(slurp($agent_log));

# ---- a registration before its service: refused (404), kept ------------------------

my $r1 = register('shop', "127.0.0.1:$p1", '--ttl', '2');
ok(wait_for(5, sub { slurp($agent_log) =~ m{services/shop/servers/127\.0\.0\.1:$p1: refused: 404 no upstream with dynroute_servers and no service "shop" on this node; kept until services/shop appears} }),
   'a registration before services/shop: refused (404) in the agent\'s log');
ok(wait_for(5, sub { grep { $_->{key} eq "/dynroute/services/shop/servers/127.0.0.1:$p1"
                             && ($_->{status} // 0) == 404 } @{ agent_errors() } }),
   '... and in agents/n1 errors') or diag(explain(agent_errors()));
is((service_now('shop'))[0], 404, '... the node has no service shop');

my $r = ctl('services');
is($r->{exit}, 0, 'services --etcd: exit 0') or diag($r->{err});
like($r->{out}, qr{^etcd: revision \d+, /dynroute/services/: 0 services\n  shop 1 server, no /dynroute/services/shop: }m,
     'services --etcd: servers of a name without services/NAME') or diag($r->{out});

# ---- services/shop put: the service, with the registration ----------------------------

etcdctl($etcd, 'put', '/dynroute/services/shop', '{}');
ok(wait_for(5, sub { servers_of('shop') eq "127.0.0.1:$p1" }),
   'services/shop put: the service on the node, with the registration kept')
    or diag(join ' ', service_now('shop'));
is((service_now('shop'))[1], 'round_robin', '... round_robin');

etcdctl($etcd, 'put', '/dynroute/hosts/shop.example.com', '{"target": "shop"}');
ok(wait_for(5, sub { answers(1)->{i1} }), 'a runtime host of etcd targets the service: traffic');
is_deeply(answers(4), { i1 => 4 }, '... on the registered instance');

my $r2 = register('shop', "127.0.0.1:$p2", '--ttl', '2');
ok(wait_for(5, sub { servers_of('shop') eq list_of($p1, $p2) }),
   'a second registration: in the service') or diag(servers_of('shop'));
is_deeply(answers(4), { i1 => 2, i2 => 2 }, '... traffic on both');

# service add --etcd: a balance the node refuses (no hash= on this carrier)
$r = ctl('service', 'add', 'shop', '--balance', 'hash', '--wait');
is($r->{exit}, 1, 'service add --etcd --balance hash --wait, refused by the node: exit 1');
like($r->{out}, qr{^etcd: ok, revision \d+, /dynroute/services/shop \{"balance":"hash"\}, 2 servers under /dynroute/services/shop/servers/$}m,
     'service add --etcd: the key, its value, the servers under it') or diag($r->{out});
like($r->{err}, qr{reached every agent, but n1 refused it: 400 "balance": "hash" is not available for services},
     '... --wait: the node\'s refusal') or diag($r->{err});
is_deeply([(service_now('shop'))[1, 2]], ['round_robin', list_of($p1, $p2)],
          '... the node keeps the service as it was');
$r = ctl('service', 'add', 'shop');
like($r->{out}, qr{^etcd: ok, revision \d+, /dynroute/services/shop \{\}, }m, 'service add --etcd without --balance: {}');
$r = ctl('services');
like($r->{out}, qr{^etcd: revision \d+, /dynroute/services/: 1 service\n  shop round_robin, 2 servers$}m,
     'services --etcd: the service, its balance, its servers') or diag($r->{out});

# ---- SIGKILL: gone within TTL + 1 s -------------------------------------------------

my $t0 = Time::HiRes::time();
kill 'KILL', $r1->{pid};
wait_pid($r1->{pid}, 5);
ok(wait_for(4, sub { servers_of('shop') eq "127.0.0.1:$p2" }),
   'SIGKILL: the instance left the service') or diag(servers_of('shop'));
my $gone = Time::HiRes::time() - $t0;
cmp_ok($gone, '<=', 3.0, 'SIGKILL: gone within TTL + 1 s');
diag(sprintf 'SIGKILL to a registration of a service with --ttl 2: gone after %.2f s', $gone);
is_deeply(answers(4), { i2 => 4 }, 'SIGKILL: traffic on the instance left');

# ---- deleting a targeted service --------------------------------------------------

$r = ctl('service', 'rm', 'shop');
is($r->{exit}, 1, 'service rm --etcd while a host of etcd targets it: exit 1');
like($r->{err}, qr{not written to etcd: shop is the target of /dynroute/hosts/shop\.example\.com: the nodes refuse}, '... says why');
$r = ctl('service', 'rm', 'shop', '--force');
is($r->{exit}, 0, 'service rm --etcd --force: the key deleted all the same') or diag($r->{err});
ok(wait_for(5, sub { slurp($agent_log) =~ m{services/shop: refused: 409 service "shop" is still the target of } }),
   'services/shop deleted while a host targets it: the node refuses (409), in the log');
ok(wait_for(5, sub { grep { $_->{key} eq '/dynroute/services/shop' && ($_->{status} // 0) == 409 }
                     @{ agent_errors() } }), '... and in agents/n1 errors');
is(servers_of('shop'), "127.0.0.1:$p2", '... the node keeps the service');
is_deeply(answers(2), { i2 => 2 }, '... and routes to it');
# the node still routes to it: its instances still join and leave it
my $r3 = register('shop', "127.0.0.1:$p1", '--ttl', '2');
ok(wait_for(5, sub { servers_of('shop') eq list_of($p1, $p2) }),
   '... an instance registered meanwhile joins the service the node kept')
    or diag(servers_of('shop'));
kill 'TERM', $r3->{pid};
wait_pid($r3->{pid}, 5);
ok(wait_for(2, sub { servers_of('shop') eq "127.0.0.1:$p2" }), '... and leaves it')
    or diag(servers_of('shop'));

# put back; the host deleted, then the service
$r = ctl('service', 'add', 'shop', '--wait');
is($r->{exit}, 0, 'service add --etcd again: exit 0') or diag($r->{err});
etcdctl($etcd, 'del', '/dynroute/hosts/shop.example.com');
ok(wait_for(5, sub { answers(1)->{web} }), 'the host deleted: the table\'s default');
$r = ctl('service', 'rm', 'shop', '--wait');
is($r->{exit}, 0, 'service rm --etcd: exit 0') or diag($r->{err});
like($r->{out}, qr{^etcd: ok, revision \d+, /dynroute/services/shop removed\n1 server under /dynroute/services/shop/servers/ remains in etcd: the nodes refuse it \(404\) until /dynroute/services/shop is put again\nevery agent}m,
     'service rm --etcd: the key removed, the registration left said') or diag($r->{out});
is((service_now('shop'))[0], 404, '... the service gone from the node');
$r = ctl('service', 'rm', 'shop');
is($r->{exit}, 1, 'service rm --etcd of a key not there: exit 1');
like($r->{err}, qr{/dynroute/services/shop is not in etcd}, '... said');

# ---- the agent started again: a full read converges ---------------------------------

stop_proc($agent_pid);
etcdctl($etcd, 'put', '/dynroute/services/cart', '{"balance": "round_robin"}');
my $res = http_raw($srv, "PUT /dynroute/services/stale HTTP/1.1\r\nHost: localhost\r\n"
                   . "Connection: close\r\nContent-Type: application/json\r\n"
                   . "Content-Length: 2\r\n\r\n{}", 10);
is($res->{status}, 201, 'agent stopped: a service made on the node only');
start_agent();
ok(wait_for(10, sub { (service_now('stale'))[0] == 404 && (service_now('cart'))[0] == 200 }),
   'agent restarted: the service of etcd created, the node\'s other deleted')
    or diag(join ' ', service_now('stale'), service_now('cart'));
is((service_now('shop'))[0], 404, '... no shop (not in etcd)');
etcdctl($etcd, 'put', '/dynroute/services/shop', '{}');
ok(wait_for(5, sub { servers_of('shop') eq "127.0.0.1:$p2" }),
   'services/shop put again: the registration kept meanwhile applied') or diag(servers_of('shop'));

kill 'TERM', $r2->{pid};
wait_pid($r2->{pid}, 5);
ok(wait_for(2, sub { servers_of('shop') eq '' }), 'SIGTERM: the service has no servers')
    or diag(servers_of('shop'));
is((service_now('shop'))[0], 200, '... and is still there');

stop_proc($agent_pid);
error_log_ok(stop_nginx($srv), 'no alert/crit/crash');
done_testing();
