# Host routing through a real nginx: every pattern form, the precedence of
# server_name / map { hostnames; }, the variables, and the 421 answer.
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Fixtures qw($RULE_LOCATION);

# A block without --- config routes by the table edge and answers the rule
# that matched: $RULE_LOCATION, location / { dynroute edge; return 200
# "$dynroute_rule\n"; }.
add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => $RULE_LOCATION) unless defined $block->config;
});

run_tests();

__DATA__

=== TEST 1: an exact host is proxied to its upstream
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "B\n"; }
    dynroute_table edge {
        a.example.com  service_a;
        default        service_b;
    }
--- config
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["Host: a.example.com", "Host: b.example.com", "Host: example.com"]
--- response_body eval
["A\n", "B\n", "B\n"]
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: *.example.com matches subdomains at any depth, not the name
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "$http_x_route\n"; }
    dynroute_table edge {
        *.a.example.com  service_a;
    }
--- config
    location / {
        dynroute edge;
        proxy_set_header X-Route "$dynroute_upstream $dynroute_rule";
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["Host: x.a.example.com", "Host: x.y.z.a.example.com", "Host: a.example.com"]
--- response_body_like eval
["^service_a \\*\\.a\\.example\\.com\n\$", "^service_a \\*\\.a\\.example\\.com\n\$",
 "421 Misdirected Request"]
--- error_code eval
[200, 200, 421]



=== TEST 3: .example.com matches the name itself and every subdomain
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        .example.org  service_a;
        default       service_a;
    }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["Host: example.org", "Host: deep.sub.example.org", "Host: notexample.org"]
--- response_body eval
[".example.org\n", ".example.org\n", "default\n"]



=== TEST 4: www.example.* matches any suffix with at least one more label
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        www.example.*  service_a;
        www.*          service_a;
        default        service_a;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Host: www.example.com", "Host: www.example.co.uk", "Host: www.example",
 "Host: wwwx.example.com"]
--- response_body eval
["www.example.*\n", "www.example.*\n", "www.*\n", "default\n"]



=== TEST 5: regexes are tried in configuration order, the first match wins
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    dynroute_table edge {
        ~^a        service_a;
        ~example   service_b;
        ~^api      service_b;
    }
--- config
    location / {
        dynroute edge;
        return 200 "$dynroute_upstream $dynroute_rule\n";
    }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["Host: api.example.com", "Host: my-example.net", "Host: apples.io"]
--- response_body eval
["service_a ~^a\n", "service_b ~example\n", "service_a ~^a\n"]



=== TEST 6: precedence is exact, leading, trailing, regex, default
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        ~^www            u;
        www.example.*    u;
        *.example.com    u;
        www.example.com  u;
        default          u;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Host: www.example.com", "Host: api.example.com", "Host: www.example.net",
 "Host: www.other.net", "Host: other.net"]
--- response_body eval
["www.example.com\n", "*.example.com\n", "www.example.*\n", "~^www\n",
 "default\n"]



=== TEST 7: the longest wildcard wins whatever the order of the rules
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        *.com              u;
        *.b.example.com    u;
        *.example.com      u;
        www.*              u;
        www.example.*      u;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Host: x.b.example.com", "Host: b.example.com", "Host: example.com",
 "Host: www.example.net", "Host: www.other.net"]
--- response_body eval
["*.b.example.com\n", "*.example.com\n", "*.com\n", "www.example.*\n",
 "www.*\n"]



=== TEST 8: case, port and a trailing dot of the Host do not matter
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A $host\n"; }
    dynroute_table edge {
        A.Example.COM  service_a;
    }
--- config
    location / {
        dynroute edge;
        proxy_set_header Host $host;
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Host: a.example.com", "Host: A.EXAMPLE.COM", "Host: a.example.com:8080",
 "Host: A.example.com.:443"]
--- response_body eval
["A a.example.com\n", "A a.example.com\n", "A a.example.com\n",
 "A a.example.com\n"]
--- no_error_log
[error]



=== TEST 9: named captures of a regex become variables
--- http_config
    upstream tenants { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        return 200 "tenant=$http_x_tenant zone=$http_x_zone\n";
    }
    dynroute_table edge {
        ~^(?<tenant>[a-z0-9]+)\.(?<zone>eu|us)\.example\.com$  tenants;
    }
--- config
    location / {
        dynroute edge;
        proxy_set_header X-Tenant $tenant;
        proxy_set_header X-Zone $zone;
        proxy_pass http://$dynroute_upstream;
    }
--- more_headers
Host: acme42.eu.example.com
--- request
GET /
--- response_body
tenant=acme42 zone=eu
--- no_error_log
[error]



=== TEST 10: ~* is caseless, ~ is not (the host is lowercase)
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        ~^API     u;
        ~*^API    u;
        default   u;
    }
--- more_headers
Host: API.example.com
--- request
GET /
--- response_body
~*^API



=== TEST 11: hosts called "ip" and "default" are written with a backslash
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        \ip       u;
        \default  u;
        default   u;
    }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["Host: ip", "Host: default", "Host: other"]
--- response_body eval
["\\ip\n", "\\default\n", "default\n"]



=== TEST 12: no matching rule and no default answers 421 and says why
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        a.example.com  u;
    }
