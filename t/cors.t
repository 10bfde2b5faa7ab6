# CORS at the edge: preflights answered by nginx (never proxied), actual
# responses carrying the edge's Access-Control-* headers exactly once, and
# the configurations that cannot be safe refused by nginx -t.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;

# ---- every Access-Control-* header appears exactly once --------------------
#
# The block sections below accept any of several values of a repeated
# header, so these checks count them on raw responses.

my $http = <<'CONF';
    upstream backend { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            add_header Access-Control-Allow-Origin "*" always;
            add_header Access-Control-Allow-Credentials "true" always;
            add_header Access-Control-Allow-Methods "DELETE" always;
            add_header Access-Control-Max-Age "1" always;
            add_header Access-Control-Expose-Headers "X-Upstream" always;
            add_header Vary "Accept-Encoding, Origin" always;
            add_header X-Upstream $request_method always;
            return 200 "upstream\n";
        }
    }
    dynroute_table edge { default backend; }
CONF

my $config = <<'CONF';
    dynroute edge;
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    dynroute_cors_credentials on;
    location / {
        proxy_pass http://$dynroute_upstream;
    }
    location /local {
        add_header Access-Control-Allow-Origin "https://other.example" always;
        add_header Access-Control-Allow-Headers "X-Local" always;
        return 200 "local\n";
    }
CONF

sub values_of {
    my ($res, $name) = @_;
    return @{ $res->{headers}{lc $name} || [] };
}

my $srv = start_nginx(http_config => $http, config => $config);

my $res = http_get($srv, '/', { Origin => 'https://app.example.com' });
is($res->{status}, 200, 'proxied: 200 from the upstream');
is($res->{body}, "upstream\n", 'proxied: the upstream body');
is_deeply([values_of($res, 'Access-Control-Allow-Origin')],
          ['https://app.example.com'],
          'proxied: one Access-Control-Allow-Origin, the edge\'s, not the upstream\'s "*"');
is_deeply([values_of($res, 'Access-Control-Allow-Credentials')], ['true'],
          'proxied: one Access-Control-Allow-Credentials');
is_deeply([values_of($res, 'Access-Control-Allow-Methods')], [],
          'proxied: the upstream\'s Access-Control-Allow-Methods is removed');
is_deeply([values_of($res, 'Access-Control-Max-Age')], [],
          'proxied: the upstream\'s Access-Control-Max-Age is removed');
is_deeply([values_of($res, 'Access-Control-Expose-Headers')], ['X-Upstream'],
          'proxied: the upstream\'s Access-Control-Expose-Headers is kept');
is_deeply([values_of($res, 'Vary')], ['Accept-Encoding, Origin'],
          'proxied: the upstream already varies on Origin: no second Vary');

$res = http_get($srv, '/', { Origin => 'https://evil.example' });
is($res->{status}, 200, 'proxied, origin denied: still served (browsers enforce CORS)');
is_deeply([values_of($res, 'Access-Control-Allow-Origin')], [],
          'proxied, origin denied: the upstream\'s "*" is removed too');
is_deeply([values_of($res, 'Access-Control-Allow-Credentials')], [],
          'proxied, origin denied: no Access-Control-Allow-Credentials');

$res = http_get($srv, '/local', { Origin => 'https://app.example.com' });
is_deeply([values_of($res, 'Access-Control-Allow-Origin')],
          ['https://app.example.com'],
          'local: add_header\'s Access-Control-Allow-Origin is replaced');
is_deeply([values_of($res, 'Access-Control-Allow-Headers')], [],
          'local: add_header\'s Access-Control-Allow-Headers is removed');
is_deeply([values_of($res, 'Vary')], ['Origin'], 'local: one Vary: Origin');

$res = http_raw($srv, "OPTIONS / HTTP/1.1\r\nHost: localhost\r\n"
    . "Origin: https://app.example.com\r\n"
    . "Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n");
