# dynroute_servers hash=KEY: consistent hashing over the configured
# "server" lines.  A key must reach the backend it reaches through nginx's
# own "hash KEY consistent" over the same lines (its twin, in the same
# nginx): weights, a name with several addresses, down servers, a refusing
# port with max_fails, the round robin of an empty key; through a plain
# proxy_pass and through dynroute_balancer.  nginx -t refuses backup,
# hash= without a key and a key that does not compile, naming the file
# and line.
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp free_ports);
use Socket qw(getaddrinfo getnameinfo AF_INET6 NI_NUMERICHOST NI_NUMERICSERV SOCK_STREAM);

# Backends in the same nginx: each answers with the address it was reached on.
sub backends(@) {
    my $l = join "\n", map { "        listen $_;" } @_;
    return <<"CONF";
    server {
$l
        location / { return 200 "\$server_addr:\$server_port\\n"; }
    }
CONF
}

# what each of 300 keys reaches through a location (status and body)
sub by_key($$;$) {
    my ($srv, $path, $headers) = @_;
    return [ map { my $r = http_get($srv, "$path?k=key$_", $headers);
                   "$r->{status} " . ($r->{body} // '') } 1 .. 300 ];
}

# The same backend as nginx's consistent hash for 300 keys, with weights, a
# name that resolves to several addresses (they share its points, as in
# nginx), and down servers; always the same one per key; the round robin of
# an empty key interleaved; through dynroute_balancer.
{
    my @p = free_ports(6);
    my ($err, @ai) = getaddrinfo('localhost', $p[5], { socktype => SOCK_STREAM });
    my @local = map {
        my ($e, $host) = getnameinfo($_->{addr}, NI_NUMERICHOST | NI_NUMERICSERV);
        $_->{family} == AF_INET6 ? "[$host]" : $host
    } @ai;
    my $lines = <<"LINES";
        server 127.0.0.1:$p[0] weight=3;
        server 127.0.0.1:$p[1];
        server 127.0.0.1:$p[2] weight=2 max_fails=2;
        server 127.0.0.1:$p[3];
        server 127.0.0.1:$p[4] weight=5;
        server localhost:$p[5] weight=2;
LINES
    (my $down = $lines) =~ s/(:$p[0] weight=3)/$1 down/ or die;
    $down =~ s/(:$p[4] weight=5)/$1 down/ or die;
    my $srv = start_nginx(workers => 1,
        http_config => backends((map { "127.0.0.1:$_" } @p[0 .. 4]),
                                (map { "$_:$p[5]" } @local)) . <<"CONF",
    upstream dyn {
        dynroute_servers hash=\$arg_k;
$lines    }
    upstream twin {
        hash \$arg_k consistent;
$lines    }
    upstream dyn_down {
        dynroute_servers max=16 hash=\$arg_k;
$down    }
    upstream twin_down {
        hash \$arg_k consistent;
$down    }
    upstream dyn_b {
        dynroute_servers hash=\$arg_k;
$lines        keepalive 4;
    }
    upstream dyn_const {
        dynroute_servers hash=same;
$lines    }
    upstream twin_const {
        hash same consistent;
$lines    }
    upstream edge_pass { dynroute_balancer; }
    dynroute_table edge {
        dyn.example.com   dyn_b;
        twin.example.com  twin;
    }
CONF
        config => <<'CONF');
    add_header X-Upstream-Addr $upstream_addr always;
    location /d/ { proxy_pass http://dyn; }
    location /t/ { proxy_pass http://twin; }
    location /dd/ { proxy_pass http://dyn_down; }
    location /td/ { proxy_pass http://twin_down; }
    location /dc/ { proxy_pass http://dyn_const; }
    location /tc/ { proxy_pass http://twin_const; }
    location /b/ {
        dynroute edge;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://edge_pass;
    }
CONF
    my $d = by_key($srv, '/d/');
    my $t = by_key($srv, '/t/');
    is_deeply($d, $t, '300 keys: each reaches the backend it reaches through nginx\'s hash $arg_k consistent');
    my %n;
    $n{$_}++ for @$d;
    ok(keys(%n) >= 6, 'the keys are spread over ' . keys(%n) . ' backends');
    is_deeply(by_key($srv, '/d/'), $d, 'the same key reaches the same backend again');
    my @seq_d = map { my $k = $_ % 3 ? '' : "mix$_";
                      http_get($srv, "/d/?k=$k")->{body} } 1 .. 90;
    my @seq_t = map { my $k = $_ % 3 ? '' : "mix$_";
                      http_get($srv, "/t/?k=$k")->{body} } 1 .. 90;
    is_deeply(\@seq_d, \@seq_t,
              'empty keys go round robin, interleaved with hashed keys, as with nginx');
    my %rr;
    $rr{$_}++ for @seq_d;
    ok(keys(%rr) >= 6, 'the round robin of empty keys spreads over ' . keys(%rr) . ' backends');
    my $dd = by_key($srv, '/dd/');
    is_deeply($dd, by_key($srv, '/td/'), 'down servers: 300 keys reach the same backends as nginx\'s');
    ok(!grep({ /:($p[0]|$p[4])\n\z/ } @$dd), 'down servers: no key reaches them');
    my ($moved, $kept) = (0, 0);
    for my $i (0 .. 299) {
        if ($d->[$i] =~ /:($p[0]|$p[4])\n\z/) {
            $moved++;
        } else {
            $kept++ if $d->[$i] eq $dd->[$i];
        }
    }
    is($kept, 300 - $moved, "down servers: the other keys stay where they were ($moved moved)");
    ok($moved >= 30, "down servers: their keys ($moved) went elsewhere");
    my @c = map { http_get($srv, "/dc/$_")->{body} } 1 .. 5;
    is_deeply(\@c, [ (http_get($srv, '/tc/')->{body}) x 5 ],
              'a constant key: every request to the server of nginx\'s hash');
    is_deeply(by_key($srv, '/b/', { Host => 'dyn.example.com' }),
              by_key($srv, '/b/', { Host => 'twin.example.com' }),
              'dynroute_balancer: a rule to a hash= group, as to nginx\'s hash');
    error_log_ok(stop_nginx($srv), 'hash: no alert/crit/crash');
}

# max_fails with a port that refuses: the next try goes where nginx's goes,
# the failed server is left alone for fail_timeout as by nginx.
{
    my ($dead, @p) = free_ports(4);
    my $lines = <<"LINES";
        server 127.0.0.1:$dead max_fails=1 fail_timeout=60s;
        server 127.0.0.1:$p[0];
        server 127.0.0.1:$p[1] weight=2;
        server 127.0.0.1:$p[2];
LINES
    # a line written twice: its servers share the name's points, and a key
    # of the name tries both before the next point, as nginx compares names
    my $dup = <<"LINES";
        server 127.0.0.1:$dead max_fails=1 fail_timeout=60s;
        server 127.0.0.1:$p[0];
        server 127.0.0.1:$dead weight=2 max_fails=1 fail_timeout=60s;
        server 127.0.0.1:$p[1];
LINES
    my $srv = start_nginx(workers => 1,
        http_config => backends(map { "127.0.0.1:$_" } @p) . <<"CONF",
    upstream dyn {
        dynroute_servers hash=\$arg_k;
$lines    }
    upstream twin {
        hash \$arg_k consistent;
$lines    }
    upstream dyn_dup {
        dynroute_servers hash=\$arg_k;
$dup    }
    upstream twin_dup {
        hash \$arg_k consistent;
$dup    }
    upstream dyn_fails {
        dynroute_servers hash=\$arg_k;
        server 127.0.0.1:$dead max_fails=3 fail_timeout=60s;
        server 127.0.0.1:$p[0];
    }
CONF
        config => <<'CONF');
    add_header X-Upstream-Addr $upstream_addr always;
    location /d/ { proxy_pass http://dyn; }
    location /t/ { proxy_pass http://twin; }
    location /f/ { proxy_pass http://dyn_fails; }
    location /dd/ { proxy_pass http://dyn_dup; }
    location /td/ { proxy_pass http://twin_dup; }
CONF
    my (@d, @t);
    for my $i (1 .. 300) {
        my $r = http_get($srv, "/d/?k=key$i");
        push @d, "$r->{status} " . ($r->{headers}{'x-upstream-addr'}[0] // '');
        $r = http_get($srv, "/t/?k=key$i");
        push @t, "$r->{status} " . ($r->{headers}{'x-upstream-addr'}[0] // '');
    }
    is_deeply(\@d, \@t, 'max_fails: 300 keys, the same tries ($upstream_addr) as nginx\'s');
    is(scalar(grep { /^200 / } @d), 300, 'max_fails: every request answered');
    my $tried = grep { /127\.0\.0\.1:$dead, / } @d;
    is($tried, 1, 'max_fails: the refusing server tried once, then left alone for fail_timeout');
    my $log = slurp($srv->{error_log});
    like($log, qr/\[warn\] .*upstream server temporarily disabled while connecting to upstream.*\/d\//,
         'max_fails: nginx\'s warning when a server is taken out');
    my @dd = map { http_get($srv, "/dd/?k=dup$_")->{headers}{'x-upstream-addr'}[0] // '' } 1 .. 100;
    my @td = map { http_get($srv, "/td/?k=dup$_")->{headers}{'x-upstream-addr'}[0] // '' } 1 .. 100;
    is_deeply(\@dd, \@td, 'a line written twice: 100 keys, the same tries as nginx\'s');
    is(scalar(grep { /^127\.0\.0\.1:$dead, 127\.0\.0\.1:$dead, / } @dd), 1,
       'a line written twice: a key of its name tried both of its servers, then the next point');
    # max_fails=3: each key tries the dead server until it is out, then
    # only the other one
    my @f = map { http_get($srv, "/f/?k=f$_")->{headers}{'x-upstream-addr'}[0] // '' } 1 .. 40;
    is(scalar(grep { /^127\.0\.0\.1:$dead, 127\.0\.0\.1:$p[0]\z/ } @f), 3,
       'max_fails=3: three keys tried the refusing server first, then the next point');
    is(scalar(grep { $_ eq "127.0.0.1:$p[0]" } @f), 37, 'max_fails=3: then it is left alone');
    error_log_ok(stop_nginx($srv), 'max_fails: no alert/crit/crash');
}

# A runtime list set through the API on a hash= group: each key reaches the
# backend of nginx's own hash over a static upstream with that list (the
# writer builds the list's ring into its group block), on both workers; a
# server removed moves its keys only; a weight changes the ring; back to
# the "server" lines (written in an order that is not the list's), their
# ring again.
{
    my @p = sort { $a <=> $b } free_ports(6);
    my $api = sub {
        my ($srv, $method, $path, $body) = @_;
        my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
        $req .= "Content-Type: application/json\r\nContent-Length: "
                . length($body) . "\r\n" if defined $body;
        my $r = http_raw($srv, $req . "\r\n" . ($body // ''), 30);
        return $r->{status} // 0;
    };
    my $static = sub {
        my ($name, %w) = @_;
        return "    upstream $name {\n        hash \$arg_k consistent;\n"
               . join('', map { "        server 127.0.0.1:$_ weight=$w{$_};\n" }
                          sort keys %w)
               . "    }\n";
    };
    my %all = ($p[0] => 3, $p[1] => 1, $p[2] => 2, $p[3] => 1, $p[4] => 5);
    my %less = %all;
    delete $less{$p[2]};
    my %heavier = (%less, $p[1] => 4);
    # the "server" lines, last port first: the list (by address) differs
    my %conf = ($p[5] => 1, $p[3] => 2, $p[0] => 1);
    my $lines = join '', map { "        server 127.0.0.1:$_ weight=$conf{$_};\n" }
                         sort { $b <=> $a } keys %conf;
    my $srv = start_nginx(workers => 2,
        http_config => backends(map { "127.0.0.1:$_" } @p) . <<"CONF"
    dynroute_zone routes 1m;
    upstream dyn {
        dynroute_servers max=8 hash=\$arg_k;
$lines    }
    upstream twin_conf {
        hash \$arg_k consistent;
$lines    }
CONF
            . $static->('twin_all', %all) . $static->('twin_less', %less)
            . $static->('twin_heavier', %heavier),
        config => <<'CONF');
    location /d/ { proxy_pass http://dyn; }
    location /conf/ { proxy_pass http://twin_conf; }
    location /all/ { proxy_pass http://twin_all; }
    location /less/ { proxy_pass http://twin_less; }
    location /heavier/ { proxy_pass http://twin_heavier; }
    location /api/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF
    my $body = sub {
        my %w = @_;
        return '{' . join(',', map { "\"127.0.0.1:$_\": {\"weight\": $w{$_}}" }
                               sort keys %w) . '}';
    };
    my $conf = by_key($srv, '/conf/');
    is_deeply(by_key($srv, '/d/'), $conf, 'runtime hash: the "server" lines first, as nginx\'s');

    is($api->($srv, 'PUT', '/api/upstreams/dyn/servers', $body->(%all)), 200,
       'runtime hash: a list of five servers set');
    my $all = by_key($srv, '/all/');
    my $d = by_key($srv, '/d/');
    is_deeply($d, $all, 'runtime hash: 300 keys reach the backend of nginx\'s hash over the same list');
    is_deeply(by_key($srv, '/d/'), $all, 'runtime hash: again, on both workers');
    my %n;
    $n{$_}++ for @$d;
    is(scalar(keys %n), 5, 'runtime hash: the keys are spread over the five servers');

    is($api->($srv, 'DELETE', "/api/upstreams/dyn/servers/127.0.0.1:$p[2]"), 200,
       'runtime hash: a server removed');
    my $less = by_key($srv, '/d/');
    is_deeply($less, by_key($srv, '/less/'), 'runtime hash: without it, as nginx\'s');
    my ($moved, $kept) = (0, 0);
    for my $i (0 .. 299) {
        if ($d->[$i] =~ /:$p[2]\n\z/) {
            $moved++;
        } elsif ($d->[$i] eq $less->[$i]) {
            $kept++;
        }
    }
    is($kept, 300 - $moved, "runtime hash: only the removed server's keys moved ($moved)");
    ok($moved >= 20, "runtime hash: the removed server had keys ($moved)");

    is($api->($srv, 'PATCH', "/api/upstreams/dyn/servers/127.0.0.1:$p[1]", '{"weight": 4}'), 200,
       'runtime hash: a weight changed');
    my $heavier = by_key($srv, '/d/');
    is_deeply($heavier, by_key($srv, '/heavier/'), 'runtime hash: the weight changes the ring, as nginx\'s');
    my $gained = grep { $heavier->[$_] =~ /:$p[1]\n\z/ && $less->[$_] !~ /:$p[1]\n\z/ } 0 .. 299;
    ok($gained >= 10, "runtime hash: the heavier server gained keys ($gained)");

    my $r = http_raw($srv, "PATCH /api/upstreams/dyn/servers/127.0.0.1:$p[1] HTTP/1.1\r\n"
                     . "Host: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     . "Content-Length: 17\r\n\r\n{\"weight\": 10000}", 30);
    is($r->{status}, 507, 'runtime hash: a ring larger than the zone is refused');
    like($r->{body}, qr/consistent hash ring of upstream \\"dyn\\" takes 12\d{6} bytes .*more than dynroute_zone \\"routes\\" holds, nothing changed/,
         '... saying why');
    is_deeply(by_key($srv, '/d/'), $heavier, '... and nothing changed');

    is($api->($srv, 'DELETE', '/api/upstreams/dyn/servers'), 200,
       'runtime hash: back to the "server" lines');
    is_deeply(by_key($srv, '/d/'), $conf, 'runtime hash: the "server" lines\' ring again');
    error_log_ok(stop_nginx($srv), 'runtime hash: no alert/crit/crash');
}

# hash= added by a reload to an upstream whose runtime list was written
# without it: the list is published again with its ring.
{
    my @p = sort { $a <=> $b } free_ports(4);
    my $list = join '', map { "        server 127.0.0.1:$_ weight=" . ($_ % 3 + 1) . ";\n" } @p;
    my $http = sub {
        my ($hash) = @_;
        return backends(map { "127.0.0.1:$_" } @p) . <<"CONF";
    dynroute_zone routes 1m;
    upstream dyn {
        dynroute_servers max=8$hash;
        server 127.0.0.1:$p[0];
    }
    upstream twin {
        hash \$arg_k consistent;
$list    }
CONF
    };
    my $srv = start_nginx(workers => 2, http_config => $http->(''), config => <<'CONF');
    location /d/ { proxy_pass http://dyn; }
    location /t/ { proxy_pass http://twin; }
    location /api/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF
    my $body = '{' . join(',', map { "\"127.0.0.1:$_\": {\"weight\": " . ($_ % 3 + 1) . '}' } @p) . '}';
    my $r = http_raw($srv, "PUT /api/upstreams/dyn/servers HTTP/1.1\r\nHost: localhost\r\n"
                     . "Connection: close\r\nContent-Type: application/json\r\n"
                     . 'Content-Length: ' . length($body) . "\r\n\r\n$body", 30);
    is($r->{status}, 200, 'reload to hash=: a runtime list set without hash=');
    ok(reload_nginx($srv, $http->(' hash=$arg_k')), 'reload to hash=: reloaded with hash=$arg_k');
    my $t = by_key($srv, '/t/');
    is_deeply(by_key($srv, '/d/'), $t, 'reload to hash=: 300 keys on the list\'s ring, as nginx\'s');
    error_log_ok(stop_nginx($srv), 'reload to hash=: no alert/crit/crash');
}

run_tests();

__DATA__

=== TEST 1: backup after dynroute_servers hash=: nginx refuses it, as for its hash
--- http_config
    upstream u {
        dynroute_servers hash=$arg_k;
        server 127.0.0.1:1;
        server 127.0.0.1:2 backup;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] balancing method does not support parameter "backup" in .*nginx\.conf:6/



=== TEST 2: backup before dynroute_servers hash=
--- http_config
    upstream u {
        server 127.0.0.1:1;
        server 127.0.0.1:2 backup;
        dynroute_servers hash=$arg_k;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] server "127\.0\.0\.1:2" of upstream "u" is a backup, which consistent hashing does not carry \(nor does nginx's hash\): drop "backup" or hash= in .*nginx\.conf:6/



=== TEST 3: backup stays allowed without hash=
--- http_config
    upstream u {
        dynroute_servers max=4;
        server 127.0.0.1:$TEST_NGINX_PORT2;
        server 127.0.0.1:1 backup;
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "up\n"; }
--- config
    location / { proxy_pass http://u; }
--- request
GET /
--- response_body
up



=== TEST 4: hash= without a key
--- http_config
    upstream u { dynroute_servers hash=; server 127.0.0.1:1; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] invalid parameter "hash=": hash= needs a key, such as hash=\$request_uri in .*nginx\.conf:3/



=== TEST 5: a key that does not compile
--- http_config
    upstream u {
        dynroute_servers hash=${arg_k;
        server 127.0.0.1:1;
    }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] the closing bracket in "arg_k" variable is missing in .*nginx\.conf:4/



=== TEST 6: a key with a variable nginx does not know
--- http_config
    upstream u { dynroute_servers hash=$no_such_thing; server 127.0.0.1:1; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] unknown "no_such_thing" variable/



=== TEST 7: hash= twice
--- http_config
    upstream u { dynroute_servers hash=$arg_a hash=$arg_b; server 127.0.0.1:1; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] invalid parameter "hash=\$arg_b": hash= is given twice in .*nginx\.conf:3/



=== TEST 8: a parameter it does not know
--- http_config
    upstream u { dynroute_servers consistent; server 127.0.0.1:1; }
--- config
--- must_die
--- error_log eval
qr/\[emerg\] invalid parameter "consistent": expected max=N or hash=KEY in .*nginx\.conf:3/



=== TEST 9: a hash= group without a server line answers 502
--- http_config
    upstream u { dynroute_servers hash=$arg_k; }
--- config
    location / { proxy_pass http://u; }
--- request
GET /?k=abc
--- error_code: 502
--- error_log eval
qr/no live upstreams while connecting to upstream/
