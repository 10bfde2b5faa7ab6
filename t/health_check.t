# dynroute_health_check through a real nginx with 2 workers, against a
# backend nginx of the test's own (its access log counts the probes): a
# server whose health check fails is skipped by every worker within
# interval x fails, also by subrequests and internal redirects; one that
# passes again gets traffic after passes= and ramps with slow_start; the
# status list and the body text; probe targets that hang, answer garbage,
# reset or refuse are failures while the workers keep serving; a unix
# socket server is probed; a reload makes no burst of probes; a runtime
# server added through the API is probed; {prefix}stats and
# {prefix}metrics show it all.  Then the refused configurations (blocks).
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api;
use Test::Nginx::Dynroute::Proc qw(free_ports track stop_proc wait_for slurp spew);
use IO::Select;
use IO::Socket::IP;
use POSIX ();
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes ();

# the servers of an upstream in {prefix}stats: { "address" => {...} }
sub servers_of {
    my ($srv, $up) = @_;
    my ($st, $doc) = api_call($srv, 'GET', '/api/stats');
    my ($g) = grep { $_->{name} eq $up } @{ $doc->{groups} // [] };
    return { map { $_->{name} => $_ } @{ $g->{servers} // [] } };
}

sub state_of {
    my ($srv, $up, $addr) = @_;
    return servers_of($srv, $up)->{$addr}{state} // '';
}

sub samples {
    my ($srv) = @_;
    my $text = http_get($srv, '/api/metrics')->{body} // '';
    my %s;
    for (split /\n/, $text) {
        next if /^#/;
        $s{$1} = $2 if /^(\S+(?:\{.*\})?) (\S+)$/;
    }
    return \%s;
}

# $n requests to $path: { backend port => count }, the workers seen
sub spread {
    my ($srv, $n, $path) = @_;
    my (%by, %workers);
    for my $i (1 .. $n) {
        my $r = http_get($srv, "$path$i");
        my $b = $r->{body} // '';
        chomp $b;
        $by{ $r->{status} == 200 ? $b : "status $r->{status}" }++;
        $workers{ $r->{headers}{'x-worker'}[0] // '' }++;
    }
    return (\%by, scalar keys %workers);
}

# the probes the backend saw: [ [time, port, uri], ... ]
sub probes {
    my ($b) = @_;
    my @p;
    for (split /\n/, slurp("$b->{prefix}/logs/probes.log") // '') {
        push @p, [$1, $2, $3] if /^(\S+) (\d+) (\S+) dynroute-health-check$/;
    }
    return \@p;
}

# Probe targets of our own, one child process: a port that accepts and
# never answers, one that answers garbage, one that resets.  Stopped by PID.
sub start_bad() {
    my %l;
    for my $k (qw(hang garbage reset)) {
        $l{$k} = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                     Listen => 64, ReuseAddr => 1)
            or die "listen: $@";
    }
    my %port = map { $_ => $l{$_}->sockport } keys %l;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        local $SIG{ALRM} = sub { POSIX::_exit(0) };
        alarm 120;
        my $sel = IO::Select->new(values %l);
        my @held;
        while (1) {
            for my $s ($sel->can_read(1)) {
                my $c = $s->accept or next;
                if ($s == $l{hang}) {
                    push @held, $c;
                    shift @held while @held > 200;
                } elsif ($s == $l{garbage}) {
                    sysread $c, my $buf, 4096;
                    print $c "garbage\r\n\r\n";
                    close $c;
                } else {
                    sysread $c, my $buf, 4096;
                    setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
                    close $c;
                }
            }
        }
    }
    close $_ for values %l;
    return (track($pid, 'bad probe targets'), \%port);
}

# ---- the backend -------------------------------------------------------

my ($b1, $b2, $b3, $b4, $refused) = free_ports(5);
my $backend = start_nginx(workers => 1, http_config => <<"CONF", config => '');
    log_format probe '\$msec \$server_port \$request_uri \$http_user_agent';
    server {
        listen 127.0.0.1:$b1;
        listen 127.0.0.1:$b2;
        listen 127.0.0.1:$b3;
        listen 127.0.0.1:$b4;
        listen unix:\$TEST_NGINX_PREFIX/b.sock;
        access_log \$TEST_NGINX_PREFIX/logs/probes.log probe;
        location /healthz {
            if (-f \$TEST_NGINX_PREFIX/html/down_\$server_port) {
                return 503 "sick\\n";
            }
            return 200 "all good\\n";
        }
        location /teapot {
            if (\$server_port = $b2) { return 418 "tea\\n"; }
            return 200 "fine\\n";
        }
        location /text {
            if (\$server_port = $b2) { return 200 "the magic word\\n"; }
            return 200 "nothing here\\n";
        }
        location / { return 200 "\$server_port\\n"; }
    }
CONF
my $down = sub { spew("$backend->{html_dir}/down_$_[0]", '') };
my $upagain = sub { unlink "$backend->{html_dir}/down_$_[0]" };

my ($bad, $badport) = start_bad();
my ($a1, $a2, $a3, $a4) = map { "127.0.0.1:$_" } $b1, $b2, $b3, $b4;
my ($ah, $ag, $ar, $ax) = map { "127.0.0.1:$_" } @$badport{qw(hang garbage reset)}, $refused;

my $au = "unix:$backend->{prefix}/b.sock";
my $http = <<"CONF";
    dynroute_zone routes 1m;
    upstream dyn {
        dynroute_servers max=8;
        dynroute_health_check interval=300ms fails=2 passes=2 uri=/healthz
                              body=good slow_start=4s;
        server $a1;
        server $a2;
        server $a3;
    }
    upstream st {
        dynroute_servers;
        dynroute_health_check interval=300ms uri=/teapot status=204,418-418;
        server $a2;
        server $a3;
    }
    upstream bd {
        dynroute_servers;
        dynroute_health_check interval=300ms uri=/text body=magic;
        server $a2;
        server $a3;
    }
    upstream bad {
        dynroute_servers;
        dynroute_health_check interval=500ms timeout=300ms;
        server $ah;
        server $ag;
        server $ar;
        server $ax;
        server $a4;
    }
    upstream ux {
        dynroute_servers;
        dynroute_health_check interval=300ms uri=/healthz body=good;
        server $au;
    }
    upstream slow {
        dynroute_servers;
        dynroute_health_check interval=2s uri=/reload;
        server $a4;
    }
CONF
my $config = <<'CONF';
    add_header X-Worker $pid always;
    location /d/ { proxy_pass http://dyn; }
    location /ir/ { try_files /nowhere @dyn; }
    location @dyn { proxy_pass http://dyn; }
    location /sr/ {
        ssi on;
        ssi_types text/plain;
        return 200 '<!--# include virtual="/d/sub" -->';
    }
    location /api/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
    location /ping { return 200 "pong\n"; }
CONF

my $srv = start_nginx(workers => 2, http_config => $http, config => $config);

# ---- every server up: all take traffic ------------------------------

ok(wait_for(5, sub { state_of($srv, 'dyn', $a1) eq 'up' && state_of($srv, 'dyn', $a3) eq 'up'
                     && (servers_of($srv, 'dyn')->{$a1}{health}{state} // '') eq 'up' }),
   'dyn: the servers are up after their first probes');
my ($by, $nw) = spread($srv, 30, '/d/');
ok($by->{$b1} && $by->{$b2} && $by->{$b3} && $by->{$b1} + $by->{$b2} + $by->{$b3} == 30,
   '30 requests: each server takes some');

# ---- a server that fails its check: skipped by every worker ---------

$down->($b1);
my $t0 = Time::HiRes::time();
ok(wait_for(5, sub { state_of($srv, 'dyn', $a1) eq 'unhealthy' }), "$a1 fails its check: unhealthy");
my $took = Time::HiRes::time() - $t0;
cmp_ok($took, '<', 0.3 * 2 + 0.8, "... within interval x fails (and a tick): ${\ sprintf '%.2f', $took} s");
($by, $nw) = spread($srv, 40, '/d/');
is($nw, 2, '40 requests answered by both workers');
ok(!$by->{$b1}, "... none reached $a1");
is(($by->{$b2} // 0) + ($by->{$b3} // 0), 40, '... all to the others');
($by) = spread($srv, 10, '/ir/');
ok(!$by->{$b1} && ($by->{$b2} // 0) + ($by->{$b3} // 0) == 10, 'internal redirects skip it too');
my %sr;
for (1 .. 10) {
    my $r = http_get($srv, "/sr/$_");
    $sr{ ($r->{body} // '') =~ /^(\d+)/ ? $1 : 'none' }++;
}
ok(!$sr{$b1} && !$sr{none}, 'subrequests skip it too') or Test::More::diag(join " ", %sr);

my $s = samples($srv);
is($s->{qq(dynroute_server_state{upstream="dyn",server="$a1",state="unhealthy"})}, 1,
   'metrics: dynroute_server_state unhealthy');
cmp_ok($s->{qq(dynroute_server_checks_total{upstream="dyn",server="$a1",result="fail"})} // 0, '>=', 2,
       'metrics: its failed checks');
cmp_ok($s->{qq(dynroute_server_checks_total{upstream="dyn",server="$a2",result="pass"})} // 0, '>=', 1,
       'metrics: the others pass');
my $h = servers_of($srv, 'dyn')->{$a1}{health};
is($h->{state}, 'down', 'stats: health state down');
cmp_ok($h->{failures}, '>=', 2, 'stats: its failures');
like(http_get($srv, '/api/stats')->{body}, qr/"unhealthy"/, 'stats: state unhealthy');

# ---- back up after passes, ramped by slow start ---------------------

$upagain->($b1);
ok(wait_for(5, sub { state_of($srv, 'dyn', $a1) eq 'up' }), "$a1 passes again: up");
my $ups = servers_of($srv, 'dyn')->{$a1}{health}{up_since};
cmp_ok($ups, '>', 0, '... up_since set');
($by) = spread($srv, 60, '/d/');
my $early = ($by->{$b1} // 0) / 60;
cmp_ok($early, '<', 0.2, "right after: a small share (${\ sprintf '%.2f', $early})");
wait_for(6, sub { Time::HiRes::time() > $ups + 4.2 }, 0.1);
($by) = spread($srv, 60, '/d/');
my $late = ($by->{$b1} // 0) / 60;
cmp_ok($late, '>', 0.25, "after slow_start: its full share (${\ sprintf '%.2f', $late})");

# ---- the status list and the body text ------------------------------

ok(wait_for(5, sub { state_of($srv, 'st', $a3) eq 'unhealthy' }), 'status=204,418: a 200 fails');
is(state_of($srv, 'st', $a2), 'up', '... a 418 passes');
ok(wait_for(5, sub { state_of($srv, 'bd', $a3) eq 'unhealthy' }), 'body=magic: a body without it fails');
is(state_of($srv, 'bd', $a2), 'up', '... one with it passes');

ok(wait_for(5, sub { (servers_of($srv, 'ux')->{$au}{health}{checks} // 0) >= 2 }),
   'a unix socket server is probed');
is(servers_of($srv, 'ux')->{$au}{health}{state}, 'up', '... and up');

# ---- hang, garbage, reset, refused: failures; the workers serve on --

ok(wait_for(6, sub {
       my $g = servers_of($srv, 'bad');
       !grep { ($g->{$_}{state} // '') ne 'unhealthy' } $ah, $ag, $ar, $ax }),
   'a target that hangs, answers garbage, resets or refuses: unhealthy');
is(state_of($srv, 'bad', $a4), 'up', '... beside a good one');
my $slowest = 0;
for (1 .. 20) {
    my $t = Time::HiRes::time();
    my $r = http_get($srv, '/ping');
    my $d = Time::HiRes::time() - $t;
    $slowest = $d if $d > $slowest;
    Time::HiRes::sleep(0.05);
}
cmp_ok($slowest, '<', 0.2, "requests answered meanwhile, the slowest in ${\ sprintf '%.3f', $slowest} s");
like(slurp($srv->{error_log}), qr/server \Q$ah\E of upstream "bad" is down: timed out/, 'the hang: timed out');

# ---- a reload makes no burst of probes ------------------------------

ok(wait_for(5, sub { grep { $_->[2] eq '/reload' } @{ probes($backend) } }), 'the 2 s check probes');
for (1 .. 2) {
    my $n = grep { $_->[2] eq '/reload' } @{ probes($backend) };
    wait_for(5, sub { (grep { $_->[2] eq '/reload' } @{ probes($backend) }) > $n }, 0.02);
    ok(reload_nginx($srv), "reload $_, just after a probe");
}
Time::HiRes::sleep(3);
my @t = map { $_->[0] } grep { $_->[2] eq '/reload' } @{ probes($backend) };
my $gap = 1e9;
$gap = $t[$_] - $t[$_ - 1] < $gap ? $t[$_] - $t[$_ - 1] : $gap for 1 .. $#t;
cmp_ok(scalar @t, '>=', 3, 'probes went on across the reloads');
cmp_ok($gap, '>=', 1.8, "no two probes closer than the interval (${\ sprintf '%.2f', $gap} s)");

# ---- a runtime server through the API is probed ---------------------

$down->($b4);
my ($st) = api_call($srv, 'PUT', '/api/upstreams/dyn/servers', qq({"$a2": {}, "$a4": {}}));
is($st, 200, 'a runtime list with a new server');
ok(wait_for(5, sub { state_of($srv, 'dyn', $a4) eq 'unhealthy' }), '... probed: unhealthy');
cmp_ok(servers_of($srv, 'dyn')->{$a4}{health}{checks}, '>=', 2, '... its checks counted');
($by) = spread($srv, 20, '/d/');
is_deeply($by, { $b2 => 20 }, '... skipped');
$upagain->($b4);
ok(wait_for(5, sub { state_of($srv, 'dyn', $a4) eq 'up' }), '... and up when it passes');
ok(samples($srv)->{qq(dynroute_server_checks_total{upstream="dyn",server="$a4",result="pass"})},
   'metrics: its passed checks');

# ---- all unhealthy: 502 ----------------------------------------------

$down->($b2);
$down->($b4);
ok(wait_for(5, sub { state_of($srv, 'dyn', $a2) eq 'unhealthy' && state_of($srv, 'dyn', $a4) eq 'unhealthy' }),
   'every server unhealthy');
is(http_get($srv, '/d/x')->{status}, 502, '... 502');
$upagain->($b2);
$upagain->($b4);

error_log_ok(stop_nginx($srv), 'no alert/crit/crash');
stop_proc($bad);
stop_nginx($backend);

run_tests();

__DATA__

=== TEST 1: not in an upstream
--- http_config
    dynroute_zone z 1m;
--- config
    dynroute_health_check;
--- must_die
--- error_log eval
qr/\[emerg\] "dynroute_health_check" directive is not allowed here in .*nginx\.conf:5/



=== TEST 2: an upstream without dynroute_servers
--- http_config
    dynroute_zone z 1m;
    upstream u {
        dynroute_health_check;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_health_check in upstream "u" without dynroute_servers: the health is kept in the servers' cells, which only such groups have; write "dynroute_servers;" before it in .*nginx\.conf:5/



=== TEST 3: twice
--- http_config
    dynroute_zone z 1m;
    upstream u {
        dynroute_servers;
        dynroute_health_check;
        dynroute_health_check interval=1s;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_health_check is duplicate in upstream "u": write one line with all its parameters in .*nginx\.conf:7/



=== TEST 4: a uri that is not a path
--- http_config
    dynroute_zone z 1m;
    upstream u {
        dynroute_servers;
        dynroute_health_check uri=healthz;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_health_check: invalid parameter "uri=healthz": a path that starts with "\/", such as uri=\/healthz in .*nginx\.conf:6/



=== TEST 5: bad values
--- http_config
    dynroute_zone z 1m;
    upstream u {
        dynroute_servers;
        dynroute_health_check interval=1s
                              fails=0;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_health_check: invalid parameter "fails=0": a number of probes in a row from 1 to 100, such as fails=2 in .*nginx\.conf:7/



=== TEST 6: timeout longer than the interval
--- http_config
    dynroute_zone z 1m;
    upstream u {
        dynroute_servers;
        dynroute_health_check interval=1s timeout=2s;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_health_check: timeout=2000ms is longer than interval=1000ms: a probe must end before the next one; write a shorter timeout= or a longer interval= in .*nginx\.conf:6/



=== TEST 7: a status that is no code
--- http_config
    dynroute_zone z 1m;
    upstream u {
        dynroute_servers;
        dynroute_health_check status=2xx;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_health_check: invalid parameter "status=2xx": a list of status codes or ranges from 100 to 599, such as status=200-399 or status=200,204,301-302 in .*nginx\.conf:6/



=== TEST 8: no dynroute_zone
--- http_config
    upstream u {
        dynroute_servers;
        dynroute_health_check;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_health_check in upstream "u" keeps the servers' health in the dynroute_zone, and there is none: add "dynroute_zone NAME SIZE;" to the http block, in .*nginx\.conf:5/
