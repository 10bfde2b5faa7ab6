# Service discovery through etcd, one etcd and one nginx: instances that
# register themselves (dynroutectl --etcd register, under a lease) join an
# upstream with dynroute_servers on the node through its agent, and traffic
# reaches them; an instance killed with SIGKILL leaves within its TTL plus
# the watch's delay, one stopped with SIGTERM at once; when the last one
# goes the upstream serves its server lines again; a value of the wrong
# shape is refused with its key in the agent's log and its report, and the
# rest applies; a registration for a group the node does not have is
# refused (404) and reported; an agent started after registrations (and
# nginx restarted with state=) converge on etcd's list; with etcd stopped
# the node serves its list, and follows again once etcd is back.  make fleet-deps
# installs etcd.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use Test::Nginx::Dynroute::Fixtures qw(tools_node);
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

my ($etcd_port, $peer_port, $p_line, $p1, $p2, $p3) = free_ports(6);
$etcd_log = "$dir/etcd.log";
my $etcd = { name => 'member1', dir => "$dir/etcd", log => $etcd_log,
             client => $etcd_port, peer => $peer_port };
my $endpoint = etcd_endpoint($etcd);
ok(start_etcd($etcd) && etcd_ready(20, $etcd), 'etcd started')
    or BAIL_OUT("etcd did not start:\n" . slurp($etcd_log));

sub ctl { return run_cmd(tool_cmd('dynroutectl'), '--etcd', $endpoint, @_) }

# The node (tools_node): with a state file, the upstream pool
# (dynroute_servers, seeded by one server line) and four backends that
# answer their name; pool.example.com goes to pool through a runtime host
# that etcd holds.
my $backends = join '', map {
    "    server { listen 127.0.0.1:$_->[1]; return 200 \"$_->[0]\\n\"; }\n"
} (['line', $p_line], ['i1', $p1], ['i2', $p2], ['i3', $p3]);
my %node = tools_node(
    zone => "routes 4m state=$dir/dynroute.state",
    http => <<"CONF" . $backends);
    upstream pool {
        dynroute_servers max=8;
        server 127.0.0.1:$p_line;
        keepalive 4;
    }
CONF
my $srv = start_nginx(%node);
my $api = "http://127.0.0.1:$srv->{port}/dynroute/";
etcdctl($etcd, 'put', '/dynroute/hosts/pool.example.com', '{"target": "pool"}');

# The addresses of ports, as servers_now lists them.
sub list_of { return join ' ', sort map { "127.0.0.1:$_" } @_ }

sub servers_now {
    my $res = http_get($srv, '/dynroute/upstreams/pool/servers');
    my $j = json_of($res->{body}) || {};
    return ($j->{runtime} ? 'runtime' : 'lines', join ' ', sort keys %{ $j->{servers} || {} });
}

