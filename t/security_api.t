# The runtime API against web pages in an operator's browser and against
# location forms that would serve more than meant (issue 21, findings 4
# and 5).  `allow 127.0.0.1` lets the operator's browser in, so a page from
# elsewhere must not be able to use it:
#   - a cross-site HTML form or fetch() carries its Origin: refused (403);
#   - a write that is not JSON (a form's urlencoded body, text/plain) is
#     refused (415), so a browser must ask first (a CORS preflight), and
#     the API answers no CORS;
#   - a page whose name an attacker made resolve to the node (DNS
#     rebinding) sends that name as Host: refused (403) unless it is one
#     of the API's names.
# And the resource is what follows the location's prefix: an exact location
# serves the metrics alone (with only=metrics) or fails nginx -t, and
# "location /pub" never answers /pubhosts.  Chromium does the same attacks
# in t/browser/xsite.t.
use lib 't/lib';
use Test::Nginx::Dynroute;

# what every block has in http{}: a service, the zone, the table
our $http = <<'CONF';
upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "a\n"; }
dynroute_zone z 1m;
dynroute_table edge { default service_a; }
CONF

# as reported: the API behind allow/deny, nothing else said
our $plain = <<'CONF';
server_name localhost edge1.example.com *.wild.example.com;
location /dynroute/ {
    allow 127.0.0.1; deny all;
    dynroute_api write=on;
}
location = /ready { dynroute_health readiness; }
CONF

# with the names and origins an operator adds
our $api = <<'CONF';
server_name localhost edge1.example.com *.wild.example.com;
location /dynroute/ {
    allow 127.0.0.1; deny all;
    dynroute_api write=on host=api.internal origin=https://ops.example.com;
}
location = /ready { dynroute_health readiness; }
CONF

# A block without --- http_config gets $http; without --- config, $plain
# (the API as reported).
add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(http_config => $http) unless defined $block->http_config;
    $block->set_value(config => $plain) unless defined $block->config;
});

run_tests();

__DATA__

