# nginx.conf.example is the quick start: it must pass nginx -t and route as
# the README, docs/ngx_http_dynroute_module.md and `make demo` say.  It runs
# here on free ports instead of the fixed 8080 and 9001 to 9004.
use strict;
use warnings;
use Cwd ();
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp free_ports);

my ($module) = grep { length } split ' ',
    (defined $ENV{TEST_NGINX_LOAD_MODULES} ? $ENV{TEST_NGINX_LOAD_MODULES}
                                           : 'build/ngx_http_dynroute_module.so');

if (!$module || $module !~ /ngx_http_dynroute_module\.so$/) {
    Test::More::plan(skip_all => 'the example loads the dynamic module');
}

my $conf = slurp('nginx.conf.example') or die "nginx.conf.example: missing or empty\n";

like($conf, qr/^load_module modules\/ngx_http_dynroute_module\.so;$/m,
     'the example loads the module the Debian way');

$conf =~ s/127\.0\.0\.1:8080/127.0.0.1:\$TEST_NGINX_SERVER_PORT/g;
$conf =~ s/127\.0\.0\.1:9001/127.0.0.1:\$TEST_NGINX_PORT2/g;
$conf =~ s/127\.0\.0\.1:9002/127.0.0.1:\$TEST_NGINX_PORT3/g;
my ($blue_port, $green_port) = free_ports(2);
$conf =~ s/127\.0\.0\.1:9003/127.0.0.1:$blue_port/g;
$conf =~ s/127\.0\.0\.1:9004/127.0.0.1:$green_port/g;
unlike($conf, qr/127\.0\.0\.1:(?:8080|900\d)\b/, 'every fixed port of the example is replaced');

my $srv = start_nginx(
    conf    => $conf,
    globals => 'daemon off;' . ($> == 0 ? ' user root;' : ''),
    links   => { 'modules/ngx_http_dynroute_module.so' =>
                     Cwd::abs_path($module) },
);

my @cases = (
    # Host header (and more headers), rule,                body
    ['a.example.com',      'a.example.com',               qr/^service_a answered for a\.example\.com$/],
    ['api.example.com',    'api.example.com',             qr/^service_a answered for api\.example\.com$/],
    ['api.a.example.com',  '*.a.example.com',             qr/^service_a answered/],
    ['www.example.org',    'www.example.*',               qr/^service_b answered/],
    ['acme.t.example.com', '~^(?<tenant>[a-z]+)\.t\.example\.com$',
                                                          qr/tenant: acme\)$/],
    ['apples.io',          '~^a',                         qr/^service_a answered/],
    ['other.net',          'default',                     qr/^service_b answered/],
    ["127.0.0.1:$srv->{port}", 'ip',                      qr/^served locally for 127\.0\.0\.1$/],
    ['shop.example.com',   'shop.example.com',            qr/^service_[ab] answered for shop\.example\.com/],
    ['shop.example.com X-Canary: always', 'shop.example.com', qr/^service_b answered/, 'canary'],
    ['shop.example.com X-Canary: never',  'shop.example.com', qr/^service_a answered/, 'stable'],
    ['shop.example.com Cookie: canary=canary', 'shop.example.com', qr/^service_b answered/, 'canary'],
    ['site.example.com',   'site.example.com',            qr/^blue answered for site\.example\.com$/, 'live'],
    ['site.example.com X-Preview: preview', 'site.example.com', qr/^green answered/, 'preview'],
);