--- config
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
--- more_headers
Host: unknown.example.com
--- request
GET /
--- error_code: 421
--- error_log
dynroute: no rule of table "edge" matches host "unknown.example.com", answering 421
--- no_error_log
[error]



=== TEST 13: dynroute in server context applies to its locations, off turns it off
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A\n"; }
    dynroute_table edge {
        a.example.com  service_a;
    }
--- config
    dynroute edge;
    location / {
        proxy_pass http://$dynroute_upstream;
    }
    location /static/ {
        dynroute off;
        return 200 "static [$dynroute_upstream]\n";
    }
--- request eval
["GET /", "GET /static/x", "GET /static/x"]
--- more_headers eval
["Host: a.example.com", "Host: a.example.com", "Host: nomatch.example.com"]
--- response_body eval
["A\n", "static []\n", "static []\n"]
--- error_code: 200



=== TEST 14: variables read before the rewrite phase give the same decision
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        a.example.com  service_a;
    }
--- config
    location / {
        dynroute edge;
        set $early "$dynroute_upstream/$dynroute_rule";
        return 200 "$early $dynroute_upstream\n";
    }
--- more_headers
Host: a.example.com
--- request
GET /
--- response_body
service_a/a.example.com service_a



=== TEST 15: two tables in two locations decide independently
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    dynroute_table one { default service_a; }
    dynroute_table two { default service_b; }
--- config
    location /one { dynroute one; return 200 "$dynroute_upstream\n"; }
    location /two { dynroute two; return 200 "$dynroute_upstream\n"; }
--- request eval
["GET /one", "GET /two"]
--- response_body eval
["service_a\n", "service_b\n"]



=== TEST 16: a request without Host is matched on the server name, as $host
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        localhost  u;
    }
--- raw_request eval
"GET / HTTP/1.0\r\n\r\n"
--- response_body
localhost



=== TEST 17: a table may be defined after the server that uses it, and include files
--- config
    location / {
        dynroute late;
        return 200 "$dynroute_upstream $dynroute_rule\n";
    }
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        location / { dynroute late; return 200 "$dynroute_rule\n"; }
    }
    dynroute_table late {
        include  $TEST_NGINX_HTML_DIR/hosts.conf;
        default  u;
    }
--- user_files
>>> hosts.conf
a.example.com  u;
*.b.example.com  u;
--- more_headers
Host: x.b.example.com
--- request
GET /
--- response_body
u *.b.example.com



=== TEST 18: the upstream keeps its own variables: $upstream_addr is the backend
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A\n"; }
    dynroute_table edge { default service_a; }
--- config
    location / {
        dynroute edge;
        add_header X-Upstream $upstream_addr;
        proxy_pass http://$dynroute_upstream;
    }
--- request
GET /
--- response_headers
X-Upstream: 127.0.0.1:$TEST_NGINX_PORT2
--- response_body
A



=== TEST 19: an error_page redirect keeps the decision and does not loop
--- http_config
    upstream down { server 127.0.0.1:1; }
    dynroute_table edge {
        default  down;
    }
--- config
    dynroute edge;
    location / {
        error_page 502 = @down;
        proxy_pass http://$dynroute_upstream;
    }
    location @down {
        return 503 "$dynroute_upstream is down ($dynroute_rule)\n";
    }
--- request
GET /
--- error_code: 503
--- response_body
down is down (default)
--- error_log
connect() failed
--- no_error_log
rewrite or internal redirection cycle



=== TEST 20: rules read through includes, quotes and escapes keep their text and target
--- http_config
    upstream service_a { server 127.0.0.1:1; }
    upstream service_b { server 127.0.0.1:1; }
    dynroute_table edge {
        include  $TEST_NGINX_HTML_DIR/hosts-*.conf;
        "quoted.example.com"  service_a;
        "~^q\\.example\\.com$"  "service_b";
        ~^(?<tenant>[a-z]+)\.t\.example\.com$  service_b;
        default  service_a;
    }
--- config
    location / {
        dynroute edge;
        return 200 "$dynroute_rule $dynroute_upstream $tenant\n";
    }
--- user_files
>>> hosts-1.conf
a.example.com  service_a;
*.w.example.com  service_b;
>>> hosts-2.conf
'single.example.com'  service_b;
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Host: a.example.com", "Host: x.w.example.com", "Host: single.example.com",
 "Host: quoted.example.com", "Host: q.example.com", "Host: acme.t.example.com",
 "Host: other.example.com"]
--- response_body eval
["a.example.com service_a \n", "*.w.example.com service_b \n",
 "single.example.com service_b \n", "quoted.example.com service_a \n",
 "~^q\\.example\\.com\$ service_b \n",
 "~^(?<tenant>[a-z]+)\\.t\\.example\\.com\$ service_b acme\n",
 "default service_a \n"]
--- error_code: 200
--- no_error_log
[error]



=== TEST 21: a dot after the port leaves $host a trailing dot; the exact name still wins
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A $http_x_host\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "B $http_x_host\n"; }
    dynroute_table edge {
        a.example.com    service_a;
        *.example.com    service_b;
        ~^a              service_b;
    }
--- config
    location / {
        dynroute edge;
        proxy_set_header X-Host $host;
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["Host: a.example.com.:80.", "Host: A.Example.COM.:80.",
 "Host: x.example.com.:80."]
--- response_body eval
["A a.example.com.\n", "A a.example.com.\n", "B x.example.com.\n"]
--- no_error_log
[error]