=== TEST 1: the reported drain: a cross-site HTML form (urlencoded, Origin of the page)
--- raw_request eval
["POST /dynroute/drain HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nOrigin: https://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1",
 "GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]
--- error_code eval
[403, 200]
--- response_body_like eval
[qr/^\{"error":"requests from web pages of \\"https:\/\/evil\.example\\" are refused: this API takes those of its own origin and of dynroute_api origin= only"\}$/,
 qr/"ready":true/]
--- error_log
dynroute: API request refused: requests from web pages of "https://evil.example"



=== TEST 2: a form without an Origin (an older browser): not JSON, refused
--- raw_request eval
["POST /dynroute/drain HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1",
 "POST /dynroute/drain HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
 "POST /dynroute/drain HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
 "PUT /dynroute/hosts/x.example.com HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\n{\"target\":\"service_a\"}\r\n",
 "GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
 "GET /dynroute/hosts HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]
--- error_code eval
[415, 415, 415, 415, 200, 200]
--- response_body_like eval
[qr/^\{"error":"a write needs \\"Content-Type: application\/json\\""\}$/,
 qr/application\/json/, qr/application\/json/, qr/application\/json/,
 qr/"ready":true/, qr/^\{"generation":0,"hosts":\{\}\}$/]



=== TEST 3: a cross-site fetch() with JSON: its Origin is refused
--- raw_request eval
["PUT /dynroute/hosts/x.example.com HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nOrigin: http://127.0.0.1:1\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"target\":\"service_a\"}",
 "GET /dynroute/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nOrigin: null\r\n\r\n",
 "GET /dynroute/hosts HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]
--- error_code eval
[403, 403, 200]
--- response_body_like eval
[qr/web pages of \\"http:\/\/127\.0\.0\.1:1\\"/, qr/web pages of \\"null\\"/,
 qr/^\{"generation":0,"hosts":\{\}\}$/]



=== TEST 4: the reported DNS rebinding: a PUT with the attacker's name as Host
--- raw_request eval
["PUT /dynroute/hosts/x.example.com HTTP/1.1\r\nHost: rebind.attacker.example:\$TEST_NGINX_SERVER_PORT\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"target\":\"service_a\"}",
 "PUT /dynroute/hosts/x.example.com HTTP/1.1\r\nHost: rebind.attacker.example:\$TEST_NGINX_SERVER_PORT\r\nConnection: close\r\nOrigin: http://rebind.attacker.example:\$TEST_NGINX_SERVER_PORT\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"target\":\"service_a\"}",
 "GET /dynroute/ HTTP/1.1\r\nHost: a.wild.example.com\r\nConnection: close\r\n\r\n",
 "GET /dynroute/hosts HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]
--- error_code eval
[403, 403, 403, 200]
--- response_body_like eval
[qr/^\{"error":"this API answers to the names of its server\{\} \(server_name\), localhost, IP addresses and dynroute_api host=, not to \\"rebind\.attacker\.example\\": a web page that made its own name lead here would send it"\}$/,
 qr/rebind\.attacker\.example/, qr/a\.wild\.example\.com/,
 qr/^\{"generation":0,"hosts":\{\}\}$/]
--- error_log
dynroute: API request refused: this API answers to the names of its server{}



=== TEST 5: what the API does answer: its own origin, its names, listed ones
--- config eval: $::api
--- raw_request eval
["POST /dynroute/drain HTTP/1.1\r\nHost: 127.0.0.1:\$TEST_NGINX_SERVER_PORT\r\nConnection: close\r\nOrigin: http://127.0.0.1:\$TEST_NGINX_SERVER_PORT\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n",
 "POST /dynroute/ready HTTP/1.1\r\nHost: EDGE1.example.com\r\nConnection: close\r\nOrigin: https://ops.example.com\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 0\r\n\r\n",
 "PUT /dynroute/hosts/x.example.com HTTP/1.1\r\nHost: api.internal:8080\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"target\":\"service_a\"}",
 "GET /dynroute/hosts HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n",
 "GET /dynroute/hosts HTTP/1.0\r\n\r\n",
 "DELETE /dynroute/hosts/x.example.com HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"]
--- error_code eval
[200, 200, 201, 200, 200, 200]
--- response_body_like eval
[qr/"generation":1/, qr/"generation":2/, qr/"generation":3/,
 qr/x\.example\.com/, qr/x\.example\.com/, qr/"generation":4/]
--- no_error_log
[warn]



=== TEST 6: the reported location: an exact one would answer the whole state
--- config
location = /dynroute/metrics { dynroute_api; }
--- must_die
--- error_log eval
qr/\[emerg\] .*dynroute_api in the exact location "= \/dynroute\/metrics" can serve the metrics alone: add only=metrics, or use a prefix location like "location \/dynroute\/" .* in \S+nginx\.conf:\d+$/m



=== TEST 7: metrics alone at an exact location, read-only, for monitoring
--- config
location = /metrics { dynroute_api only=metrics; }
location / { dynroute edge; proxy_pass http://$dynroute_upstream; }
--- request eval
["GET /", "GET /metrics", "GET /metrics?x=1", "POST /metrics\n{}", "GET /metrics/"]
--- more_headers eval
["", "", "Host: prometheus.monitoring.example", "Content-Type: application/json", ""]
--- error_code eval
[200, 200, 200, 405, 200]
--- response_body_like eval
[qr/^a$/, qr/^dynroute_table_requests_total\{table="edge"\} 1$/m,
 qr/^# TYPE dynroute_requests_total counter$/m, qr/method not allowed/, qr/^a$/]



=== TEST 8: "location /pub" serves /pub/hosts, not /pubhosts
--- config
location /pub { dynroute_api; }
--- request eval
["GET /pubhosts", "GET /pub/hosts", "GET /pub", "GET /pub/", "GET /publish"]
--- error_code eval
[404, 200, 200, 200, 404]
--- response_body_like eval
[qr/no such API resource \\"\/pubhosts\\"/, qr/^\{"generation":0,"hosts":\{\}\}$/,
 qr/"zone":"z"/, qr/"zone":"z"/, qr/no such API resource/]



=== TEST 9: only=metrics,status: the metrics, the stats and the page, nothing of the state
--- config
location /monitor/ { dynroute_api only=metrics,status; }
--- request eval
["GET /monitor/metrics", "GET /monitor/stats", "GET /monitor/", "GET /monitor/ui",
 "GET /monitor/hosts", "GET /monitor/rollouts/x", "POST /monitor/drain\n{}"]
--- more_headers eval
["", "", "", "", "", "", "Content-Type: application/json"]
--- error_code eval
[200, 200, 200, 200, 404, 404, 404]
--- response_body_like eval
[qr/^# TYPE dynroute_requests_total counter$/m, qr/^\{"zone":"z"/,
 qr/<title>/, qr/<title>/,
 qr/this location serves only what its dynroute_api only= says/,
 qr/only=/, qr/only=/]



=== TEST 10: only=status alone, and the status page needs a prefix location
--- config
location /status/ { dynroute_api only=status; }
location = /s { dynroute_api only=status; }
--- must_die
--- error_log eval
qr/dynroute_api in the exact location "= \/s" can serve the metrics alone.* in \S+nginx\.conf:\d+$/m



=== TEST 11: only= is read-only
--- config
location /monitor/ { dynroute_api only=metrics write=on; }
--- must_die
--- error_log eval
qr/dynroute_api with only= is read-only: drop write=on.* in \S+nginx\.conf:\d+$/m



=== TEST 12: a bad origin= or host= fails nginx -t with the value
--- config
location /dynroute/ { dynroute_api origin=*; }
--- must_die
--- error_log eval
qr/"\*" would let every web page use the API: list the origins of the operators' pages in "origin=\*" of dynroute_api in \S+nginx\.conf:\d+$/m



=== TEST 13: host= takes a name, not a wildcard
--- config
location /dynroute/ { dynroute_api host=*.example.com; }
--- must_die
--- error_log eval
qr/invalid host name "\*\.example\.com" in "host=\*\.example\.com" of dynroute_api in \S+nginx\.conf:\d+$/m



=== TEST 14: the servers of an upstream: cross-site pages, forms and subrequests change nothing
--- http_config
upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream dyn { dynroute_servers; server 127.0.0.1:$TEST_NGINX_PORT2; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "a\n"; }
dynroute_zone z 1m;
--- config
location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
location /guarded/ { auth_request /dynroute/upstreams/dyn/servers; proxy_pass http://service_a; }
location /m/ {
    mirror /dynroute/upstreams/dyn/servers/127.0.0.1:9;
    proxy_pass http://service_a;
}
--- raw_request eval
["POST /dynroute/upstreams/dyn/servers HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nOrigin: https://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1",
 "POST /dynroute/upstreams/dyn/servers HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n\r\n{\"server\":\"127.0.0.1:9\"}\r\n",
 "PUT /dynroute/upstreams/dyn/servers/127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nOrigin: http://127.0.0.1:1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
 "DELETE /dynroute/upstreams/dyn/servers/127.0.0.1:\$TEST_NGINX_PORT2 HTTP/1.1\r\nHost: rebind.attacker.example\r\nConnection: close\r\n\r\n",
 "PUT /dynroute/services/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nOrigin: https://evil.example\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
 "GET /guarded/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
 "PUT /m/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
 "GET /dynroute/upstreams/dyn/servers HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]
--- error_code eval
[403, 415, 403, 403, 403, 403, 200, 200]
--- response_body_like eval
[qr/evil\.example\\" are refused/, qr/application\/json/, qr/127\.0\.0\.1:1\\" are refused/,
 qr/rebind\.attacker\.example/, qr/evil\.example\\" are refused/,
 qr/403 Forbidden/, qr/^a$/,
 qr/^\{"generation":0,"upstream":"dyn","runtime":false,"servers":\{"127\.0\.0\.1:\d+":\{[^}]*\}\}\}$/]
--- error_log eval
[qr/dynroute_api answers clients only, not a subrequest/, qr/API request refused: requests from web pages of "https:\/\/evil\.example"/]