for my $c (@cases) {
    my ($host, $rule, $body, $variant) = @$c;
    my %h;
    ($host, my $extra) = split / /, $host, 2;
    %h = split /: /, $extra if $extra;
    my $res = http_get($srv, '/', { Host => $host, %h });
    is($res->{status}, 200, "$host: 200");
    is($res->{headers}{'x-dynroute-rule'}[0], $rule, "$host: rule $rule")
        unless $rule eq 'ip';
    like($res->{body}, $body, "$host: body");
    is($res->{headers}{'x-dynroute-variant'}[0], $variant,
       "$host " . ($extra // "") . ": variant $variant") if $variant;
}

# the rollout is sticky: a client keeps its variant
my @seen = map { http_get($srv, '/', { Host => 'shop.example.com',
                                       Cookie => "uid=user$_" })->{body} }
           1 .. 50;
my @again = map { http_get($srv, '/', { Host => 'shop.example.com',
                                        Cookie => "uid=user$_" })->{body} }
            1 .. 50;
is_deeply(\@again, \@seen, 'the rollout is sticky on the uid cookie');

# a variant that refuses connections: the balancer passes the request to
# the primary
(my $down = $conf) =~ s/variant  canary  service_b  10%;/variant  canary  service_down  10%;/;
$down =~ s/(upstream service_b \{)/upstream service_down { server 127.0.0.1:1; }\n    $1/;


my $res = http_raw($srv, "POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       . "Content-Length: 0\r\nConnection: close\r\n\r\n");
is($res->{status}, 200, 'health: 200');
is($res->{body}, '"i am alive"', 'health: body');

$res = http_raw($srv, "OPTIONS / HTTP/1.1\r\nHost: a.example.com\r\n"
                    . "Origin: https://app.example.com\r\n"
                    . "Access-Control-Request-Method: POST\r\n"
                    . "Access-Control-Request-Headers: content-type\r\n"
                    . "Connection: close\r\n\r\n");
is($res->{status}, 204, 'CORS preflight: 204 from the edge');
is($res->{headers}{'access-control-allow-origin'}[0], 'https://app.example.com',
   'CORS preflight: the origin is echoed');

$res = http_get($srv, '/', { Host => 'a.example.com', Origin => 'https://evil.example' });
like($res->{body}, qr/^service_a answered/, 'CORS, other origin: still proxied');
ok(!$res->{headers}{'access-control-allow-origin'},
   'CORS, other origin: no Access-Control-Allow-Origin');

# the runtime API of the example: the canary at 100 %, then back
$res = http_get($srv, '/ready');
is("$res->{status} $res->{body}", '200 {"ready":true}', 'readiness: 200');
$res = http_raw($srv, "PATCH /dynroute/rollouts/shop HTTP/1.1\r\nHost: localhost\r\n"
                    . "Content-Type: application/json\r\nContent-Length: 37\r\n"
                    . "Connection: close\r\n\r\n"
                    . '{"weights":{"stable":0,"canary":100}}');
is($res->{status}, 200, 'the runtime API: the canary at 100 %');
my %variants;
$variants{ http_get($srv, '/', { Host => 'shop.example.com', Cookie => "uid=u$_" })
               ->{headers}{'x-dynroute-variant'}[0] // '' }++ for 1 .. 20;
is(join(',', keys %variants), 'canary', 'the runtime API: every client on the canary');
$res = http_raw($srv, "DELETE /dynroute/rollouts/shop HTTP/1.1\r\nHost: localhost\r\n"
                    . "Connection: close\r\n\r\n");
like($res->{body}, qr/"runtime":false/, 'the runtime API: back to the configured weights');

# blue/green: the colours swapped in one change, then back
$res = http_raw($srv, "PATCH /dynroute/rollouts/site HTTP/1.1\r\nHost: localhost\r\n"
                    . "Content-Type: application/json\r\nContent-Length: 57\r\n"
                    . "Connection: close\r\n\r\n"
                    . '{"upstreams":{"live":"site_green","preview":"site_blue"}}');
is($res->{status}, 200, 'blue/green: the flip is accepted') or diag($res->{body});
like(http_get($srv, '/', { Host => 'site.example.com', Cookie => 'uid=u1' })->{body},
     qr/^green answered/, 'blue/green: live traffic on green after the flip');
like(http_get($srv, '/', { Host => 'site.example.com', 'X-Preview' => 'preview' })->{body},
     qr/^blue answered/, 'blue/green: the preview on blue, the next idle colour');
$res = http_raw($srv, "DELETE /dynroute/rollouts/site HTTP/1.1\r\nHost: localhost\r\n"
                    . "Connection: close\r\n\r\n");
like(http_get($srv, '/', { Host => 'site.example.com' })->{body},
     qr/^blue answered/, 'blue/green: reset, live on blue again');

# the servers of upstream api at run time: service_b's instead of the line,
# then the line again
my $b = "127.0.0.1:$srv->{port3}";
my $body = qq({"$b":{}});
$res = http_raw($srv, "PUT /dynroute/upstreams/api/servers HTTP/1.1\r\nHost: localhost\r\n"
                    . "Content-Type: application/json\r\nContent-Length: " . length($body)
                    . "\r\nConnection: close\r\n\r\n$body");
is($res->{status}, 200, 'dynroute_servers: a runtime list for upstream api') or diag($res->{body});
like(http_get($srv, '/', { Host => 'api.example.com' })->{body}, qr/^service_b answered/,
     'dynroute_servers: api.example.com served by the runtime list');
$res = http_raw($srv, "DELETE /dynroute/upstreams/api/servers HTTP/1.1\r\nHost: localhost\r\n"
                    . "Connection: close\r\n\r\n");
like(http_get($srv, '/', { Host => 'api.example.com' })->{body}, qr/^service_a answered/,
     'dynroute_servers: DELETE brings the server line back');

# the guarded canary: its ramp started, a canary that fails is taken to
# 0 % and the ramp stops there
$res = http_raw($srv, "POST /dynroute/rollouts/checkout/ramp HTTP/1.1\r\nHost: localhost\r\n"
                    . "Content-Type: application/json\r\nContent-Length: 18\r\n"
                    . "Connection: close\r\n\r\n" . '{"action":"start"}');
is($res->{status}, 200, 'ramp: started') or diag($res->{body});
like($res->{body}, qr/"canary":\{"weight":5,/, 'ramp: the canary at its first step, 5 %');
my $tripped;
for my $round (1 .. 50) {
    http_get($srv, '/fail/', { Host => 'checkout.example.com', 'X-Canary' => 'canary' }) for 1 .. 5;
    my $doc = http_get($srv, '/dynroute/rollouts/checkout')->{body} // '';
    if ($doc =~ /"tripped":/) { $tripped = $doc; last }
    select undef, undef, undef, 0.1;
}
like($tripped // '', qr/"reason":"errors"/, 'guard: the failing canary tripped on errors');
like($tripped // '', qr/"canary":\{"weight":0,/, 'guard: the canary at 0 %');
like($tripped // '', qr/"ramp":\{"state":"aborted"/, 'guard: the ramp aborted');
like(http_get($srv, '/', { Host => 'checkout.example.com', Cookie => 'uid=u1' })->{body},
     qr/^service_a answered/, 'guard: clients on the stable version');
$res = http_raw($srv, "DELETE /dynroute/rollouts/checkout HTTP/1.1\r\nHost: localhost\r\n"
                    . "Connection: close\r\n\r\n");
unlike($res->{body}, qr/"tripped"/, 'guard: DELETE clears the trip');

# the health checks of upstream api: its server probed and up
my $checked;
for my $round (1 .. 70) {
    my $stats = http_get($srv, '/dynroute/stats')->{body} // '';
    if ($stats =~ /"checks":\s*[1-9]/) { $checked = $stats; last }
    select undef, undef, undef, 0.1;
}
ok(defined $checked, 'dynroute_health_check: the server of api probed within one interval');

# the metrics and the JSON access log of the example
$res = http_get($srv, '/dynroute/metrics');
is($res->{status}, 200, 'metrics: 200');
my ($header_picks) = $res->{body} =~ /^dynroute_variant_requests_total\{rollout="shop",variant="canary",reason="header"\} (\d+)$/m;
ok(defined $header_picks && $header_picks >= 1, 'metrics: the X-Canary override is counted as reason="header"')
    or diag($res->{body});
like($res->{body}, qr/^dynroute_requests_total\{table="edge",rule="a\.example\.com"\} [1-9]\d*$/m,
     'metrics: requests per rule');
$res = http_get($srv, '/dynroute/ui');
like("$res->{status} $res->{headers}{'content-type'}[0]", qr{^200 text/html}, 'the status page: 200');
$res = http_get($srv, '/metrics');
like("$res->{status} $res->{body}", qr/^200 # HELP dynroute_requests_total /,
     'the metrics alone at /metrics');
unlike($res->{body}, qr/"hosts"|runtime_hosts\{/, '... nothing of the state there');
$res = http_get($srv, '/dynroute/', { Origin => 'https://evil.example' });
is($res->{status}, 403, 'the API refuses a page of another origin');
my ($forced) = grep { /"reason":"header"/ } split /\n/, slurp("$srv->{prefix}/logs/routes.log");
like($forced // '', qr/^\{"time":"[^"]+","host":"shop\.example\.com","status":200,"rule":"shop\.example\.com","variant":"canary","served":"canary","reason":"header","upstream_time":"[\d.]+"\}$/,
     'the JSON access log: a forced canary line');

error_log_ok(stop_nginx($srv), 'the example ran without alert/crit/crash');

# the key table of the example, uncommented: routed by X-Tenant, not the Host
my $tenants = '';
my $open = '';
for my $line (split /^/, $conf) {
    $open = $1 if !$open && $line =~ /^(\s*)#(?:dynroute_table tenants |location \/tenant\/ )/;
    if ($open && $line =~ s/^\Q$open\E#//) {
        $open = '' if $line =~ /^\}/;
    }
    $tenants .= $line;
}
like($tenants, qr/^\s*dynroute_table tenants key=\$http_x_tenant \{\n(?:\s+[^#\s].*\n){3}\s*\}$/m,
     'the key table, uncommented');
like($tenants, qr/^\s*location \/tenant\/ \{\n\s+dynroute\s+tenants;$/m,
     'its location, uncommented');
$srv = start_nginx(
    conf    => $tenants,
    globals => 'daemon off;' . ($> == 0 ? ' user root;' : ''),
    links   => { 'modules/ngx_http_dynroute_module.so' =>
                     Cwd::abs_path($module) },
);
for my $c (['acme', 'a.example.com', 'acme', qr/^service_a answered/],
           ['Shop.EU', 'a.example.com', '*.eu', qr/^service_b answered.*\(tenant: Shop\.EU\)$/],
           ['other', 'a.example.com', 'default', qr/^service_b answered/],
           [undef, 'a.example.com', 'default', qr/^service_b answered/]) {
    my ($tenant, $host, $rule, $body) = @$c;
    my %h = (Host => $host);
    $h{'X-Tenant'} = $tenant if defined $tenant;
    $res = http_get($srv, '/tenant/', \%h);
    my $who = 'X-Tenant: ' . ($tenant // '(none)');
    is($res->{headers}{'x-dynroute-rule'}[0], $rule, "key table, $who: rule $rule");
    like($res->{body}, $body, "key table, $who: body");
}
$res = http_get($srv, '/dynroute/');
like($res->{body}, qr/"tenants":\{"rules":3,"hosts":0,"key":"\$http_x_tenant"\}/,
     'key table: GET {prefix} names its key');
error_log_ok(stop_nginx($srv), 'the example with its key table: no alert/crit/crash');

# the example with its canary down: the balancer falls back to the primary
isnt($down, $conf, 'a copy of the example whose canary is down');
$srv = start_nginx(
    conf    => $down,
    globals => 'daemon off;' . ($> == 0 ? ' user root;' : ''),
    links   => { 'modules/ngx_http_dynroute_module.so' =>
                     Cwd::abs_path($module) },
);
$res = http_get($srv, '/', { Host => 'shop.example.com', 'X-Canary' => 'always' });
is($res->{status}, 200, 'canary down: 200');
like($res->{body}, qr/^service_a answered/, 'canary down: served by the primary');
is($res->{headers}{'x-dynroute-variant'}[0], 'canary',
   'canary down: the variant chosen was the canary');
is($res->{headers}{'x-dynroute-fallback'}[0], 'stable',
   'canary down: $dynroute_fallback names the primary that served');
$res = http_raw($srv, "POST / HTTP/1.1\r\nHost: shop.example.com\r\n"
                    . "X-Canary: always\r\nContent-Length: 2\r\n"
                    . "Connection: close\r\n\r\nhi");
like($res->{body}, qr/^service_a answered/,
     'canary down: a POST that was never sent goes to the primary too');
error_log_ok(stop_nginx($srv), 'the example with a canary down: no alert/crit/crash');

done_testing();