is($res->{status}, 204, 'preflight: 204');
is_deeply([values_of($res, 'X-Upstream')], [], 'preflight: not proxied');
for my $h (qw(Access-Control-Allow-Origin Access-Control-Allow-Credentials
              Access-Control-Allow-Methods Vary)) {
    is(scalar(values_of($res, $h)), 1, "preflight: one $h");
}

error_log_ok(stop_nginx($srv), 'exactly once');

# ---- reloads build the policy anew and free the old one -------------------

my $cors = <<'CONF';
    dynroute_cors on;
    dynroute_cors_origins https://ORIGIN;
    dynroute_cors_headers X-ORIGIN;
    location / { return 200 "local\n"; }
CONF

(my $first = $cors) =~ s/ORIGIN/a.example.com/g;
(my $second = $cors) =~ s/ORIGIN/b.example.com/g;

$srv = start_nginx(config => $first, workers => 2);
for my $n (1 .. 6) {
    my ($conf, $want) = $n % 2 ? ($second, 'b') : ($first, 'a');
    ok(reload_nginx($srv, undef, $conf), "reload $n accepted");
    $res = http_get($srv, '/', { Origin => "https://$want.example.com" });
    is($res->{headers}{'access-control-allow-origin'}[0], "https://$want.example.com",
       "reload $n: the new origin is allowed");
    my $old = $want eq 'a' ? 'b' : 'a';
    $res = http_get($srv, '/', { Origin => "https://$old.example.com" });
    ok(!$res->{headers}{'access-control-allow-origin'},
       "reload $n: the old origin is not");
}
error_log_ok(stop_nginx($srv), 'reloads');

run_tests();

__DATA__

=== TEST 1: preflight allowed: answered 204 at the edge, never proxied
--- http_config
    upstream backend { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            add_header X-Upstream $request_method always;
            return 418 "proxied\n";
        }
    }
    dynroute_table edge { default backend; }
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com http://localhost:3000;
    dynroute_cors_methods GET POST PUT;
    dynroute_cors_headers Content-Type X-Request-Id;
    dynroute_cors_max_age 10m;
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
--- request
OPTIONS /api/items
--- more_headers
Origin: https://app.example.com
Access-Control-Request-Method: PUT
Access-Control-Request-Headers: content-type,x-request-id
--- error_code: 204
--- response_body chomp
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Methods: GET, POST, PUT
Access-Control-Allow-Headers: content-type, x-request-id
Access-Control-Max-Age: 600
Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers
!Access-Control-Allow-Credentials
!X-Upstream
!Content-Length
--- no_error_log
[error]



=== TEST 2: preflight from a disallowed origin: 204 without CORS headers
--- http_config
    upstream backend { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / { add_header X-Upstream yes always; return 418; }
    }
    dynroute_table edge { default backend; }
