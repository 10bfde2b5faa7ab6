# A guard's trip reaches the fleet: a 3-member etcd cluster, 3 nginx nodes,
# each with the rollout shop (stable 90 %, canary 10 %) and its guard, and
# one tools/dynroute-agent per node, all started here and stopped by PID.
# Traffic runs on every node; the canary backend of ONE node answers 500:
#
#   - that node's guard trips (origin "local"), its agent writes the trip to
#     etcd's rollouts/shop, the other agents apply it: every node at 0 %
#     within 2.5 s of the first failure (the time printed with diag), the
#     other nodes with origin "fleet", and only that node's traffic saw a
#     failure;
#   - dynroutectl shows the trip, on a node and in etcd;
#   - the agents restarted: nothing moves, nothing is written again;
#   - an operator's write through etcd (dynroutectl --etcd set-weights)
#     clears the trip on every node;
#   - etcd stopped: the node still trips on its own, nothing reaches the
#     others; etcd back: its agent writes the trip, and every node follows.
#
# Run by `make test-fleet`.  About 20 s.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use File::Temp ();
use IO::Socket::IP ();
use JSON::PP ();
use POSIX ();
use Test::More ();
use Time::HiRes ();

Test::More::plan(skip_all => "$ETCD is missing (make fleet-deps installs Debian's etcd-server)")
    unless -x $ETCD;

$SIG{PIPE} = 'IGNORE';
delete @ENV{qw(DYNROUTE_NODES DYNROUTE_ETCD_PASSWORD http_proxy https_proxy
               HTTP_PROXY HTTPS_PROXY ETCDCTL_ENDPOINTS)};
$ENV{ETCDCTL_API} = 3;

my $PREFIX = '/dynroute/';
my $KEY    = "${PREFIX}rollouts/shop";
my $dir = File::Temp::tempdir('dynroute-guardXXXXXX', TMPDIR => 1,
                              CLEANUP => $ENV{TEST_NGINX_NO_CLEAN} ? 0 : 1);
sub now { Time::HiRes::time() }

#------------------------------------------------------------------ etcd: 3 members

my @M = map { { name => "m$_", dir => "$dir/etcd-m$_", log => "$dir/etcd-m$_.log" } } 1 .. 3;
{
    my @p = free_ports(6);
    @{$_}{qw(client peer)} = splice @p, 0, 2 for @M;
}
my $CLUSTER = join ',', map { "$_->{name}=http://127.0.0.1:$_->{peer}" } @M;
$_->{cluster} = $CLUSTER for @M;
my $ENDPOINTS = etcd_endpoint(@M);
my @ETCD_FLAGS = ('--initial-cluster-token', "dynroute-guard-test-$$",
                  '--initial-cluster-state', 'new', '--logger', 'zap',
                  '--log-outputs', 'stderr', '--log-level', 'warn');

sub etcd_start {
    start_etcd($_, @ETCD_FLAGS) for @M;
    return etcd_ready(30, @M);
}

sub etcd_stop { stop_proc($_->{pid}, 'TERM', 10) for @M }

# etcd's rollouts/shop: (decoded value or undef, mod revision or 0).
sub etcd_value {
    my $r = etcdctl(\@M, '--dial-timeout=2s', '--command-timeout=5s',
                    '-w', 'json', 'get', $KEY);
    my $kv = (json_of($r->{out})->{kvs} || [])->[0] or return (undef, 0);
    require MIME::Base64;
    return (json_of(MIME::Base64::decode_base64($kv->{value})), $kv->{mod_revision});
}

#------------------------------------------------------------------ 3 nodes

my @N = map { { name => "n$_", agent_log => "$dir/agent-n$_.log",
                fail => "$dir/n$_.fail", first_500 => "$dir/n$_.first500",
                load_log => "$dir/load-n$_.log" } } 1 .. 3;
{
    my @p = free_ports(4 * @N);
    @{$_}{qw(traffic api ba bb)} = splice @p, 0, 4 for @N;
}

