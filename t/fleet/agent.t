# tools/dynroute-agent and dynroutectl --etcd against one etcd (Debian's
# /usr/bin/etcd, started here on free loopback ports with a data directory of
# its own) and one nginx: changes written to etcd reach the proxy, a
# malformed value is refused with a log line naming its key and later changes
# still apply, a change nginx refuses is reported to --wait, an agent started
# while etcd is down leaves nginx serving and reports stale, and a write that
# lost the compare-and-swap says so.  make fleet-deps installs etcd.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use Test::Nginx::Dynroute::Fixtures qw(tools_node);
use File::Temp ();
use Test::More ();

Test::More::plan(skip_all => "$ETCD is missing (make fleet-deps installs Debian's etcd-server)")
    unless -x $ETCD;

delete $ENV{$_} for qw(DYNROUTE_NODES http_proxy HTTP_PROXY ETCDCTL_ENDPOINTS);
$ENV{ETCDCTL_API} = 3;

my $dir = File::Temp::tempdir(CLEANUP => 1);
my ($agent_log, $etcd_log);

# On failure, what the agent (and etcd) said; then the module stops ours.
END {
    my $status = $?;
    if ($agent_log && !Test::More->builder->is_passing) {
        Test::More::diag("--- the agent's log:\n" . slurp($agent_log));
        Test::More::diag("--- etcd's log (the end):\n" . tail_of(slurp($etcd_log), 40));
    }
    $? = $status;
}

# ---- etcd: one member on loopback ----------------------------------------------

my ($etcd_port, $peer_port, $port_c) = free_ports(3);
$etcd_log = "$dir/etcd.log";
my $etcd = { name => 'fleet1', dir => "$dir/etcd", log => $etcd_log,
             client => $etcd_port, peer => $peer_port };
my $endpoint = etcd_endpoint($etcd);

sub ctl { return run_cmd(tool_cmd('dynroutectl'), '--etcd', $endpoint, @_) }

# ---- nginx and the agent ----------------------------------------------------------

# The node (tools_node, Test::Nginx::Dynroute::Fixtures): shop.example.com
# goes to the rollout checkout (stable service_a *, canary service_b 0%, key
# X-User), other hosts to service_a; the API at /dynroute/, readiness at /ready.
# Here with a state file, and a third service to flip the canary to.
my $srv = start_nginx(tools_node(
    zone => 'routes 4m state=$TEST_NGINX_PREFIX/dynroute.state',
    http => <<"CONF"));
    upstream service_c { server 127.0.0.1:$port_c; }
    server { listen 127.0.0.1:$port_c; return 200 "service_c\\n"; }
CONF
my $api = "http://127.0.0.1:$srv->{port}/dynroute/";

sub api_get {
    my ($path) = @_;
    my $res = http_get($srv, "/dynroute/$path");
    return ($res->{status}, json_of($res->{body}));
}

sub fleet { my (undef, $f) = api_get('fleet'); return $f }

# What answers shop.example.com for users u1..uN: "upstream variant" => count.
sub spread { return variants_of($srv, 'shop.example.com', $_[0]) }

sub host_answer {
    return http_get($srv, '/', { Host => $_[0] })->{body} // 'no answer';
}

$agent_log = "$dir/agent.log";
my $agent_pid;

sub start_agent {
    $agent_pid = spawn('agent', $agent_log, tool_cmd('dynroute-agent'),
                       '--etcd', $endpoint, '--node', 'n1', '--api', $api);
}

sub agent_log_has {
    my ($re, $seconds) = @_;
    return wait_for($seconds // 10, sub { slurp($agent_log) =~ $re });
}

# ---- the agent starts while etcd is down ---------------------------------------

start_agent();
ok(agent_log_has(qr/etcd: .*retrying in/), 'etcd down: the agent says so and retries')
    or diag(slurp($agent_log));
ok(wait_for(10, sub { my $f = fleet(); $f->{stale} && defined $f->{revision} }),
   'etcd down: nginx has the agent report stale')
    or diag(slurp($agent_log));
is(host_answer('any.example.com'), "service_a\n", 'etcd down: nginx still serves');
like(http_get($srv, '/dynroute/metrics')->{body}, qr/^dynroute_fleet_stale(\{[^}]*\})? 1$/m,
     'etcd down: dynroute_fleet_stale is 1');

ok(start_etcd($etcd) && etcd_ready(20, $etcd), 'etcd started') or BAIL_OUT("etcd did not start:\n" . slurp($etcd_log));
my $synced = wait_for(15, sub { my $f = fleet(); !$f->{stale} && $f->{revision} });
ok($synced, 'etcd up: the agent reads it and reports a revision, not stale')
    or diag(slurp($agent_log));
