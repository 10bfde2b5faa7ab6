# The fleet's agent carries stream{}'s runtime state: the keys
# stream/hosts/HOST and stream/rollouts/NAME under the prefix, written with
# etcdctl to a real etcd (Debian's, one member on loopback), reach a node's
# {prefix}stream/... as hosts/ and rollouts/ reach its http{} resources; a
# full read (the agent started again) deletes a stream host the node has and
# etcd has not; a malformed value is refused and named; the http keys go on
# beside them.  The node routes TLS connections by SNI to TLS backends of its
# own (certificates made here with openssl).
use strict;
use warnings;
use lib 't/lib';
use File::Temp ();
use Test::More ();
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use Test::Nginx::Dynroute::Api qw(api_call);
use Test::Nginx::Dynroute::Stream qw(stream_missing make_cert tls_backend
                                     tls_line);

Test::More::plan(skip_all => "$ETCD is missing (make fleet-deps installs Debian's etcd-server)")
    unless -x $ETCD;
my $why = stream_missing();
Test::More::plan(skip_all => $why) if $why;

delete $ENV{$_} for qw(DYNROUTE_NODES http_proxy HTTP_PROXY ETCDCTL_ENDPOINTS);
$ENV{ETCDCTL_API} = 3;

my $dir = File::Temp::tempdir(CLEANUP => 1);
make_cert($dir, "$_.test") for qw(a c d);
my ($agent_log, $etcd_log);

END {
    my $status = $?;
    if ($agent_log && !Test::More->builder->is_passing) {
        Test::More::diag("--- the agent's log:\n" . slurp($agent_log));
        Test::More::diag("--- etcd's log (the end):\n" . tail_of(slurp($etcd_log), 40));
    }
    $? = $status;
}

my ($etcd_port, $peer_port, $F1, $A, $C, $D) = free_ports(6);
$etcd_log = "$dir/etcd.log";
my $etcd = { name => 'fleet1', dir => "$dir/etcd", log => $etcd_log,
             client => $etcd_port, peer => $peer_port };
my $endpoint = etcd_endpoint($etcd);

# ---- the node: a stream table with a rollout, and an http table ------------------

my $backends = join '', map { tls_backend($_->[0], "$dir/$_->[1].test",
                                          "$_->[1] \$ssl_server_name") }
    [$A, 'a'], [$C, 'c'], [$D, 'd'];

my $srv = start_nginx(workers => 2, http_config => <<'CONF', config => <<'CONF',
    dynroute_zone routes 1m;
    upstream web_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "web_a\n"; }
    dynroute_table web {
        default  web_a;
    }
CONF
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
    location / {
        dynroute    web;
        proxy_pass  http://$dynroute_upstream;
    }
CONF
    main_config => <<"CONF");
stream {
    upstream a { server 127.0.0.1:$A; }
    upstream c { server 127.0.0.1:$C; }
    upstream d { server 127.0.0.1:$D; }

    dynroute_rollout db {
        variant  stable  a  100%;
        variant  canary  c  0%;
        key      \$ssl_preread_server_name;
    }

    dynroute_table sni {
        *.r.test    db;
        default     d;
    }

    server {
        listen 127.0.0.1:$F1;
        ssl_preread on;
        dynroute sni;
        proxy_pass \$dynroute_upstream;
    }
$backends}
CONF
my $api = "http://127.0.0.1:$srv->{port}/dynroute/";

sub up_of { my $l = tls_line($F1, $_[0]); $l =~ /^([acd]) / ? $1 : $l }

sub split_of {
    my %n;
    $n{up_of("u$_.r.test")}++ for 1 .. 20;
    return \%n;
}

sub put { return etcdctl($etcd, 'put', "/dynroute/$_[0]", $_[1]) }
sub del { return etcdctl($etcd, 'del', "/dynroute/$_[0]") }

$agent_log = "$dir/agent.log";
my $agent_pid;

sub start_agent {
    $agent_pid = spawn('agent', $agent_log, tool_cmd('dynroute-agent'),
                       '--etcd', $endpoint, '--node', 'n1', '--api', $api);
}

