# ngx_stream_dynroute_module: TLS passthrough by SNI.  A front stream
# server reads the ClientHello (ssl_preread), a dynroute table picks the
# stream upstream by the name the client asked for, and TLS backends of the
# same nginx (certificates made here with openssl) answer their own name
# and the SNI they saw.  Then the configuration errors of nginx -t.
#
# The packaged nginx has stream as a dynamic module: TEST_NGINX_STREAM_MODULE
# (set by make prove) loads it before the dynroute .so, or the load files of
# TEST_NGINX_INCLUDE_MODULES do (scripts/test-deb: the installed package's).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp ();
use IO::Socket::IP;
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Test::More;
use Time::HiRes ();
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(free_ports slurp track stop_proc wait_for);
use Test::Nginx::Dynroute::Stream qw(stream_missing make_cert tls_backend
                                     tls_line);

my $why = stream_missing();
plan skip_all => $why if $why;

# A certificate per backend name.
my $dir = File::Temp::tempdir(CLEANUP => 1);
make_cert($dir, "$_.test") for qw(a b c d);

my ($F1, $F2, $F3, $F4, $A, $B1, $B2, $C, $D) = free_ports(9);

sub backend {
    my ($port, $cert, $tag) = @_;
    return tls_backend($port, "$dir/$cert.test", "$tag \$ssl_server_name");
}

my $backends = backend($A, 'a', 'a') . backend($B1, 'b', 'b1')
    . backend($B2, 'b', 'b2') . backend($C, 'c', 'c') . backend($D, 'd', 'd');