my $r = ctl('status');
like($r->{out}, qr/^  agent n1: revision \d+, following, 0 refused, \Q$api\E$/m,
     'status --etcd: the agent is registered under agents/n1') or diag(Test::More::explain($r));

# ---- each write command reaches the proxy ------------------------------------------

is_deeply(spread(10), { 'service_a stable' => 10 }, 'before any change: all on stable');

$r = ctl('--wait', 'set-weights', 'checkout', 'stable=0', 'canary=100');
is($r->{exit}, 0, 'set-weights --wait: exit 0') or diag(Test::More::explain($r));
my ($rev) = $r->{out} =~ /^etcd: ok, revision (\d+), \/dynroute\/rollouts\/checkout \{"weights":\{"stable":0,"canary":100\}\}$/m;
ok($rev, 'set-weights: the revision and the object written') or diag($r->{out});
like($r->{out}, qr/^every agent \(1\) at revision \d+ or later after [\d.]+ s$/m,
     'set-weights --wait: every agent has it');
is(fleet()->{revision}, $rev, 'set-weights: GET {prefix}fleet has the revision');
is_deeply(spread(10), { 'service_b canary' => 10 }, 'set-weights: every user on canary');
like(http_get($srv, '/dynroute/metrics')->{body}, qr/^dynroute_fleet_revision(\{[^}]*\})? $rev$/m,
     'set-weights: dynroute_fleet_revision');

$r = ctl('--wait', 'flip', 'checkout', 'canary', 'service_c');
is($r->{exit}, 0, 'flip --wait: exit 0') or diag(Test::More::explain($r));
like($r->{out}, qr/\{"weights":\{"stable":0,"canary":100\},"upstreams":\{"canary":"service_c"\}\}$/m,
     'flip: the object keeps the weights');
is_deeply(spread(10), { 'service_c canary' => 10 }, 'flip: the canary on service_c');

$r = ctl('--wait', 'primary', 'checkout', 'canary');
is($r->{exit}, 0, 'primary --wait: exit 0') or diag(Test::More::explain($r));
my (undef, $state) = api_get('');
is($state->{rollouts}{checkout}{primary}, 'canary', 'primary: the node has it');

$r = ctl('--wait', 'host', 'add', 'Tenant1.example.com', 'service_b');
is($r->{exit}, 0, 'host add --wait: exit 0') or diag(Test::More::explain($r));
is(host_answer('tenant1.example.com'), "service_b\n", 'host add: routed to its target');
$r = ctl('--wait', 'host', 'rm', 'tenant1.example.com');
is($r->{exit}, 0, 'host rm --wait: exit 0') or diag(Test::More::explain($r));
is(host_answer('tenant1.example.com'), "service_a\n", 'host rm: back to the default');
$r = ctl('host', 'rm', 'tenant1.example.com');
is($r->{exit}, 1, 'host rm of a host not in etcd: exit 1');
like($r->{err}, qr/^dynroutectl: \/dynroute\/hosts\/tenant1\.example\.com is not in etcd$/m,
     'host rm of a host not in etcd: said so');

$r = ctl('--wait', 'drain', 'n1');
is($r->{exit}, 0, 'drain n1 --wait: exit 0') or diag(Test::More::explain($r));
is(http_get($srv, '/ready')->{status}, 503, 'drain n1: readiness answers 503');
$r = ctl('--wait', 'ready', 'n1');
is($r->{exit}, 0, 'ready n1 --wait: exit 0') or diag(Test::More::explain($r));
is(http_get($srv, '/ready')->{status}, 200, 'ready n1: readiness answers 200');

$r = ctl('drain', 'n2');
is($r->{exit}, 1, 'drain n2, no such node: exit 1');
is($r->{err}, 'dynroutectl: not written to etcd: no node "n2": no agent of that name is '
              . "registered under /dynroute/agents/ (registered: n1)\n",
   'drain n2, no such node: refused before the write, and says why');
is(etcdctl($etcd, 'get', '--print-value-only', '/dynroute/nodes/n2/drain')->{out}, '',
   'drain n2, no such node: nothing in etcd');
