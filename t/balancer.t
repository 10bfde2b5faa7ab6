# dynroute_balancer: proxy_pass to an upstream{} that hands each request to
# the upstream{} dynroute chose, so that the chosen upstream's own servers,
# keepalive, zone, balancing method, max_fails, backup and down apply; the
# fallback to a rollout's primary never replays a request that was sent.
# Backends count what reaches them in access logs of their own.
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp spew free_ports track stop_proc);
use IO::Socket::IP;
use POSIX ();

# A loopback server of our own, in a child process, for the protocols and
# failures nginx cannot play: it accepts, reads what it is sent and does
# what $kind says.  Ours (Test::Nginx::Dynroute::Proc): stop_proc stops it
# by PID.  Returns (pid, port).
sub start_peer($$) {
    my ($kind, $count_file) = @_;
    my $srv = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                  Listen => 16, ReuseAddr => 1)
        or die "listen: $@";
    my $port = $srv->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        local $SIG{ALRM} = sub { POSIX::_exit(0) };
        alarm 60;                       # bounded: the test is over by then
        while (my $c = $srv->accept) {
            my $buf = '';
            $c->blocking(1);
            while ($buf !~ /\r\n\r\n/ && $buf !~ /,\z/) {
                my $n = sysread $c, $buf, 65536, length $buf;
                last unless $n;
                last if $kind eq 'scgi' && $buf =~ /^(\d+):/
                        && length($buf) >= length($1) + 1 + $1 + 1;
            }
            if (open my $fh, '>>', $count_file) {
                my ($line) = $buf =~ /\A([^\r\n]*)/;
                $line = 'scgi' if $kind eq 'scgi';
                print $fh "$line\n";
                close $fh;
            }
            if ($kind eq 'scgi') {
                print $c "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                       . "scgi answered\n";
                close $c;
            } elsif ($kind eq 'hang') {
                sleep 3;                # longer than proxy_read_timeout
                close $c;
            }
        }
        POSIX::_exit(0);
    }
    close $srv;
    return (track($pid, "peer $kind"), $port);
}

my $backends = <<'CONF';
    log_format counted "$server_port $request $connection $connection_requests";
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        access_log $TEST_NGINX_PREFIX/logs/backends.log counted;
        location / { return 200 "port $server_port $http_host\n"; }
    }
CONF

