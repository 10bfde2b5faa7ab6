# A fleet on loopback: a 3-member etcd cluster, 3 nginx nodes with the
# runtime API and state=, and one tools/dynroute-agent per node, all started
# here by PID and stopped by PID on every way out.  It checks the failure
# behaviours of docs/fleet.md and measures how fast a change reaches every
# node.  Each check is a group of named tests, numbered as in the issue:
#
#   (1) etcd unreachable when an agent starts: nginx serves its persisted
#       state, the agent retries and reports that it is stale;
#   (2) one etcd member killed: changes still reach every node;
#   (3) all of etcd stopped while traffic runs: no request fails, and the
#       agents catch up when etcd is back;
#   (4) an agent killed and restarted, and a node's nginx restarted, while
#       changes are made: every node converges, nothing is lost or applied
#       out of order;
#   (5) malformed values put into etcd by hand (and a change a node
#       refuses): refused with a log line naming the key, the rest applies;
#   (6) 100 random changes with `dynroutectl --etcd ... --wait`: after each,
#       the 3 nodes route a fixed set of 1,000 keys identically, and as the
#       changes say; the convergence time of each (write acknowledged ->
#       the last node has applied it) gives p50/p99, reported with diag and
#       written to build/fleet-convergence.txt;
#   (7) membership: 100 servers registered and removed by hand under
#       services/pool/servers/ADDR reach every node's upstream pool, each
#       timed as in (6) (p50/p99 into build/fleet-convergence.txt too); an
#       instance registered with dynroutectl register --ttl 2 and killed
#       with SIGKILL leaves every node within TTL + 1 s.
#
# They run in the order setup (with the first half of (1): agents started
# before etcd), (6), (7), (2), (5), (4), (3), then the rest of (1): a whole
# restart with etcd down.  About 1 to 2 minutes.
#
# Run by `make test-fleet` (mk/fleet.mk installs etcd-server, etcd-client
# and what the agent needs).  Environment: as for the prove suite
# (TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES, TEST_NGINX_NO_CLEAN keeps the
# temporary directory with the etcd, agent and nginx logs), and ETCD,
# ETCDCTL (default /usr/bin/etcd, /usr/bin/etcdctl), FLEET_SEED (the seed
# of the random changes of (6); printed at the start).
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use Cwd ();
use File::Temp ();
use FindBin ();
use IO::Select ();
use IO::Socket::IP ();
use JSON::PP ();
use MIME::Base64 ();
use POSIX ();
use Socket ();
use Time::HiRes ();

my $ROOT    = Cwd::abs_path("$FindBin::Bin/../..");
my $AGENT   = tool_path('dynroute-agent');
my $CTL     = tool_path('dynroutectl');
my $PREFIX  = '/dynroute/';
my $CHANGES = 100;              # the random changes of (6)
my $KEYS    = 1000;             # the fixed keys every node must route alike
my $SEED    = $ENV{FLEET_SEED} // int(rand(1_000_000));

$SIG{PIPE} = 'IGNORE';
delete @ENV{qw(DYNROUTE_NODES http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
               ETCDCTL_ENDPOINTS)};
$ENV{ETCDCTL_API} = 3;

my $json = JSON::PP->new->canonical;
my $T0 = Time::HiRes::time();

for my $bin ($ETCD, $ETCDCTL, $PYTHON, $AGENT, $CTL) {
    ok(-x $bin, "$bin is there (make test-fleet installs what it needs)")
        or do { done_testing(); exit 1 };
}
note("random changes: FLEET_SEED=$SEED");
srand($SEED);

my $dir = File::Temp::tempdir('dynroute-fleetXXXXXX', TMPDIR => 1,
                              CLEANUP => $ENV{TEST_NGINX_NO_CLEAN} ? 0 : 1);
note("logs of etcd, the agents and nginx's state files: $dir");

#------------------------------------------------------------------ helpers

# Every process started here (etcd members, agents, the clients of the
# test) is made ours with Test::Nginx::Dynroute::Proc (spawn, track): it
# stops them by PID on every way out, clients and agents first, then etcd,
# before File::Temp removes the directory.

sub now { Time::HiRes::time() }

# Ports below the kernel's ephemeral range, so that neither the harness's
# own free ports (bind to port 0) nor any outgoing connection can take one
# of them between a stop and a restart of the process that owns it.
sub fixed_ports {
    my ($n) = @_;
    my ($low) = split ' ', slurp('/proc/sys/net/ipv4/ip_local_port_range');
    $low = 32768 unless $low && $low > 12000;
    my (%seen, @ports, @socks);
    for (1 .. 2000) {
        last if @ports == $n;
        my $p = $low - 10000 + int(rand(9000));
        next if $seen{$p}++;
        my $s = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $p,
                                    Proto => 'tcp', Listen => 1, ReuseAddr => 0)
            or next;
        push @socks, $s;
        push @ports, $p;
    }
    die "found only " . scalar(@ports) . " free ports of $n\n" unless @ports == $n;
    close $_ for @socks;
    return @ports;
}

#------------------------------------------------------------------ HTTP

# Keep-alive connections, one per port, with pipelined requests: the
# routing checks send 3,000 requests a change, so each goes on a
# connection that stays open (nginx: keepalive_requests 1000000).
my %Conn;

sub drop_conn {
    my ($port) = @_;
    my $c = delete $Conn{$port} or return;
    close $c->{sock} if $c->{sock};
}

sub conn_for {
    my ($port) = @_;
    return $Conn{$port} if $Conn{$port};
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                Proto => 'tcp', Timeout => 2) or return undef;
    setsockopt($s, Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);
    binmode $s;
    return $Conn{$port} = { sock => $s, buf => '', fresh => 1 };
}

sub build_request {
    my ($method, $path, $headers, $body) = @_;
    my %h = %{ $headers || {} };
    my $host = delete $h{Host} // 'localhost';
    my $r = "$method $path HTTP/1.1\r\nHost: $host\r\n";
    $r .= "$_: $h{$_}\r\n" for sort keys %h;
    if (defined $body) {
        $r .= "Content-Type: application/json\r\nContent-Length: "
            . length($body) . "\r\n\r\n$body";
    } else {
        $r .= "\r\n";
    }
    return $r;
}