# Which backends answer n requests to pool.example.com: "name" => count.
sub answers {
    my ($n) = @_;
    my %seen;
    for (1 .. $n) {
        my $body = http_get($srv, '/', { Host => 'pool.example.com' })->{body} // 'none';
        chomp $body;
        $seen{$body}++;
    }
    return \%seen;
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
is_deeply([servers_now()], ['lines', "127.0.0.1:$p_line"], 'before any registration: the server line');
is_deeply(answers(4), { line => 4 }, 'before any registration: the line answers');

# ---- two instances register themselves -------------------------------------------

my $r1 = register('pool', "127.0.0.1:$p1", '--ttl', '2');
my $r2 = register('pool', "127.0.0.1:$p2", '--ttl', '2', '--weight', '3');
ok(wait_for(5, sub { (servers_now())[1] eq list_of($p1, $p2) }),
   'two registrations: the node serves both, and the server line no more')
    or diag(join ' ', servers_now());
is((servers_now())[0], 'runtime', 'two registrations: a runtime list');
my $j = json_of(http_get($srv, '/dynroute/upstreams/pool/servers')->{body});
is($j->{servers}{"127.0.0.1:$p2"}{weight}, 3, 'the weight registered reached the node');
is_deeply(answers(8), { i1 => 2, i2 => 6 }, 'traffic: 1:3 over the two instances');

# ---- SIGKILL: gone within TTL + 1 s ------------------------------------------------

my $t0 = Time::HiRes::time();
kill 'KILL', $r1->{pid};
wait_pid($r1->{pid}, 5);
ok(wait_for(4, sub { (servers_now())[1] eq "127.0.0.1:$p2" }),
   'SIGKILL: the instance left the node') or diag(join ' ', servers_now());
my $gone = Time::HiRes::time() - $t0;
cmp_ok($gone, '<=', 3.0, 'SIGKILL: gone within TTL + 1 s');
diag(sprintf 'SIGKILL to a registration with --ttl 2: gone from the node after %.2f s', $gone);
is_deeply(answers(4), { i2 => 4 }, 'SIGKILL: traffic on the instance left');

# ---- a value of the wrong shape; a group the node does not have ------------------------

etcdctl($etcd, 'put', "/dynroute/services/pool/servers/127.0.0.1:$p3", '{"weight": "heavy"}');
ok(wait_for(5, sub { slurp($agent_log) =~ m{services/pool/servers/127\.0\.0\.1:$p3: refused: malformed value: weight: expected an integer} }),
   'a value of the wrong shape: refused, its key in the log');
etcdctl($etcd, 'put', "/dynroute/services/pool/servers/127.0.0.1:$p3", '{"weight": 0}');
ok(wait_for(5, sub { slurp($agent_log) =~ m{services/pool/servers/127\.0\.0\.1:$p3: refused: 400 .*weight} }),
   'a weight the node refuses: refused with the node\'s reason');
etcdctl($etcd, 'put', "/dynroute/services/nosuch/servers/127.0.0.1:$p3", '{}');
ok(wait_for(5, sub { slurp($agent_log) =~ m{services/nosuch/servers/127\.0\.0\.1:$p3: refused: 404 no upstream with dynroute_servers and no service "nosuch"} }),
   'a group the node does not have: refused (404), kept');
my $r = ctl('status');
like($r->{out}, qr/agent n1: revision \d+, following, [1-9]\d* refused/, 'status --etcd: the refusals are reported')
    or diag($r->{out});
is((servers_now())[1], "127.0.0.1:$p2", 'after the refusals: the node serves what it had');
etcdctl($etcd, 'put', "/dynroute/services/pool/servers/127.0.0.1:$p3", '{"weight": 1}');
ok(wait_for(5, sub { (servers_now())[1] eq list_of($p2, $p3) }),
   'the value corrected: applied') or diag(join ' ', servers_now());
etcdctl($etcd, 'del', "/dynroute/services/pool/servers/127.0.0.1:$p3");
etcdctl($etcd, 'del', "/dynroute/services/nosuch/servers/127.0.0.1:$p3");
ok(wait_for(5, sub { (servers_now())[1] eq "127.0.0.1:$p2" }), 'a key deleted: the server left');

# ---- dynroutectl --etcd server: a permanent member; drain and ready keep a lease ----

sub server_on_node {
    my ($address) = @_;
    my $j = json_of(http_get($srv, '/dynroute/upstreams/pool/servers')->{body}) || {};
    return ($j->{servers} || {})->{$address} || {};
}
my $key3 = "/dynroute/services/pool/servers/127.0.0.1:$p3";
$r = ctl('server', 'add', 'pool', "127.0.0.1:$p3", "--weight", "2");
is($r->{exit}, 0, 'server add --etcd: exit 0') or diag($r->{err});
is($r->{out}, "etcd: ok, revision " . ($r->{out} =~ /revision (\d+)/)[0] . qq(, $key3 {"weight":2}\n),
   'server add --etcd: the key of the canonical address, the fields given');
ok(wait_for(5, sub { (servers_now())[1] eq list_of($p2, $p3) }),
   'server add --etcd: the server reaches the node') or diag(join ' ', servers_now());
is(server_on_node("127.0.0.1:$p3")->{weight}, 2, 'server add --etcd: with its weight');
like(etcdctl($etcd, "get", $key3, "-w", "json")->{out}, qr/"kvs":\[\{(?![^}]*"lease")/,
     'server add --etcd: the key has no lease');
$r = ctl('servers', 'pool');
like($r->{out}, qr{^etcd: revision \d+, /dynroute/services/pool/servers/: 2 servers$}m,
     'servers --etcd: the count');
like($r->{out}, qr/^  127\.0\.0\.1:$p2 \{"weight":3\}, registered, lease [0-9a-f]+$/m,
     'servers --etcd: a registration, with its lease');
like($r->{out}, qr/^  127\.0\.0\.1:$p3 \{"weight":2\}, permanent$/m, 'servers --etcd: a permanent member');

$r = ctl('server', 'drain', 'pool', "127.0.0.1:$p2", '--wait');
is($r->{exit}, 0, 'server drain --etcd --wait: exit 0') or diag($r->{err});
like($r->{out}, qr/^etcd: ok, revision \d+, \S+:$p2 \{"weight":3,"drain":true\} \(lease [0-9a-f]+ kept\)\nevery agent \(1\) at revision /,
     'server drain --etcd: drain in the value, the lease kept');
is(server_on_node("127.0.0.1:$p2")->{drain}, JSON::PP::true(), 'server drain --etcd: drain=true on the node');
is_deeply(answers(4), { i3 => 4 }, 'server drain --etcd: no new requests to it');
$r = ctl('server', 'add', 'pool', "127.0.0.1:$p2");
is($r->{exit}, 1, 'server add --etcd over a registration: exit 1');
like($r->{err}, qr/not written to etcd: \S+:$p2 is the registration of a running instance \(lease [0-9a-f]+\)/,
     'server add --etcd over a registration: refused, says why');
$r = ctl('server', 'ready', 'pool', "127.0.0.1:$p2", '--wait');
is($r->{exit}, 0, 'server ready --etcd: exit 0') or diag($r->{err});
is(server_on_node("127.0.0.1:$p2")->{drain}, JSON::PP::false(), 'server ready --etcd: drain=false on the node');
$r = ctl('server', 'rm', 'pool', "127.0.0.1:$p3", '--wait');
like($r->{out}, qr{^etcd: ok, revision \d+, \Q$key3\E removed\n}, 'server rm --etcd: the key removed');
is((servers_now())[1], "127.0.0.1:$p2", 'server rm --etcd: the server left the node');
$r = ctl('server', 'rm', 'pool', "127.0.0.1:$p3");
is($r->{exit}, 1, 'server rm --etcd of a key not there: exit 1');
like($r->{err}, qr{\Q$key3\E is not in etcd}, 'server rm --etcd of a key not there: said');

# ---- the agent restarted while an instance registers ---------------------------------

stop_proc($agent_pid);
my $r3 = register('pool', "127.0.0.1:$p3", '--ttl', '2');
sleep 1;
is((servers_now())[1], "127.0.0.1:$p2", 'agent stopped: the node keeps its list');
start_agent();
ok(wait_for(10, sub { (servers_now())[1] eq list_of($p2, $p3) }),
   'agent restarted: the registration made meanwhile is applied') or diag(join ' ', servers_now());

# ---- nginx restarted with state=: the list is back before the agent writes -------------

stop_proc($agent_pid);
stop_nginx($srv);
$srv = start_nginx(%node);
$api = "http://127.0.0.1:$srv->{port}/dynroute/";
is_deeply([servers_now()], ['runtime', list_of($p2, $p3)],
          'nginx restarted with state=: the runtime list is kept');
start_agent();

# ---- etcd stopped and started: the node keeps serving its list ---------------------------

ok(wait_for(10, sub { slurp($agent_log) =~ /watching .* from revision \d+\n(?![\s\S]*node n1)/ }),
   'nginx restarted: the agent follows again');
stop_proc($etcd->{pid}, 'TERM');
my $served = answers(6);
is_deeply([sort keys %$served], [sort qw(i2 i3)], 'etcd stopped: the node serves its list, no request fails')
    or diag(Test::More::explain($served));
is((servers_now())[1], list_of($p2, $p3), 'etcd stopped: the list stays');
ok(start_etcd($etcd) && etcd_ready(20, $etcd), 'etcd started again');
etcdctl($etcd, 'put', "/dynroute/services/pool/servers/127.0.0.1:$p1", '{}');
ok(wait_for(15, sub { (servers_now())[1] eq list_of($p1, $p2, $p3) }),
   'etcd back: a server written then reaches the node') or diag(join ' ', servers_now());
etcdctl($etcd, 'del', "/dynroute/services/pool/servers/127.0.0.1:$p1");
ok(wait_for(5, sub { (servers_now())[1] eq list_of($p2, $p3) }), 'etcd back: and leaves it');

# ---- SIGTERM: gone at once; the last one gone: the server line again -------------------

kill 'TERM', $r3->{pid};
wait_pid($r3->{pid}, 5);
ok(wait_for(2, sub { (servers_now())[1] eq "127.0.0.1:$p2" }), 'SIGTERM: the instance left at once');
kill 'TERM', $r2->{pid};
wait_pid($r2->{pid}, 5);
ok(wait_for(2, sub { join(' ', servers_now()) eq "lines 127.0.0.1:$p_line" }),
   'the last registration gone: the upstream serves its server line again')
    or diag(join ' ', servers_now());
is_deeply(answers(2), { line => 2 }, 'the last registration gone: the line answers');

stop_proc($agent_pid);
done_testing();
