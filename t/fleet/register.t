# dynroutectl --etcd register: a service instance's own registration under
# an etcd lease, against one etcd (Debian's /usr/bin/etcd, started here on
# free loopback ports with a data directory of its own).  The key
# services/NAME/servers/ADDR carries the fields given, under a lease of the
# TTL asked, with ADDR written canonical; the lease is kept alive past three
# TTLs; SIGTERM and SIGINT delete the key and revoke the lease at once;
# after SIGKILL the key goes with the lease, within TTL + 1 s; a process
# frozen for longer than the TTL (its lease ended meanwhile) registers again
# under a new lease; with etcd stopped for longer than the TTL and started
# again, it keeps its lease alive again (it never exits on its own); bad
# input is refused before anything is written.  No nginx: the nodes apply these keys
# once their agents learn them.  make fleet-deps installs etcd.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute::Proc;
use File::Temp ();
use Test::More;
use Time::HiRes ();

plan(skip_all => "$ETCD is missing (make fleet-deps installs Debian's etcd-server)")
    unless -x $ETCD;

delete $ENV{$_} for qw(DYNROUTE_NODES DYNROUTE_ETCD_PASSWORD http_proxy HTTP_PROXY
                       ETCDCTL_ENDPOINTS);
$ENV{ETCDCTL_API} = 3;

my $dir = File::Temp::tempdir(CLEANUP => 1);
my $started = Time::HiRes::time();
my (@logs, $etcd_log);

# On failure, what the registrations and etcd said; then the module stops ours.
END {
    my $status = $?;
    if ($etcd_log && !Test::More->builder->is_passing) {
        diag("--- $_:\n" . slurp($_)) for @logs;
        diag("--- etcd's log (the end):\n" . tail_of(slurp($etcd_log), 40));
    }
    $? = $status;
}

my ($etcd_port, $peer_port) = free_ports(2);
$etcd_log = "$dir/etcd.log";
my $etcd = { name => 'reg1', dir => "$dir/etcd", log => $etcd_log,
             client => $etcd_port, peer => $peer_port };
my $endpoint = etcd_endpoint($etcd);
start_etcd($etcd);
ok(etcd_ready(20, $etcd), 'etcd started') or BAIL_OUT("etcd did not start:\n" . slurp($etcd_log));

my $servers = '/dynroute/services/shop/servers/';

sub ctl { return run_cmd(tool_cmd('dynroutectl'), '--etcd', $endpoint, @_) }