# One response off the front of the connection's buffer, or undef when it
# is not complete yet.
sub take_response {
    my ($c) = @_;
    my $i = index($c->{buf}, "\r\n\r\n");
    return undef if $i < 0;
    my $head = substr($c->{buf}, 0, $i);
    my ($status) = $head =~ m{\AHTTP/1\.[01] (\d{3})}
        or die "not an HTTP response: " . substr($head, 0, 80) . "\n";
    my %h;
    for (split /\r\n/, $head) {
        $h{lc $1} = $2 if /\A([^:\s]+):\s*(.*)\z/;
    }
    die "chunked response: the routing checks need Content-Length\n"
        if ($h{'transfer-encoding'} // '') =~ /chunked/i;
    my $len = $h{'content-length'} // 0;
    return undef if length($c->{buf}) < $i + 4 + $len;
    my $body = substr($c->{buf}, $i + 4, $len);
    substr($c->{buf}, 0, $i + 4 + $len) = '';
    $c->{close} = 1 if ($h{connection} // '') =~ /close/i;
    return { status => 0 + $status, headers => \%h, body => $body };
}

sub pipeline_once {
    my ($c, $out, $n, $timeout) = @_;
    my $sock = $c->{sock};
    my $off = 0;
    while ($off < length $out) {
        my $w = syswrite($sock, $out, length($out) - $off, $off);
        return (undef, "write: $!", 0) unless defined $w;
        $off += $w;
    }
    my @res;
    my $sel = IO::Select->new($sock);
    my $deadline = now() + $timeout;
    while (@res < $n) {
        while (@res < $n and my $r = take_response($c)) { push @res, $r }
        last if @res == $n;
        my $left = $deadline - now();
        return (undef, "timeout after " . scalar(@res) . " of $n answers", scalar @res)
            if $left <= 0;
        next unless $sel->can_read($left);
        my $got = sysread($sock, $c->{buf}, 65536, length $c->{buf});
        return (undef, defined $got ? "connection closed after " . scalar(@res)
                                      . " of $n answers" : "read: $!", scalar @res)
            unless $got;
    }
    return (\@res);
}

# Sends requests ([method, path, {headers}, body]) pipelined on the port's
# kept-alive connection; returns (array of responses) or (undef, error).  A
# connection that nginx closed while it was idle fails before any answer:
# then the requests are sent once more on a new one.
sub pipeline {
    my ($port, $reqs, $timeout) = @_;
    my $out = join '', map { build_request(@$_) } @$reqs;
    for my $attempt (1, 2) {
        my $c = conn_for($port) or return (undef, "connect to $port: $!");
        my $reused = !$c->{fresh};
        $c->{fresh} = 0;
        my ($res, $err, $got) = pipeline_once($c, $out, scalar @$reqs, $timeout // 10);
        drop_conn($port) if !$res || $c->{close};
        return ($res) if $res;
        return (undef, $err) unless $reused && !$got;
    }
}

sub request1 {
    my ($port, $method, $path, $body, $headers) = @_;
    my ($res, $err) = pipeline($port, [[$method, $path, $headers, $body]], 5);
    return $res ? $res->[0] : { status => 0, error => $err, body => '', headers => {} };
}

#------------------------------------------------------------------ etcd

my @M = map { { name => "m$_", dir => "$dir/etcd-m$_", log => "$dir/etcd-m$_.log" } } 1 .. 3;
my @etcd_ports = fixed_ports(6);
for my $m (@M) {
    $m->{client} = shift @etcd_ports;
    $m->{peer}   = shift @etcd_ports;
}
my $CLUSTER   = join ',', map { "$_->{name}=http://127.0.0.1:$_->{peer}" } @M;
my $ENDPOINTS = etcd_endpoint(@M);
my $TOKEN     = "dynroute-fleet-test-$$";

my @ETCD_FLAGS = ('--initial-cluster-token', $TOKEN, '--initial-cluster-state', 'new',
                  '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn');
$_->{cluster} = $CLUSTER for @M;

# etcdctl against the cluster, $stdin on its stdin.
sub cluster_etcdctl {
    my ($stdin, @args) = @_;
    return run_cmd({ stdin => $stdin }, etcdctl_cmd(@M),
                   '--dial-timeout=2s', '--command-timeout=5s', @args);
}

# The revision of the test's last change to the state in etcd.  etcd's own
# revision is often higher: every agent's report (its agents/NODE key) is a
# write too, and the agents do not count those as changes to apply.
my $StateRev = 0;

sub state_rev {
    my ($rev) = @_;
    $StateRev = $rev if defined $rev && $rev > $StateRev;
    return $rev;
}

# Puts a value by hand; returns the revision of the write (undef on failure).
sub etcd_put {
    my ($key, $value) = @_;
    # the value on stdin: it may start with "-"
    my $r = cluster_etcdctl($value, '-w', 'json', 'put', $key);
    my $doc = eval { $json->decode($r->{out}) };
    unless ($r->{exit} == 0 && $doc) {
        diag("etcdctl put $key: exit $r->{exit}: $r->{err}$r->{out}");
        return undef;
    }
    return state_rev($doc->{header}{revision});
}

sub etcd_del {
    my ($key) = @_;
    my $r = cluster_etcdctl(undef, '-w', 'json', 'del', $key);
    my $doc = eval { $json->decode($r->{out}) };
    diag("etcdctl del $key: exit $r->{exit}: $r->{err}") unless $doc;
    return $doc ? state_rev($doc->{header}{revision}) : undef;
}

# The prefix as {key => decoded value (or the raw text)}, and the revision.
sub etcd_dump {
    my $r = cluster_etcdctl(undef, '-w', 'json', 'get', '--prefix', $PREFIX);
    my $doc = eval { $json->decode($r->{out}) };
    unless ($doc) {
        diag("etcdctl get --prefix $PREFIX: exit $r->{exit}: $r->{err}");
        return ({}, undef);
    }
    my %kv;
    for my $kv (@{ $doc->{kvs} || [] }) {
        my $k = MIME::Base64::decode_base64($kv->{key});
        my $v = MIME::Base64::decode_base64($kv->{value} // '');
        $kv{$k} = eval { JSON::PP->new->allow_nonref->decode($v) } // $v;
    }
    return (\%kv, $doc->{header}{revision});
}

#------------------------------------------------------------------ nginx nodes

my @N = map { { name => "n$_", state => "$dir/n$_.state",
                agent_log => "$dir/agent-n$_.log" } } 1 .. 3;
{
    my @p = fixed_ports(5 * @N);
    for my $n (@N) {
        @{$n}{qw(traffic api ba bb bc)} = splice @p, 0, 5;
        $n->{api_url} = "http://127.0.0.1:$n->{api}${PREFIX}";
    }
}

# The same tables and rollouts on every node; each node's upstreams are
# backends of its own nginx that answer with the upstream's name.
sub http_config_of {
    my ($n) = @_;
    my $c = <<'CONF';
    error_log $TEST_NGINX_PREFIX/logs/error.log notice;
    keepalive_requests 1000000;
    keepalive_timeout  300s;

    upstream service_a { server 127.0.0.1:@BA@; keepalive 16; }
    upstream service_b { server 127.0.0.1:@BB@; keepalive 16; }
    upstream service_c { server 127.0.0.1:@BC@; keepalive 16; }
    upstream pool { dynroute_servers max=64; server 127.0.0.1:@BA@; }
    server { listen 127.0.0.1:@BA@; access_log off; location / { return 200 "service_a\n"; } }
    server { listen 127.0.0.1:@BB@; access_log off; location / { return 200 "service_b\n"; } }
    server { listen 127.0.0.1:@BC@; access_log off; location / { return 200 "service_c\n"; } }

    dynroute_zone routes 4m state=@STATE@;

    dynroute_rollout checkout {
        variant  stable  service_a  90%;
        variant  canary  service_b  10%;
        key      $http_x_user;
    }
    dynroute_rollout search {
        variant  v1  service_a  50%;
        variant  v2  service_b  30%;
        variant  v3  service_c  20%;
        key      $http_x_user;
    }
    dynroute_table main {
        shop.example.com    checkout;
        search.example.com  search;
        *.wild.example.com  service_b;
        default             service_a;
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
        location = /ready { dynroute_health readiness; }
    }
    server {
        listen 127.0.0.1:@API@;
        access_log off;
        location /dynroute/ {
            allow 127.0.0.1;
            deny  all;
            dynroute_api write=on;
        }
    }
CONF
    my %v = (BA => $n->{ba}, BB => $n->{bb}, BC => $n->{bc}, STATE => $n->{state},
             TRAFFIC => $n->{traffic}, API => $n->{api});
    $c =~ s/\@(\w+)\@/$v{$1}/g;
    return $c;
}

sub nginx_start {
    my ($n) = @_;
    drop_conn($_) for $n->{traffic}, $n->{api};
    $n->{srv} = start_nginx(http_config => http_config_of($n),
                            config => "    location / { return 404; }\n",
                            workers => 2);
}

# Stops a node's nginx; its error.log is checked for alerts and crashes.
sub nginx_stop {
    my ($n, $why) = @_;
    drop_conn($_) for $n->{traffic}, $n->{api};
    my $log = stop_nginx($n->{srv});
    error_log_ok($log, "$n->{name}: nginx stopped ($why): no alert/crit/crash in error.log");
    delete $n->{srv};
}

sub nginx_restart {
    my ($n, $why) = @_;
    nginx_stop($n, $why);
    nginx_start($n);
}

#------------------------------------------------------------------ agents

sub agent_start {
    my ($n) = @_;
    open my $fh, '>>', $n->{agent_log};
    printf {$fh} "---- %.3f: started by the test\n", now() - $T0;
    close $fh;
    $n->{agent} = spawn("agent $n->{name}", $n->{agent_log}, $AGENT,
                        '--etcd', $ENDPOINTS, '--prefix', $PREFIX,
                        '--node', $n->{name}, '--api', $n->{api_url});
}

sub agent_stop {
    my ($n, $sig) = @_;
    my $st = stop_proc($n->{agent}, $sig // 'TERM', 10);
    undef $n->{agent};
    return $st;
}

sub agents_alive {
    my @dead = grep { !alive($_->{agent}) } @N;
    return 1 unless @dead;
    diag("agent $_->{name} is not running; its log ends:\n" . tail_of(slurp($_->{agent_log}), 15))
        for @dead;
    return 0;
}

#------------------------------------------------------------------ node state

sub api_json {
    my ($n, $path) = @_;
    my $r = request1($n->{api}, 'GET', "$PREFIX$path");
    return undef unless $r->{status} == 200;
    return eval { $json->decode($r->{body}) };
}

# {revision, stale} of GET {prefix}fleet, or undef (no answer, 404).
sub fleet_of {
    my ($n) = @_;
    return api_json($n, 'fleet');
}

sub fleet_text {
    return join ', ', map {
        my $f = fleet_of($_);
        "$_->{name}: " . ($f ? "revision $f->{revision}" . ($f->{stale} ? ' stale' : '')
                             : 'no report');
    } @N;
}

# Waits until every node reports revision >= $rev (and not stale).
sub converged {
    my ($rev, $secs) = @_;
    return wait_for($secs // 15, sub {
        for my $n (@N) {
            my $f = fleet_of($n) or return 0;
            return 0 if $f->{revision} < $rev || $f->{stale};
        }
        return 1;
    }, 0.01);
}

# The runtime state of a node that routing depends on: rollouts' live
# weights and upstreams, runtime hosts, drain.
sub routing_state {
    my ($n) = @_;
    my $s = api_json($n, '') or return undef;
    my %r = (draining => $s->{draining} ? 1 : 0, hosts => {}, rollouts => {});
    for my $name (sort keys %{ $s->{rollouts} || {} }) {
        my $v = $s->{rollouts}{$name}{variants};
        $r{rollouts}{$name} = { map { $_ => "$v->{$_}{weight} $v->{$_}{upstream}" } keys %$v };
    }
    $r{hosts}{$_} = $s->{hosts}{$_}{target} for keys %{ $s->{hosts} || {} };
    return \%r;
}

#------------------------------------------------------------------ the keys

# The fixed set of keys: a Host (configured names, a wildcard, the default,
# and tenants that the changes add and remove) and a user (the rollouts'
# key).  24 hosts, each with about 42 users.
my @TENANTS = map { sprintf 'tenant%02d.example.com', $_ } 0 .. 19;
my @HOSTS   = ('shop.example.com', 'search.example.com', 'x.wild.example.com',
               'other.example.com', @TENANTS);
my @KEYSET  = map { [$HOSTS[$_ % @HOSTS], "u$_"] } 0 .. $KEYS - 1;

# The routes of the keys through one node's proxy: "upstream variant" per
# key (undef for a request that failed), or (undef, error).
sub routes_of {
    my ($n, $keys) = @_;
    my @out;
    for (my $i = 0; $i < @$keys; $i += 250) {
        my @batch = @{$keys}[$i .. ($i + 249 < $#$keys ? $i + 249 : $#$keys)];
        my ($res, $err) = pipeline($n->{traffic},
            [map { ['GET', '/', { Host => $_->[0], 'X-User' => $_->[1] }] } @batch], 10);
        return (undef, "$n->{name}: $err") unless $res;
        for my $r (@$res) {
            if ($r->{status} != 200 || $r->{body} !~ /\A(service_[abc])\n\z/) {
                push @out, undef;
                next;
            }
            push @out, "$1 " . ($r->{headers}{'x-variant'} // '');
        }
    }
    return (\@out);
}

# Routes the keys through every node; true when every node answered every
# key and the nodes agree on each.  Returns (ok, [routes of the first node],
# text of the first differences).
sub routes_agree {
    my ($keys) = @_;
    my (@all, @why);
    for my $n (@N) {
        my ($r, $err) = routes_of($n, $keys);
        return (0, undef, $err) unless $r;
        push @all, $r;
    }
    my $diff = 0;
    for my $i (0 .. $#$keys) {
        my @v = map { $_->[$i] // 'FAILED' } @all;
        next if !grep { $_ ne $v[0] } @v;
        push @why, "$keys->[$i][0] $keys->[$i][1]: " . join(' | ', @v) if ++$diff <= 5;
    }
    push @why, "$diff keys differ" if $diff;
    my $failed = grep { !defined } map { @$_ } @all;
    push @why, "$failed requests failed" if $failed;
    return (!$diff && !$failed, $all[0], join("\n", @why));
}

#------------------------------------------------------------------ the model

# What the configuration says, and what the changes of (6) make of it.
my %CONFIG = (
    rollouts => {
        checkout => { weights => { stable => 90, canary => 10 },
                      upstreams => { stable => 'service_a', canary => 'service_b' } },
        search   => { weights => { v1 => 50, v2 => 30, v3 => 20 },
                      upstreams => { v1 => 'service_a', v2 => 'service_b', v3 => 'service_c' } },
    },
);
my @UPSTREAMS = qw(service_a service_b service_c);
my @TARGETS   = (@UPSTREAMS, 'checkout', 'search');

sub clone { $json->decode($json->encode($_[0])) }

my %Model = (rollouts => clone($CONFIG{rollouts}), hosts => {});

sub configured_target {
    my ($host) = @_;
    return 'checkout'  if $host eq 'shop.example.com';
    return 'search'    if $host eq 'search.example.com';
    return 'service_b' if $host =~ /\.wild\.example\.com\z/;
    return 'service_a';
}

# Checks routes (of routes_agree) against the model: a key whose host goes
# to an upstream must reach it; one whose host goes to a rollout must get a
# variant with a weight above 0, on that variant's live upstream.
sub routes_match_model {
    my ($keys, $routes) = @_;
    my ($bad, @why) = (0);
    for my $i (0 .. $#$keys) {
        my ($host) = @{ $keys->[$i] };
        my $target = $Model{hosts}{$host} // configured_target($host);
        my ($up, $variant) = split / /, ($routes->[$i] // 'none'), 2;
        $variant //= '';
        my $ok;
        if (my $ro = $Model{rollouts}{$target}) {
            $ok = length $variant && ($ro->{weights}{$variant} // 0) > 0
                  && $ro->{upstreams}{$variant} eq $up;
        } else {
            $ok = $up eq $target && $variant eq '';
        }
        next if $ok;
        push @why, "$host $keys->[$i][1]: routed to '$up' variant '$variant', "
                   . "the model says $target" if ++$bad <= 5;
    }
    return ($bad == 0, join("\n", @why, $bad ? ("$bad keys routed against the model") : ()));
}

#------------------------------------------------------------------ dynroutectl

# Runs `dynroutectl --etcd ... --wait COMMAND...` and measures the change's
# convergence: from the moment dynroutectl prints the revision of its
# transaction (python3 -u: printed as soon as etcd answered) to the moment
# the last node's GET {prefix}fleet reports it, polled on kept-alive
# connections.  Returns {exit, out, err, revision, ack, last, conv}.
sub ctl_etcd {
    my (@cmd) = @_;
    my $err = File::Temp->new;
    my $t_start = now();
    my $pid = open(my $out, '-|') // die "fork: $!\n";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>&', $err or POSIX::_exit(126);
        { exec $PYTHON, '-u', $CTL, '--etcd', $ENDPOINTS, '--prefix', $PREFIX, @cmd; }
        print STDERR "exec $PYTHON failed: $!\n";
        POSIX::_exit(127);
    }
    track($pid, 'dynroutectl');
    my %r = (out => '');
    my $sel = IO::Select->new($out);
    my $deadline = now() + 30;
    my $buf = '';
    # until the revision is printed
    while (!defined $r{revision} && now() < $deadline) {
        last unless $sel->can_read($deadline - now());
        my $got = sysread($out, $buf, 4096, length $buf);
        last unless $got;
        $r{ack} = now();
        $r{revision} = $1 if $buf =~ /\brevision\D{0,3}(\d+)/i;
    }
    # then until every node has applied it (while dynroutectl waits too)
    if (defined $r{revision}) {
        my $ok = wait_for(15, sub {
            for my $n (@N) {
                my $f = fleet_of($n) or return 0;
                return 0 if $f->{revision} < $r{revision};
            }
            return 1;
        }, 0.0005);
        $r{last} = now() if $ok;
    }
    # the rest of the output, and the exit status
    while ($sel->can_read(30)) {
        my $got = sysread($out, $buf, 4096, length $buf);
        last unless $got;
    }
    close $out;
    my $st = $?;
    untrack($pid);
    $r{exit} = $st >> 8;
    $r{out} = $buf;
    $r{err} = slurp("$err");
    state_rev($r{revision});
    $r{conv} = $r{last} - $r{ack} if defined $r{last} && defined $r{ack};
    $r{total} = now() - $t_start;
    return \%r;
}

sub ctl_ok {
    my ($name, $r) = @_;
    ok($r->{exit} == 0 && defined $r->{revision}, $name)
        or diag("dynroutectl exit $r->{exit}\nstdout: $r->{out}\nstderr: $r->{err}"
                . "nodes: " . fleet_text());
}

#====================================================================== setup

for my $n (@N) { nginx_start($n) }
pass('3 nginx nodes started: ' . join ', ', map { "$_->{name} on :$_->{traffic} (API :$_->{api})" } @N);

{
    my ($ok, $routes, $why) = routes_agree(\@KEYSET);
    ok($ok, "before any agent: the nodes route the $KEYS keys alike") or diag($why);
    my ($mok, $mwhy) = routes_match_model(\@KEYSET, $routes // []);
    ok($mok, 'before any agent: ... as the configuration says') or diag($mwhy);
}

# (1), at the first start: the agents start before etcd does.
agent_start($_) for @N;
{
    my $stale = wait_for(15, sub {
        for my $n (@N) { my $f = fleet_of($n); return 0 unless $f && $f->{stale} }
        1;
    });
    ok($stale, '(1) agents started before etcd: every node reports stale (GET {prefix}fleet)')
        or diag(fleet_text());
    ok(agents_alive(), '(1) agents started before etcd: they keep running (retrying)');
}

start_etcd($_, @ETCD_FLAGS) for @M;
ok(etcd_ready(30, @M), 'a 3-member etcd cluster is up: ' . join ', ',
   map { "$_->{name} client :$_->{client} peer :$_->{peer}" } @M)
    or do { diag(tail_of(slurp($_->{log}), 20)) for @M; BAIL_OUT('no etcd cluster') };

{
    # nothing is in etcd yet: the agents read it at revision 1
    ok(converged(1, 20), '(1) once etcd is up the agents read it and are not stale')
        or diag(fleet_text());
    my ($kv) = etcd_dump();
    is_deeply([sort grep { m{^\Q$PREFIX\Eagents/} } keys %$kv],
              [map { "${PREFIX}agents/$_->{name}" } @N],
              'every agent has its agents/NODE key');
}

#====================================================================== (6)

# 100 random changes through dynroutectl --etcd --wait: weights, flips of a
# variant between upstreams, tenants added (or moved) and removed, now and
# then a reset.  After each change the full set of 1,000 keys is sent to
# every node (3,000 requests pipelined on kept-alive connections, about
# 0.1 s), so no sample is needed.
sub random_weights {
    my (@variants) = @_;
    my %w = map { $_ => 0 } @variants;
    if (rand() < 0.1) {                 # now and then all on one variant
        $w{ $variants[rand @variants] } = 100;
        return \%w;
    }
    my $left = 100;
    for my $i (0 .. $#variants) {
        my $w = $i == $#variants ? $left : int(rand($left + 1));
        $w{ $variants[$i] } = $w;
        $left -= $w;
    }
    return \%w;
}

sub random_change {
    my $roll = rand();
    my @names = sort keys %{ $Model{rollouts} };
    my $name = $names[rand @names];
    my $ro = $Model{rollouts}{$name};
    my @variants = sort keys %{ $ro->{weights} };
    if ($roll < 0.3) {
        my $w = random_weights(@variants);
        return (['set-weights', $name, map { "$_=$w->{$_}" } @variants],
                sub { $ro->{weights} = $w });
    }
    if ($roll < 0.55) {
        my $v = $variants[rand @variants];
        my @other = grep { $_ ne $ro->{upstreams}{$v} } @UPSTREAMS;
        my $up = $other[rand @other];
        return (['flip', $name, $v, $up], sub { $ro->{upstreams}{$v} = $up });
    }
    if ($roll < 0.6) {
        return (['reset', $name], sub { $Model{rollouts}{$name} = clone($CONFIG{rollouts}{$name}) });
    }
    my @present = sort keys %{ $Model{hosts} };
    if ($roll < 0.8 && @present) {
        my $h = $present[rand @present];
        return (['host', 'rm', $h], sub { delete $Model{hosts}{$h} });
    }
    # a tenant, or now and then a configured name, added or moved
    my @pool = (@TENANTS, 'shop.example.com', 'x.wild.example.com');
    my $h = $pool[rand @pool];
    my @t = grep { $_ ne ($Model{hosts}{$h} // '') } @TARGETS;
    my $t = $t[rand @t];
    return (['host', 'add', $h, $t], sub { $Model{hosts}{$h} = $t });
}

my (@conv, @ctl_time, $bad_changes, $bad_routes, $bad_model, $last_rev, %InEtcd);
my $t6 = now();
for my $i (1 .. $CHANGES) {
    if (($bad_changes // 0) >= 5) {     # each can wait 15 s: stop early
        diag("(6) stopped after change " . ($i - 1) . ": $bad_changes changes failed");
        last;
    }
    my ($cmd, $apply) = random_change();
    # a reset of a rollout that etcd does not have is no change: skip it
    redo if $cmd->[0] eq 'reset' && !$InEtcd{$cmd->[1]};
    my $r = ctl_etcd('--wait', @$cmd);
    if ($r->{exit} != 0 || !defined $r->{revision} || !defined $r->{conv}) {
        $bad_changes++;
        diag("change $i (@$cmd): dynroutectl exit $r->{exit}, revision "
             . ($r->{revision} // 'none') . ", converged: " . (defined $r->{conv} ? 'yes' : 'no')
             . "\nstdout: $r->{out}\nstderr: $r->{err}nodes: " . fleet_text())
            if $bad_changes <= 3;
        $apply->();
        next;
    }
    $apply->();
    if ($cmd->[0] eq 'reset') { delete $InEtcd{$cmd->[1]} }
    elsif ($cmd->[0] ne 'host') { $InEtcd{$cmd->[1]} = 1 }
    $last_rev = $r->{revision};
    push @conv, $r->{conv};
    push @ctl_time, $r->{total};
    my ($ok, $routes, $why) = routes_agree(\@KEYSET);
    unless ($ok) {
        $bad_routes++;
        diag("change $i (@$cmd), revision $r->{revision}: the nodes do not agree:\n$why")
            if $bad_routes <= 3;
        next;
    }
    my ($mok, $mwhy) = routes_match_model(\@KEYSET, $routes);
    unless ($mok) {
        $bad_model++;
        diag("change $i (@$cmd), revision $r->{revision}:\n$mwhy") if $bad_model <= 3;
    }
}

my $t6_secs = now() - $t6;
ok(!$bad_changes, "(6) $CHANGES random changes: dynroutectl --etcd --wait succeeded and every node applied each")
    or diag(($bad_changes // 0) . ' changes failed');
ok(!$bad_routes, "(6) after each change the 3 nodes route the $KEYS keys identically")
    or diag("after $bad_routes changes they did not");
ok(!$bad_model, "(6) ... and as the changes say")
    or diag("after $bad_model changes they did not");

sub percentile {
    my ($p, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return undef unless @v;
    my $rank = POSIX::ceil($p / 100 * @v);
    $rank = 1 if $rank < 1;
    return $v[$rank - 1];
}
if (@conv) {
    my @ms = map { $_ * 1000 } @conv;
    my ($p50, $p99, $max) = map { percentile($_, @ms) } 50, 99, 100;
    my $mean = 0;
    $mean += $_ / @ms for @ms;
    my $ctl50 = percentile(50, map { $_ * 1000 } @ctl_time);
    my $summary = sprintf "convergence (write acknowledged -> last of 3 nodes applied), %d changes:"
        . " p50 %.1f ms, p99 %.1f ms, max %.1f ms, mean %.1f ms;"
        . " dynroutectl --wait run p50 %.0f ms; (6) took %.1f s", scalar(@ms), $p50, $p99,
        $max, $mean, $ctl50, $t6_secs;
    diag($summary);
    if (-d "$ROOT/build" || mkdir "$ROOT/build") {
        my @lt = localtime;
        spew("$ROOT/build/fleet-convergence.txt", join '',
            sprintf("date: %s\n", POSIX::strftime('%Y-%m-%d %H:%M:%S %z', @lt)),
            "source: t/fleet/cluster.t, 3 etcd members, 3 nginx nodes and agents on loopback\n",
            "seed: $SEED\n",
            sprintf("changes: %d\np50_ms: %.1f\np99_ms: %.1f\nmax_ms: %.1f\nmean_ms: %.1f\n",
                    scalar(@ms), $p50, $p99, $max, $mean),
            sprintf("dynroutectl_wait_p50_ms: %.0f\n", $ctl50),
            'samples_ms: ' . join(' ', map { sprintf '%.1f', $_ } @ms) . "\n");
        note("written to build/fleet-convergence.txt");
    }
    ok(@ms == $CHANGES, "(6) a convergence time for each of the $CHANGES changes")
        or diag(scalar(@ms) . " measured");
}

#====================================================================== (7)

# A write by hand, timed as dynroutectl's in ctl_etcd: etcdctl prints the
# header's revision as soon as etcd answered.  Returns (revision, ack time).
sub etcd_write_timed {
    my (@args) = @_;
    my $pid = open(my $out, '-|') // die "fork: $!\n";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>', '/dev/null';
        { exec etcdctl_cmd(@M), '--dial-timeout=2s', '--command-timeout=5s',
               '-w', 'json', @args; }
        POSIX::_exit(127);
    }
    track($pid, 'etcdctl');
    my ($buf, $ack) = ('', undef);
    while (sysread($out, $buf, 4096, length $buf)) {
        $ack //= now();
    }
    close $out;
    untrack($pid);
    my $doc = eval { $json->decode($buf) };
    return ($doc ? state_rev($doc->{header}{revision}) : undef, $ack);
}

# The addresses of a node's upstream pool, sorted, joined; and whether they
# are a runtime list.
sub pool_of {
    my ($n) = @_;
    my $j = api_json($n, 'upstreams/pool/servers') or return ('no answer', 0);
    return (join(' ', sort keys %{ $j->{servers} || {} }), $j->{runtime} ? 1 : 0);
}

my (@mconv, $mbad);
{
    my %model;
    my @addrs = map { "127.0.1.$_:8080" } 1 .. 20;
    for my $i (1 .. $CHANGES) {
        my $addr = $addrs[rand @addrs];
        my $key = "${PREFIX}services/pool/servers/$addr";
        my ($rev, $ack);
        if ($model{$addr} && rand() < 0.7) {
            delete $model{$addr};
            ($rev, $ack) = etcd_write_timed('del', $key);
        } else {
            $model{$addr} = 1 + int(rand(5));
            ($rev, $ack) = etcd_write_timed('put', $key,
                                            "{\"weight\": $model{$addr}}");
        }
        my $want = %model ? join(' ', sort keys %model) : '127.0.0.1:' . $N[0]{ba};
        unless (defined $rev) {
            $mbad++;
            next;
        }
        my $ok = wait_for(15, sub {
            for my $n (@N) {
                my ($have) = pool_of($n);
                my $line = %model ? $want : "127.0.0.1:$n->{ba}";
                return 0 unless $have eq $line;
            }
            return 1;
        }, 0.0005);
        if ($ok) {
            push @mconv, now() - $ack;
        } else {
            diag("membership change $i: " . join '; ', map { "$_->{name}: " . (pool_of($_))[0] } @N)
                if ++$mbad <= 3;
        }
    }
    ok(!$mbad, "(7) $CHANGES registrations and removals: every node's upstream pool has etcd's list")
        or diag("$mbad changes did not converge");
    if (@mconv) {
        my @ms = map { $_ * 1000 } @mconv;
        my ($p50, $p99, $max) = map { percentile($_, @ms) } 50, 99, 100;
        my $summary = sprintf "membership convergence (write acknowledged -> last of 3 nodes"
            . " serves the list), %d changes: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
            scalar(@ms), $p50, $p99, $max;
        diag($summary);
        my $file = "$ROOT/build/fleet-convergence.txt";
        if (-f $file) {
            spew($file, slurp($file) . sprintf(
                "membership_changes: %d\nmembership_p50_ms: %.1f\nmembership_p99_ms: %.1f\n"
                . "membership_max_ms: %.1f\n", scalar(@ms), $p50, $p99, $max));
        }
        cmp_ok($p99, '<=', 200, '(7) membership: p99 within 200 ms of the write');
    }
    # the rest removed: every node back to its server line
    for my $addr (sort keys %model) {
        etcd_del("${PREFIX}services/pool/servers/$addr");
    }
    ok(wait_for(10, sub { !grep { (pool_of($_))[1] } @N }),
       '(7) the last registration removed: every node serves its server line again')
        or diag(join '; ', map { "$_->{name}: " . join ' ', pool_of($_) } @N);
}

# An instance that registers itself, killed with SIGKILL: gone from every
# node within its TTL and a second.
{
    my $log = "$dir/register-pool.log";
    my $addr = '127.0.1.99:8080';
    my $pid = spawn('register', $log, $CTL, '--etcd', $ENDPOINTS, '--prefix', $PREFIX,
                    'register', 'pool', $addr, '--ttl', '2');
    ok(wait_for(10, sub { !grep { (pool_of($_))[0] ne $addr } @N }),
       '(7) dynroutectl register: the instance is on every node')
        or diag(slurp($log) . join '; ', map { "$_->{name}: " . (pool_of($_))[0] } @N);
    my $t0 = now();
    stop_proc($pid, 'KILL');
    my $gone = wait_for(6, sub { !grep { (pool_of($_))[1] } @N }, 0.01);
    my $secs = now() - $t0;
    ok($gone && $secs <= 3, sprintf '(7) SIGKILL: the instance left every node after %.2f s (TTL 2 s + 1 s)', $secs)
        or diag(join '; ', map { "$_->{name}: " . (pool_of($_))[0] } @N);
    diag(sprintf 'a registered instance killed with SIGKILL (--ttl 2): gone from the last of 3 nodes after %.2f s', $secs);
}

#====================================================================== (2)

# The first member of the endpoint list (the one every client tries first)
# is killed; changes must still reach every node through the others.
{
    my $victim = $M[0];
    my $st = stop_proc($victim->{pid}, 'KILL');
    ok(defined $st && ($st & 127) == 9, "(2) etcd $victim->{name} killed (SIGKILL)");
    ok(etcd_ready(20, @M[1, 2]), '(2) the other two members still have a leader');
    my @changes = (['set-weights', 'checkout', 'stable=33', 'canary=67'],
                   ['flip', 'search', 'v3', 'service_a'],
                   ['host', 'add', 'tenant19.example.com', 'search']);
    my @applies = (sub { $Model{rollouts}{checkout}{weights} = { stable => 33, canary => 67 } },
                   sub { $Model{rollouts}{search}{upstreams}{v3} = 'service_a' },
                   sub { $Model{hosts}{'tenant19.example.com'} = 'search' });
    for my $i (0 .. $#changes) {
        my $r = ctl_etcd('--wait', @{ $changes[$i] });
        ctl_ok("(2) with $victim->{name} down: dynroutectl --etcd --wait @{ $changes[$i] }", $r);
        $applies[$i]->();
        ok(defined $r->{conv}, "(2) ... every node reports revision " . ($r->{revision} // '?'))
            or diag(fleet_text());
    }
    my ($ok, $routes, $why) = routes_agree(\@KEYSET);
    ok($ok, "(2) with $victim->{name} down: the nodes route the $KEYS keys alike") or diag($why);
    my ($mok, $mwhy) = routes_match_model(\@KEYSET, $routes // []);
    ok($mok, '(2) ... as the changes say') or diag($mwhy);
    ok(agents_alive(), '(2) every agent still runs');
    start_etcd($victim, @ETCD_FLAGS);
    ok(etcd_ready(20, @M), "(2) $victim->{name} restarted and back in the cluster");
}

#====================================================================== (5)

# Values that are not what the layout says, put by hand (a new key, and
# over the good values of a host and a rollout); and a change that the
# nodes refuse (an upstream they do not have).  Each is refused with a log
# line naming its key, leaves the node as it was, and a good change after
# them applies.  Then an agent restarted with them still in etcd must come
# to the same state as the agents that saw them arrive.
{
    my $bad_host    = "${PREFIX}hosts/broken.example.com";
    my $bad_over    = "${PREFIX}hosts/tenant15.example.com";
    my $bad_shape   = "${PREFIX}rollouts/search";
    my $bad_drain   = "${PREFIX}nodes/n2/drain";
    my $refused     = "${PREFIX}hosts/refused.example.com";
    my $good = etcd_put($bad_over, '{"target": "service_b"}');
    $Model{hosts}{'tenant15.example.com'} = 'service_b';
    ok(defined $good && converged($good, 15), '(5) tenant15.example.com -> service_b on every node first')
        or diag(fleet_text());
    my %offset = map { $_->{name} => length slurp($_->{agent_log}) } @N;
    my $search_before = routing_state($N[0])->{rollouts}{search};
    etcd_put($bad_host, "not json {");
    etcd_put($bad_over, '{"target": 42}');
    etcd_put($bad_shape, '{"weights": "all of it"}');
    etcd_put($bad_drain, '"perhaps"');
    etcd_put($refused, '{"target": "no_such_upstream"}');
    my $rev = etcd_put("${PREFIX}hosts/tenant18.example.com", '{"target": "service_c"}');
    $Model{hosts}{'tenant18.example.com'} = 'service_c';
    ok(defined $rev && converged($rev, 15),
       "(5) a good change after five bad ones reaches every node (revision " . ($rev // '?') . ')')
        or diag(fleet_text());
    my $logs_have = sub {
        my ($key, @nodes) = @_;
        return wait_for(5, sub {
            for my $n (@nodes) {
                return 0 if index(substr(slurp($n->{agent_log}), $offset{$n->{name}}), $key) < 0;
            }
            1;
        });
    };
    ok($logs_have->($bad_host, @N), "(5) not JSON: every agent logs a line naming $bad_host");
    ok($logs_have->($bad_over, @N), "(5) a target that is not a string: every agent logs a line naming $bad_over");
    ok($logs_have->($bad_shape, @N), "(5) weights not an object: every agent logs a line naming $bad_shape");
    ok($logs_have->($bad_drain, $N[1]), "(5) drain not a boolean: n2's agent logs a line naming $bad_drain");
    ok($logs_have->($refused, @N), "(5) an unknown upstream, refused by nginx: every agent logs a line naming $refused");
    for my $n (@N) {
        my $log = substr(slurp($n->{agent_log}), $offset{$n->{name}});
        my @lines = grep { index($_, $PREFIX) >= 0 } split /\n/, $log;
        note("$n->{name}'s agent: $_") for @lines[0 .. ($#lines < 5 ? $#lines : 5)];
    }
    my $ok_state = 1;
    for my $n (@N) {
        my $s = routing_state($n);
        $ok_state = 0, diag("$n->{name}: " . $json->encode($s))
            unless $s && !exists $s->{hosts}{'broken.example.com'}
                   && !exists $s->{hosts}{'refused.example.com'}
                   && $s->{hosts}{'tenant18.example.com'} eq 'service_c'
                   && $s->{hosts}{'tenant15.example.com'} eq 'service_b'
                   && !$s->{draining}
                   && $json->encode($s->{rollouts}{search}) eq $json->encode($search_before);
    }
    ok($ok_state, '(5) no node took a bad value: no new host, tenant15 and search as they were, n2 not draining');
    my ($kv) = etcd_dump();
    my $report = $kv->{"${PREFIX}agents/n1"};
    ok(ref $report eq 'HASH' && grep({ ref $_ eq 'HASH' && ($_->{key} // '') eq $refused }
                                      @{ $report->{errors} || [] }),
       "(5) n1's agents/ key lists the refused change under errors")
        or diag('agents/n1: ' . $json->encode($report // 'none'));
    ok(agents_alive(), '(5) every agent still runs');

    # A full read with the bad values still in etcd: the rest applies.
    agent_stop($N[0], 'TERM');
    $offset{n1} = length slurp($N[0]{agent_log});
    $rev = etcd_put("${PREFIX}hosts/tenant17.example.com", '{"target": "checkout"}');
    $Model{hosts}{'tenant17.example.com'} = 'checkout';
    agent_start($N[0]);
    ok(converged($rev, 20), "(5) n1's agent restarted with the bad values in etcd: it reaches revision $rev")
        or diag(fleet_text());
    ok($logs_have->($bad_host, $N[0]), "(5) ... and logs a line naming $bad_host again");
    my @states = map { $json->encode(routing_state($_)) } @N;
    ok($states[0] eq $states[1] && $states[1] eq $states[2],
       "(5) ... and n1 has the state of n2 and n3, which saw the bad values arrive")
        or diag(join "\n", map { "$N[$_]{name}: $states[$_]" } 0 .. $#N);
    my ($ok, $routes, $why) = routes_agree(\@KEYSET);
    ok($ok, "(5) the nodes route the $KEYS keys alike") or diag($why);
    my ($mok, $mwhy) = routes_match_model(\@KEYSET, $routes // []);
    ok($mok, '(5) ... as the good changes say') or diag($mwhy);

    # Clean up by hand: search and tenant15 back to their good values, the
    # other bad keys deleted.
    my $s = $Model{rollouts}{search};
    etcd_put($bad_shape, $json->encode({ weights => $s->{weights}, upstreams => $s->{upstreams} }));
    etcd_put($bad_over, '{"target": "service_b"}');
    etcd_del($_) for $bad_host, $bad_drain, $refused;
    ok(converged($StateRev, 15), "(5) the bad values removed from etcd: every node follows (revision $StateRev)")
        or diag(fleet_text());
}

#====================================================================== (4)

# While a writer (a child process: etcdctl puts, 40 revisions, about every
# 60 ms) changes the checkout rollout's weights step by step and adds one
# host per step, n2's agent is killed (SIGKILL) and restarted, and n3's
# nginx is restarted.  Meanwhile every node's fleet revision and canary
# weight are polled: each must only grow.  In the end every node has the
# last revision, the last weights and every host.
{
    my $steps = 20;
    my $done = "$dir/writer-4.done";
    unlink $done;
    my $up = $Model{rollouts}{checkout}{upstreams};
    # from canary 0 %, so that every step raises it
    my $rev0 = etcd_put("${PREFIX}rollouts/checkout", $json->encode(
        { weights => { stable => 100, canary => 0 }, upstreams => $up, primary => 'stable' }));
    ok(defined $rev0 && converged($rev0, 15), '(4) checkout at canary 0 % on every node first')
        or diag(fleet_text());
    my $wpid = fork // die "fork: $!\n";
    if ($wpid == 0) {
        my @revs;
        for my $i (1 .. $steps) {
            my $w = { weights => { stable => 100 - $i, canary => $i }, upstreams => $up,
                      primary => 'stable' };
            push @revs, etcd_put("${PREFIX}rollouts/checkout", $json->encode($w)) // -1;
            push @revs, etcd_put(sprintf("${PREFIX}hosts/seq%02d.example.com", $i),
                                 '{"target": "service_c"}') // -1;
            Time::HiRes::sleep(0.06);
        }
        spew($done, join("\n", @revs) . "\n");
        POSIX::_exit(0);
    }
    track($wpid, 'writer of (4)');
    my (%seen, %backwards, @events);
    my $t = now();
    my %act = (0.3 => sub { agent_stop($N[1], 'KILL'); push @events, 'n2 agent killed' },
               1.0 => sub { agent_start($N[1]); push @events, 'n2 agent restarted' },
               1.5 => sub { nginx_restart($N[2], '(4) restart while changes are made');
                            push @events, 'n3 nginx restarted' });
    my $deadline = now() + 40;
    while (now() < $deadline) {
        for my $at (sort { $a <=> $b } keys %act) {
            next unless now() - $t >= $at;
            (delete $act{$at})->();
        }
        for my $n (@N) {
            my $f = fleet_of($n) or next;
            my $ro = api_json($n, 'rollouts/checkout') or next;
            my $canary = $ro->{variants}{canary}{weight};
            my $prev = $seen{$n->{name}};
            if ($prev && ($f->{revision} < $prev->[0] || $canary < $prev->[1])) {
                push @{ $backwards{$n->{name}} },
                    "revision $prev->[0] -> $f->{revision}, canary $prev->[1] -> $canary";
            }
            $seen{$n->{name}} = [$f->{revision}, $canary];
        }
        last if -e $done && !%act;
        Time::HiRes::sleep(0.01);
    }
    waitpid $wpid, 0;
    untrack($wpid);
    my @revs = grep { /\d/ } split /\n/, slurp($done);
    is(scalar(grep { $_ > 0 } @revs), 2 * $steps, "(4) the writer made $steps weight changes and added $steps hosts")
        or diag("revisions: @revs");
    note("(4) events: " . join ', ', @events);
    my $last = state_rev($revs[-1]) // 0;
    ok(converged($last, 20), "(4) every node converges to the last revision, $last")
        or diag(fleet_text());
    ok(!%backwards, '(4) no node ever went back: its revision and the canary weight only grew')
        or diag(join "\n", map { "$_: @{ $backwards{$_} }" } sort keys %backwards);
    $Model{rollouts}{checkout}{weights} = { stable => 100 - $steps, canary => $steps };
    $Model{hosts}{sprintf 'seq%02d.example.com', $_} = 'service_c' for 1 .. $steps;
    my %want = (%{ $Model{hosts} });
    my $all = 1;
    for my $n (@N) {
        my $s = routing_state($n);
        my $c = $s ? $s->{rollouts}{checkout} : undef;
        unless ($s && $c && $c->{canary} =~ /^$steps /
                && $json->encode($s->{hosts}) eq $json->encode(\%want)) {
            $all = 0;
            diag("$n->{name}: " . $json->encode($s));
        }
    }
    ok($all, "(4) every node has the last weights (canary $steps%) and all the hosts, none lost");
    ok(agents_alive(), '(4) every agent runs');
    my ($ok, $routes, $why) = routes_agree(\@KEYSET);
    ok($ok, "(4) the nodes route the $KEYS keys alike") or diag($why);
    my ($mok, $mwhy) = routes_match_model(\@KEYSET, $routes // []);
    ok($mok, '(4) ... as the changes say') or diag($mwhy);
}

#====================================================================== (3)

# A client (a child process) sends requests round-robin to the 3 nodes, a
# new connection each, about 300 a second, while all of etcd is stopped,
# the agents notice, and etcd comes back.  Every request must be answered
# 200 by one of the upstreams.
{
    my $stop = "$dir/traffic-3.stop";
    my $result = "$dir/traffic-3.json";
    unlink $stop, $result;
    my $cpid = fork // die "fork: $!\n";
    if ($cpid == 0) {
        my ($sent, $failed, @first) = (0, 0);
        my $end = now() + 60;
        while (now() < $end && !-e $stop && $sent < 30000) {
            my $n = $N[$sent % @N];
            my $key = $KEYSET[$sent % @KEYSET];
            my $res = http_get($n->{traffic}, '/', { Host => $key->[0], 'X-User' => $key->[1] }, 5);
            $sent++;
            unless (($res->{status} // 0) == 200 && ($res->{body} // '') =~ /\Aservice_[abc]\n\z/) {
                $failed++;
                push @first, "$n->{name} $key->[0]: " . ($res->{status} // 'no status')
                             . ' ' . ($res->{error} // '') if @first < 5;
            }
            Time::HiRes::sleep(0.003);
        }
        spew($result, $json->encode({ sent => $sent, failed => $failed, first => \@first }));
        POSIX::_exit(0);
    }
    track($cpid, 'traffic of (3)');
    Time::HiRes::sleep(1);
    my $stopped = 1;
    for my $m (@M) {
        my $st = stop_proc($m->{pid}, 'TERM');
        $stopped = 0 unless defined $st;
    }
    ok($stopped, '(3) all 3 etcd members stopped (SIGTERM) while traffic runs');
    my $stale = wait_for(20, sub {
        for my $n (@N) { my $f = fleet_of($n); return 0 unless $f && $f->{stale} }
        1;
    });
    ok($stale, '(3) every node reports stale') or diag(fleet_text());
    my ($ok, $routes, $why) = routes_agree(\@KEYSET);
    ok($ok, "(3) without etcd: the nodes still route the $KEYS keys alike") or diag($why);
    my ($mok, $mwhy) = routes_match_model(\@KEYSET, $routes // []);
    ok($mok, '(3) ... as before') or diag($mwhy);
    Time::HiRes::sleep(2);
    start_etcd($_, @ETCD_FLAGS) for @M;
    ok(etcd_ready(30, @M), '(3) etcd restarted');
    my $r = ctl_etcd('--wait', 'host', 'add', 'tenant16.example.com', 'service_b');
    ctl_ok('(3) a change after the restart: dynroutectl --etcd --wait host add', $r);
    $Model{hosts}{'tenant16.example.com'} = 'service_b';
    ok(converged($r->{revision} // 1e9, 20),
       '(3) the agents caught up: every node has the new revision and is not stale')
        or diag(fleet_text());
    Time::HiRes::sleep(0.5);
    spew($stop, '');
    waitpid $cpid, 0;
    untrack($cpid);
    my $res = eval { $json->decode(slurp($result)) } // { sent => 0, failed => -1, first => [] };
    ok($res->{sent} > 100 && $res->{failed} == 0,
       "(3) no request failed: $res->{sent} sent, $res->{failed} failed")
        or diag(join "\n", @{ $res->{first} });
    ($ok, $routes, $why) = routes_agree(\@KEYSET);
    ok($ok, "(3) the nodes route the $KEYS keys alike") or diag($why);
    ($mok, $mwhy) = routes_match_model(\@KEYSET, $routes // []);
    ok($mok, '(3) ... as the changes say') or diag($mwhy);
    ok(agents_alive(), '(3) every agent runs');
}

#====================================================================== (1)

# etcd is down, the agents stopped and every nginx restarted (from its
# state file) before the agents start again: nginx serves what it had; the
# agents keep retrying and report stale; when etcd is back they catch up.
{
    my ($ok, $before, $why) = routes_agree(\@KEYSET);
    ok($ok, "(1) before: the nodes route the $KEYS keys alike") or diag($why);
    agent_stop($_, 'TERM') for @N;
    stop_proc($_->{pid}, 'TERM') for @M;
    nginx_restart($_, '(1) restart with etcd down') for @N;
    my %offset = map { $_->{name} => length slurp($_->{agent_log}) } @N;
    agent_start($_) for @N;
    my $stale = wait_for(15, sub {
        for my $n (@N) { my $f = fleet_of($n); return 0 unless $f && $f->{stale} }
        1;
    });
    ok($stale, '(1) etcd unreachable at agent start: every node reports stale') or diag(fleet_text());
    Time::HiRes::sleep(2);
    ok(agents_alive(), '(1) the agents keep running, retrying');
    my $retries = 1;
    for my $n (@N) {
        my $log = substr(slurp($n->{agent_log}), $offset{$n->{name}});
        my $lines = () = $log =~ /\n/g;
        $retries = 0, diag("$n->{name}'s agent logged $lines lines:\n$log") if $lines < 2;
    }
    ok($retries, '(1) ... and log their attempts');
    my ($ok2, $after, $why2) = routes_agree(\@KEYSET);
    ok($ok2, '(1) restarted nodes without etcd route the keys alike') or diag($why2);
    ok($after && $before && join("\n", map { $_ // '' } @$after) eq join("\n", map { $_ // '' } @$before),
       "(1) ... exactly as before: nginx serves its persisted state");
    my ($mok, $mwhy) = routes_match_model(\@KEYSET, $after // []);
    ok($mok, '(1) ... which is the state of the changes') or diag($mwhy);
    start_etcd($_, @ETCD_FLAGS) for @M;
    ok(etcd_ready(30, @M), '(1) etcd started');
    my $rev = $StateRev;
    ok(converged($rev, 20), "(1) the agents catch up: revision $rev or later, not stale")
        or diag(fleet_text());
    ($ok, my $again, $why) = routes_agree(\@KEYSET);
    ok($ok && join("\n", map { $_ // '' } @$again) eq join("\n", map { $_ // '' } @$before),
       '(1) ... and the routes are unchanged') or diag($why);
    note('(1) ' . fleet_text());
}

#====================================================================== the end

{
    my $m = request1($N[0]{api}, 'GET', "${PREFIX}metrics");
    my $rev = fleet_of($N[0]);
    like($m->{body}, qr/^dynroute_fleet_revision(?:\{[^}]*\})? \Q$rev->{revision}\E$/m,
         'the metrics report the revision applied (dynroute_fleet_revision)');
    like($m->{body}, qr/^dynroute_fleet_stale(?:\{[^}]*\})? 0$/m,
         '... and that the node is not stale (dynroute_fleet_stale 0)');
}

for my $n (@N) {
    my $st = agent_stop($n, 'TERM');
    ok(defined $st && $st == 0, "$n->{name}'s agent exits 0 on SIGTERM")
        or diag('status ' . ($st // 'none'));
}
stop_proc($_->{pid}, 'TERM') for @M;
nginx_stop($_, 'the end') for @N;
note(sprintf 'the whole run took %.1f s', now() - $T0);

done_testing();
