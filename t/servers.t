# dynroute_servers: an upstream{} whose servers the workers keep in members
# of their own and pick from with nginx's smooth weighted round robin.  Over
# the configured "server" lines it must behave as a static upstream{} with
# the same lines: the same backends in the same order, backup, down,
# max_fails and fail_timeout, keepalive's cache, IPv6 and unix sockets,
# dynroute_balancer, plain proxy_pass, subrequests and internal redirects,
# TLS sessions resumed; and nginx -t refuses what it does not carry, naming
# the file and line.
# Backends count what reaches them in access logs of their own.
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp free_ports);
use IO::Socket::IP;
use File::Temp ();
use Socket qw(getaddrinfo getnameinfo AF_INET6 NI_NUMERICHOST NI_NUMERICSERV SOCK_STREAM);

# Backends on ports of their own, in the same nginx: each answers with the
# address it was reached on, and logs it with its connection's number.
sub backends(@) {
    my @listen = @_;
    my $l = join "\n", map { "        listen $_;" } @listen;
    return <<"CONF";
    log_format counted "\$server_addr:\$server_port \$request \$connection";
    server {
$l
        access_log \$TEST_NGINX_PREFIX/logs/backends.log counted;
        location / { return 200 "\$server_addr:\$server_port\\n"; }
    }
CONF
}

sub backend_log($) {
    my ($srv) = @_;
    return [ split /\n/, slurp("$srv->{prefix}/logs/backends.log") ];
}

# The same sequence as a static upstream's, with 1,000 requests to each,
# weights, a backup and a name that nginx resolves (every address it gives
# is a server of its own).
{
    my @p = free_ports(5);
    my $lines = <<"LINES";
        server 127.0.0.1:$p[0] weight=5;
        server 127.0.0.1:$p[1] weight=1;
        server 127.0.0.1:$p[2] weight=3 max_fails=2;
        server localhost:$p[3] weight=2;
        server 127.0.0.1:$p[4] backup;
LINES
    my ($err, @ai) = getaddrinfo('localhost', $p[3], { socktype => SOCK_STREAM });
    my @local = map {
        my ($e, $host) = getnameinfo($_->{addr}, NI_NUMERICHOST | NI_NUMERICSERV);
        $_->{family} == AF_INET6 ? "[$host]" : $host
    } @ai;
    my @listen = ((map { "127.0.0.1:$_" } @p[0 .. 2, 4]),
                  (map { "$_:$p[3]" } @local));
    my $srv = start_nginx(workers => 1, http_config => backends(@listen) . <<"CONF",
    upstream dyn {
        dynroute_servers;
$lines    }
    upstream static {
$lines    }
CONF
        config => <<'CONF');
    location /d/ {
        proxy_pass http://dyn;
        add_header X-Upstream-Addr $upstream_addr always;
    }
    location /s/ {
        proxy_pass http://static;
        add_header X-Upstream-Addr $upstream_addr always;
    }
CONF
    my (@dyn, @static, @addr);
    for my $i (1 .. 1000) {
        my $d = http_get($srv, "/d/$i");
        my $s = http_get($srv, "/s/$i");
        push @dyn, "$d->{status} $d->{body}";
        push @static, "$s->{status} $s->{body}";
        push @addr, $d->{headers}{'x-upstream-addr'}[0] // '';
    }
    is_deeply(\@dyn, \@static, '1,000 requests: the same backends in the same order as a static upstream');
    my %n;
    $n{$_}++ for @dyn;
    my $share = 1000 * 5 / (9 + 2 * @local);
    ok(abs($n{"200 127.0.0.1:$p[0]\n"} - $share) <= 1,
       "weights: the heaviest server answers its share ($n{\"200 127.0.0.1:$p[0]\n\"} of 1,000)");
    ok(!$n{"200 127.0.0.1:$p[4]\n"}, 'the backup answers nothing while the primaries are up');
    my %addr = map { $_ => 1 } @addr;
    is_deeply([sort grep { /:$p[3]$/ } keys %addr], [sort map { "$_:$p[3]" } @local],
              '$upstream_addr: each address of "localhost" is a server, named by its address');
    error_log_ok(stop_nginx($srv), 'sequence: no alert/crit/crash');
}

