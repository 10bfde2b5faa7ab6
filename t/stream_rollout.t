# Rollouts in stream{}: a stream table's target may be a dynroute_rollout,
# whose variant a connection gets by a hash of its key (the client address
# by default, or the SNI), through the core's split that the http rollouts
# use.  A front stream server reads the ClientHello (ssl_preread) and TLS
# backends of the same nginx (certificates made here with openssl) answer
# with their tag.  Clients bind to addresses of 127.0.0.0/8 (Linux accepts
# any of them on loopback), so that each has an address of its own.  Then
# the configuration errors of nginx -t.
#
# The packaged nginx has stream as a dynamic module: TEST_NGINX_STREAM_MODULE
# (set by make prove) loads it before the dynroute .so.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp ();
use IO::Socket::IP;
use Test::More;
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Fixtures qw($STABLE_CANARY);
use Test::Nginx::Dynroute::Proc qw(free_ports slurp);
use Test::Nginx::Dynroute::Stream qw(stream_missing make_cert tls_backend);

my $why = stream_missing();
plan skip_all => $why if $why;
plan skip_all => 'binding to 127.0.1.1 is not possible here (Linux only)'
    unless IO::Socket::IP->new(LocalHost => '127.0.1.1', LocalPort => 0,
                               Listen => 1);

# One certificate for the backends.
my $dir = File::Temp::tempdir(CLEANUP => 1);
make_cert($dir, 'backend.test');

my ($F1, $F2, $F3, $S, $K, $Z) = free_ports(6);

# 1,000 client addresses, none of them 127.0.0.1.
my @addrs = map { my $x = $_; map { "127.0.$x.$_" } 1 .. 250 } 1 .. 4;

# One client context for every connection: a new one each time costs more
# than the handshake.
my $ctx = IO::Socket::SSL::SSL_Context->new(
    SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE())
    or BAIL_OUT('no TLS client context: ' . IO::Socket::SSL::errstr());