# The canary's backend answers 500 while the node's fail file exists.
sub http_config_of {
    my ($n) = @_;
    my $c = <<'CONF';
    keepalive_requests 1000000;
    upstream service_a { server 127.0.0.1:@BA@; keepalive 8; }
    upstream service_b { server 127.0.0.1:@BB@; keepalive 8; }
    server { listen 127.0.0.1:@BA@; access_log off;
             location / { return 200 "service_a\n"; } }
    server { listen 127.0.0.1:@BB@; access_log off;
             location / { if (-f @FAIL@) { return 500 "failing\n"; }
                          return 200 "service_b\n"; } }

    dynroute_zone routes 4m state=@DIR@/@NAME@.state;

    dynroute_rollout shop {
        variant  stable  service_a  90%;
        variant  canary  service_b  10%;
        key      $http_x_user;
        guard    errors=5% window=2s interval=100ms min_requests=10;
    }
    dynroute_table main {
        shop.example.com  shop;
        default           service_a;
    }

    server {
        listen 127.0.0.1:@TRAFFIC@;
        access_log off;
        location / {
            dynroute            main;
            proxy_pass          http://$dynroute_upstream;
            proxy_http_version  1.1;
            proxy_set_header    Connection "";
            add_header          X-Variant $dynroute_variant always;
        }
    }
    server {
        listen 127.0.0.1:@API@;
        access_log off;
        location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
    }
CONF
    my %v = (BA => $n->{ba}, BB => $n->{bb}, FAIL => $n->{fail}, DIR => $dir,
             NAME => $n->{name}, TRAFFIC => $n->{traffic}, API => $n->{api});
    $c =~ s/\@(\w+)\@/$v{$1}/g;
    return $c;
}

# One HTTP/1.0 request to a port of ours: (status, body); (0, error).
sub request {
    my ($port, $method, $path, $headers) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                Proto => 'tcp', Timeout => 2) or return (0, "$!");
    my $req = "$method $path HTTP/1.0\r\nHost: " . (($headers || {})->{Host} // 'localhost') . "\r\n";
    $req .= "$_: $headers->{$_}\r\n" for grep { $_ ne 'Host' } sort keys %{ $headers || {} };
    print {$s} "$req\r\n";
    local $/;
    my $res = <$s> // '';
    close $s;
    my ($status) = $res =~ m{\AHTTP/1\.[01] (\d{3})} or return (0, 'no answer');
    my ($body) = $res =~ /\r\n\r\n(.*)\z/s;
    return ($status, $body // '');
}

# GET {prefix}rollouts/shop of a node, decoded (undef without an answer).
sub shop_of {
    my ($n) = @_;
    my ($status, $body) = request($n->{api}, 'GET', "${PREFIX}rollouts/shop");
    return $status == 200 ? json_of($body) : undef;
}

sub canary_weight {
    my ($n) = @_;
    my $r = shop_of($n) or return -1;
    return $r->{variants}{canary}{weight};
}

sub trip_of {
    my ($n) = @_;
    my $r = shop_of($n) or return undef;
    return ($r->{guard} || {})->{tripped};
}

sub origin_of {
    my $t = trip_of(@_);
    return $t ? "$t->{variant} $t->{origin}" : 'none';
}

sub weights_text {
    return join ', ', map {
        my $r = shop_of($_);
        "$_->{name}: " . ($r ? join(' ', map { "$_=$r->{variants}{$_}{weight}" }
                                         sort keys %{ $r->{variants} })
                               . ' trip ' . origin_of($_)
                             : 'no answer');
    } @N;
}

#------------------------------------------------------------------ agents, load

sub agent_start {
    my ($n) = @_;
    $n->{agent} = spawn("agent $n->{name}", $n->{agent_log}, tool_cmd('dynroute-agent'),
                        '--etcd', $ENDPOINTS, '--prefix', $PREFIX, '--node', $n->{name},
                        '--api', "http://127.0.0.1:$n->{api}$PREFIX");
}

sub agent_stop { my ($n) = @_; stop_proc($n->{agent}, 'TERM', 10); undef $n->{agent} }

sub agent_log_count {
    my ($n, $re) = @_;
    my @all = slurp($n->{agent_log}) =~ /$re/g;
    return scalar @all;
}

# The traffic of a node: a child of ours that sends requests to
# shop.example.com as random users, about 300 a second, until stopped; the
# time of the first 500 it gets goes to the node's first500 file.
sub load_start {
    my ($n) = @_;
    unlink $n->{first_500};
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        $SIG{TERM} = sub { POSIX::_exit(0) };
        my $seen = 0;
        while (1) {
            my ($status) = request($n->{traffic}, 'GET', '/',
                                   { Host => 'shop.example.com',
                                     'X-User' => 'u' . int(rand(1e9)) });
            if ($status == 500 && !$seen++) {
                open my $fh, '>', "$n->{first_500}.new" or POSIX::_exit(1);
                printf {$fh} "%.6f\n", now();
                close $fh;
                rename "$n->{first_500}.new", $n->{first_500};
            }
            Time::HiRes::sleep(0.003);
        }
    }
    $n->{load} = track($pid, "load of $n->{name}");
}

