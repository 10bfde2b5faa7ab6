# A value in etcd that no node can apply must not stop the changes after it
# (issue 25): one etcd (Debian's /usr/bin/etcd on free loopback ports), three
# nginx nodes (tools_node) and their tools/dynroute-agent, edge1 to edge3.
#
#   - dynroutectl --etcd checks a change against what the agents report
#     their nodes have (agents/NODE's "node") and refuses, before it writes,
#     an upstream, variant, rollout or target that a node does not have,
#     and a node name that no agent has;
#   - a value put by hand with a part no node can apply: each agent applies
#     the parts it can (the weights move) and reports the part it refused;
#   - the next set-weights --wait writes the weights without the bad part,
#     and every node has them;
#   - doctor lists a value nodes refused, with their reason, and
#     doctor --fix clears it.
#
# Run by `make test-fleet`.  About 10 s.
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
my @names = qw(edge1 edge2 edge3);
my %agent_log = map { ($_ => "$dir/agent-$_.log") } @names;

# On failure, what the agents said; then the module stops ours.
END {
    my $status = $?;
    if (!Test::More->builder->is_passing) {
        Test::More::diag("--- agent $_:\n" . tail_of(slurp($agent_log{$_}) // '', 30))
            for grep { -e $agent_log{$_} } @names;
    }
    $? = $status;
}

my ($client, $peer) = free_ports(2);
my $etcd = { name => 'poison1', dir => "$dir/etcd", log => "$dir/etcd.log",
             client => $client, peer => $peer };
ok(start_etcd($etcd) && etcd_ready(20, $etcd), 'etcd started')
    or BAIL_OUT("etcd did not start:\n" . slurp($etcd->{log}));
my $endpoint = etcd_endpoint($etcd);

sub ctl { return run_cmd(tool_cmd('dynroutectl'), '--etcd', $endpoint, @_) }

sub etcd_value {
    return etcdctl($etcd, 'get', '--print-value-only', $_[0])->{out};
}

# The nodes (tools_node): the rollout checkout (stable service_a *, canary
# service_b 0%), the table main; the API at /dynroute/.
my (%srv, %agent);
for my $name (@names) {
    $srv{$name} = start_nginx(tools_node());
    $agent{$name} = spawn("agent $name", $agent_log{$name}, tool_cmd('dynroute-agent'),
                          '--etcd', $endpoint, '--node', $name,
                          '--api', "http://127.0.0.1:$srv{$name}{port}/dynroute/");
}

sub weights_of {
    my ($name) = @_;
    my $r = json_of(http_get($srv{$name}, '/dynroute/rollouts/checkout')->{body}) // {};
    my $v = $r->{variants} // {};
    return join ' ', map { "$_=" . ($v->{$_}{weight} // '?') . ":" . ($v->{$_}{upstream} // '?') }
                     sort keys %$v;
}

sub every_node_has {
    my ($want) = @_;
    return wait_for(10, sub { !grep { weights_of($_) ne $want } @names });
}

# the agents' reports, as dynroutectl --etcd --json status reads them
sub agents {
    my $keys = json_of(ctl('--json', 'status')->{out})->{keys} // {};
    return { map { (substr($_, 7) => $keys->{$_}{value}) } grep { m{^agents/} } keys %$keys };
}

ok(wait_for(20, sub { my $a = agents(); !grep { !$a->{$_}{node} } @names }),
   'every agent reports what its node has') or diag(explain(agents()));
is_deeply(agents()->{edge1}{node},
          { rollouts => { checkout => [qw(canary stable)] }, tables => ['main'],
            upstreams => [qw(service_a service_b)] },
          "agents/edge1: the node's rollouts, tables and upstreams");

# ---- refused before the write ---------------------------------------------

my $where = '(what the agents report under /dynroute/agents/)';
for my $case (
    [ [qw(flip checkout canary nope)],
      '/dynroute/rollouts/checkout upstreams.canary: upstream "nope" is unknown to edge1, edge2, edge3' ],
    [ [qw(flip checkout nope service_a)],
      '/dynroute/rollouts/checkout upstreams.nope: variant "nope" is unknown to edge1, edge2, edge3' ],
    [ [qw(set-weights checkout stable=50 nope=50)],
      '/dynroute/rollouts/checkout weights: variant "nope" is unknown to edge1, edge2, edge3' ],
    [ [qw(primary checkout nope)],
      '/dynroute/rollouts/checkout primary: variant "nope" is unknown to edge1, edge2, edge3' ],
    [ [qw(set-weights shop stable=100)],
      '/dynroute/rollouts/shop rollout "shop" is unknown to edge1, edge2, edge3' ]) {
    my ($cmd, $why) = @$case;
    my $r = ctl(@$cmd);
    is($r->{exit}, 1, "@$cmd: exit 1");
    is($r->{err}, "dynroutectl: not written to etcd: $why $where\n", "@$cmd: says why")
        or diag($r->{err});
    is($r->{out}, '', "@$cmd: prints no write");
}
is(etcd_value('/dynroute/rollouts/checkout'), '', 'the refused changes: nothing in etcd');

my $r = ctl(qw(host add x.example.com nope));
is($r->{exit}, 1, 'host add to an unknown target: exit 1');
is($r->{err}, qq(dynroutectl: not written to etcd: target "nope" is unknown to edge1, edge2, edge3 $where\n),
   'host add to an unknown target: says why');
$r = ctl(qw(host add x.example.com service_b --table nope));
like($r->{err}, qr/^dynroutectl: not written to etcd: table "nope" is unknown to edge1, edge2, edge3 /,
     'host add to an unknown table: says why');
is(etcd_value('/dynroute/hosts/x.example.com'), '', 'the refused hosts: nothing in etcd');

$r = ctl(qw(drain edge9));
is($r->{exit}, 1, 'drain edge9, no such node: exit 1');
is($r->{err}, 'dynroutectl: not written to etcd: no node "edge9": no agent of that name is '
              . "registered under /dynroute/agents/ (registered: edge1, edge2, edge3)\n",
   'drain edge9: says why, and which nodes there are');
is(etcd_value('/dynroute/nodes/edge9/drain'), '', 'drain edge9: nothing in etcd');

$r = ctl(qw(--wait flip checkout canary service_a));
is($r->{exit}, 0, 'a flip every node can apply: exit 0') or diag(explain($r));
ok(every_node_has('canary=0:service_a stable=100:service_a'), 'the flip: every node has it');

# ---- a value no node can apply in part, put by hand ------------------------

$r = etcdctl($etcd, 'put', '/dynroute/rollouts/checkout',
             '{"weights":{"stable":50,"canary":50},"upstreams":{"canary":"nope"}}');
is($r->{exit}, 0, 'etcdctl put of weights with an upstream no node has');
ok(every_node_has('canary=50:service_a stable=50:service_a'),
   'the agents apply the part they can: the weights move on every node')
    or diag(join "\n", map { "$_: " . weights_of($_) } @names);
ok(wait_for(10, sub {
       my $a = agents();
       3 == grep { grep { ($_->{part} // '') eq 'upstreams.canary' } @{ $a->{$_}{errors} // [] } } @names
   }), 'each agent reports the part its node refused, by name') or diag(explain(agents()));
like(slurp($agent_log{edge1}), qr{^dynroute-agent: revision \d+ /dynroute/rollouts/checkout: refused upstreams\.canary: 400 \S}m,
     'the agent logs the refused part');

$r = ctl('doctor');
is($r->{exit}, 1, 'doctor: a value refused: exit 1');
like($r->{out}, qr{^etcd: revision \d+: 1 value that nodes refuse or cannot apply\n  /dynroute/rollouts/checkout \(revision \d+\): \{"weights":\{"stable":50,"canary":50\},"upstreams":\{"canary":"nope"\}\}\n    upstreams\.canary: edge1, edge2, edge3 refused it: 400 \S.*\nto clear them: dynroutectl --etcd \.\.\. doctor --fix\n\z},
     "doctor: the value, its part and the nodes' reason") or diag($r->{out});

$r = ctl(qw(set-weights checkout stable=0 canary=100 --wait));
is($r->{exit}, 0, 'set-weights --wait after the bad value: exit 0') or diag(explain($r));
like($r->{out}, qr{^etcd: ok, revision \d+, /dynroute/rollouts/checkout \{"weights":\{"stable":0,"canary":100\}\}$}m,
     'set-weights: writes the weights, not the bad part');
like($r->{err}, qr{^dynroutectl: left out of /dynroute/rollouts/checkout what it had before and nodes cannot apply: upstreams\.canary: upstream "nope" is unknown to edge1, edge2, edge3; upstreams\.canary: edge1, edge2, edge3 refused it: 400 [^\n]+\n\z},
     'set-weights: says what it left out, and why') or diag($r->{err});
like($r->{out}, qr/^every agent \(3\) at revision \d+ or later after [\d.]+ s$/m,
     'set-weights --wait: every agent has it');
ok(every_node_has('canary=100:service_b stable=0:service_a'),
   'set-weights: the weights moved on every node');

$r = ctl('doctor');
is($r->{exit}, 0, 'doctor after the set-weights: exit 0') or diag(explain($r));
like($r->{out}, qr/^etcd: revision \d+: no value in etcd is refused by a node or unknown to one\n\z/,
     'doctor after the set-weights: nothing to clear');

# ---- doctor --fix -----------------------------------------------------------

$r = etcdctl($etcd, 'put', '/dynroute/rollouts/checkout',
             '{"upstreams":{"canary":"nope"},"primary":"canary"}');
$r = etcdctl($etcd, 'put', '/dynroute/hosts/bad.example.com', 'oops');
ok(wait_for(10, sub {
       my $a = agents();
       3 == grep { my $e = $a->{$_}{errors} // [];
                   (grep { ($_->{part} // '') eq 'upstreams.canary' && $_->{key} =~ /checkout/ } @$e)
                   && grep { $_->{key} =~ /bad\.example\.com/ } @$e } @names
   }), 'a bad part and a malformed host: every agent reports both') or diag(explain(agents()));
my $primary_seen = !grep {
    (json_of(http_get($srv{$_}, '/dynroute/rollouts/checkout')->{body}) // {})->{primary} ne 'canary'
} @names;
ok($primary_seen, 'the part the nodes can apply, the primary, is applied');

$r = ctl('doctor');
is($r->{exit}, 1, 'doctor: two values: exit 1');
like($r->{out}, qr{^  /dynroute/hosts/bad\.example\.com \(revision \d+\): "oops"\n    edge1, edge2, edge3 refused it: malformed value: not JSON$}m,
     'doctor: the malformed host, with the reason') or diag($r->{out});
like($r->{out}, qr{^    upstreams\.canary: edge1, edge2, edge3 refused it: 400 }m,
     'doctor: the refused part of the rollout');

$r = ctl(qw(doctor --fix --wait));
is($r->{exit}, 0, 'doctor --fix --wait: exit 0') or diag(explain($r));
like($r->{out}, qr{^etcd: fixed, revision \d+, /dynroute/hosts/bad\.example\.com removed$}m,
     'doctor --fix: the malformed host removed');
like($r->{out}, qr{^etcd: fixed, revision \d+, /dynroute/rollouts/checkout \{"primary":"canary"\}$}m,
     'doctor --fix: the rollout without its bad part');
like($r->{out}, qr/^every agent \(3\) at revision \d+ or later after [\d.]+ s$/m,
     'doctor --fix --wait: every agent has it');
is(etcd_value('/dynroute/hosts/bad.example.com'), '', 'doctor --fix: the host is gone from etcd');
is(etcd_value('/dynroute/rollouts/checkout'), "{\"primary\":\"canary\"}\n",
   'doctor --fix: the rollout keeps what the nodes apply');
$r = ctl('doctor');
is($r->{exit}, 0, 'doctor after --fix: exit 0') or diag(explain($r));

# a later change reaches every node
$r = ctl(qw(set-weights checkout stable=100 --wait));
is($r->{exit}, 0, 'a later set-weights --wait: exit 0') or diag(explain($r));
is($r->{err}, '', 'a later set-weights: nothing left out');
ok(every_node_has('canary=0:service_b stable=100:service_a'), 'a later set-weights: on every node');

# ---- --force: the operator's word over the agents' reports -------------------

$r = ctl(qw(flip checkout canary nope --force));
is($r->{exit}, 0, 'flip to an upstream no node has, --force: exit 0') or diag(explain($r));
is($r->{err}, "dynroutectl: --force: not checked against what the agents report\n",
   'flip --force: says it did not check');
my $forced = json_of(etcd_value('/dynroute/rollouts/checkout')) // {};
is($forced->{upstreams}{canary}, 'nope', 'flip --force: written as said');
is_deeply($forced->{weights}, { stable => 100 }, 'flip --force: with the weights it had');
ok(wait_for(10, sub {
       my $a = agents();
       3 == grep { grep { ($_->{part} // '') eq 'upstreams.canary' } @{ $a->{$_}{errors} // [] } }
                 @names
   }), 'flip --force: every agent reports the part it refuses') or diag(explain(agents()));
ok(every_node_has('canary=0:service_b stable=100:service_a'),
   'flip --force: every node keeps the weights, and its upstream');
$r = ctl('doctor');
is($r->{exit}, 1, 'doctor after flip --force: exit 1');
like($r->{out}, qr{^    upstreams\.canary: edge1, edge2, edge3 refused it: 400 }m,
     'doctor after flip --force: the refused part') or diag($r->{out});
$r = ctl(qw(set-weights checkout stable=90 canary=10 --force --wait));
is($r->{exit}, 1, 'set-weights --force --wait with the bad part kept: exit 1, refused')
    or diag(explain($r));
like($r->{err}, qr/refused/, 'set-weights --force --wait: names the refusal') or diag($r->{err});
$r = ctl(qw(doctor --fix --wait));
is($r->{exit}, 0, 'doctor --fix --wait after --force: exit 0') or diag(explain($r));
ok(every_node_has('canary=10:service_b stable=90:service_a'),
   'doctor --fix: the weights written with --force reach every node');

$r = ctl(qw(status --force));
is($r->{exit}, 2, 'status --force: a usage error');
like($r->{err}, qr/--force is for the commands that write a change/, 'status --force: says why');

# ---- the end ---------------------------------------------------------------

for my $name (@names) {
    is(stop_proc($agent{$name}, 'TERM'), 0, "agent $name: SIGTERM, exit 0");
    unlike(slurp($agent_log{$name}), qr/Traceback/, "agent $name: no traceback");
    error_log_ok(stop_nginx($srv{$name}), "node $name: no alert/crit/crash");
}
stop_proc($etcd->{pid}, 'TERM');

done_testing();