# The tag of the TLS backend that answered a connection from $from through
# $port with SNI $name (none if undef); "closed: ..." when it fails.
sub tls_tag {
    my ($from, $port, $name) = @_;
    my $s = IO::Socket::SSL->new(
        LocalAddr => $from, PeerHost => '127.0.0.1', PeerPort => $port,
        SSL_reuse_ctx => $ctx, SSL_hostname => $name // '', Timeout => 5);
    return 'closed: ' . (IO::Socket::SSL::errstr() || $@ || $!) unless $s;
    my $line = $s->getline;
    $s->close(SSL_no_shutdown => 1);
    return 'closed: no answer' unless defined $line;
    chomp $line;
    return $line;
}

# The variant the http rollout of the same nginx gives a request from
# $from with Host $host (and X-Sni, the http rollout's key, if given).
sub http_variant {
    my ($srv, $from, $host, $sni) = @_;
    my $s = IO::Socket::IP->new(LocalAddr => $from, PeerHost => '127.0.0.1',
                                PeerPort => $srv->{port}, Timeout => 5)
        or return "no connection: $@";
    print $s "GET / HTTP/1.1\r\nHost: $host\r\n"
        . (defined $sni ? "X-Sni: $sni\r\n" : '') . "Connection: close\r\n\r\n";
    local $/;
    my $res = <$s> // '';
    return $res =~ /^X-Variant: (\S+)\r$/mi ? $1 : 'none';
}

sub backend {
    my ($port, $tag) = @_;
    return tls_backend($port, "$dir/backend.test", $tag);
}

# The same rollouts in http and in stream: same names, variants, weights
# and keys (X-Sni in http stands for the SNI in stream).
sub rollouts {
    my ($weight, $key) = @_;
    return <<"CONF";
    dynroute_rollout checkout {
        variant  stable  stable  *;
        variant  canary  canary  $weight;
    }

    dynroute_rollout bysni {
        variant  stable  stable  50%;
        variant  canary  canary  50%;
        key      $key;
    }

    dynroute_rollout rest {
        variant  dark    zero    0%;
        variant  canary  canary  30%;
        variant  stable  stable  *;
    }
CONF
}

sub http_conf {
    my ($weight) = @_;
    return $STABLE_CANARY
        . "    upstream zero { server 127.0.0.1:\$TEST_NGINX_PORT2; }\n"
        . rollouts($weight, '$http_x_sni') . <<'CONF';
    dynroute_table h {
        ro.test     checkout;
        sni.test    bysni;
        rest.test   rest;
    }
CONF
}

my $http_location = <<'CONF';
    location / {
        dynroute h;
        add_header X-Variant $dynroute_variant always;
        proxy_pass http://$dynroute_upstream;
    }
CONF

sub stream_conf {
    my ($weight) = @_;
    my $conf = <<'CONF';
stream {
    log_format dr '$pid $server_port $remote_addr '
                  '$dynroute_upstream|$dynroute_variant|$dynroute_rule';
    access_log $TEST_NGINX_PREFIX/logs/stream.log dr;

    upstream stable { server 127.0.0.1:%S%; }
    upstream canary { server 127.0.0.1:%K%; }
    upstream zero   { server 127.0.0.1:%Z%; }
    upstream pass   { dynroute_balancer; }

%ROLLOUTS%
    dynroute_rollout bysource {
        variant  stable  stable  100%;
        variant  canary  canary  0%;
        source   127.0.9.0/24  canary;
    }

    dynroute_table t {
        *.sni.test      bysni;
        rest.test       rest;
        src.test        bysource;
        plain.test      stable;
        default         checkout;
    }

    server {
        listen 127.0.0.1:%F1%;
        ssl_preread on;
        dynroute t;
        proxy_pass $dynroute_upstream;
    }

    server {
        listen 127.0.0.1:%F2%;
        ssl_preread on;
        dynroute t;
        proxy_pass pass;
    }

    # every connection to the SNI-keyed rollout, with a name or without
    dynroute_table all {
        default         bysni;
    }

    server {
        listen 127.0.0.1:%F3%;
        ssl_preread on;
        dynroute all;
        proxy_pass $dynroute_upstream;
    }
CONF
    my %p = (S => $S, K => $K, Z => $Z, F1 => $F1, F2 => $F2, F3 => $F3,
             ROLLOUTS => rollouts($weight, '$ssl_preread_server_name'));
    $conf =~ s/%(\w+)%/$p{$1}/g;
    return $conf . backend($S, 'stable') . backend($K, 'canary')
        . backend($Z, 'zero') . "}\n";
}

my $srv = start_nginx(http_config => http_conf('10%'),
                      config => $http_location,
                      main_config => stream_conf('10%'), workers => 2);
my $log = "$srv->{prefix}/logs/stream.log";

sub count { my ($h, $v) = @_; scalar grep { $_ eq $v } values %$h }

# ---- a 90/10 canary on the client address --------------------------------

my %first;
$first{$_} = tls_tag($_, $F1, 'ro.test') for @addrs;
is(scalar(grep { !/^(stable|canary)$/ } values %first), 0,
   '1,000 connections, each answered by stable or canary')
    or diag(join ' ', grep { !/^(stable|canary)$/ } values %first);
my $canary = count(\%first, 'canary');
# a fixed set of keys: the count is the same on every run; its expectation
# is 100 with a standard deviation of 9.5, so 70..130 is 3 of them
ok($canary >= 70 && $canary <= 130,
   "10% canary: $canary of 1,000 addresses, within 3 points of 10%");

# each address always gets its variant: again, from 200 of them, twice
my $moved = 0;
for my $round (1 .. 2) {
    for my $a (@addrs[map { $_ * 5 } 0 .. 199]) {
        $moved++ if tls_tag($a, $F1, 'ro.test') ne $first{$a};
    }
}
is($moved, 0, '200 addresses, twice more: each gets the same variant');

# the same split as the http rollout of the same name and weights
my $differ = 0;
for my $a (@addrs) {
    $differ++ if http_variant($srv, $a, 'ro.test') ne $first{$a};
}
is($differ, 0, 'the http rollout gives each of the 1,000 addresses the '
   . 'same variant');

ok(file_lines($log, qr/ $F1 127\.0\.1\.1 (stable|canary)\|\1\|default$/, 1),
   '$dynroute_upstream is the variant\'s upstream, $dynroute_variant its name')
    or diag(slurp($log));
is(tls_tag('127.0.1.1', $F1, 'plain.test'), 'stable',
   'a rule to an upstream in the same table');
ok(file_lines($log, qr/ $F1 127\.0\.1\.1 stable\|-\|plain\.test$/, 1),
   '$dynroute_variant is not found for a rule that is no rollout');

# ---- through the balancer ------------------------------------------------

$differ = 0;
for my $a (@addrs[0 .. 299]) {
    $differ++ if tls_tag($a, $F2, 'ro.test') ne $first{$a};
}
is($differ, 0, 'the balancer hands 300 connections to the variant the '
   . 'variable names');
ok(file_lines($log, qr/ $F2 \S+ canary\|canary\|default$/, 1),
   'the balancer\'s server has the variables too');

# ---- a key on the SNI ----------------------------------------------------

{
    my (%by_name, $same, $http_same) = ((), 0, 0);
    for my $i (1 .. 200) {
        my $name = "n$i.sni.test";
        my @tags = map { tls_tag($addrs[($i * 7 + $_ * 331) % 1000], $F1, $name) }
                   0 .. 2;
        $same++ if $tags[0] eq $tags[1] && $tags[1] eq $tags[2];
        $by_name{$name} = $tags[0];
        $http_same++
            if http_variant($srv, $addrs[$i], 'sni.test', $name) eq $tags[0];
    }
    is($same, 200, 'key $ssl_preread_server_name: each of 200 names gets '
       . 'one variant from 3 addresses');
    my $c = count(\%by_name, 'canary');
    ok($c >= 79 && $c <= 121, "50/50 by name: $c of 200 names on canary, "
       . 'within 3 standard deviations (7)');
    is($http_same, 200, 'the same variant as the http rollout keyed by the '
       . 'same value');
    my $other_table = grep { tls_tag($addrs[$_], $F3, "n$_.sni.test")
                             eq $by_name{"n$_.sni.test"} } 1 .. 50;
    is($other_table, 50, 'another table to the same rollout: the same '
       . 'variant for each name');
}

# no SNI: the key is empty, so the client address (as in http)
{
    my $no_sni = 0;
    for my $a (@addrs[0 .. 49]) {
        $no_sni++ if tls_tag($a, $F1, undef) eq $first{$a};
    }
    is($no_sni, 50, 'no SNI, the default rollout: the address decides');
    # bysni without a name: its key is empty, so the address, as the http
    # rollout without X-Sni
    my ($fallback, %split) = (0);
    for my $a (@addrs[0 .. 199]) {
        my $tag = tls_tag($a, $F3, undef);
        $split{$tag}++;
        $fallback++ if $tag eq http_variant($srv, $a, 'sni.test');
    }
    is($fallback, 200, 'key $ssl_preread_server_name and no SNI: the client '
       . 'address decides, as in http');
    ok(($split{canary} // 0) >= 79 && ($split{stable} // 0) >= 79,
       'and splits the addresses 50/50: '
       . join(', ', map { "$_ $split{$_}" } sort keys %split));
}

# ---- "*" and 0% ----------------------------------------------------------

{
    my %rest;
    $rest{$_} = tls_tag($_, $F1, 'rest.test') for @addrs[0 .. 499];
    is(count(\%rest, 'zero'), 0, '0%: no connection of 500 on the dark '
       . 'variant');
    my $c = count(\%rest, 'canary');
    ok($c >= 120 && $c <= 180, "30%: $c of 500 on canary (150, 3 standard "
       . 'deviations: 30)');
    is(count(\%rest, 'stable') + $c, 500, '"*": the rest on stable');
    my $differ = 0;
    for my $a (@addrs[0 .. 499]) {
        $differ++ if http_variant($srv, $a, 'rest.test') ne $rest{$a};
    }
    is($differ, 0, 'the same split as the http rollout');
}

# ---- source --------------------------------------------------------------

is(tls_tag('127.0.9.7', $F1, 'src.test'), 'canary',
   'source 127.0.9.0/24: a client in it gets its variant, at 0%');
is(tls_tag('127.0.8.7', $F1, 'src.test'), 'stable',
   'a client out of it: the weights');

# ---- 2 workers; a reload that ramps 10% to 20% ---------------------------

# the workers that wrote a line of the stream log
sub pids { +{ map { /^(\d+) / ? ($1 => 1) : () } split /\n/, slurp($log) } }

is(scalar(keys %{ pids() }), 2, 'both workers took connections, and agree');

ok(reload_nginx($srv, http_conf('20%'), undef, stream_conf('20%')),
   'reload: the canary at 20%');
{
    my (%after, $left);
    $after{$_} = tls_tag($_, $F1, 'ro.test') for @addrs;
    $left = grep { $first{$_} eq 'canary' && $after{$_} ne 'canary' } @addrs;
    is($left, 0, 'after the ramp, every canary address is still on canary');
    my $now = count(\%after, 'canary');
    my $entered = grep { $first{$_} ne 'canary' && $after{$_} eq 'canary' }
                  @addrs;
    is($entered, $now - $canary, "only the addresses the step adds moved: "
       . "$entered, now $now on canary");
    ok($now >= 170 && $now <= 230, "20% canary: $now of 1,000");
    my $differ = 0;
    for my $a (@addrs) {
        $differ++ if http_variant($srv, $a, 'ro.test') ne $after{$a};
    }
    is($differ, 0, 'after the reload too, the same variants as http');
}

is(scalar(keys %{ pids() }), 4, 'and so did the 2 workers after the reload');

my $errors = stop_nginx($srv);
error_log_ok($errors, 'routing: no alert/crit/crash');

# ---- nginx -t ------------------------------------------------------------

# The generated nginx.conf: lines 1 and 2, the server (3), its "}" (4) and
# http's (5) with empty http_config and config: main_config starts at 6.
sub conftest {
    my ($main, %o) = @_;
    return nginx_test_config(http_config => $o{http} // '', config => '',
                             main_config => $main);
}

# stream{} at line 6, two upstreams at 7 and 8, the rollout at 9, its first
# line at 10
sub with_rollout {
    my ($lines, $after) = @_;
    return "stream {\n    upstream a { server 127.0.0.1:$S; }\n"
        . "    upstream b { server 127.0.0.1:$K; }\n"
        . "    dynroute_rollout r {\n$lines    }\n" . ($after // '') . "}\n";
}

my $ab = "        variant x a *;\n        variant y b 10%;\n";

my @errors = (
    [ 'header',
      with_rollout("${ab}        header X-Canary;\n"),
      qr/\[emerg\] "header" does not apply to the stream dynroute rollout "r": a TCP connection has no headers: to give chosen clients a variant, write "source CIDR VARIANT;" in \S+nginx\.conf:12$/m ],
    [ 'cookie',
      with_rollout("${ab}        cookie canary;\n"),
      qr/\[emerg\] "cookie" does not apply to the stream dynroute rollout "r": a TCP connection has no cookies: to give chosen clients a variant, write "source CIDR VARIANT;" in \S+nginx\.conf:12$/m ],
    [ 'override_from',
      with_rollout("        override_from 10.0.0.0/8;\n$ab"),
      qr/\[emerg\] "override_from" does not apply to the stream dynroute rollout "r": there is nothing to override at L4 \(no header or cookie\): to give chosen clients a variant, write "source CIDR VARIANT;" in \S+nginx\.conf:10$/m ],
    [ 'sticky_cookie',
      with_rollout("${ab}        sticky_cookie s max_age=1h;\n"),
      qr/\[emerg\] "sticky_cookie" does not apply to the stream dynroute rollout "r": a TCP connection has no cookies: a key's variant stays while the weights hold, so choose a stable key with "key \$variable;" in \S+nginx\.conf:12$/m ],
    [ 'guard',
      with_rollout("${ab}        guard errors=5%;\n"),
      qr/\[emerg\] "guard" does not apply to the stream dynroute rollout "r": a guard needs the runtime state, which stream rollouts do not have yet: change the weights in the configuration and reload in \S+nginx\.conf:12$/m ],
    [ 'ramp',
      with_rollout("${ab}        ramp y 1% 5% hold=1m;\n"),
      qr/\[emerg\] "ramp" does not apply to the stream dynroute rollout "r": a ramp needs the runtime state, which stream rollouts do not have yet: change the weights in the configuration and reload in \S+nginx\.conf:12$/m ],
    [ 'primary',
      with_rollout("${ab}        primary x;\n"),
      qr/\[emerg\] "primary" does not apply to the stream dynroute rollout "r": nothing in stream overrides or falls back to a primary: remove the line in \S+nginx\.conf:12$/m ],
    [ 'an unknown line',
      with_rollout("${ab}        weight y 5%;\n"),
      qr/\[emerg\] unknown directive "weight" in stream dynroute rollout "r": expected variant, key, source or include in \S+nginx\.conf:12$/m ],
    [ 'weights that do not sum to 100%',
      with_rollout("        variant x a 80%;\n        variant y b 10%;\n"),
      qr/\[emerg\] the weights sum to 90%, not 100% \("\*" takes the rest\) in dynroute rollout "r" in \S+nginx\.conf:9$/m ],
    [ 'a bad weight',
      with_rollout("        variant x a *;\n        variant y b 5;\n"),
      qr/\[emerg\] invalid weight "5": expected a percentage with up to two decimals, such as "12\.5%", or "\*" in dynroute rollout "r" in \S+nginx\.conf:11$/m ],
    [ 'one variant',
      with_rollout("        variant x a 100%;\n"),
      qr/\[emerg\] two variants at least are needed in dynroute rollout "r" in \S+nginx\.conf:9$/m ],
    [ 'a variant line without its weight',
      with_rollout("        variant x a;\n        variant y b *;\n"),
      qr/\[emerg\] invalid number of parameters in "variant" of dynroute rollout "r": expected a name, a stream upstream and a weight in \S+nginx\.conf:10$/m ],
    [ 'an unknown upstream',
      with_rollout("        variant x a *;\n        variant y nosuch 10%;\n"),
      qr/\[emerg\] unknown stream upstream "nosuch" of variant "y" in dynroute rollout "r": declare "upstream nosuch \{ server \.\.\.; \}" in stream\{\}, in \S+nginx\.conf:11$/m ],
    [ 'an upstream one edit away',
      with_rollout("        variant x a *;\n        variant y backnd 10%;\n",
                   "    upstream backend { server 127.0.0.1:$K; }\n"),
      qr/\[emerg\] unknown stream upstream "backnd" \(did you mean "backend"\?\) of variant "y" in dynroute rollout "r": declare "upstream backnd \{ server \.\.\.; \}" in stream\{\}, in \S+nginx\.conf:11$/m ],
    [ 'a balancer upstream one edit away: not suggested',
      with_rollout("        variant x a *;\n        variant y pas 10%;\n",
                   "    upstream pass { dynroute_balancer; }\n"),
      qr/\[emerg\] unknown stream upstream "pas" of variant "y" in dynroute rollout "r": declare "upstream pas \{ server \.\.\.; \}" in stream\{\}, in \S+nginx\.conf:11$/m ],
    [ "an http upstream's name",
      with_rollout("        variant x a *;\n        variant y web 10%;\n"),
      qr/\[emerg\] upstream "web" of variant "y" in dynroute rollout "r" is an http upstream: a stream rollout routes to stream upstreams, declare "upstream web \{ \.\.\. \}" in stream\{\}, in \S+nginx\.conf:12$/m,
      http => "upstream web { server 127.0.0.1:1; }\n" ],
    [ 'a balancer upstream as a variant',
      with_rollout("        variant x a *;\n        variant y pass 10%;\n",
                   "    upstream pass { dynroute_balancer; }\n"),
      qr/\[emerg\] stream upstream "pass" of variant "y" in dynroute rollout "r" has dynroute_balancer: a variant's upstream has servers, in \S+nginx\.conf:11$/m ],
    [ "a rollout with an upstream's name",
      "stream {\n    upstream a { server 127.0.0.1:$S; }\n"
      . "    upstream b { server 127.0.0.1:$K; }\n"
      . "    dynroute_rollout a {\n$ab    }\n}\n",
      qr/\[emerg\] dynroute rollout "a" has the name of a stream upstream: a table's target would name both, rename one of them, in \S+nginx\.conf:9$/m ],
    [ 'a key that is no variable',
      with_rollout("${ab}        key remote_addr;\n"),
      qr/\[emerg\] invalid key "remote_addr" in dynroute rollout "r": expected a variable such as \$remote_addr or \$ssl_preread_server_name in \S+nginx\.conf:12$/m ],
    [ 'an unknown key variable',
      with_rollout("${ab}        key \$nosuch \$remote_addr;\n"),
      qr/\[emerg\] unknown variable "\$nosuch" in the key of dynroute rollout "r": use a stream variable, such as \$remote_addr or \$ssl_preread_server_name, in \S+nginx\.conf:9$/m ],
    [ 'a key of $dynroute_*',
      with_rollout("${ab}        key \$dynroute_upstream;\n"),
      qr/\[emerg\] invalid key "\$dynroute_upstream" in dynroute rollout "r": the key is read to take the decision that \$dynroute_\* report; use \$remote_addr or \$ssl_preread_server_name in \S+nginx\.conf:12$/m ],
    [ 'two key lines',
      with_rollout("${ab}        key \$remote_addr;\n        key \$ssl_preread_server_name;\n"),
      qr/\[emerg\] duplicate "key" in dynroute rollout "r": list the variables on one line in \S+nginx\.conf:13$/m ],
    [ 'a source of an unknown variant',
      with_rollout("${ab}        source 10.0.0.0/8 z;\n"),
      qr/\[emerg\] unknown variant "z" in dynroute rollout "r" in \S+nginx\.conf:12$/m ],
    [ 'a bad source address',
      with_rollout("${ab}        source 10.0.0.300 y;\n"),
      qr/\[emerg\] invalid address "10\.0\.0\.300".* in dynroute rollout "r" in \S+nginx\.conf:12$/m ],
    [ 'a rollout twice',
      with_rollout($ab, "    dynroute_rollout r {\n$ab    }\n"),
      qr/\[emerg\] duplicate dynroute rollout "r", first defined in \S+nginx\.conf:9 in \S+nginx\.conf:13$/m ],
);

for my $e (@errors) {
    my ($name, $main, $re, %o) = @$e;
    my ($code, $out) = conftest($main, %o);
    isnt($code, 0, "nginx -t fails: $name");
    like($out, $re, "nginx -t says where and what to write: $name");
}

# a rollout as a table's target, and the grammar that stream keeps
{
    my ($code, $out) = conftest(with_rollout(
        "${ab}        key \$ssl_preread_server_name \$remote_addr;\n"
        . "        source 10.0.0.0/8 y;\n",
        "    dynroute_table t { default r; }\n"));
    is($code, 0, 'nginx -t passes: variant, key, source, a table to it')
        or diag($out);
}

done_testing();
