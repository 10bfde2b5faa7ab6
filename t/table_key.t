# Tables keyed by a variable (dynroute_table NAME key=$variable) through a
# real nginx: every pattern form on the key's value, letter case and a
# trailing dot, values that are no name going to the default (or 421), keys
# from a header, an argument, a cookie and a map, runtime hosts added
# through the API, a subrequest and internal redirects, 2 workers and a
# reload, and every nginx -t error with its file:line.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api;
use Test::Nginx::Dynroute::Fixtures qw($RULE_LOCATION);

# Runtime hosts on a key table, GET {prefix} naming the key, then 2
# workers across a reload that changes the key.

my $http = <<'CONF';
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "service_a\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "service_b\n"; }

    dynroute_zone routes 4m;

    dynroute_table tenants key=$http_x_tenant {
        acme     service_a;
        default  service_a;
    }
    dynroute_table edge {
        default  service_b;
    }
CONF

my $config = <<'CONF';
    location / {
        dynroute    tenants;
        proxy_pass  http://$dynroute_upstream;
        add_header  X-Rule $dynroute_rule always;
    }
    location /host/ {
        dynroute    edge;
        proxy_pass  http://$dynroute_upstream;
    }
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF

# the upstream that answered, and the rule, for a tenant (undef: none)
sub route {
    my ($srv, $tenant, $path, $host) = @_;
    my %h = (Host => $host // 'localhost');
    $h{'X-Tenant'} = $tenant if defined $tenant;
    my $res = http_get($srv, $path // '/', \%h);
    my $rule = $res->{headers}{'x-rule'} ? $res->{headers}{'x-rule'}[0] : '';
    chomp(my $body = $res->{body} // '');
    return "$body $rule";
}

my $srv = start_nginx(http_config => $http, config => $config);

my ($st, $doc) = api_call($srv, 'GET', '/dynroute/');
is($st, 200, 'GET {prefix}: 200');
is($doc->{tables}{tenants}{key}, '$http_x_tenant', 'GET {prefix}: a key table shows its key');
ok(!exists $doc->{tables}{edge}{key}, 'GET {prefix}: a Host table shows no key');
is($doc->{tables}{tenants}{rules}, 2, 'GET {prefix}: the key table\'s rules');

is(route($srv, 'globex'), 'service_a default', 'before: an unknown tenant goes to the default');

($st, $doc) = api_call($srv, 'PATCH', '/dynroute/hosts',
                       '{"globex":{"target":"service_b","table":"tenants"},'
                       . '"initech.example":{"target":"service_b","table":"tenants"}}');
is($st, 200, 'PATCH hosts on a key table: 200');
is(route($srv, 'globex'), 'service_b globex', 'a runtime host is the key\'s value');
is(route($srv, 'GLOBEX.'), 'service_b GLOBEX.', 'a runtime host: caseless, a trailing dot ignored');
is(route($srv, 'Initech.Example'), 'service_b Initech.Example', 'a runtime host with dots');
is(route($srv, 'acme'), 'service_a acme', 'the configured rules still route the others');
is(route($srv, undef, '/', 'globex'), 'service_a default',
   'the Host is not the key: a Host named as the runtime host goes to the default');
is(route($srv, 'globex', '/host/'), 'service_b ', 'a Host table does not see the key table\'s hosts');

($st, $doc) = api_call($srv, 'PUT', '/dynroute/hosts/acme', '{"target":"service_b","table":"tenants"}');
is($st, 201, 'PUT hosts/acme: 201');
is(route($srv, 'ACME'), 'service_b ACME', 'a runtime host wins over the configured rule of the key');
($st) = api_call($srv, 'DELETE', '/dynroute/hosts/acme');
is($st, 200, 'DELETE hosts/acme: 200');
is(route($srv, 'acme'), 'service_a acme', 'removed: the configured rule again');
($st, $doc) = api_call($srv, 'GET', '/dynroute/');
is($doc->{tables}{tenants}{hosts}, 2, 'GET {prefix}: the key table counts its runtime hosts');

error_log_ok(stop_nginx($srv), 'runtime hosts on a key table');

# 2 workers, then a reload that keys the table by an argument instead

$srv = start_nginx(http_config => $http, config => $config, workers => 2);

my %seen;
$seen{route($srv, $_ % 2 ? 'acme' : 'nobody')}++ for 1 .. 40;
is_deeply(\%seen, { 'service_a acme' => 20, 'service_a default' => 20 },
          '2 workers: every request decided by the key');

(my $reloaded = $http) =~ s/key=\$http_x_tenant \{\n        acme     service_a;/key=\$arg_t {\n        acme     service_b;/
    or die 'the reload\'s change did not apply';
ok(reload_nginx($srv, $reloaded, undef), 'reload: a key from an argument');

%seen = ();
for my $i (1 .. 40) {
    $seen{route($srv, 'acme', $i % 2 ? '/?t=ACME' : '/')}++;
}
is_deeply(\%seen, { 'service_b acme' => 20, 'service_a default' => 20 },
          'after the reload: the new key and rule, in both workers');

error_log_ok(stop_nginx($srv), '2 workers and a reload');


# The blocks below: a block without --- config routes by the table edge and
# answers the rule that matched ($RULE_LOCATION).
add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => $RULE_LOCATION) unless defined $block->config;
});

run_tests();

__DATA__

=== TEST 1: each pattern form matches the key's value, not the Host
--- http_config
    upstream u { server 127.0.0.1:1; }
    dynroute_table edge key=$http_x_tenant {
        acme                       u;
        .corp.example              u;
        *.eu                       u;
        beta.*                     u;
        ~^tenant-(?<tnum>[0-9]+)$  u;
        default                    u;
    }
--- config
    location / {
        dynroute edge;
        return 200 "$dynroute_rule [$tnum]\n";
    }
--- request eval
[("GET /") x 10]
--- more_headers eval
["X-Tenant: acme", "X-Tenant: corp.example", "X-Tenant: x.y.corp.example",
 "X-Tenant: shop.eu", "X-Tenant: eu", "X-Tenant: beta.x.y",
 "X-Tenant: tenant-42", "X-Tenant: tenant-x",
 "Host: acme\nX-Tenant: other", "X-Tenant: 10.0.0.1"]
--- response_body eval
["acme []\n", ".corp.example []\n", ".corp.example []\n", "*.eu []\n",
 "default []\n", "beta.* []\n", "~^tenant-(?<tnum>[0-9]+)\$ [42]\n",
 "default []\n", "default []\n", "default []\n"]
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: letters compare caseless, one trailing dot is ignored, a regex sees the value as sent
--- http_config
    upstream u { server 127.0.0.1:1; }
    dynroute_table edge key=${http_x_tenant} {
        acme                  u;
        *.corp.example        u;
        ~^tenant-[0-9]+$      u;
        ~*^ci-(?<ci>[a-z]+)$  u;
        default               u;
    }
--- config
    location / {
        dynroute edge;
        return 200 "$dynroute_rule [$ci]\n";
    }
--- request eval
[("GET /") x 8]
--- more_headers eval
["X-Tenant: ACME", "X-Tenant: Acme.", "X-Tenant: acme..",
 "X-Tenant: X.Corp.Example.", "X-Tenant: Tenant-1", "X-Tenant: tenant-1.",
 "X-Tenant: CI-Linux", "X-Tenant: ."]
--- response_body eval
["acme []\n", "acme []\n", "default []\n", "*.corp.example []\n",
 "default []\n", "~^tenant-[0-9]+\$ []\n", "~*^ci-(?<ci>[a-z]+)\$ [Linux]\n",
 "default []\n"]



=== TEST 3: a missing, empty, too long or odd value matches no name: the default
--- http_config
    upstream u { server 127.0.0.1:1; }
    map $arg_odd $odd_key {
        tab      "a\tb";
        space    "a b";
        slash    "a/b";
        default  $http_x_tenant;
    }
    dynroute_table edge key=$odd_key {
        ~^a      u;
        default  u;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /?odd=tab", "GET /?odd=space",
 "GET /?odd=slash", "GET /"]
--- more_headers eval
["", "X-Tenant: ", "X-Tenant: " . ("a" x 255), "X-Tenant: " . ("a" x 256),
 "X-Tenant: abc", "X-Tenant: abc", "X-Tenant: abc", "X-Tenant: a b"]
--- response_body eval
["default\n", "default\n", "~^a\n", "default\n", "default\n", "default\n",
 "default\n", "default\n"]
--- error_code: 200
--- no_error_log
[error]



=== TEST 4: no rule and no default answers 421, as a Host table does, and says why
--- http_config
    upstream u { server 127.0.0.1:1; }
    dynroute_table edge key=$http_x_tenant {
        acme  u;
    }
--- config
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
[("GET /") x 4]
--- more_headers eval
["X-Tenant: nope", "", "X-Tenant: " . ("a" x 300), "Host: acme\nX-Tenant: a/b"]
--- error_code: 421
--- error_log
dynroute: no rule of table "edge" matches $http_x_tenant "nope", answering 421
dynroute: no rule of table "edge" matches $http_x_tenant "", answering 421
dynroute: no rule of table "edge" matches $http_x_tenant "(longer than 255 bytes)", answering 421
dynroute: no rule of table "edge" matches $http_x_tenant "(not a name)", answering 421
--- no_error_log
[error]



=== TEST 5: a key from an argument and from a cookie
--- http_config
    upstream u { server 127.0.0.1:1; }
    dynroute_table edge key=$arg_tenant {
        acme     u;
        default  u;
    }
    dynroute_table jar key=$cookie_tenant {
        acme     u;
        default  u;
    }
--- config
    location / {
        dynroute edge;
        return 200 "$dynroute_rule\n";
    }
    location /jar {
        dynroute jar;
        return 200 "$dynroute_rule\n";
    }
--- request eval
["GET /?tenant=acme", "GET /?x=1&tenant=ACME.", "GET /?tenant=", "GET /",
 "GET /jar", "GET /jar?tenant=acme"]
--- more_headers eval
["", "", "", "X-Tenant: acme", "Cookie: a=b; tenant=Acme", ""]
--- response_body eval
["acme\n", "acme\n", "default\n", "default\n", "acme\n", "default\n"]



=== TEST 6: a key made by map from the path's first segment
--- http_config
    upstream shop { server 127.0.0.1:1; }
    upstream blog { server 127.0.0.1:1; }
    map $uri $first_segment {
        ~^/(?<seg>[^/]+)  $seg;
        default           "";
    }
    dynroute_table edge key=$first_segment {
        shop     shop;
        blog.*   blog;
        default  shop;
    }
--- config
    location / {
        dynroute edge;
        return 200 "$dynroute_upstream $dynroute_rule\n";
    }
--- request eval
["GET /shop/cart", "GET /SHOP", "GET /blog.en/post/1", "GET /other/", "GET /"]
--- response_body eval
["shop shop\n", "shop shop\n", "blog blog.*\n", "shop default\n",
 "shop default\n"]



=== TEST 7: a key from a regex location's capture, and from auth_request_set
--- http_config
    upstream u { server 127.0.0.1:1; }
    upstream auth { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        add_header X-Tenant-Claim $http_x_token;
        return 204;
    }
    dynroute_table bypath key=$seg {
        shop     u;
        default  u;
    }
    dynroute_table byclaim key=$claim {
        acme     u;
        default  u;
    }
--- config
    location ~ ^/p/(?<seg>[^/]+)/ {
        dynroute bypath;
        return 200 "$dynroute_rule\n";
    }
    location /claim {
        auth_request /verify;
        auth_request_set $claim $upstream_http_x_tenant_claim;
        dynroute byclaim;
        proxy_pass http://$dynroute_upstream;
        error_page 502 = @rule;
    }
    location = /verify {
        internal;
        proxy_pass http://auth;
    }
    location @rule {
        return 200 "$dynroute_rule\n";
    }
--- request eval
["GET /p/Shop/x", "GET /p/blog/", "GET /claim", "GET /claim", "GET /claim"]
--- more_headers eval
["", "", "X-Token: acme", "X-Token: other", "X-Tenant: acme"]
--- response_body eval
["shop\n", "default\n", "acme\n", "default\n", "default\n"]



=== TEST 8: a key that reads the decision itself (through map) finds none yet: no loop
--- http_config
    upstream u { server 127.0.0.1:1; }
    map $http_x_a $loop { default "x$dynroute_rule"; }
    dynroute_table edge key=$loop {
        x        u;
        xacme    u;
        default  u;
    }
--- request
GET /
--- response_body
x
--- no_error_log
[error]



=== TEST 9: a subrequest (auth_request) decides by the key
--- http_config
    upstream allow { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream deny { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 204; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 403; }
    dynroute_table gate key=$http_x_tenant {
        acme     allow;
        default  deny;
    }
--- config
    location / {
        auth_request /auth;
    }
    location = /auth {
        internal;
        dynroute gate;
        proxy_pass http://$dynroute_upstream;
    }
--- user_files
>>> index.html
in
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["X-Tenant: acme", "X-Tenant: ACME.", "X-Tenant: other"]
--- error_code eval
[200, 200, 403]
--- response_body_like eval
["^in\n\$", "^in\n\$", "403 Forbidden"]
--- no_error_log
[error]



=== TEST 10: internal redirects: the key is read where the decision is taken, and kept
--- http_config
    upstream u { server 127.0.0.1:1; }
    dynroute_table edge key=$arg_t {
        acme     u;
        beta     u;
        default  u;
    }
--- config
    location /late {
        rewrite ^ /routed?t=beta? last;
    }
    location /early {
        dynroute edge;
        set $seen $dynroute_rule;
        rewrite ^ /routed?t=beta? last;
    }
    location /routed {
        dynroute edge;
        return 200 "$dynroute_rule t=$arg_t\n";
    }
    location /keep {
        rewrite ^ /routed last;
    }
    location /missing {
        dynroute edge;
        set $seen $dynroute_rule;
        log_not_found off;
        error_page 404 = @named;
    }
    location @named {
        return 200 "$dynroute_rule\n";
    }
--- request eval
["GET /late?t=acme", "GET /early?t=acme", "GET /keep?t=acme",
 "GET /missing?t=beta"]
--- response_body eval
["beta t=beta\n", "acme t=beta\n", "acme t=acme\n", "beta\n"]
--- no_error_log
[error]



=== TEST 11: an ip line in a key table
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge key=$http_x_tenant {
    acme  u;
    ip    u;
}
--- must_die
--- error_log eval
qr/\[emerg\] "ip" in dynroute table "edge", which matches key=\$http_x_tenant: the ip rule is for the Host of tables without key=; write "\\ip" for the value "ip" in \S+nginx\.conf:6$/m



=== TEST 12: "\ip" is a value like any in a key table
--- http_config
    upstream u { server 127.0.0.1:1; }
    dynroute_table edge key=$http_x_tenant {
        \ip      u;
        default  u;
    }
--- request eval
["GET /", "GET /"]
--- more_headers eval
["X-Tenant: ip", "X-Tenant: 127.0.0.1"]
--- response_body eval
["\\ip\n", "default\n"]



=== TEST 13: an unknown variable, named with its file and line
--- http_config
upstream u { server 127.0.0.1:1; }

dynroute_table edge key=$no_such_thing {
    default  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] unknown variable "\$no_such_thing" in the key of dynroute table "edge": write a variable that nginx knows, such as \$http_x_tenant, \$arg_tenant, \$cookie_tenant or a map's result in \S+nginx\.conf:5$/m



=== TEST 14: an unknown variable close to a known one is suggested
--- http_config
upstream u { server 127.0.0.1:1; }
map $uri $first_segment { default ""; }
dynroute_table edge key=$first_segmnt {
    default  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] unknown variable "\$first_segmnt" \(did you mean "\$first_segment"\?\) in the key of dynroute table "edge": .* in \S+nginx\.conf:5$/m



=== TEST 15: a key that is not a single variable
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table a key=foo { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid key "key=foo" of dynroute table "a": expected one variable, such as key=\$http_x_tenant; to key by several values or by part of one, make them one variable with map and name it in \S+nginx\.conf:4$/m



=== TEST 16: two variables
--- http_config
upstream u { server 127.0.0.1:1; }

dynroute_table a key=$host$uri { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid key "key=\$host\$uri" of dynroute table "a": expected one variable, .* in \S+nginx\.conf:5$/m



=== TEST 17: an empty key
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table a key= { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid key "key=" of dynroute table "a": expected one variable, .* in \S+nginx\.conf:4$/m



=== TEST 18: a lone $
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table a key=$ { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid key "key=\$" of dynroute table "a": expected one variable, .* in \S+nginx\.conf:4$/m



=== TEST 19: an unclosed brace
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table a key=${http_x_tenant { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid key "key=\$\{http_x_tenant" of dynroute table "a": expected one variable, .* in \S+nginx\.conf:4$/m



=== TEST 20: a variable inside text
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table a "key=t-$arg_t" { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid key "key=t-\$arg_t" of dynroute table "a": expected one variable, .* in \S+nginx\.conf:4$/m



=== TEST 21: another parameter than key=
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table a tenant=$http_x_tenant { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid parameter "tenant=\$http_x_tenant" of dynroute table "a": expected key=\$variable, such as key=\$http_x_tenant in \S+nginx\.conf:4$/m



=== TEST 22: a regex capture by number
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table a key=$1 { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid key "key=\$1" of dynroute table "a": \$1 is a capture of the last regex matched, not a variable: name the group, as in \(\?<tenant>\.\.\.\), and write key=\$tenant in \S+nginx\.conf:4$/m



=== TEST 23: the module's own decision
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table a key=$dynroute_upstream { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid key "key=\$dynroute_upstream" of dynroute table "a": \$dynroute_upstream is the outcome of a decision, not a value of the request to decide by: key the table by one, such as key=\$http_x_tenant in \S+nginx\.conf:4$/m



=== TEST 24: three parameters
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table a key=$arg_a key=$arg_b { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] invalid number of arguments in "dynroute_table" directive in \S+nginx\.conf:4$/m