# a node etcd has a drain flag of is known, with or without its agent
$r = etcdctl($etcd, 'put', '/dynroute/nodes/n2/drain', 'false');
$r = ctl('--wait', '--timeout', '0.5', 'drain', 'n2');
is($r->{exit}, 1, 'drain n2 --wait, a flag but no agent: exit 1');
like($r->{err}, qr/^dynroutectl: after 0\.5 s, 1 of 1 agents lag behind revision \d+: n2 not registered$/m,
     'drain n2 --wait: the lagging node is named') or diag($r->{err});
is(http_get($srv, '/ready')->{status}, 200, 'drain n2: n1 still ready');

# ---- refused changes --------------------------------------------------------------

$r = etcdctl($etcd, 'put', '/dynroute/hosts/bad.example.com', '{"target": 5}');
is($r->{exit}, 0, 'etcdctl put of a malformed host');
$r = etcdctl($etcd, 'put', '/dynroute/rollouts/checkout', 'stable=100');
is($r->{exit}, 0, 'etcdctl put of a rollout that is not JSON');
ok(agent_log_has(qr{^dynroute-agent: revision \d+ /dynroute/hosts/bad\.example\.com: refused: malformed value}m),
   'the malformed host: a log line naming the key') or diag(slurp($agent_log));
ok(agent_log_has(qr{^dynroute-agent: revision \d+ /dynroute/rollouts/checkout: refused: malformed value: not JSON$}m),
   'the rollout that is not JSON: a log line naming the key');
is_deeply(spread(10), { 'service_c canary' => 10 }, 'the malformed rollout: nothing changed');
is(host_answer('bad.example.com'), "service_a\n", 'the malformed host: not added');

$r = ctl('set-weights', 'checkout', 'stable=100');
is($r->{exit}, 1, 'set-weights on a value that is not JSON: exit 1');
like($r->{err}, qr/rollouts\/checkout holds no JSON/, 'set-weights on a value that is not JSON: said so');

$r = ctl('--wait', 'host', 'add', 'tenant2.example.com', 'service_b');
is($r->{exit}, 0, 'a later change: exit 0') or diag(Test::More::explain($r));
is(host_answer('tenant2.example.com'), "service_b\n", 'a later change applies');

$r = ctl('--wait', 'reset', 'checkout');
is($r->{exit}, 0, 'reset of the malformed rollout: exit 0') or diag(Test::More::explain($r));
is_deeply(spread(10), { 'service_a stable' => 10 }, 'reset: back to the configuration');

$r = ctl('--wait', 'flip', 'checkout', 'canary', 'no_such_upstream');
is($r->{exit}, 1, 'a flip to an upstream the node does not have: exit 1');
is($r->{err}, 'dynroutectl: not written to etcd: /dynroute/rollouts/checkout upstreams.canary: '
              . 'upstream "no_such_upstream" is unknown to n1 (what the agents report under '
              . "/dynroute/agents/)\n",
   'a flip to an upstream the node does not have: refused before the write');
$r = ctl('--wait', 'set-weights', 'checkout', 'stable=60', 'canary=60');
is($r->{exit}, 1, 'weights nginx refuses: --wait exits 1');
like($r->{err}, qr/^dynroutectl: revision \d+ reached every agent, but n1 refused weights: 400 \S/m,
     'weights nginx refuses: --wait names the node, the part, the status and the text') or diag($r->{err});