# backup, down, max_fails/fail_timeout (a port that refuses), no server.
{
    my ($dead) = free_ports(1);         # a port nothing listens on
    my $srv = start_nginx(workers => 1,
        http_config => backends('127.0.0.1:$TEST_NGINX_PORT2', '127.0.0.1:$TEST_NGINX_PORT3') . <<"CONF",
    upstream with_backup {
        dynroute_servers;
        server 127.0.0.1:$dead;
        server 127.0.0.1:\$TEST_NGINX_PORT2 backup;
    }
    upstream with_down {
        dynroute_servers;
        server 127.0.0.1:\$TEST_NGINX_PORT2 down;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
    upstream with_fails {
        dynroute_servers max=2;
        server 127.0.0.1:$dead max_fails=1 fail_timeout=60s;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
    upstream all_down {
        dynroute_servers;
        server 127.0.0.1:\$TEST_NGINX_PORT2 down;
        server 127.0.0.1:\$TEST_NGINX_PORT3 down;
    }
    upstream empty { dynroute_servers; }
CONF
        config => <<'CONF');
    add_header X-Upstream-Addr $upstream_addr always;
    location /backup/ { proxy_pass http://with_backup; }
    location /down/ { proxy_pass http://with_down; }
    location /fails/ { proxy_pass http://with_fails; }
    location /all_down/ { proxy_pass http://all_down; }
    location /empty/ { proxy_pass http://empty; }
CONF
    my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
    my $r = http_get($srv, '/backup/');
    is($r->{body}, "127.0.0.1:$p2\n", 'backup: the backup server answers');
    is($r->{headers}{'x-upstream-addr'}[0], "127.0.0.1:$dead, 127.0.0.1:$p2",
       'backup: $upstream_addr shows both tries');
    my %seen;
    $seen{ http_get($srv, "/down/$_")->{body} }++ for 1 .. 6;
    is_deeply([keys %seen], ["127.0.0.1:$p3\n"], 'down: never the down server');
    my @f = map { http_get($srv, "/fails/$_") } 1 .. 6;
    is(scalar(grep { $_->{status} == 200 } @f), 6, 'max_fails: every request answered');
    my $log = slurp($srv->{error_log});
    my $refused = () = $log =~ /connect\(\) failed .*upstream: "http:\/\/127\.0\.0\.1:$dead\/fails\//g;
    is($refused, 1, 'max_fails: the failed server was tried once, then left alone for fail_timeout');
    like($log, qr/\[warn\] .*upstream server temporarily disabled while connecting to upstream.*\/fails\//,
         'max_fails: nginx\'s warning when a server is taken out');
    $r = http_get($srv, '/all_down/');
    is("$r->{status} " . ($r->{headers}{'x-upstream-addr'}[0] // ''), '502 all_down',
       'every server down: 502, $upstream_addr the upstream\'s name');
    $r = http_get($srv, '/empty/');
    is("$r->{status} " . ($r->{headers}{'x-upstream-addr'}[0] // ''), '502 empty',
       'no server line: 502');
    $log = slurp($srv->{error_log});
    like($log, qr/no live upstreams while connecting to upstream.*"GET \/empty\/ HTTP\/1\.1", upstream: "http:\/\/empty\/empty\/"/,
         'no server line: "no live upstreams"');
    error_log_ok(stop_nginx($srv), 'backup, down, max_fails: no alert/crit/crash');
}

# keepalive: nginx's cache matches by address; connections are reused,
# counted as accepted by the backends.  A static upstream without keepalive
# is the control.
{
    my $srv = start_nginx(workers => 1,
        http_config => backends('127.0.0.1:$TEST_NGINX_PORT2', '127.0.0.1:$TEST_NGINX_PORT3') . <<'CONF',
    upstream pooled {
        dynroute_servers;
        server 127.0.0.1:$TEST_NGINX_PORT2;
        server 127.0.0.1:$TEST_NGINX_PORT3;
        keepalive 8;
    }
    upstream unpooled {
        dynroute_servers;
        server 127.0.0.1:$TEST_NGINX_PORT2;
        server 127.0.0.1:$TEST_NGINX_PORT3;
    }
CONF
        config => <<'CONF');
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /k/ { proxy_pass http://pooled; }
    location /n/ { proxy_pass http://unpooled; }
CONF
    my @k = map { http_get($srv, "/k/$_")->{body} } 1 .. 20;
    my @n = map { http_get($srv, "/n/$_")->{body} } 1 .. 20;
    is(scalar(grep { defined && /^127\.0\.0\.1:\d+\n\z/ } @k, @n), 40, 'keepalive: 40 requests answered');
    my (%kconn, %nconn, %kserver);
    for (@{ backend_log($srv) }) {
        my ($addr, $m, $uri, $proto, $conn) = split / /;
        if ($uri =~ m{^/k/}) { $kconn{$conn} = 1; $kserver{$addr}++ }
        $nconn{$conn} = 1 if $uri =~ m{^/n/};
    }
    is(scalar(keys %kserver), 2, 'keepalive: both servers answered');
    is(scalar(keys %kconn), 2, 'keepalive: 20 requests over one connection per server');
    is(scalar(keys %nconn), 20, 'without keepalive: a connection per request');
    # a reload: the new configuration's members, the old ones freed with
    # their cycle; a server more and one weight changed
    my $http = $srv->{http_config};
    $http =~ s/(upstream pooled \{\n.*?\n)(        keepalive 8;)/$1        server 127.0.0.1:\$TEST_NGINX_PORT3 weight=2;\n$2/s
        or die 'the pooled upstream';
    ok(reload_nginx($srv, $http), 'reload: the new configuration is taken');
    my %after;
    $after{ http_get($srv, "/k/after$_")->{body} // '' }++ for 1 .. 8;
    is_deeply(\%after, { "127.0.0.1:$srv->{port2}\n" => 2, "127.0.0.1:$srv->{port3}\n" => 6 },
              'reload: the new list (weights 1 and 1 + 2) is served');
    error_log_ok(stop_nginx($srv), 'keepalive: no alert/crit/crash');
}

# dynroute_balancer (a rule targets the group), plain proxy_pass, IPv6 and a
# unix socket, a subrequest and internal redirects.
{
    my $sock = "/tmp/dynroute-servers-$$.sock";
    my $srv = start_nginx(workers => 1,
        http_config => backends('127.0.0.1:$TEST_NGINX_PORT2', '[::1]:$TEST_NGINX_PORT3',
                                "unix:$sock") . <<"CONF",
    upstream group {
        dynroute_servers;
        server 127.0.0.1:\$TEST_NGINX_PORT2 weight=2;
        server [::1]:\$TEST_NGINX_PORT3;
        server unix:$sock;
    }
    upstream twin {
        server 127.0.0.1:\$TEST_NGINX_PORT2 weight=2;
        server [::1]:\$TEST_NGINX_PORT3;
        server unix:$sock;
    }
    upstream group_b {
        dynroute_servers;
        server 127.0.0.1:\$TEST_NGINX_PORT2 weight=2;
        server [::1]:\$TEST_NGINX_PORT3;
        server unix:$sock;
        keepalive 4;
    }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge {
        group.example.com  group_b;
        twin.example.com   twin;
    }
CONF
        config => <<'CONF');
    add_header X-Upstream-Addr $upstream_addr always;
    location /b/ {
        dynroute edge;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://edge_pass;
    }
    location /p/ { proxy_pass http://group; }
    location /t/ { proxy_pass http://twin; }
    location /auth/ { auth_request /_check; proxy_pass http://twin; }
    location = /_check { internal; proxy_pass http://group/checked; }
    location /named/ { try_files /nonexistent @group; }
    location @group { proxy_pass http://group; }
    location /redirect/ { error_page 418 = /p/redirected; return 418; }
CONF
    my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
    my @b = map { http_get($srv, "/b/$_", { Host => 'group.example.com' })->{body} } 1 .. 8;
    my @t = map { http_get($srv, "/b/$_", { Host => 'twin.example.com' })->{body} } 1 .. 8;
    is_deeply(\@b, \@t, 'dynroute_balancer: a rule to the group, the same sequence as to its static twin');
    my @p = map { http_get($srv, "/p/$_") } 1 .. 4;
    is(join('', map { $_->{body} } @p),
       "127.0.0.1:$p2\n::1:$p3\nunix:$sock:\n127.0.0.1:$p2\n",
       'plain proxy_pass: IPv4 (weight 2), IPv6 and a unix socket');
    is(join(' | ', map { $_->{headers}{'x-upstream-addr'}[0] } @p),
       "127.0.0.1:$p2 | [::1]:$p3 | unix:$sock | 127.0.0.1:$p2",
       '$upstream_addr names each server by its address');
    my $r = http_get($srv, '/auth/');
    is($r->{status}, 200, 'a subrequest (auth_request) to the group');
    $r = http_get($srv, '/named/x');
    is($r->{status}, 200, 'an internal redirect to a named location that passes to the group');
    $r = http_get($srv, '/redirect/x');
    is($r->{status}, 200, 'an internal redirect (error_page) to a location that passes to the group');
    my @log = @{ backend_log($srv) };
    is(scalar(grep { m{ GET /checked HTTP} } @log), 1, 'the subrequest reached a backend');
    is(scalar(grep { m{ GET /named/x HTTP} } @log), 1, 'the named location\'s request reached a backend');
    is(scalar(grep { m{ GET /p/redirected HTTP} } @log), 1, 'the redirected request reached a backend');
    error_log_ok(stop_nginx($srv), 'balancer, v6, unix, subrequests: no alert/crit/crash');
    unlink $sock;
}

# TLS: sessions are resumed per server, as with the static twin.
SKIP: {
    skip 'openssl is not installed', 3 unless `command -v openssl 2>/dev/null`;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=backend "
           . "-keyout $dir/key.pem -out $dir/cert.pem >/dev/null 2>&1") == 0
        or skip 'openssl could not make a certificate', 3;
    my $srv = start_nginx(workers => 1, http_config => <<"CONF", config => <<'CONF');
    log_format tls "\$server_port \$request \$ssl_session_reused";
    server {
        listen 127.0.0.1:\$TEST_NGINX_PORT2 ssl;
        listen 127.0.0.1:\$TEST_NGINX_PORT3 ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        access_log \$TEST_NGINX_PREFIX/logs/tls.log tls;
        return 200 "\$server_port\\n";
    }
    upstream group {
        dynroute_servers;
        server 127.0.0.1:\$TEST_NGINX_PORT2;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
    upstream twin {
        server 127.0.0.1:\$TEST_NGINX_PORT2;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
CONF
    location /g/ { proxy_pass https://group; }
    location /t/ { proxy_pass https://twin; }
CONF
    my @g = map { http_get($srv, "/g/$_")->{status} } 1 .. 6;
    my @t = map { http_get($srv, "/t/$_")->{status} } 1 .. 6;
    is("@g @t", join(' ', (200) x 12), 'TLS: 12 requests answered');
    my %reused;
    for (split /\n/, slurp("$srv->{prefix}/logs/tls.log")) {
        my ($port, $m, $uri, $proto, $r) = split / /;
        push @{ $reused{substr($uri, 1, 1)}{$port} }, $r;
    }
    is_deeply($reused{g}, $reused{t}, 'TLS: sessions resumed as with the static twin');
    is_deeply($reused{g}, { $srv->{port2} => ['.', 'r', 'r'], $srv->{port3} => ['.', 'r', 'r'] },
              'TLS: a full handshake per server, then resumed sessions');
    error_log_ok(stop_nginx($srv), 'TLS: no alert/crit/crash');
}

run_tests();

__DATA__

=== TEST 1: dynroute_servers outside an upstream block
--- http_config
    dynroute_servers;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] "dynroute_servers" directive is not allowed here in .*nginx\.conf:3/



=== TEST 2: dynroute_servers twice
--- http_config
    upstream u {
        dynroute_servers;
        dynroute_servers max=4;
        server 127.0.0.1:$TEST_NGINX_PORT2;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] "dynroute_servers" directive is duplicate in .*nginx\.conf:5/



=== TEST 3: max=0
--- http_config
    upstream u { dynroute_servers max=0; server 127.0.0.1:1; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] invalid parameter "max=0": max= is the number of servers the group may hold, from 1 to 65536 in .*nginx\.conf:3/



=== TEST 4: max=65537
--- http_config
    upstream u { dynroute_servers max=65537; server 127.0.0.1:1; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] invalid parameter "max=65537": max= is the number of servers the group may hold, from 1 to 65536 in .*nginx\.conf:3/



=== TEST 5: max=ten
--- http_config
    upstream u { dynroute_servers max=ten; server 127.0.0.1:1; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] invalid parameter "max=ten": max= is the number of servers the group may hold, from 1 to 65536 in .*nginx\.conf:3/



=== TEST 6: a parameter it does not know
--- http_config
    upstream u { dynroute_servers weight=2; server 127.0.0.1:1; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] invalid parameter "weight=2": expected max=N or hash=KEY in .*nginx\.conf:3/



=== TEST 7: more servers than max=
--- http_config
    upstream u {
        dynroute_servers max=2;
        server 127.0.0.1:$TEST_NGINX_PORT2;
        server 127.0.0.1:$TEST_NGINX_PORT3 backup;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "u" has 3 servers \(an address each\), more than dynroute_servers max=2 in .*nginx\.conf:4/



=== TEST 8: max_conns= after dynroute_servers: nginx refuses it
--- http_config
    upstream u {
        dynroute_servers;
        server 127.0.0.1:1 max_conns=5;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] balancing method does not support parameter "max_conns=5" in .*nginx\.conf:5/



=== TEST 9: max_conns= before dynroute_servers
--- http_config
    upstream u {
        server 127.0.0.1:1 max_conns=5;
        dynroute_servers;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] server "127\.0\.0\.1:1" of upstream "u" has max_conns=, which dynroute_servers does not carry in .*nginx\.conf:5/



=== TEST 10: resolve is not carried
--- http_config
    upstream u {
        dynroute_servers;
        server 127.0.0.1:1 resolve;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"resolve".* in .*nginx\.conf:5/



=== TEST 11: slow_start=10s is not carried
--- http_config
    upstream u {
        dynroute_servers;
        server 127.0.0.1:1 slow_start=10s;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"slow_start=10s".* in .*nginx\.conf:5/



=== TEST 12: a zone after it
--- http_config
    upstream u {
        dynroute_servers;
        zone u 64k;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "u" has dynroute_servers and a zone: the workers keep its servers, which nginx's upstream zone would share as its own; drop "zone", in .*nginx\.conf:4/



=== TEST 13: a zone before it
--- http_config
    upstream u {
        zone u 64k;
        server 127.0.0.1:1;
        dynroute_servers;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "u" has dynroute_servers and a zone: .* in .*nginx\.conf:6/



=== TEST 14: hash before it
--- http_config
    upstream u {
        hash $arg_k;
        dynroute_servers;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_servers comes after keepalive or another balancing method in upstream "u": put dynroute_servers before keepalive and drop other balancing methods in .*nginx\.conf:5/



=== TEST 15: least_conn before it
--- http_config
    upstream u {
        least_conn;
        dynroute_servers;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_servers comes after keepalive or another balancing method in upstream "u": put dynroute_servers before keepalive and drop other balancing methods in .*nginx\.conf:5/



=== TEST 16: ip_hash before it
--- http_config
    upstream u {
        ip_hash;
        dynroute_servers;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_servers comes after keepalive or another balancing method in upstream "u": put dynroute_servers before keepalive and drop other balancing methods in .*nginx\.conf:5/



=== TEST 17: random before it
--- http_config
    upstream u {
        random;
        dynroute_servers;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_servers comes after keepalive or another balancing method in upstream "u": put dynroute_servers before keepalive and drop other balancing methods in .*nginx\.conf:5/



=== TEST 18: hash after it
--- http_config
    upstream u {
        dynroute_servers;
        server 127.0.0.1:1;
        hash $arg_k;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "u" has dynroute_servers and another balancing method \(hash, least_conn, random or ip_hash\) after it, which replaced it: drop that method, in .*nginx\.conf:4/



=== TEST 19: least_conn after it
--- http_config
    upstream u {
        dynroute_servers;
        server 127.0.0.1:1;
        least_conn;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "u" has dynroute_servers and another balancing method \(hash, least_conn, random or ip_hash\) after it, which replaced it: drop that method, in .*nginx\.conf:4/



=== TEST 20: ip_hash after it
--- http_config
    upstream u {
        dynroute_servers;
        server 127.0.0.1:1;
        ip_hash;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "u" has dynroute_servers and another balancing method \(hash, least_conn, random or ip_hash\) after it, which replaced it: drop that method, in .*nginx\.conf:4/



=== TEST 21: random after it
--- http_config
    upstream u {
        dynroute_servers;
        server 127.0.0.1:1;
        random;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "u" has dynroute_servers and another balancing method \(hash, least_conn, random or ip_hash\) after it, which replaced it: drop that method, in .*nginx\.conf:4/



=== TEST 22: hash after it and keepalive
--- http_config
    upstream u {
        dynroute_servers;
        server 127.0.0.1:1;
        keepalive 4;
        hash $arg_k consistent;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "u" has dynroute_servers and another balancing method .* after it, which replaced it: drop that method, in .*nginx\.conf:4/



=== TEST 23: dynroute_servers after keepalive
--- http_config
    upstream u {
        server 127.0.0.1:1;
        keepalive 4;
        dynroute_servers;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_servers comes after keepalive or another balancing method in upstream "u": put dynroute_servers before keepalive and drop other balancing methods in .*nginx\.conf:6/



=== TEST 24: a dynroute_servers upstream is a target of tables and rollouts
--- http_config
    upstream group { dynroute_servers; server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream other { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "via $http_x_via\n"; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_rollout r { variant stable other *; variant canary group 100%; }
    dynroute_table edge { a.example.com group; b.example.com r; }
--- config
    location / {
        dynroute edge;
        proxy_set_header X-Via $dynroute_upstream;
        proxy_pass http://edge_pass;
    }
--- request eval
["GET /", "GET /"]
--- more_headers eval
["Host: a.example.com", "Host: b.example.com"]
--- response_body eval
["via group\n", "via group\n"]
--- no_error_log
[error]