sub stream_conf {
    my ($extra_rule) = @_;
    $extra_rule //= '';
    my $conf = <<'CONF';
stream {
    log_format dr '$server_port $dynroute_upstream|$dynroute_rule|$tenant';
    access_log $TEST_NGINX_PREFIX/logs/stream.log dr;

    upstream a { server 127.0.0.1:%A%; }
    upstream b { server 127.0.0.1:%B1%; server 127.0.0.1:%B2%; }
    upstream c { server 127.0.0.1:%C%; }
    upstream d { server 127.0.0.1:%D%; }
    upstream pass { dynroute_balancer; }

    dynroute_table sni {
        a.test                          a;
        *.b.test                        b;
        ~^(?<tenant>[a-z]+)\.r\.test$   c;
        %EXTRA%
        default                         d;
    }

    dynroute_table strict {
        a.test                          a;
    }

    # key=: another variable's value, here a map of the name
    map $ssl_preread_server_name $route_key {
        alias.test                      a.test;
        default                         $ssl_preread_server_name;
    }

    dynroute_table bykey key=$route_key {
        a.test                          a;
        default                         d;
    }

    server {
        listen 127.0.0.1:%F1%;
        ssl_preread on;
        dynroute sni;
        proxy_pass $dynroute_upstream;
    }

    server {
        listen 127.0.0.1:%F2%;
        ssl_preread on;
        preread_timeout 1s;
        dynroute strict;
        proxy_pass $dynroute_upstream;
    }

    server {
        listen 127.0.0.1:%F3%;
        ssl_preread on;
        dynroute sni;
        proxy_pass pass;
    }

    server {
        listen 127.0.0.1:%F4%;
        ssl_preread on;
        dynroute bykey;
        proxy_pass $dynroute_upstream;
    }
CONF
    my %p = (A => $A, B1 => $B1, B2 => $B2, C => $C, D => $D,
             F1 => $F1, F2 => $F2, F3 => $F3, F4 => $F4,
             EXTRA => $extra_rule);
    $conf =~ s/%(\w+)%/$p{$1}/g;
    return $conf . $backends . "}\n";
}

my $srv = start_nginx(http_config => '', config => '',
                      main_config => stream_conf(), workers => 2);
my $log = "$srv->{prefix}/logs/stream.log";

# ---- names -------------------------------------------------------------

is(tls_line($F1, 'a.test'), "a a.test\n", 'exact name: upstream a');
like(tls_line($F1, 'x.b.test'), qr/\Ab[12] x\.b\.test\n\z/,
     'leading wildcard: upstream b');
is(tls_line($F1, 'A.TEST'), "a A.TEST\n", 'names compare caseless');
is(tls_line($F1, 'acme.r.test'), "c acme.r.test\n", 'regex: upstream c');
is(tls_line($F1, 'other.test'), "d other.test\n", 'unknown name: the default');
is(tls_line($F1, undef), "d \n", 'no SNI: the default');

# (the access log writes a backslash as \x5C)
ok(file_lines($log, qr/^$F1 c\|~\^\(\?<tenant>\[a-z\]\+\)\\x5C\.r\\x5C\.test\$\|acme$/, 1),
   'the regex rule and its capture $tenant, as variables')
    or diag(slurp($log));
ok(file_lines($log, qr/^$F1 a\|a\.test\|-$/, 1),
   '$dynroute_upstream and $dynroute_rule of an exact name');
ok(file_lines($log, qr/^$F1 d\|default\|-$/, 2),
   '$dynroute_rule is "default" for the default');

# ---- no default: closed, with a line ------------------------------------

like(tls_line($F2, undef), qr/^closed/, 'no SNI, no default: closed');
like(tls_line($F2, 'zzz.test'), qr/^closed/, 'unknown name, no default: closed');
is(tls_line($F2, 'a.test'), "a a.test\n", 'the table without default routes');
ok(file_lines($srv->{error_log},
              qr/\[info\].*dynroute: no rule of table "strict" matches "" and it has no default: closing the connection of client 127\.0\.0\.1/, 1),
   'no SNI: an info line names the table and the client');
ok(file_lines($srv->{error_log},
              qr/dynroute: no rule of table "strict" matches "zzz\.test"/, 1),
   'unknown name: the line names it');

# ---- the balancer --------------------------------------------------------

is(tls_line($F3, 'a.test'), "a a.test\n", 'balancer: to the chosen upstream a');
my %seen;
$seen{ tls_line($F3, "n$_.b.test") =~ /\A(b[12]) / ? $1 : 'other' }++ for 1 .. 6;
is_deeply(\%seen, { b1 => 3, b2 => 3 },
          "balancer: round robin over upstream b's two servers");
is(tls_line($F3, undef), "d \n", 'balancer: no SNI, the default');

# ---- key=$variable ------------------------------------------------------

is(tls_line($F4, 'alias.test'), "a alias.test\n",
   'key=$route_key: the map\'s value is matched');
is(tls_line($F4, 'a.test'), "a a.test\n", 'key=: the name itself');
is(tls_line($F4, 'x.test'), "d x.test\n", 'key=: the default');

# ---- a ClientHello in pieces ---------------------------------------------

# A relay between the client and the front: the client's first 600 bytes
# (its ClientHello) go over in 16-byte segments 20 ms apart, then both
# ways as they come.
sub start_relay {
    my ($to) = @_;
    my $l = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                Listen => 4, ReuseAddr => 1) or die "listen: $@";
    my $port = $l->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 30;
        my $c = $l->accept or POSIX::_exit(1);
        my $u = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $to)
            or POSIX::_exit(1);
        setsockopt($u, IPPROTO_TCP, TCP_NODELAY, 1);
        my ($first, $pieces) = ('', 0);
        while (length $first < 600) {
            my $rin = '';
            vec($rin, fileno($c), 1) = 1;
            last unless select($rin, undef, undef, 0.3);
            sysread($c, $first, 600 - length $first, length $first) or last;
        }
        for (my $i = 0; $i < length $first; $i += 16) {
            syswrite($u, substr($first, $i, 16));
            $pieces++;
            Time::HiRes::sleep(0.02);
        }
        if (open my $fh, '>', "$dir/pieces") {
            print $fh $pieces;
            close $fh;
        }
        while (1) {
            my $rin = '';
            vec($rin, fileno($c), 1) = 1;
            vec($rin, fileno($u), 1) = 1;
            select(my $rout = $rin, undef, undef, 5) or last;
            for my $pair ([$c, $u], [$u, $c]) {
                next unless vec($rout, fileno($pair->[0]), 1);
                my $n = sysread($pair->[0], my $buf, 65536);
                POSIX::_exit(0) unless $n;
                syswrite($pair->[1], $buf);
            }
        }
        POSIX::_exit(0);
    }
    close $l;
    return (track($pid, 'relay'), $port);
}

{
    my ($pid, $port) = start_relay($F1);
    is(tls_line($port, 'a.test', 10), "a a.test\n",
       'a ClientHello over many TCP segments: upstream a');
    stop_proc($pid);
    cmp_ok(slurp("$dir/pieces") || 0, '>', 5, 'the ClientHello went in pieces');
}

# ---- a ClientHello that never completes ----------------------------------