ok(agent_log_has(qr{/dynroute/rollouts/checkout: refused weights: 400 }), 'weights nginx refuses: logged');
$r = ctl('--wait', 'host', 'add', 'tenant3.example.com', 'service_c');
is($r->{exit}, 0, 'the change after the refused one: exit 0') or diag(Test::More::explain($r));
is(host_answer('tenant3.example.com'), "service_c\n", 'the change after the refused one applies');
$r = ctl('--json', 'status');
my $agent = json_of($r->{out})->{keys}{'agents/n1'}{value} // {};
is_deeply([ map { $_->{key} } @{ $agent->{errors} // [] } ],
          [ '/dynroute/hosts/bad.example.com', '/dynroute/rollouts/checkout',
            '/dynroute/rollouts/checkout' ],
          'agents/n1 lists the refused changes') or diag($r->{out});

# ---- compare-and-swap ---------------------------------------------------------

$r = ctl('--wait', 'flip', 'checkout', 'canary', 'service_b');
is($r->{exit}, 0, 'flip back to an upstream nginx has') or diag(Test::More::explain($r));
like($r->{out}, qr/^etcd: ok, revision \d+, \/dynroute\/rollouts\/checkout \{"upstreams":\{"canary":"service_b"\}\}$/m,
     'the flip: the weights n1 refused are not written again');
like($r->{err}, qr/^dynroutectl: left out of \/dynroute\/rollouts\/checkout what it had before and nodes cannot apply: weights: n1 refused it: 400 \S/,
     'the flip: says what it left out, and why');
my $seen = json_of(ctl('--json', 'show', 'checkout')->{out})->{revision};
ok($seen, 'show --json: the revision of the object');
$r = ctl('set-weights', 'checkout', 'stable=50', 'canary=50');
is($r->{exit}, 0, 'someone else changes the rollout');
$r = ctl('--if-match', $seen, 'set-weights', 'checkout', 'stable=0', 'canary=100');
is($r->{exit}, 1, 'a write against the revision read before: exit 1');
is($r->{err}, "dynroutectl: /dynroute/rollouts/checkout changed by someone else, try again\n",
   'a write against the revision read before: changed by someone else');
$r = ctl('--json', 'show', 'checkout');
is_deeply(json_of($r->{out})->{value}{weights}, { stable => 50, canary => 50 },
          'the losing write changed nothing');
$seen = json_of($r->{out})->{revision};
$r = ctl('--wait', '--if-match', $seen, 'set-weights', 'checkout', 'stable=25', 'canary=75');
is($r->{exit}, 0, 'a write against the current revision: exit 0') or diag(Test::More::explain($r));
my $quarter = spread(40);
ok($quarter->{'service_a stable'} && $quarter->{'service_b canary'},
   'the winning write reaches the proxy') or diag(Test::More::explain($quarter));

# a value put by hand without upstreams: the node has the configured ones
$r = ctl('--wait', 'flip', 'checkout', 'canary', 'service_c');
is($r->{exit}, 0, 'flip to service_c') or diag(Test::More::explain($r));
$r = etcdctl($etcd, 'put', '/dynroute/rollouts/checkout', '{"weights": {"canary": 100}}');
is($r->{exit}, 0, 'etcdctl put of a rollout with weights only');
ok(wait_for(10, sub { (spread(5)->{'service_b canary'} // 0) == 5 }),
   'weights only: every user on canary, on its configured upstream')
    or diag(Test::More::explain(spread(5)));

# ---- etcd stopped and started while the agent runs ----------------------------

# a malformed value over a good one: refused, the node keeps the good one,
# and so does the full read after etcd comes back
$r = etcdctl($etcd, 'put', '/dynroute/hosts/tenant3.example.com', 'oops');
ok(agent_log_has(qr{/dynroute/hosts/tenant3\.example\.com: refused: malformed value: not JSON$}m),
   'a malformed value over a good one: refused');
my ($before) = slurp($agent_log) =~ m{^dynroute-agent: revision (\d+) /dynroute/hosts/tenant3\.example\.com: refused}m;
ok(wait_for(10, sub { fleet()->{revision} == $before }), 'and its revision reported');
stop_proc($etcd->{pid}, 'TERM');
ok(wait_for(15, sub { fleet()->{stale} }), 'etcd stopped: the agent reports stale')
    or diag(slurp($agent_log));
is(fleet()->{revision}, $before, 'etcd stopped: the revision applied stays');
is(host_answer('tenant3.example.com'), "service_c\n", 'etcd stopped: nginx still routes by it');
ok(start_etcd($etcd) && etcd_ready(20, $etcd), 'etcd started again');
ok(wait_for(15, sub { !fleet()->{stale} }), 'etcd back: not stale');
is(host_answer('tenant3.example.com'), "service_c\n",
   'etcd back: the full read keeps the host whose value is malformed');
$r = ctl('host', 'add', 'tenant4.example.com', 'service_b', '--wait');
is($r->{exit}, 0, 'etcd back: a change --wait: exit 0') or diag(Test::More::explain($r));
is(host_answer('tenant4.example.com'), "service_b\n", 'etcd back: the change applies');

# ---- SIGTERM --------------------------------------------------------------------

my $status = stop_proc($agent_pid, 'TERM');
is($status, 0, 'SIGTERM: the agent exits 0');
like(slurp($agent_log), qr/lease revoked, agents\/n1 removed/, 'SIGTERM: the lease revoked');
is(etcdctl($etcd, 'get', '--print-value-only', '/dynroute/agents/n1')->{out}, '',
   'SIGTERM: agents/n1 is gone');
stop_proc($etcd->{pid}, 'TERM');

my $log = stop_nginx($srv);
error_log_ok($log, 'no alert/crit/crash');
unlike(slurp($agent_log), qr/Traceback/, 'the agent printed no traceback')
    or diag(slurp($agent_log));

done_testing();