ok(start_etcd($etcd) && etcd_ready(20, $etcd), 'etcd started')
    or BAIL_OUT("etcd did not start:\n" . slurp($etcd_log));
start_agent();
ok(wait_for(15, sub { my (undef, $f) = api_call($srv, 'GET', '/dynroute/fleet');
                      $f && !$f->{stale} && $f->{revision} }),
   'the agent follows etcd') or diag(slurp($agent_log));

# ---- keys to the node --------------------------------------------------------------

is(up_of('new.test'), 'd', 'before: new.test takes the default');
is(put('stream/hosts/new.test', '{"target": "c"}')->{exit}, 0, 'put stream/hosts/new.test');
ok(wait_for(10, sub { up_of('new.test') eq 'c' }), 'the node routes new.test to c')
    or diag(slurp($agent_log));
my (undef, $h) = api_call($srv, 'GET', '/dynroute/stream/hosts/new.test');
is($h->{table}, 'sni', 'in the stream table');
my (undef, $hh) = api_call($srv, 'GET', '/dynroute/hosts');
is_deeply($hh->{hosts}, {}, 'not among the http hosts');

is(put('stream/rollouts/db', '{"weights": {"stable": 0, "canary": 100}}')->{exit}, 0,
   'put stream/rollouts/db');
ok(wait_for(10, sub { (split_of()->{c} // 0) == 20 }), 'every *.r.test name to the canary')
    or diag(slurp($agent_log));

# an http key beside them
is(put('hosts/shop.test', '{"target": "web_a"}')->{exit}, 0, 'put hosts/shop.test');
ok(wait_for(10, sub { my (undef, $x) = api_call($srv, 'GET', '/dynroute/hosts/shop.test');
                      ($x->{target} // '') eq 'web_a' }),
   'the http host reaches the http table');

# malformed: refused, named
is(put('stream/hosts/bad.test', '{"target": 5}')->{exit}, 0, 'put a malformed stream host');
ok(wait_for(10, sub { slurp($agent_log) =~ m{/dynroute/stream/hosts/bad\.test: refused: malformed value} }),
   'the agent refuses it, naming the key') or diag(slurp($agent_log));
# a stream host to an http upstream: the node refuses it
is(put('stream/hosts/wrong.test', '{"target": "web_a"}')->{exit}, 0,
   'put a stream host to an http upstream');
ok(wait_for(10, sub { slurp($agent_log) =~ m{/dynroute/stream/hosts/wrong\.test: refused: 400 "web_a" is neither} }),
   'the node refuses it, and the agent says why') or diag(slurp($agent_log));

# ---- a full read deletes what etcd does not have -------------------------------------

stop_proc($agent_pid);
my ($st) = api_call($srv, 'PUT', '/dynroute/stream/hosts/local.test', '{"target": "a"}');
is($st, 201, 'a stream host written to the node only, the agent stopped');
is(up_of('local.test'), 'a', 'it routes');
start_agent();
ok(wait_for(15, sub { up_of('local.test') eq 'd' }),
   'the agent, started again, deletes it: etcd has not') or diag(slurp($agent_log));
is(up_of('new.test'), 'c', 'and keeps what etcd has');
is(split_of()->{c} // 0, 20, 'the rollout too');

# ---- deleted keys ----------------------------------------------------------------------

is(del('stream/hosts/new.test')->{exit}, 0, 'del stream/hosts/new.test');
ok(wait_for(10, sub { up_of('new.test') eq 'd' }), 'new.test: the default again');
is(del('stream/rollouts/db')->{exit}, 0, 'del stream/rollouts/db');
ok(wait_for(10, sub { (split_of()->{a} // 0) == 20 }), 'the rollout: configured again');
my (undef, $ro) = api_call($srv, 'GET', '/dynroute/stream/rollouts/db');
ok(!$ro->{runtime}, 'no runtime values left');

stop_proc($agent_pid);
error_log_ok(stop_nginx($srv), 'no alert, crit or crash');
stop_proc($etcd->{pid});

done_testing();