{
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $F2)
        or die "connect: $@";
    # a handshake record of 512 bytes announced, 11 sent
    syswrite($s, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    my $t0 = Time::HiRes::time();
    my $rin = '';
    vec($rin, fileno($s), 1) = 1;
    my $ready = select(my $rout = $rin, undef, undef, 10);
    my $n = $ready ? sysread($s, my $buf, 100) : undef;
    my $reset = !defined $n && $!{ECONNRESET};
    my $took = Time::HiRes::time() - $t0;
    # closed: an end of file, or a reset where nginx (1.25.5 and later)
    # only peeked at the bytes, which are still unread in its socket
    ok($ready && ($reset || (defined $n && $n == 0)),
       'an unfinished ClientHello is closed')
        or diag('select ' . ($ready // 'undef') . ', read '
                . ($n // "undef ($!)"));
    ok($took > 0.8 && $took < 5, 'at preread_timeout (1 s)')
        or diag("closed after $took s");
    ok(file_lines($srv->{error_log},
                  qr/no rule of table "strict" matches "".*client 127\.0\.0\.1/, 2),
       'with the line of a connection without a name');
}

# ---- 2 workers, a reload under a loop of connections ---------------------

{
    my $out = "$dir/loop";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 60;
        open my $fh, '>', $out or POSIX::_exit(1);
        $fh->autoflush(1);
        for my $i (1 .. 150) {
            my $line = tls_line($F1, 'a.test');
            print $fh ($line eq "a a.test\n" ? "ok\n" : "bad $i: $line\n");
        }
        POSIX::_exit(0);
    }
    track($pid, 'connection loop');
    ok(wait_for(10, sub { (() = slurp($out) =~ /\n/g) >= 30 }),
       'the loop runs');
    ok(reload_nginx($srv, undef, undef, stream_conf('new.test c;')),
       'reload with a new rule while connections come');
    ok(wait_for(60, sub { (() = slurp($out) =~ /\n/g) >= 150 }),
       'the loop is done');
    stop_proc($pid);
    my $lines = slurp($out);
    is(scalar(() = $lines =~ /^ok$/mg), 150,
       'every connection across the reload reached upstream a')
        or diag($lines);
    is(tls_line($F1, 'new.test'), "c new.test\n", 'the new rule routes');
}

error_log_ok(stop_nginx($srv), 'routing: no alert/crit/crash');

# ---- nginx -t ------------------------------------------------------------

# The generated nginx.conf: lines 1 and 2, the server (3), its "}" (4) and
# http's (5) with empty http_config and config: main_config starts at 6.
sub conftest {
    my ($main, %o) = @_;
    my ($code, $out) = nginx_test_config(http_config => $o{http} // '',
                                         config => '', main_config => $main);
    return ($code, $out);
}

my $ok_upstreams = "    upstream a { server 127.0.0.1:$A; }\n";

my @errors = (
    [ 'an unknown upstream',
      "stream {\n$ok_upstreams    dynroute_table t {\n        a.test a;\n"
      . "        b.test nosuch;\n    }\n}\n",
      qr/\[emerg\] unknown stream upstream "nosuch" in dynroute table "t": declare "upstream nosuch \{ server \.\.\.; \}" in stream\{\}, in \S+nginx\.conf:10$/m ],
    [ 'an upstream one edit away',
      "stream {\n$ok_upstreams    upstream backend { server 127.0.0.1:$A; }\n"
      . "    dynroute_table t {\n        a.test backnd;\n    }\n}\n",
      qr/\[emerg\] unknown stream upstream "backnd" \(did you mean "backend"\?\) in dynroute table "t": declare "upstream backnd \{ server \.\.\.; \}" in stream\{\}, in \S+nginx\.conf:10$/m ],
    [ 'a rollout one edit away',
      "stream {\n$ok_upstreams    upstream backend { server 127.0.0.1:$A; }\n"
      . "    dynroute_rollout checkout {\n        variant x a *;\n"
      . "        variant y backend 10%;\n    }\n"
      . "    dynroute_table t {\n        a.test checkot;\n    }\n}\n",
      qr/\[emerg\] unknown stream upstream "checkot" \(did you mean "checkout"\?\) in dynroute table "t": declare "upstream checkot \{ server \.\.\.; \}" in stream\{\}, in \S+nginx\.conf:14$/m ],
    [ "an http upstream's name",
      "stream {\n$ok_upstreams    dynroute_table t { default web; }\n}\n",
      qr/\[emerg\] "web" in dynroute table "t" is an http upstream: a stream table routes to stream upstreams, declare "upstream web \{ \.\.\. \}" in stream\{\}, in \S+nginx\.conf:9$/m,
      http => "upstream web { server 127.0.0.1:1; }\n" ],
    [ 'dynroute_balancer with server lines',
      "stream {\n$ok_upstreams    upstream pass {\n        dynroute_balancer;\n"
      . "        server 127.0.0.1:1;\n    }\n}\n",
      qr/\[emerg\] stream upstream "pass" has both dynroute_balancer and "server" lines: its servers are those of the upstream that dynroute chooses, remove them, in \S+nginx\.conf:8$/m ],
    [ 'a balancer upstream as a target',
      "stream {\n$ok_upstreams    upstream pass { dynroute_balancer; }\n"
      . "    dynroute_table t { default pass; }\n}\n",
      qr/\[emerg\] stream upstream "pass" in dynroute table "t" has dynroute_balancer: route to the upstreams with servers, in \S+nginx\.conf:9$/m ],
    [ 'a regex error',
      "stream {\n$ok_upstreams    dynroute_table t {\n        ~^(x a;\n    }\n}\n",
      qr/\[emerg\] invalid regex "~\^\(x": missing closing parenthesis at offset 3 in dynroute table "t" in \S+nginx\.conf:9$/m ],
    [ 'key= naming an unknown variable',
      "stream {\n$ok_upstreams    dynroute_table t key=\$nosuch {\n"
      . "        default a;\n    }\n}\n",
      qr/\[emerg\] unknown variable "\$nosuch" in key= of dynroute table "t": use a stream variable, such as key=\$ssl_preread_server_name, in \S+nginx\.conf:8$/m ],
    [ 'key= without a variable',
      "stream {\n$ok_upstreams    dynroute_table t key=nosuch { default a; }\n}\n",
      qr/\[emerg\] invalid key "key=nosuch" of dynroute_table "t": expected one variable, such as key=\$ssl_preread_server_name in \S+nginx\.conf:8$/m ],
    [ 'a name twice',
      "stream {\n$ok_upstreams    dynroute_table t {\n        a.test a;\n"
      . "        A.test a;\n    }\n}\n",
      qr/\[emerg\] duplicate "A\.test" in dynroute table "t": keep one of the two lines in \S+nginx\.conf:10$/m ],
    [ 'an ip rule',
      "stream {\n$ok_upstreams    dynroute_table t {\n        ip a;\n    }\n}\n",
      qr/\[emerg\] "ip" does not apply to the stream dynroute table "t": a TLS name is never an address; route such clients with "default" in \S+nginx\.conf:9$/m ],
    [ 'an unknown table',
      "stream {\n$ok_upstreams    server {\n        listen 127.0.0.1:$F1;\n"
      . "        dynroute nosuch;\n        proxy_pass a;\n    }\n}\n",
      qr/\[emerg\] unknown dynroute table "nosuch": declare "dynroute_table nosuch \{ \.\.\. \}" in stream\{\}, in \S+nginx\.conf:10$/m ],
    [ 'a table one edit away',
      "stream {\n$ok_upstreams    dynroute_table edge { default a; }\n"
      . "    server {\n        listen 127.0.0.1:$F1;\n"
      . "        dynroute egde;\n        proxy_pass a;\n    }\n}\n",
      qr/\[emerg\] unknown dynroute table "egde" \(did you mean "edge"\?\): declare "dynroute_table egde \{ \.\.\. \}" in stream\{\}, in \S+nginx\.conf:11$/m ],
);

for my $e (@errors) {
    my ($name, $main, $re, %o) = @$e;
    my ($code, $out) = conftest($main, %o);
    isnt($code, 0, "nginx -t fails: $name");
    like($out, $re, "nginx -t says where and what to write: $name");
}

# The .so loaded before the stream module, where stream is a module of its
# own; and loaded without it, with no stream{} (every existing user).
SKIP: {
    my $stream = $ENV{TEST_NGINX_STREAM_MODULE} // '';
    my ($so) = grep { /dynroute/ } split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '';
    $so //= "$FindBin::Bin/../build/ngx_http_dynroute_module.so"
        unless defined $ENV{TEST_NGINX_LOAD_MODULES};
    skip 'no stream module and .so of their own to load here', 4
        unless length $stream && $so;
    my ($code, $out) = nginx_test_config(conf => <<"CONF");
load_module $so;
load_module $stream;
events { }
stream {
    upstream a { server 127.0.0.1:$A; }
    dynroute_table t { default a; }
}
CONF
    isnt($code, 0, 'nginx -t fails: the .so loaded before the stream module');
    like($out, qr/\[emerg\] "dynroute_table" needs nginx's stream module, which was loaded after ngx_http_dynroute_module\.so: write "load_module modules\/ngx_stream_module\.so;" before the load_module line of ngx_http_dynroute_module\.so in \S+nginx\.conf:6$/m,
         'and says to load the stream module first');
    ($code, $out) = nginx_test_config(conf => <<"CONF");
load_module $so;
events { }
http { }
CONF
    is($code, 0, 'the .so loads into nginx without the stream module')
        or diag($out);
    ($code, $out) = nginx_test_config(conf => <<"CONF");
load_module $so;
load_module $stream;
events { }
stream {
    upstream a { server 127.0.0.1:$A; }
    server { listen 127.0.0.1:$F1; proxy_pass a; }
}
CONF
    is($code, 0, 'stream{} without dynroute is fine whatever the load order')
        or diag($out);
}

done_testing();
