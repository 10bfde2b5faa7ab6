# override_from through a real nginx: the override header and cookie steer
# only clients whose address (after realip) is in a listed CIDR; from anyone
# else they are ignored and the weight decides, including spoofed
# X-Forwarded-For / X-Real-IP headers where realip is not configured; a 0%
# variant is reachable by trusted testers and nobody else; an override
# response is marked private and not stored by proxy_cache in the same
# location (so the next visitor gets the weight's variant, not the tester's);
# auth_request subrequests and internal redirects trust the same addresses.
# Then the configurations nginx -t refuses.  Loopback only: the addresses
# other than 127.0.0.1 come from realip.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Fixtures qw($STABLE_CANARY);
use Time::HiRes ();

# A block that declares no upstream of its own gets the upstreams stable
# and canary after its --- http_config: $STABLE_CANARY, whose servers answer
# "stable\n" and "canary\n".
add_block_preprocessor(sub {
    my ($block) = @_;
    my $http = $block->http_config // '';
    $block->set_value(http_config => $http . $STABLE_CANARY)
        unless $http =~ /^\s*upstream\s/m;
});

my $t0 = Time::HiRes::time();

# The backends on port 2 answer with the Host proxy_pass sends: the
# upstream's name, so the body names the variant that served.  Port 3 and
# the block's server route the same table, port 3 without realip.
my $locations = <<'CONF';
        add_header X-Variant $dynroute_variant always;
        add_header X-Reason $dynroute_reason always;
        location / {
            dynroute edge;
            proxy_pass http://$dynroute_upstream;
        }
        location /cached/ {
            dynroute edge;
            proxy_pass http://$dynroute_upstream;
            proxy_cache c;
            proxy_cache_key $host$request_uri;
            add_header X-Variant $dynroute_variant always;
            add_header X-Reason $dynroute_reason always;
            add_header X-Cache $upstream_cache_status always;
        }
        # a subrequest routed by the rollout
        location /guarded/ {
            auth_request /auth;
            auth_request_set $auth_from $upstream_http_x_from;
            add_header X-Auth-From $auth_from always;
            proxy_pass http://stable/;
        }
        location = /auth {
            internal;
            dynroute edge;
            proxy_pass http://$dynroute_upstream;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        # internal redirects into the routed location: by rewrite, by
        # error_page, and after the variant was picked
        location /redir/ { rewrite ^ / last; }
        location /err/   { error_page 404 = /; return 404; }
        location /pre/ {
            dynroute edge;
            set $seen $dynroute_variant;
            rewrite ^ / last;
        }
        # realip in a location
        location /loc-realip/ {
            set_real_ip_from 127.0.0.1;
            real_ip_header X-Real-IP;
            dynroute edge;
            proxy_pass http://$dynroute_upstream;
        }
CONF

my $http = <<'CONF' . "    server {\n        listen 127.0.0.1:\$TEST_NGINX_PORT3;\n$locations    }\n";
    proxy_cache_path $TEST_NGINX_PREFIX/tmp/cache keys_zone=c:1m;
    upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream canary { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream dark   { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            add_header Cache-Control "max-age=60";
            add_header X-From $host;
            return 200 "$host\n";
        }
    }
    dynroute_rollout checkout {
        variant  stable  stable  *;
        variant  canary  canary  30%;
        key      $http_x_user;
        header   X-Canary;
        cookie   canary;
        override_from 10.0.0.0/8 2001:db8::/32;
    }
    dynroute_rollout launch {
        variant  stable  stable  *;
        variant  dark    dark    0%;
        key      $http_x_user;
        header   X-Canary;
        cookie   canary;
        override_from 10.0.0.0/8;
    }
    dynroute_rollout local {
        variant  stable  stable  *;
        variant  canary  canary  30%;
        key      $http_x_user;
        header   X-Canary;
        override_from 127.0.0.1;
    }
    dynroute_rollout cached {
        variant  stable  stable  *;
        variant  canary  canary  0%;
        key      $http_x_user;
        header   X-Canary;
        cookie   canary;
        override_from 10.0.0.0/8;
    }
    dynroute_table edge {
        launch.example.com  launch;
        local.example.com   local;
        cached.example.com  cached;
        default             checkout;
    }
CONF

my $config = <<"CONF";
        set_real_ip_from 127.0.0.1;
        real_ip_header   X-Real-IP;
$locations
CONF

my $srv = start_nginx(http_config => $http, config => $config, workers => 2);
my $norealip = { port => $srv->{port3} };

sub ask {
    my ($to, $path, %h) = @_;
    my $res = http_get($to, $path, \%h);
    my $hd = $res->{headers} || {};
    my $body = $res->{body} // '';
    chomp $body;
    return {
        status  => $res->{status} // 0,
        body    => $body,
        variant => $hd->{'x-variant'}[0] // '',
        reason  => $hd->{'x-reason'}[0] // '',
        cache   => $hd->{'x-cache'}[0] // '',
        auth    => $hd->{'x-auth-from'}[0] // '',
        cc      => join(', ', @{ $hd->{'cache-control'} || [] }),
        cookies => $hd->{'set-cookie'} || [],
    };
}

# "body/variant/reason/cache-control" of a response
sub seen {
    my ($r) = @_;
    return "$r->{status} $r->{body}/$r->{variant}/$r->{reason}/$r->{cc}";
}

my @users = map { "u$_" } 1 .. 100;

# what weight gives each user (no override anywhere)
my %weight;
$weight{$_} = ask($srv, '/', 'X-User' => $_)->{variant} for @users;
my @on_stable = grep { $weight{$_} eq 'stable' } @users;
ok(@on_stable >= 50 && @on_stable <= 90,
   scalar(@on_stable) . ' of 100 users are on stable by weight (30% canary)');

# each case: [name, where, path, headers, expected "body/variant/reason/cc" for
# user $u (a code ref)]
my $trusted = sub { my ($v, $why) = @_; sub { "200 $v/$v/$why/private" } };
my $byweight = sub { my $u = shift; "200 $weight{$u}/$weight{$u}/weight/max-age=60" };
my @cases = (
    ['realip 10.1.2.3, X-Canary: always', $srv, '/',
     { 'X-Real-IP' => '10.1.2.3', 'X-Canary' => 'always' }, $trusted->('canary', 'header')],
    ['realip 10.255.255.255, X-Canary: always', $srv, '/',
     { 'X-Real-IP' => '10.255.255.255', 'X-Canary' => 'always' }, $trusted->('canary', 'header')],
    ['realip 10.1.2.3, X-Canary: never', $srv, '/',
     { 'X-Real-IP' => '10.1.2.3', 'X-Canary' => 'never' }, $trusted->('stable', 'header')],
    ['realip 10.1.2.3, cookie canary=always', $srv, '/',
     { 'X-Real-IP' => '10.1.2.3', Cookie => 'a=1; canary=always' }, $trusted->('canary', 'cookie')],
    ['realip 2001:db8::5, X-Canary: canary', $srv, '/',
     { 'X-Real-IP' => '2001:db8::5', 'X-Canary' => 'canary' }, $trusted->('canary', 'header')],
    ['realip ::ffff:10.1.2.3 (IPv4-mapped), X-Canary: always', $srv, '/',
     { 'X-Real-IP' => '::ffff:10.1.2.3', 'X-Canary' => 'always' }, $trusted->('canary', 'header')],
    ['realip 203.0.113.9, X-Canary: always', $srv, '/',
     { 'X-Real-IP' => '203.0.113.9', 'X-Canary' => 'always' }, $byweight],
    ['realip 11.0.0.1, X-Canary: always', $srv, '/',
     { 'X-Real-IP' => '11.0.0.1', 'X-Canary' => 'always' }, $byweight],
    ['realip 2001:db9::5, X-Canary: always', $srv, '/',
     { 'X-Real-IP' => '2001:db9::5', 'X-Canary' => 'always' }, $byweight],
    ['realip ::ffff:203.0.113.9 (IPv4-mapped), X-Canary: always', $srv, '/',
     { 'X-Real-IP' => '::ffff:203.0.113.9', 'X-Canary' => 'always' }, $byweight],
    ['realip 203.0.113.9, cookie canary=always', $srv, '/',
     { 'X-Real-IP' => '203.0.113.9', Cookie => 'canary=always' }, $byweight],
    ['127.0.0.1 (no X-Real-IP), X-Canary: always', $srv, '/',
     { 'X-Canary' => 'always' }, $byweight],
    ['realip 203.0.113.9 with X-Forwarded-For 10.1.2.3, X-Canary: always', $srv, '/',
     { 'X-Real-IP' => '203.0.113.9', 'X-Forwarded-For' => '10.1.2.3',
       'X-Canary' => 'always' }, $byweight],
    ['no realip, X-Forwarded-For: 10.1.2.3, X-Canary: always', $norealip, '/',
     { 'X-Forwarded-For' => '10.1.2.3', 'X-Canary' => 'always' }, $byweight],
    ['no realip, X-Real-IP: 10.1.2.3, X-Canary: always', $norealip, '/',
     { 'X-Real-IP' => '10.1.2.3', 'X-Canary' => 'always' }, $byweight],
    ['no realip, both spoofed, cookie canary=always', $norealip, '/',
     { 'X-Real-IP' => '10.1.2.3', 'X-Forwarded-For' => '10.1.2.3',
       Cookie => 'canary=always' }, $byweight],
    ['no realip, Forwarded: for=10.1.2.3, X-Canary: always', $norealip, '/',
     { Forwarded => 'for=10.1.2.3', 'X-Canary' => 'always' }, $byweight],
    ['realip in a location, 10.1.2.3, X-Canary: always', $norealip, '/loc-realip/',
     { 'X-Real-IP' => '10.1.2.3', 'X-Canary' => 'always' }, $trusted->('canary', 'header')],
    ['realip in a location, 203.0.113.9, X-Canary: always', $norealip, '/loc-realip/',
     { 'X-Real-IP' => '203.0.113.9', 'X-Canary' => 'always' }, $byweight],
    # internal redirects
    ['rewrite, realip 10.1.2.3, X-Canary: always', $srv, '/redir/',
     { 'X-Real-IP' => '10.1.2.3', 'X-Canary' => 'always' }, $trusted->('canary', 'header')],
    ['rewrite, realip 203.0.113.9, X-Canary: always', $srv, '/redir/',
     { 'X-Real-IP' => '203.0.113.9', 'X-Canary' => 'always' }, $byweight],
    ['error_page, realip 10.1.2.3, X-Canary: always', $srv, '/err/',
     { 'X-Real-IP' => '10.1.2.3', 'X-Canary' => 'always' }, $trusted->('canary', 'header')],
    ['error_page, realip 203.0.113.9, X-Canary: always', $srv, '/err/',
     { 'X-Real-IP' => '203.0.113.9', 'X-Canary' => 'always' }, $byweight],
    ['picked then rewrite, realip 10.1.2.3, cookie canary=always', $srv, '/pre/',
     { 'X-Real-IP' => '10.1.2.3', Cookie => 'canary=always' }, $trusted->('canary', 'cookie')],
    ['picked then rewrite, realip 203.0.113.9, X-Canary: always', $srv, '/pre/',
     { 'X-Real-IP' => '203.0.113.9', 'X-Canary' => 'always' }, $byweight],
    ['no realip, rewrite, X-Real-IP: 10.1.2.3, X-Canary: always', $norealip, '/redir/',
     { 'X-Real-IP' => '10.1.2.3', 'X-Canary' => 'always' }, $byweight],
    ['no realip, error_page, X-Forwarded-For: 10.1.2.3, X-Canary: always', $norealip, '/err/',
     { 'X-Forwarded-For' => '10.1.2.3', 'X-Canary' => 'always' }, $byweight],
);
for my $c (@cases) {
    my ($name, $to, $path, $h, $want) = @$c;
    my ($ok, $moved, @why) = (0, 0);
    for my $u (@users) {
        my $r = ask($to, $path, %$h, 'X-User' => $u);
        my $w = $want->($u);
        if (seen($r) eq $w && !@{ $r->{cookies} }) {
            $ok++;
            $moved++ if $r->{variant} ne $weight{$u};
        } elsif (@why < 3) {
            push @why, "$u: got '" . seen($r) . "', want '$w'";
        }
    }
    is($ok, 100, "$name: 100 users") or diag(join "\n", @why);
}

# the control where realip is not configured: loopback itself is trusted by
# the "local" rollout, so the header does work there
{
    my $n = grep { ask($norealip, '/', Host => 'local.example.com', 'X-User' => $_,
                       'X-Canary' => 'always')->{variant} eq 'canary' } @users;
    is($n, 100, 'no realip, control: override_from 127.0.0.1 honours the header (100 users)');
}

# ---- a subrequest (auth_request) routed by the rollout ---------------------

{
    my @sub = (
        ['realip 10.1.2.3', $srv, { 'X-Real-IP' => '10.1.2.3' }, sub { 'canary' }],
        ['realip 203.0.113.9', $srv, { 'X-Real-IP' => '203.0.113.9' }, sub { $weight{ $_[0] } }],
        ['127.0.0.1', $srv, {}, sub { $weight{ $_[0] } }],
        ['no realip, X-Real-IP 10.1.2.3', $norealip,
         { 'X-Real-IP' => '10.1.2.3', 'X-Forwarded-For' => '10.1.2.3' }, sub { $weight{ $_[0] } }],
    );
    for my $s (@sub) {
        my ($name, $to, $h, $want) = @$s;
        my ($ok, @why) = (0);
        for my $u (@users) {
            my $r = ask($to, '/guarded/', %$h, 'X-User' => $u, 'X-Canary' => 'always');
            if ($r->{status} == 200 && $r->{auth} eq $want->($u) && $r->{body} eq 'stable') {
                $ok++;
            } elsif (@why < 3) {
                push @why, "$u: $r->{status} auth from '$r->{auth}', want '" . $want->($u) . "'";
            }
        }
        is($ok, 100, "auth_request subrequest, $name, X-Canary: always: "
           . 'the subrequest\'s variant (100 users)') or diag(join "\n", @why);
    }
}

# ---- a dark launch: 0% reachable by trusted testers only ------------------

{
    my %by;
    for my $n (1 .. 1000) {
        my $r = ask($srv, '/', Host => 'launch.example.com', 'X-User' => "k$n",
                    'X-Real-IP' => ($n % 2 ? '203.0.113.9' : '127.0.0.1'));
        $by{"$r->{status} $r->{variant}/$r->{body}"}++;
    }
    is(join(', ', map { "$_: $by{$_}" } sort keys %by), '200 stable/stable: 1000',
       'dark launch: 1000 keys by weight, none on the 0% variant');
    my @got = map { seen(ask($srv, '/', Host => 'launch.example.com', 'X-User' => 'k1', %$_)) } (
        { 'X-Real-IP' => '10.1.2.3', 'X-Canary' => 'dark' },
        { 'X-Real-IP' => '10.1.2.3', 'X-Canary' => 'always' },
        { 'X-Real-IP' => '10.1.2.3', Cookie => 'canary=dark' },
        { 'X-Real-IP' => '203.0.113.9', 'X-Canary' => 'dark' },
        { 'X-Real-IP' => '203.0.113.9', Cookie => 'canary=dark' },
        { 'X-Canary' => 'dark' },
    );
    is_deeply(\@got, ['200 dark/dark/header/private', '200 dark/dark/header/private',
                      '200 dark/dark/cookie/private',
                      ('200 stable/stable/weight/max-age=60') x 3],
              'dark launch: trusted testers reach it by header and cookie; others do not');
    my $r = ask($norealip, '/', Host => 'launch.example.com', 'X-User' => 'k1',
                'X-Real-IP' => '10.1.2.3', 'X-Forwarded-For' => '10.1.2.3', 'X-Canary' => 'dark');
    is(seen($r), '200 stable/stable/weight/max-age=60',
       'dark launch: spoofed addresses without realip do not reach it');
}

# ---- proxy_cache in the same location: the tester's answer is not stored --

{
    my $h = sub { (Host => 'cached.example.com', 'X-User' => shift, @_) };
    my $line = sub { my $r = shift; "$r->{body}/$r->{reason}/$r->{cache}/$r->{cc}" };
    my @got = (
        $line->(ask($srv, '/cached/p', $h->('tester', 'X-Real-IP' => '10.1.2.3',
                                             'X-Canary' => 'always'))),
        $line->(ask($srv, '/cached/p', $h->('tester', 'X-Real-IP' => '10.1.2.3',
                                             Cookie => 'canary=always'))),
        $line->(ask($srv, '/cached/p', $h->('visitor1'))),
        $line->(ask($srv, '/cached/p', $h->('visitor2'))),
    );
    is_deeply(\@got, ['canary/header/MISS/private', 'canary/cookie/MISS/private',
                      'stable/weight/MISS/max-age=60', 'stable/weight/HIT/max-age=60'],
              'proxy_cache: the tester\'s override answers (header, cookie) are not stored; '
              . 'the next visitor gets the weight\'s variant, which is stored');
    my @files = glob "$srv->{prefix}/tmp/cache/*";
    is(scalar @files, 1, 'proxy_cache: one answer stored, the weight\'s');
    # an untrusted "tester" is answered from the cache like everyone else
    is($line->(ask($srv, '/cached/p', $h->('x', 'X-Real-IP' => '203.0.113.9',
                                           'X-Canary' => 'always'))),
       'stable/weight/HIT/max-age=60', 'proxy_cache: an untrusted X-Canary gets the stored answer');
}

my $log = stop_nginx($srv);
error_log_ok($log, 'no alert/crit/crash');
unlike($log, qr/\[error\]/, 'no [error] in error.log');

diag(sprintf 'override_from.t low-level part: %.1f s', Time::HiRes::time() - $t0);

run_tests();

__DATA__

=== TEST 1: a header override without override_from
--- http_config
upstream a { server 127.0.0.1:1; }
upstream b { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  b  10%;
    header   X-Canary;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*dynroute rollout "r" in \S+nginx\.conf:5 takes overrides \(header X-Canary\) but does not say from whom: add "override_from CIDR \.\.\.;"/m



=== TEST 2: a cookie override without override_from
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    cookie   canary;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*dynroute rollout "r" in \S+nginx\.conf:4 takes overrides \(cookie canary\) but does not say from whom: add "override_from CIDR \.\.\.;" with your testers' addresses, or "override_from all;"/m



=== TEST 3: header and cookie without override_from
--- http_config
upstream a { server 127.0.0.1:1; }

dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    cookie   canary;
    header   X-Canary;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*dynroute rollout "r" in \S+nginx\.conf:5 takes overrides \(header X-Canary, cookie canary\) but does not say from whom/m



=== TEST 4: a bad CIDR
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    header   X-Canary;
    override_from 10.0.0.0/8 192.0.2.0/33;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid address "192\.0\.2\.0\/33": expected an IPv4 or IPv6 address with an optional \/prefix, such as "10\.0\.0\.0\/8" in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 5: a host name is no CIDR
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    header   X-Canary;
    override_from localhost;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid address "localhost".* in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 6: "all" with a CIDR
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    header   X-Canary;
    override_from all 10.0.0.0/8;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*"override_from all" takes nothing else in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 7: a CIDR with "all"
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    header   X-Canary;
    override_from 10.0.0.0/8 all;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid address "all".* in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 8: override_from twice
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    header   X-Canary;
    override_from 10.0.0.0/8;
    override_from 192.0.2.0/24;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate "override_from" in dynroute rollout "r" in \S+nginx\.conf:9$/m



=== TEST 9: override_from with nothing
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    header   X-Canary;
    override_from;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid number of parameters in "override_from" of dynroute rollout "r".* in \S+nginx\.conf:8$/m



=== TEST 10: override_from all: every client steers, whatever its address
--- http_config
dynroute_rollout checkout {
    variant  stable  stable  100%;
    variant  canary  canary  0%;
    header   X-Canary;
    cookie   canary;
    override_from all;
}
dynroute_table edge { default checkout; }
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header   X-Real-IP;
    location / {
        dynroute edge;
        add_header X-Reason $dynroute_reason always;
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["", "X-Canary: always", "X-Canary: always\r\nX-Real-IP: 203.0.113.9",
 "Cookie: canary=always\r\nX-Real-IP: 2001:db8::1", "X-Real-IP: 203.0.113.9"]
--- response_body eval
["stable\n", "canary\n", "canary\n", "canary\n", "stable\n"]
--- response_headers eval
["X-Reason: weight\n!Cache-Control", "X-Reason: header\nCache-Control: private",
 "X-Reason: header\nCache-Control: private", "X-Reason: cookie\nCache-Control: private",
 "X-Reason: weight\n!Cache-Control"]
--- no_error_log
[error]
[warn]



=== TEST 11: a CIDR with host bits: a warning, and it still matches
--- http_config
dynroute_rollout checkout {
    variant  stable  stable  100%;
    variant  canary  canary  0%;
    header   X-Canary;
    override_from 127.0.0.1/8;
}
dynroute_table edge { default checkout; }
--- config
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
--- request
GET /
--- more_headers
X-Canary: always
--- response_body
canary
--- error_log
low address bits of 127.0.0.1/8 are meaningless