--- config
    dynroute edge;
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / { proxy_pass http://$dynroute_upstream; }
--- request
OPTIONS /
--- more_headers
Origin: https://app.example.com.evil.example
Access-Control-Request-Method: GET
--- error_code: 204
--- response_headers
!Access-Control-Allow-Origin
!Access-Control-Allow-Methods
!X-Upstream
Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers
--- error_log
dynroute_cors: preflight from origin "https://app.example.com.evil.example" for method "GET" denied: origin not allowed
--- no_error_log
[error]



=== TEST 3: preflight for a method that is not listed: no CORS headers
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / { return 200 "local\n"; }
--- request eval
["OPTIONS /", "OPTIONS /", "OPTIONS /"]
--- more_headers eval
["Origin: https://app.example.com\nAccess-Control-Request-Method: DELETE",
 "Origin: https://app.example.com\nAccess-Control-Request-Method: post",
 "Origin: https://app.example.com\nAccess-Control-Request-Method: POST"]
--- error_code: 204
--- response_headers eval
["!Access-Control-Allow-Origin\n!Access-Control-Allow-Methods",
 "!Access-Control-Allow-Origin",
 "Access-Control-Allow-Origin: https://app.example.com\nAccess-Control-Allow-Methods: GET, POST"]
--- error_log
for method "DELETE" denied: method not allowed
for method "post" denied: method not allowed
--- no_error_log
[error]



=== TEST 4: preflight asking for a header that is not listed: no CORS headers
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    dynroute_cors_headers Content-Type;
    location / { return 200 "local\n"; }
--- request eval
["OPTIONS /", "OPTIONS /", "OPTIONS /"]
--- more_headers eval
["Origin: https://app.example.com\nAccess-Control-Request-Method: POST\nAccess-Control-Request-Headers: content-type,x-secret",
 "Origin: https://app.example.com\nAccess-Control-Request-Method: POST\nAccess-Control-Request-Headers: Content-Type",
 "Origin: https://app.example.com\nAccess-Control-Request-Method: POST\nAccess-Control-Request-Headers: content-type x-secret"]
--- error_code: 204
--- response_headers eval
["!Access-Control-Allow-Origin\n!Access-Control-Allow-Headers",
 "Access-Control-Allow-Origin: https://app.example.com\nAccess-Control-Allow-Headers: content-type",
 "!Access-Control-Allow-Origin"]
--- error_log
denied: headers not allowed
--- no_error_log
[error]



=== TEST 5: without dynroute_cors_headers a preflight may ask for no header
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / { return 200 "local\n"; }
--- request eval
["OPTIONS /", "OPTIONS /"]
--- more_headers eval
["Origin: https://app.example.com\nAccess-Control-Request-Method: GET\nAccess-Control-Request-Headers: x-a",
 "Origin: https://app.example.com\nAccess-Control-Request-Method: GET"]
--- error_code: 204
--- response_headers eval
["!Access-Control-Allow-Origin",
 "Access-Control-Allow-Origin: https://app.example.com\n!Access-Control-Allow-Headers"]



=== TEST 6: actual request from an allowed origin, proxied through dynroute
--- http_config
    upstream backend { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / { return 200 "upstream $http_origin\n"; }
    }
    dynroute_table edge { default backend; }
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
--- request
GET /data
--- more_headers
Origin: https://app.example.com
--- error_code: 200
--- response_body
upstream https://app.example.com
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
Vary: Origin
!Access-Control-Allow-Credentials
!Access-Control-Allow-Methods
--- no_error_log
[error]



=== TEST 7: actual request from a disallowed origin or without Origin: no ACAO, Vary: Origin
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / { return 200 "local\n"; }
--- request eval
["GET /", "GET /", "GET /", "POST /"]
--- more_headers eval
["Origin: https://evil.example", "", "Origin: null",
 "Origin: https://app.example.com\nOrigin: https://evil.example"]
--- error_code: 200
--- response_body
local
--- response_headers
!Access-Control-Allow-Origin
!Access-Control-Allow-Credentials
Vary: Origin



=== TEST 8: credentials: the allowed origin echoed exactly, never "*"
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com http://127.0.0.1:*;
    dynroute_cors_credentials on;
    location / { return 200 "local\n"; }
--- request eval
["GET /", "GET /", "OPTIONS /", "GET /"]
--- more_headers eval
["Origin: https://app.example.com",
 "Origin: http://127.0.0.1:5173",
 "Origin: https://app.example.com\nAccess-Control-Request-Method: POST",
 "Origin: https://evil.example"]
--- response_headers eval
["Access-Control-Allow-Origin: https://app.example.com\nAccess-Control-Allow-Credentials: true\nVary: Origin",
 "Access-Control-Allow-Origin: http://127.0.0.1:5173\nAccess-Control-Allow-Credentials: true",
 "Access-Control-Allow-Origin: https://app.example.com\nAccess-Control-Allow-Credentials: true\nAccess-Control-Allow-Methods: GET, POST",
 "!Access-Control-Allow-Origin\n!Access-Control-Allow-Credentials\nVary: Origin"]



=== TEST 9: wildcard origin patterns: subdomains at any depth, nothing else
--- config
    dynroute_cors on;
    dynroute_cors_origins https://*.example.com;
    location / { return 200 "local\n"; }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Origin: https://a.example.com",
 "Origin: https://a.b.example.com",
 "Origin: https://example.com",
 "Origin: https://example.com.evil.example",
 "Origin: https://evilexample.com",
 "Origin: http://a.example.com",
 "Origin: https://a.example.com:8443"]