sub load_stop { my ($n) = @_; stop_proc($n->{load}, 'TERM', 5) if $n->{load}; undef $n->{load} }

sub first_500 {
    my ($n) = @_;
    return -f $n->{first_500} ? 0 + slurp($n->{first_500}) : undef;
}

END {
    my $status = $?;
    if (@N && $N[0]{agent_log} && !Test::More->builder->is_passing) {
        Test::More::diag("--- $_->{name}: agent's log (the end):\n"
                         . tail_of(slurp($_->{agent_log}), 40)) for @N;
        Test::More::diag("--- $_->{name}: error.log (the end):\n"
                         . tail_of(slurp($_->{srv}{error_log} // ''), 20)) for grep { $_->{srv} } @N;
    }
    $? = $status;
}

#------------------------------------------------------------------ setup

ok(etcd_start(), 'etcd: 3 members') or BAIL_OUT("etcd did not start:\n" . slurp($M[0]{log}));
for my $n (@N) {
    $n->{srv} = start_nginx(http_config => http_config_of($n),
                            config => "    location / { return 404; }\n", workers => 2);
    agent_start($n);
}
ok(wait_for(20, sub { !grep { slurp($_->{agent_log}) !~ /applied everything/ } @N }),
   'every agent read etcd');
is(weights_text(), 'n1: canary=10 stable=90 trip none, n2: canary=10 stable=90 trip none, '
                 . 'n3: canary=10 stable=90 trip none', 'every node at 90/10, no trip');
load_start($_) for @N;
Time::HiRes::sleep(2.5);            # a window of good traffic on every node
is(canary_weight($_), 10, "$_->{name}: good traffic, no trip") for @N;

#------------------------------------------------------------------ one node's canary fails

my ($A, $B, $C) = @N;
sub all_at_zero { return !grep { canary_weight($_) != 0 } @N }

spew($A->{fail}, "1\n");
ok(wait_for(10, sub { first_500($A) }, 0.01), 'n1: its traffic sees failures');
my %zero;                           # node => when it was first seen at 0 %
my $all = wait_for(10, sub {
    for my $n (@N) { $zero{$n->{name}} //= now() if canary_weight($n) == 0 }
    return keys %zero == @N ? now() : 0;
}, 0.01);
ok($all, 'every node at 0 %') or diag(weights_text());
my $took = $all ? $all - first_500($A) : 99;
diag(sprintf 'a trip on one node: every node of 3 at 0 %% %.2f s after the first '
     . 'failure (%s)', $took, join ', ', map { sprintf '%s %.2f s', $_->{name},
         ($zero{$_->{name}} // 99) - first_500($A) } @N);
cmp_ok($took, '<', 2.5, 'every node at 0 % within 2.5 s of the first failure');

is(origin_of($A), 'canary local', 'n1: the trip is its own');
is(origin_of($_), 'canary fleet', "$_->{name}: the trip is the fleet's") for $B, $C;
is(((shop_of($_) || {})->{variants} || {})->{stable}{weight}, 100, "$_->{name}: stable at 100 %") for @N;
is(first_500($_), undef, "$_->{name}: its traffic saw no failure") for $B, $C;
my ($value, $mod) = etcd_value();
is($value->{guard}{tripped}{variant}, 'canary', 'etcd: the value carries the trip');
is_deeply($value->{weights}, { stable => 100, canary => 0 }, 'etcd: the weights with canary at 0');
ok(!exists $value->{guard}{tripped}{origin}, 'etcd: no origin in the trip');
is((trip_of($B) || {})->{at}, (trip_of($A) || {})->{at}, 'n2: the time of the trip is n1\'s');
is(agent_log_count($A, qr/warning: rollouts\/shop: the guard tripped canary on this node/), 1,
   'n1: its agent wrote the trip once, at warn');
is(agent_log_count($_, qr/the guard tripped/), 0, "$_->{name}: its agent wrote nothing")
    for $B, $C;

#------------------------------------------------------------------ dynroutectl

my $r = run_cmd(tool_cmd('dynroutectl'), '--node', "http://127.0.0.1:$B->{api}$PREFIX",
                'show', 'shop');
like($r->{out}, qr/^    guard tripped canary at \S+ \S+ UTC: errors, .* \(seen on another node of the fleet\)$/m,
     'dynroutectl show: the trip, from the fleet') or diag($r->{out} . $r->{err});
$r = run_cmd(tool_cmd('dynroutectl'), '--etcd', $ENDPOINTS, 'show', 'shop');
like($r->{out}, qr/^  guard tripped canary at .*: errors/m, 'dynroutectl --etcd show: the trip')
    or diag($r->{out} . $r->{err});

#------------------------------------------------------------------ the agents restarted

for my $n (@N) {
    agent_stop($n);
    agent_start($n);
}
ok(wait_for(20, sub { !grep { agent_log_count($_, qr/applied everything/) < 2 } @N }),
   'agents restarted: every agent read etcd again');
Time::HiRes::sleep(1);
is(weights_text(), 'n1: canary=0 stable=100 trip canary local, n2: canary=0 stable=100 trip '
                 . 'canary fleet, n3: canary=0 stable=100 trip canary fleet',
   'agents restarted: every node as it was');
is((etcd_value())[1], $mod, 'agents restarted: nothing written to rollouts/shop');
is(agent_log_count($A, qr/the guard tripped/), 1, 'agents restarted: the trip not written again');

#------------------------------------------------------------------ an operator's write clears it

unlink $A->{fail};
$r = run_cmd(tool_cmd('dynroutectl'), '--etcd', $ENDPOINTS, 'set-weights', 'shop',
             'stable=90', 'canary=10', '--wait');
is($r->{exit}, 0, 'dynroutectl --etcd set-weights: exit 0') or diag($r->{err});
($value) = etcd_value();
ok(!exists $value->{guard}, 'set-weights: the value written without the trip')
    or diag(JSON::PP->new->canonical->encode($value));
ok(wait_for(5, sub { !grep { canary_weight($_) != 10 || trip_of($_) } @N }),
   'set-weights: every node at 90/10, the trip cleared') or diag(weights_text());

#------------------------------------------------------------------ etcd stopped

Time::HiRes::sleep(2.5);            # a window of good traffic again
etcd_stop();
spew($A->{fail}, "1\n");
ok(wait_for(10, sub { canary_weight($A) == 0 }, 0.02), 'etcd stopped: n1 trips on its own')
    or diag(weights_text());
is(origin_of($A), 'canary local', 'etcd stopped: n1\'s trip is its own');
my $at = (trip_of($A) || {})->{at};
Time::HiRes::sleep(1);
is(canary_weight($_), 10, "etcd stopped: $_->{name} stays at 10 %") for $B, $C;
is(agent_log_count($A, qr/the guard tripped/), 1, 'etcd stopped: no write (etcd is down)');
my $back = now();
ok(etcd_start(), 'etcd started again');
ok(wait_for(20, sub { all_at_zero() }, 0.05), 'etcd back: every node at 0 %')
    or diag(weights_text());
diag(sprintf 'etcd back: every node at 0 %% %.1f s after etcd was started again', now() - $back);
is(agent_log_count($A, qr/the guard tripped canary on this node/), 2, 'etcd back: n1\'s agent wrote the trip');
is(origin_of($A), 'canary local', 'etcd back: n1\'s trip is still its own');
is(origin_of($_), 'canary fleet', "etcd back: $_->{name} has the fleet's trip") for $B, $C;
($value) = etcd_value();
is($value->{guard}{tripped}{variant}, 'canary', 'etcd back: the value carries the trip');
is($value->{guard}{tripped}{at}, $at, 'etcd back: the trip made while etcd was down');
is((trip_of($A) || {})->{at}, $at, 'etcd back: n1 kept that trip (etcd\'s older value not applied over it)');

#------------------------------------------------------------------ the end

unlink $A->{fail};
load_stop($_) for @N;
agent_stop($_) for @N;
for my $n (@N) {
    error_log_ok(stop_nginx($n->{srv}), "$n->{name}: no alert/crit in error.log");
}
etcd_stop();
done_testing();