# {key => {value, lease (decimal)}} under the prefix
sub keys_now {
    my $r = etcdctl($etcd, 'get', '--prefix', '/dynroute/', '-w', 'json');
    my $kvs = json_of($r->{out})->{kvs} || [];
    require MIME::Base64;
    return { map { MIME::Base64::decode_base64($_->{key})
                   => { value => MIME::Base64::decode_base64($_->{value} // ''),
                        lease => $_->{lease} // 0 } } @$kvs };
}

sub lease_info { return etcdctl($etcd, 'lease', 'timetolive', '--keys', $_[0])->{out} }

# Starts a registration; returns {pid, log}.
my $n = 0;
sub register {
    my (@argv) = @_;
    my $log = "$dir/register-" . ++$n . ".log";
    push @logs, $log;
    my $pid = spawn("register $n", $log, tool_cmd('dynroutectl'), '--etcd', $endpoint,
                    'register', @argv);
    return { pid => $pid, log => $log };
}

# The lease (hex) of the reg's "registered" line number $which (1: the first).
sub registered {
    my ($reg, $which, $secs) = @_;
    my $line;
    wait_for($secs // 10, sub {
        my @l = slurp($reg->{log}) =~ /^(etcd: registered.*)$/mg;
        $line = $l[$which - 1];
    });
    return unless defined $line;
    my ($key, $value, $lease, $ttl) =
        $line =~ /^etcd: registered(?: again)? (\S+) (\S+), lease ([0-9a-f]+), ttl (\d+) s/
        or return;
    return { line => $line, key => $key, value => $value, lease => $lease, ttl => $ttl };
}

# ---- registered: the key, its value, its lease of the TTL asked --------------------

my $a = register('shop', '10.0.0.5:8080', '--weight', 2, '--max-fails', 3,
                 '--fail-timeout', 5, '--backup', '--ttl', 2);
my $b = register('shop', '[2001:DB8:0:0::5]:8080', '--ttl', 2);
my $c = register('api-v2', 'unix:/run/app.sock', '--ttl', 3);
my $d = register('shop', '10.0.0.7', '--ttl', 2);

my $ra = registered($a, 1);
ok($ra, 'register: one line when registered') or diag(slurp($a->{log}));
is($ra->{key}, "${servers}10.0.0.5:8080", '... naming the key');
is($ra->{ttl}, 2, '... and the TTL');
my $keys = keys_now();
is($keys->{"${servers}10.0.0.5:8080"}{value}, '{"weight":2,"max_fails":3,"fail_timeout":5,"backup":true}',
   'the value: the fields given');
is(sprintf('%x', $keys->{"${servers}10.0.0.5:8080"}{lease}), $ra->{lease},
   'the key is under the lease the line names');
like(lease_info($ra->{lease}), qr/granted with TTL\(2s\).*attached keys\(\[\Q${servers}10.0.0.5:8080\E\]\)/,
     'the lease: granted with the TTL asked, the key attached');

my $rb = registered($b, 1);
my $rc = registered($c, 1);
my $rd = registered($d, 1);
is($rb && $rb->{key}, "${servers}[2001:db8::5]:8080", 'an IPv6 address: the key has it as RFC 5952 writes it');
is(keys_now()->{"${servers}[2001:db8::5]:8080"}{value}, '{}', 'no field given: the value is {}');
is($rc && $rc->{key}, '/dynroute/services/api-v2/servers/unix:/run/app.sock',
   'a unix socket: the key ends with its path, slashes and all');
like(lease_info($rc->{lease}), qr/granted with TTL\(3s\)/, '--ttl 3: a lease of 3 s');
is($rd && $rd->{key}, "${servers}10.0.0.7:80", 'no port: 80');

# ---- bad input: refused, naming the value and the form; nothing written ---------

my $forms = qr/expected IPV4\[:PORT\], \[IPV6\]\[:PORT\] or unix:\/PATH/;
my @bad = (
    [['sh/op', '10.0.0.5'], qr/bad service name "sh\/op": expected letters, digits, '_', '-' and '\.'/],
    [['.hidden', '10.0.0.5'], qr/bad service name "\.hidden": expected letters/],
    [['shop', '10.0.0.300:80'], qr/bad address "10\.0\.0\.300:80": "10\.0\.0\.300" is no IPv4 address.*; $forms/],
    [['shop', '[::1:80'], qr/bad address "\[::1:80": no '\]' after the IPv6 address; $forms/],
    [['shop', '2001:db8::5'], qr/bad address "2001:db8::5": an IPv6 address goes in brackets.*; $forms/],
    [['shop', 'unix:'], qr/bad address "unix:": a unix socket needs an absolute path; $forms/],
    [['shop', '10.0.0.5:0'], qr/bad address "10\.0\.0\.5:0": port "0" is not a number from 1 to 65535; $forms/],
    [['shop', '10.0.0.5:65536'], qr/bad address "10\.0\.0\.5:65536": port "65536" is not a number from 1 to 65535; $forms/],
    [['shop', 'app.example.com:8080'], qr/bad address "app\.example\.com:8080": "app\.example\.com" is a host name, not an IP address; $forms/],
    [['shop', 'localhost'], qr/bad address "localhost": "localhost" is a host name/],
    [['shop', '10.0.0.5', '--ttl', 1], qr/argument --ttl: "1": expected an integer from 2 to 3600/],
    [['shop', '10.0.0.5', '--weight', 0], qr/argument --weight: "0": expected an integer from 1 to 10000/],
    [['shop', '10.0.0.5', '--weight', 10001], qr/argument --weight: "10001": expected an integer from 1 to 10000/],
);
for my $case (@bad) {
    my ($argv, $said) = @$case;
    my $r = ctl('register', @$argv);
    is($r->{exit}, 2, "register @$argv: exit 2");
    like($r->{err}, $said, "register @$argv: says what and the form") or diag($r->{err});
}
my $r = run_cmd(tool_cmd('dynroutectl'), 'register', 'shop', '10.0.0.5');
is($r->{exit}, 2, 'register without --etcd: exit 2');
like($r->{err}, qr/register needs --etcd/, 'register without --etcd: says so');
is_deeply([sort keys %{ keys_now() }],
          [sort map { $_->{key} } $ra, $rb, $rc, $rd],
          'the refused registrations wrote nothing');

# ---- kept alive past three TTLs ------------------------------------------------------

# the lease must outlive its TTL three times over: waiting that out is the test
my $since = Time::HiRes::time();
Time::HiRes::sleep(3 * 2 + 0.5);
$keys = keys_now();
is(sprintf('%x', $keys->{$ra->{key}}{lease} // 0), $ra->{lease},
   sprintf('after %.1f s (TTL 2 s): the key is there, under its lease', Time::HiRes::time() - $since));
ok(alive($a->{pid}), '... and register still runs');

# ---- SIGTERM: the key deleted and the lease revoked at once ----------------------

is(stop_proc($a->{pid}, 'TERM'), 0, 'SIGTERM: exit 0');
ok(!exists keys_now()->{$ra->{key}}, 'SIGTERM: the key is gone at once');
like(lease_info($ra->{lease}), qr/already expired/, 'SIGTERM: the lease is revoked');
like(slurp($a->{log}), qr/^etcd: deregistered \Q$ra->{key}\E: key deleted, lease $ra->{lease} revoked$/m,
     'SIGTERM: one line says so');

is(stop_proc($c->{pid}, 'INT'), 0, 'SIGINT: exit 0');
ok(!exists keys_now()->{$rc->{key}}, 'SIGINT: the key is gone at once');
like(lease_info($rc->{lease}), qr/already expired/, 'SIGINT: the lease is revoked');

# ---- SIGKILL: the key goes with the lease, within TTL + 1 s ------------------------

kill 'KILL', $b->{pid};
my $killed = Time::HiRes::time();
stop_proc($b->{pid});                   # reaps it
my $gone = wait_for(2 + 1 + 2, sub { !exists keys_now()->{$rb->{key}} }, 0.05);
my $after = Time::HiRes::time() - $killed;
ok($gone && $after <= 2 + 1, sprintf('SIGKILL: the key is gone within TTL + 1 s (%.2f s, TTL 2 s)', $after));
diag(sprintf('SIGKILL to register --ttl 2: the key was gone after %.2f s', $after));

# ---- a process that could not keep its lease alive for longer than the TTL --------

# SIGSTOP stands for etcd being out of the process's reach while etcd runs:
# the lease expires, and the key with it
kill 'STOP', $d->{pid};
ok(wait_for(2 + 1 + 2, sub { !exists keys_now()->{$rd->{key}} }, 0.05),
   'register frozen for longer than its TTL: the key goes with the lease');
kill 'CONT', $d->{pid};
my $thawed = Time::HiRes::time();
my $rd2 = registered($d, 2, 2 / 3 + 1);
my $back = Time::HiRes::time() - $thawed;
ok($rd2, sprintf('thawed: registered again within TTL/3 + 1 s (%.2f s)', $back)) or diag(slurp($d->{log}));
like($rd2 && $rd2->{line}, qr/^etcd: registered again \Q$rd->{key}\E \{\}, lease ([0-9a-f]+), ttl 2 s \(lease $rd->{lease} ended while etcd was out of reach\)$/,
     '... under a new lease, and says that the old one ended');
isnt($rd2 && $rd2->{lease}, $rd->{lease}, '... another lease');
is(sprintf('%x', keys_now()->{$rd->{key}}{lease} // 0), $rd2 && $rd2->{lease}, 'the key is under the new lease');

# ---- etcd stopped for longer than the TTL, then started again --------------------

stop_proc($etcd->{pid}, 'TERM');
ok(!alive($etcd->{pid}), 'etcd stopped');
Time::HiRes::sleep(2 + 1);              # longer than the TTL: what is tested
ok(alive($d->{pid}), 'etcd gone for longer than the TTL: register still runs');
like(slurp($d->{log}), qr/^dynroutectl: etcd: no endpoint answers \(127\.0\.0\.1:\d+: connection refused\); retrying in [0-9.]+ s$/m,
     '... and says that it retries');
my $offset = length slurp($d->{log});
start_etcd($etcd);
ok(etcd_ready(20, $etcd), 'etcd started again, on the same data directory');
my $up = Time::HiRes::time();
# etcd 3.4 gives every lease its whole TTL again when a member becomes the
# leader (a restarted one included): the lease of before is alive again,
# and the key with it, for a TTL; register must take it up again (or, had
# the lease ended, register anew) within the TTL
my $again = wait_for(2 / 3 + 1, sub {
        slurp($d->{log}, $offset) =~ /^etcd: (?:answers again after [0-9.]+ s; lease $rd2->{lease} kept alive|registered again .*)$/m
   }, 0.05);
my $took = Time::HiRes::time() - $up;
ok($again, sprintf('etcd back: register keeps its lease alive again within TTL/3 + 1 s (%.2f s)', $took))
    or diag(slurp($d->{log}, $offset));
diag(sprintf('etcd back after 3 s away: register took its lease up again after %.2f s', $took));
$since = Time::HiRes::time();
Time::HiRes::sleep(2 * 2 + 0.5);        # longer than the lease lives unless kept alive
$keys = keys_now();
ok(exists $keys->{$rd->{key}},
   sprintf('%.1f s later (TTL 2 s): the key is still there', Time::HiRes::time() - $since));
like(lease_info(sprintf('%x', $keys->{$rd->{key}}{lease} // 0)), qr/granted with TTL\(2s\), remaining\([12]s\)/,
     '... under a lease kept alive');
is(stop_proc($d->{pid}, 'TERM'), 0, 'SIGTERM: exit 0');
is_deeply(keys_now(), {}, 'every registration gone');

stop_proc($etcd->{pid}, 'TERM');
my $tracebacks = join '', grep { /Traceback/ } map { slurp($_) } @logs;
is($tracebacks, '', 'no registration printed a traceback');
diag(sprintf('t/fleet/register.t: %.1f s', Time::HiRes::time() - $started));

done_testing();