--- response_headers eval
["Access-Control-Allow-Origin: https://a.example.com",
 "Access-Control-Allow-Origin: https://a.b.example.com",
 "!Access-Control-Allow-Origin",
 "!Access-Control-Allow-Origin",
 "!Access-Control-Allow-Origin",
 "!Access-Control-Allow-Origin",
 "!Access-Control-Allow-Origin"]



=== TEST 10: "*" without credentials: ACAO "*" on every response, no Vary
--- config
    dynroute_cors on;
    dynroute_cors_origins *;
    dynroute_cors_headers *;
    location / { return 200 "local\n"; }
--- request eval
["GET /", "GET /", "OPTIONS /"]
--- more_headers eval
["Origin: https://anyone.example", "",
 "Origin: https://anyone.example\nAccess-Control-Request-Method: POST\nAccess-Control-Request-Headers: x-anything"]
--- response_headers eval
["Access-Control-Allow-Origin: *\n!Vary\n!Access-Control-Allow-Credentials",
 "Access-Control-Allow-Origin: *\n!Vary",
 "Access-Control-Allow-Origin: *\nAccess-Control-Allow-Headers: *\nVary: Access-Control-Request-Method, Access-Control-Request-Headers"]



=== TEST 11: headers "*" with credentials: the requested headers are named, not "*"
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    dynroute_cors_headers *;
    dynroute_cors_credentials on;
    location / { return 200 "local\n"; }
--- request
OPTIONS /
--- more_headers
Origin: https://app.example.com
Access-Control-Request-Method: POST
Access-Control-Request-Headers: authorization,x-trace
--- error_code: 204
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Credentials: true
Access-Control-Allow-Headers: authorization,x-trace