# keepalive: the chosen upstream's pool is used and reused.
{
    my $srv = start_nginx(http_config => $backends . <<'CONF',
    upstream pooled { server 127.0.0.1:$TEST_NGINX_PORT2; keepalive 8; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge { default pooled; }
CONF
        config => <<'CONF');
    location / {
        dynroute edge;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://edge_pass;
    }
CONF
    my @bodies;
    push @bodies, http_get($srv, "/k$_")->{body} for 1 .. 10;
    is(scalar(grep { $_ eq "port $srv->{port2} edge_pass\n" } @bodies), 10,
       'keepalive: 10 requests answered by the chosen upstream');
    my %conns = map { (split / /)[3] => 1 }
                grep { /GET \/k/ } split /\n/, slurp("$srv->{prefix}/logs/backends.log");
    is(scalar(keys %conns), 1,
       'keepalive: the 10 requests shared one upstream connection');
    error_log_ok(stop_nginx($srv), 'keepalive: no alert/crit/crash');
}

# backup, down, max_fails, hash, zone: each in the chosen upstream.
{
    my ($dead) = free_ports(1);         # a port nothing listens on
    my $http = $backends . <<"CONF";
    upstream with_backup {
        server 127.0.0.1:$dead;
        server 127.0.0.1:\$TEST_NGINX_PORT2 backup;
    }
    upstream with_down {
        server 127.0.0.1:\$TEST_NGINX_PORT2 down;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
    upstream with_fails {
        server 127.0.0.1:$dead max_fails=1 fail_timeout=60s;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
    upstream hashed {
        hash \$arg_k;
        server 127.0.0.1:\$TEST_NGINX_PORT2;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
    upstream zoned {
        zone zoned 64k;
        server 127.0.0.1:\$TEST_NGINX_PORT3;
    }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge {
        backup.example.com  with_backup;
        down.example.com    with_down;
        fails.example.com   with_fails;
        hash.example.com    hashed;
        zone.example.com    zoned;
    }
CONF
    my $srv = start_nginx(http_config => $http, config => <<'CONF');
    location / {
        dynroute edge;
        proxy_pass http://edge_pass;
        add_header X-Upstream-Addr $upstream_addr always;
    }
CONF
    my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
    my $r = http_get($srv, '/b', { Host => 'backup.example.com' });
    is($r->{body}, "port $p2 edge_pass\n", 'backup: the backup server answers');
    is($r->{headers}{'x-upstream-addr'}[0], "127.0.0.1:$dead, 127.0.0.1:$p2",
       'backup: $upstream_addr shows both tries of the chosen upstream');
    my %seen;
    $seen{ http_get($srv, "/d$_", { Host => 'down.example.com' })->{body} }++ for 1 .. 6;
    is_deeply([keys %seen], ["port $p3 edge_pass\n"], 'down: never the down server');
    my @f = map { http_get($srv, "/f$_", { Host => 'fails.example.com' }) } 1 .. 6;
    is(scalar(grep { $_->{status} == 200 } @f), 6, 'max_fails: every request answered');
    my $refused = () = slurp($srv->{error_log}) =~ /connect\(\) failed .*upstream: "http:\/\/127\.0\.0\.1:$dead\//g;
    is($refused, 1 + 1,   # the backup test's try, and one for with_fails
       'max_fails: the failed server was tried once, then left alone');
    my %by_k;
    for my $k (1 .. 20) {
        for (1 .. 2) {
            my $b = http_get($srv, "/h?k=$k", { Host => 'hash.example.com' })->{body};
            $by_k{$k}{$b}++;
        }
    }
    is(scalar(grep { keys %{ $by_k{$_} } == 1 } keys %by_k), 20,
       'hash: each key always lands on the same server');
    my %servers = map { (keys %{ $by_k{$_} })[0] => 1 } keys %by_k;
    is(scalar(keys %servers), 2, 'hash: 20 keys spread over both servers');
    $r = http_get($srv, '/z', { Host => 'zone.example.com' });
    is($r->{body}, "port $p3 edge_pass\n", 'zone: the upstream with a shared zone answers');
    error_log_ok(stop_nginx($srv), 'upstream features: no alert/crit/crash');
}

# A TLS upstream: the name sent (SNI) is the chosen upstream's name.
SKIP: {
    skip 'openssl is not installed', 2 unless `command -v openssl 2>/dev/null`;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=tls_upstream "
           . "-keyout $dir/key.pem -out $dir/cert.pem >/dev/null 2>&1") == 0
        or skip 'openssl could not make a certificate', 2;
    my $srv = start_nginx(http_config => <<"CONF", config => <<'CONF');
    upstream tls_upstream { server 127.0.0.1:\$TEST_NGINX_PORT2; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge { default tls_upstream; }
    server {
        listen 127.0.0.1:\$TEST_NGINX_PORT2 ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        return 200 "sni=\$ssl_server_name host=\$http_host\\n";
    }
CONF
    location / {
        dynroute edge;
        proxy_ssl_server_name on;
        proxy_pass https://edge_pass;
    }
    location /host/ {
        dynroute edge;
        proxy_ssl_server_name on;
        proxy_set_header Host $dynroute_upstream;
        proxy_pass https://edge_pass;
    }
CONF
    is(http_get($srv, '/')->{body}, "sni=tls_upstream host=edge_pass\n",
       'TLS: SNI is the chosen upstream; Host defaults to the balancer name');
    is(http_get($srv, '/host/')->{body}, "sni=tls_upstream host=tls_upstream\n",
       'TLS: proxy_set_header Host $dynroute_upstream sends the chosen name');
    error_log_ok(stop_nginx($srv), 'TLS: no alert/crit/crash');
}

# scgi_pass through the balancer, to a tiny SCGI server of the test's own.
{
    my $count = File::Temp->new;
    my ($pid, $port) = start_peer('scgi', "$count");
    my $srv = start_nginx(http_config => <<"CONF", config => <<'CONF');
    upstream scgi_app { server 127.0.0.1:$port; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge { default scgi_app; }
CONF
    location / {
        dynroute edge;
        scgi_param REQUEST_METHOD $request_method;
        scgi_pass edge_pass;
    }
CONF
    my $r = http_get($srv, '/s');
    is("$r->{status} $r->{body}", "200 scgi answered\n", 'scgi_pass through the balancer');
    error_log_ok(stop_nginx($srv), 'scgi: no alert/crit/crash');
    stop_proc($pid);
}

# fallback=primary: a canary that is down, refuses connections, or accepts
# and hangs.  A request reaches the primary only if the canary never got
# it; with resend=on, also one the canary got, where proxy_next_upstream
# says (a POST never).
{
    my ($refusing) = free_ports(1);
    my $hang_count = File::Temp->new;
    my ($hang_pid, $hanging) = start_peer('hang', "$hang_count");
    my $srv = start_nginx(http_config => $backends . <<"CONF", config => <<'CONF');
    upstream stable       { server 127.0.0.1:\$TEST_NGINX_PORT2; }
    upstream canary_down  { server 127.0.0.1:\$TEST_NGINX_PORT3 down; }
    upstream canary_refuses { server 127.0.0.1:$refusing; }
    upstream canary_hangs { server 127.0.0.1:$hanging; }
    upstream canary_ok    { server 127.0.0.1:\$TEST_NGINX_PORT3; }
    upstream edge_pass { dynroute_balancer fallback=primary; }
    upstream resend_pass { dynroute_balancer fallback=primary resend=on; }
    upstream plain_pass { dynroute_balancer; }
    dynroute_rollout r_down    { variant stable stable *; variant canary canary_down 100%; }
    dynroute_rollout r_refuses { variant stable stable *; variant canary canary_refuses 100%; }
    dynroute_rollout r_hangs   { variant stable stable *; variant canary canary_hangs 100%; }
    dynroute_rollout r_ok      { variant stable stable *; variant canary canary_ok 100%; }
    dynroute_table edge {
        down.example.com     r_down;
        refuses.example.com  r_refuses;
        hangs.example.com    r_hangs;
        ok.example.com       r_ok;
    }
CONF
    proxy_read_timeout 1s;
    add_header X-Variant $dynroute_variant always;
    add_header X-Fallback $dynroute_fallback always;
    location / {
        dynroute edge;
        proxy_pass http://edge_pass;
    }
    location /nofallback/ {
        dynroute edge;
        proxy_pass http://plain_pass;
    }
    location /resend/ {
        dynroute edge;
        proxy_pass http://resend_pass;
    }
CONF
    my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
    my $blog = "$srv->{prefix}/logs/backends.log";
    my $post = sub {
        my ($path, $host) = @_;
        return http_raw($srv, "POST $path HTTP/1.1\r\nHost: $host\r\n"
                            . "Content-Length: 5\r\nConnection: close\r\n\r\nhello", 10);
    };

    my $r = $post->('/p1', 'down.example.com');
    is("$r->{status} $r->{body}", "200 port $p2 edge_pass\n", 'canary down: the primary answers');
    is($r->{headers}{'x-variant'}[0] . ' ' . $r->{headers}{'x-fallback'}[0], 'canary stable',
       'canary down: $dynroute_variant is the canary, $dynroute_fallback the primary');
    is(file_lines($blog, qr/^$p2 POST \/p1 /, 1) . file_lines($blog, qr/^$p3 POST \/p1 /, 1, 1), '10',
       'canary down: the POST reached the primary once, the canary never');

    $r = $post->('/p2', 'refuses.example.com');
    is("$r->{status} $r->{body}", "200 port $p2 edge_pass\n",
       'canary refuses connections: the primary answers the POST');
    is(file_lines($blog, qr/^$p2 POST \/p2 /, 1), 1, 'canary refuses: the POST reached the primary once');

    $r = $post->('/p3', 'hangs.example.com');
    is($r->{status}, 504, 'canary accepts and hangs: the sent POST is not replayed (504)');
    is(file_lines($blog, qr/POST \/p3 /, 1, 1), 0, 'canary hangs: the POST never reached the primary');
    is(file_lines("$hang_count", qr/^POST \/p3 /, 1), 1, 'canary hangs: it reached the canary once');
    is($r->{headers}{'x-fallback'}[0], undef, 'canary hangs: no fallback is reported');

    $r = http_get($srv, '/g3', { Host => 'hangs.example.com' });
    is($r->{status}, 504, 'canary hangs: a GET it received is not sent to the primary too (504)');
    is(file_lines("$hang_count", qr/^GET \/g3 /, 1) . file_lines($blog, qr/GET \/g3 /, 1, 1), '10',
       'canary hangs: the GET reached the canary once, the primary never');

    $r = http_get($srv, '/resend/g4', { Host => 'hangs.example.com' });
    is("$r->{status} $r->{body}", "200 port $p2 resend_pass\n",
       'resend=on: a GET the hanging canary received is retried on the primary, as proxy_next_upstream says');
    is(file_lines("$hang_count", qr/^GET \/resend\/g4 /, 1) . file_lines($blog, qr/^$p2 GET \/resend\/g4 /, 1), '11',
       'resend=on: the GET reached the canary once and the primary once');

    $r = $post->('/resend/p5', 'hangs.example.com');
    is($r->{status}, 504, 'resend=on: a POST is still never replayed (proxy_next_upstream)');
    is(file_lines($blog, qr/POST \/resend\/p5 /, 1, 1), 0, 'resend=on: the POST never reached the primary');

    $r = http_get($srv, '/nofallback/x', { Host => 'refuses.example.com' });
    is($r->{status}, 502, 'without fallback=primary a refusing canary gives 502');

    $r = $post->('/p4', 'ok.example.com');
    is("$r->{status} $r->{body}", "200 port $p3 edge_pass\n", 'a healthy canary serves');
    is($r->{headers}{'x-fallback'}[0], undef, 'a healthy canary: no fallback');
    is(file_lines($blog, qr/POST \/p4 /, 1), 1, 'a healthy canary: the POST reached one backend once');

    my $log = stop_nginx($srv);
    like($log, qr/dynroute: upstream "canary_refuses" could not be connected to, passing the request to the primary "stable"/,
         'the fallback is logged');
    like($log, qr/dynroute: upstream "canary_hangs" failed after the request was sent to it: not passing it to the primary "stable" too \(dynroute_balancer resend=on would\)/,
         'a request the canary received: why it is not passed on is logged');
    like($log, qr/dynroute: upstream "canary_hangs" failed after the request was sent to it \(resend=on\), passing the request to the primary "stable"/,
         'resend=on: the fallback after a send is logged as such');
    like($log, qr/dynroute: upstream "canary_down" has no live servers, passing the request to the primary "stable"/,
         'the fallback for a canary with no live server is logged');
    error_log_ok($log, 'fallback: no alert/crit/crash');
    stop_proc($hang_pid);
}

# Reloads while requests run through the balancer: none fails.  (Not under
# valgrind: nginx in single-process mode cannot reload.)
SKIP: {
    skip 'single-process nginx (valgrind) cannot reload', 3
        if ($ENV{TEST_NGINX_BINARY} // '') =~ /valgrind/;
    my $srv = start_nginx(http_config => $backends . <<'CONF', config => <<'CONF', workers => 2);
    upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; keepalive 8; }
    upstream b { server 127.0.0.1:$TEST_NGINX_PORT3; keepalive 8; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge { a.example.com a; default b; }
CONF
    location / {
        dynroute edge;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://edge_pass;
    }
CONF
    my $out = File::Temp->new;
    my $child = fork // die "fork: $!";
    if ($child == 0) {
        my ($ok, $bad) = (0, 0);
        my $end = time + 4;
        while (time < $end && $ok + $bad < 5000) {
            my $r = http_get($srv, '/r', { Host => ($ok % 2 ? 'a.example.com' : 'b.example.com') });
            ($r->{status} // 0) == 200 ? $ok++ : $bad++;
        }
        POSIX::_exit(eval { spew("$out", "$ok $bad\n"); 1 } ? 0 : 1);
    }
    my $reloaded = 0;
    for (1 .. 3) {
        select undef, undef, undef, 0.5;
        $reloaded++ if reload_nginx($srv, undef, undef);
    }
    waitpid $child, 0;
    my ($ok, $bad) = split ' ', slurp("$out");
    is($reloaded, 3, 'three reloads while requests run');
    ok($ok > 50 && $bad == 0, "reloads under load: $ok requests answered, $bad failed");
    error_log_ok(stop_nginx($srv), 'reloads: no alert/crit/crash');
}

run_tests();

__DATA__

=== TEST 1: rules and rollout variants through the balancer
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "B\n"; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_rollout ab {
        variant blue  service_a *;
        variant green service_b 50%;
        header  X-Variant;
        override_from 127.0.0.1;
    }
    dynroute_table edge {
        a.example.com   service_a;
        ab.example.com  ab;
        ip              @local;
        default         service_b;
    }
--- config
    location / {
        dynroute edge;
        proxy_pass http://edge_pass;
        add_header X-Up $dynroute_upstream;
    }
    location @local { return 200 "local\n"; }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Host: a.example.com", "Host: other.example.com", "Host: ab.example.com\nX-Variant: green",
 "Host: ab.example.com\nX-Variant: blue", "Host: 10.0.0.1"]
--- response_body eval
["A\n", "B\n", "B\n", "A\n", "local\n"]
--- no_error_log
[error]



=== TEST 2: proxy_pass http://$dynroute_upstream keeps working next to the balancer
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A\n"; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge { default service_a; }
--- config
    location /v/ { dynroute edge; proxy_pass http://$dynroute_upstream; }
    location /b/ { dynroute edge; proxy_pass http://edge_pass; }
--- request eval
["GET /v/", "GET /b/"]
--- response_body eval
["A\n", "A\n"]
--- no_error_log
[error]



=== TEST 3: a subrequest whose decision is a named location gets a clear 500 from the balancer
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 204; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table auth { ip @nowhere; default service_a; }
--- config
    location / { auth_request /_auth; return 200 "granted\n"; }
    location = /_auth { internal; dynroute auth; proxy_pass http://edge_pass; }
    location @nowhere { return 204; }
    location /p/ { auth_request /_auth; proxy_pass http://service_a/; }
--- request eval
["GET /p/", "GET /p/"]
--- more_headers eval
["Host: a.example.com", "Host: 10.0.0.1"]
--- error_code eval
[204, 500]
--- error_log
dynroute: no upstream to pass to: table "auth" sends host "10.0.0.1" to the named location "@nowhere", which a subrequest does not jump to



=== TEST 4: dynroute_balancer outside an upstream block
--- http_config
    dynroute_balancer;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] "dynroute_balancer" directive is not allowed here in .*nginx\.conf:3/



=== TEST 5: dynroute_balancer with server lines
--- http_config
    upstream edge_pass {
        dynroute_balancer;
        server 127.0.0.1:$TEST_NGINX_PORT2;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "edge_pass" has both dynroute_balancer and "server" lines: its servers are those of the upstream that dynroute chooses, in .*nginx\.conf:3/



=== TEST 6: dynroute_balancer twice
--- http_config
    upstream edge_pass {
        dynroute_balancer;
        dynroute_balancer;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] "dynroute_balancer" directive is duplicate in .*nginx\.conf:5/



=== TEST 7: an unknown parameter
--- http_config
    upstream edge_pass { dynroute_balancer fallback=canary; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] invalid parameter "fallback=canary": expected fallback=primary or resend=on\|off in .*nginx\.conf:3/



=== TEST 7b: resend=on without fallback=primary
--- http_config
    upstream edge_pass { dynroute_balancer resend=on; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] resend=on of dynroute_balancer says what fallback=primary may send again: add fallback=primary in .*nginx\.conf:3/



=== TEST 8: another balancing method before it
--- http_config
    upstream edge_pass {
        least_conn;
        dynroute_balancer;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] dynroute_balancer cannot be combined with another balancing method in upstream "edge_pass" in .*nginx\.conf:5/



=== TEST 9: keepalive, a method or a zone after it
--- http_config
    upstream edge_pass {
        dynroute_balancer;
        keepalive 8;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "edge_pass" has dynroute_balancer and a balancing method, keepalive or zone: put those in the upstreams that dynroute chooses, in .*nginx\.conf:3/



=== TEST 10: a zone in it
--- http_config
    upstream edge_pass {
        dynroute_balancer;
        zone edge 64k;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] upstream "edge_pass" has dynroute_balancer and a balancing method, keepalive or zone/



=== TEST 11: a location that passes to the balancer without dynroute
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge { default service_a; }
--- config
    location /routed/ { dynroute edge; proxy_pass http://edge_pass; }
    location /forgot/ { proxy_pass http://edge_pass; }
--- must_die
--- error_log eval
qr/\[emerg\] location "\/forgot\/" in \S+nginx\.conf:8 passes requests to upstream "edge_pass" \(\S+nginx\.conf:4\), a dynroute_balancer, but no dynroute table is in effect there: add "dynroute edge;" to the location or its server$/m



=== TEST 12: dynroute off in a location that passes to the balancer
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge { default service_a; }
--- config
    dynroute edge;
    location / { proxy_pass http://edge_pass; }
    location /off/ { dynroute off; proxy_pass http://edge_pass; }
--- must_die
--- error_log eval
qr/\[emerg\] location "\/off\/" in \S+nginx\.conf:9 passes requests to upstream "edge_pass" \(\S+nginx\.conf:4\), a dynroute_balancer, but no dynroute table is in effect there: add "dynroute edge;" to the location or its server$/m