=== TEST 12: local and error responses carry the headers: 404, 421, 502
--- http_config
    upstream dead { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        a.example.com  dead;
    }
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / { dynroute edge; proxy_pass http://$dynroute_upstream; }
    location /static/ { root $TEST_NGINX_HTML_DIR; }
--- request eval
["GET /static/nothing", "GET /", "GET /"]
--- more_headers eval
["Origin: https://app.example.com",
 "Origin: https://app.example.com\nHost: unknown.example.com",
 "Origin: https://app.example.com\nHost: a.example.com"]
--- error_code eval
[404, 421, 502]
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
Vary: Origin



=== TEST 13: preflights are answered before dynroute can answer 421 or jump
--- http_config
    upstream backend { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        ip             @local;
        a.example.com  backend;
    }
--- config
    dynroute edge;
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / { proxy_pass http://$dynroute_upstream; }
    location @local { return 200 "served locally\n"; }
--- request eval
["OPTIONS /", "OPTIONS /", "GET /", "GET /"]
--- more_headers eval
["Host: unknown.example.com\nOrigin: https://app.example.com\nAccess-Control-Request-Method: GET",
 "Host: 10.1.2.3:8080\nOrigin: https://app.example.com\nAccess-Control-Request-Method: POST",
 "Host: 10.1.2.3:8080\nOrigin: https://app.example.com",
 "Host: unknown.example.com\nOrigin: https://app.example.com"]
--- error_code eval
[204, 204, 200, 421]
--- response_body_like eval
["\\A\\z", "\\A\\z", "\\Aserved locally\n\\z", "421 Misdirected"]
--- response_headers
Access-Control-Allow-Origin: https://app.example.com



=== TEST 14: preflights pass before access checks; the actual request is still denied
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / {
        deny all;
    }
--- request eval
["OPTIONS /", "GET /"]
--- more_headers
Origin: https://app.example.com
Access-Control-Request-Method: GET
--- error_code eval
[204, 403]
--- response_headers
Access-Control-Allow-Origin: https://app.example.com



=== TEST 15: dynroute_cors off in a location, and a plain OPTIONS (not listed) is proxied
--- http_config
    upstream backend { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / { return 200 "upstream $request_method\n"; }
    }
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / { proxy_pass http://backend; }
    location /off { dynroute_cors off; return 200 "off\n"; }
--- request eval
["GET /off", "OPTIONS /off", "OPTIONS /"]
--- more_headers eval
["Origin: https://app.example.com",
 "Origin: https://app.example.com\nAccess-Control-Request-Method: GET",
 "Origin: https://app.example.com"]
--- error_code: 200
--- response_body eval
["off\n", "off\n", "upstream OPTIONS\n"]
--- response_headers eval
["!Access-Control-Allow-Origin\n!Vary",
 "!Access-Control-Allow-Origin\n!Vary",
 "!Access-Control-Allow-Origin\nVary: Origin"]



=== TEST 16: HEAD is allowed where GET is
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    dynroute_cors_methods GET;
    location / { return 200 "local\n"; }
--- request eval
["HEAD /", "POST /"]
--- more_headers
Origin: https://app.example.com
--- response_headers eval
["Access-Control-Allow-Origin: https://app.example.com",
 "!Access-Control-Allow-Origin"]



=== TEST 17: "*" with credentials in one block is refused
--- config
    dynroute_cors on;
    dynroute_cors_origins *;
    dynroute_cors_credentials on;
    location / { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"dynroute_cors_origins \*" cannot be used with "dynroute_cors_credentials on" of \S+nginx\.conf:6: with credentials, list the allowed origins in \S+nginx\.conf:5$/m



=== TEST 18: "*" in the server with credentials in a location is refused
--- config
    dynroute_cors on;
    dynroute_cors_origins *;

    location / {
        dynroute_cors_credentials on;
        return 200;
    }
--- must_die
--- error_log eval
qr/cannot be used with "dynroute_cors_credentials on" of \S+nginx\.conf:8: with credentials, list the allowed origins in \S+nginx\.conf:5$/m



=== TEST 19: "*" with credentials is refused even where CORS is off
--- http_config
    dynroute_cors_credentials on;
    dynroute_cors_origins *;
--- config
    location / { return 200; }
--- must_die
--- error_log eval
qr/cannot be used with "dynroute_cors_credentials on" of \S+nginx\.conf:3: with credentials, list the allowed origins in \S+nginx\.conf:4$/m



=== TEST 20: dynroute_cors on without origins
--- config
    location / {
        dynroute_cors on;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"dynroute_cors on" without "dynroute_cors_origins" allows no origin in \S+nginx\.conf:5$/m



=== TEST 21: origins without a scheme, with a path, "null", or a bad wildcard
--- config
    dynroute_cors_origins https://a.example.com example.com;
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid origin "example\.com": an origin is "scheme:\/\/host" or "scheme:\/\/host:port" in \S+nginx\.conf:4$/m



=== TEST 22: an origin with a path
--- config
    dynroute_cors_origins https://a.example.com/;
--- must_die
--- error_log eval
qr/invalid origin "https:\/\/a\.example\.com\/": an origin has no path, query or fragment in \S+nginx\.conf:4$/m



=== TEST 23: the "null" origin
--- config
    dynroute_cors_origins null;
--- must_die
--- error_log eval
qr/invalid origin "null": the "null" origin of sandboxed and local documents cannot be allowed safely in \S+nginx\.conf:4$/m



=== TEST 24: a wildcard inside a name
--- config
    dynroute_cors_origins https://a.*.example.com;
--- must_die
--- error_log eval
qr/invalid origin "https:\/\/a\.\*\.example\.com": a wildcard is only allowed as "\*\." before the domain in \S+nginx\.conf:4$/m



=== TEST 25: "*" among other origins
--- config
    dynroute_cors_origins https://a.example.com *;
--- must_die
--- error_log eval
qr/invalid origin "\*": "\*" must be the only origin in \S+nginx\.conf:4$/m



=== TEST 26: methods and headers must be tokens; methods cannot be "*"
--- config
    dynroute_cors_methods GET "BAD METHOD";
--- must_die
--- error_log eval
qr/invalid method "BAD METHOD": not an HTTP token in \S+nginx\.conf:4$/m



=== TEST 27: a "*" method
--- config
    dynroute_cors_methods *;
--- must_die
--- error_log eval
qr/invalid method "\*": list the methods in \S+nginx\.conf:4$/m



=== TEST 28: a duplicate header name
--- config
    dynroute_cors_headers X-A x-a;
--- must_die
--- error_log eval
qr/invalid header "x-a": duplicate value in \S+nginx\.conf:4$/m



=== TEST 29: a bad max age
--- config
    dynroute_cors_max_age soon;
--- must_die
--- error_log eval
qr/invalid value "soon" in "dynroute_cors_max_age" directive in \S+nginx\.conf:4$/m



=== TEST 30: a duplicate directive and a bad flag
--- config
    dynroute_cors_origins https://a.example.com;
    dynroute_cors_origins https://b.example.com;
--- must_die
--- error_log eval
qr/"dynroute_cors_origins" directive is duplicate in \S+nginx\.conf:5$/m



=== TEST 31: dynroute_cors takes on or off
--- config
    dynroute_cors yes;
--- must_die
--- error_log eval
qr/invalid value "yes" in "dynroute_cors" directive, it must be "on" or "off" in \S+nginx\.conf:4$/m



=== TEST 32: a request nginx refuses (400) passes the filter without harm
--- config
    dynroute_cors on;
    dynroute_cors_origins https://app.example.com;
    location / { return 200 "local\n"; }
--- raw_request eval
"GET / HTTP/1.1\r\nHost: a..b\r\nOrigin: https://app.example.com\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- response_headers
Vary: Origin
--- no_error_log
[error]



=== TEST 33: the example of the CORS reference answers as documented
--- http_config
    upstream backend { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge { default backend; }
--- config
    dynroute                   edge;
    dynroute_cors              on;
    dynroute_cors_origins      https://app.example.com https://*.preview.example.com;
    dynroute_cors_methods      GET POST PUT DELETE;
    dynroute_cors_headers      Content-Type X-Request-Id;
    dynroute_cors_credentials  on;
    dynroute_cors_max_age      10m;

    location / {
        proxy_pass  http://$dynroute_upstream;
    }

    location /public/ {
        dynroute_cors_origins      *;
        dynroute_cors_credentials  off;
        proxy_pass  http://$dynroute_upstream;
    }

    location = /health {
        dynroute_cors  off;
        dynroute_health;
    }
--- request eval
["OPTIONS /cart", "OPTIONS /cart", "OPTIONS /public/x", "GET /health"]
--- more_headers eval
["Origin: https://app.example.com\nAccess-Control-Request-Method: PUT\nAccess-Control-Request-Headers: content-type",
 "Origin: https://evil.example\nAccess-Control-Request-Method: PUT\nAccess-Control-Request-Headers: content-type",
 "Origin: https://evil.example\nAccess-Control-Request-Method: GET",
 "Origin: https://app.example.com"]
--- error_code eval
[204, 204, 204, 200]
--- response_headers eval
["Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Credentials: true
Access-Control-Allow-Methods: GET, POST, PUT, DELETE
Access-Control-Allow-Headers: content-type, x-request-id
Access-Control-Max-Age: 600",
 "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers
!Access-Control-Allow-Origin
!Access-Control-Allow-Credentials
!Access-Control-Allow-Methods
!Access-Control-Allow-Headers
!Access-Control-Max-Age",
 "Access-Control-Allow-Origin: *
!Access-Control-Allow-Credentials
Access-Control-Max-Age: 600",
 "!Access-Control-Allow-Origin
!Vary"]
--- error_log
dynroute_cors: preflight from origin "https://evil.example" for method "PUT" denied: origin not allowed
