# dynroute_health: the liveness answer of the original router service.
use lib 't/lib';
use Test::Nginx::Dynroute;

run_tests();

__DATA__

=== TEST 1: GET answers 200 with the JSON string "i am alive"
--- config
    location = /health { dynroute_health; }
--- request
GET /health
--- response_body chomp
"i am alive"
--- response_headers
Content-Type: application/json
Content-Length: 12
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: POST with a body answers the same and the body is discarded
--- config
    location = /health { dynroute_health; }
--- request
POST /health
{"ping": true}
--- response_body chomp
"i am alive"
--- error_code: 200
--- no_error_log
[error]



=== TEST 3: HEAD answers 200 with the headers only
--- config
    location = /health { dynroute_health; }
--- request
HEAD /health
--- response_body chomp
--- response_headers
Content-Type: application/json
Content-Length: 12
--- error_code: 200



=== TEST 4: other methods get 405 with an Allow header
--- config
    location = /health { dynroute_health; }
--- request eval
["DELETE /health", "PUT /health", "OPTIONS /health", "PATCH /health"]
--- response_headers
Allow: GET, HEAD, POST
--- error_code: 405



=== TEST 5: a health location is never routed, even for an IP host
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        ip       @local;
        default  u;
    }
--- config
    dynroute edge;
    location / { proxy_pass http://$dynroute_upstream; }
    location @local { return 404; }
    location = /health { dynroute_health; }
--- request
GET /health
--- more_headers
Host: 10.1.2.3:8080
--- response_body chomp
"i am alive"
--- error_code: 200



=== TEST 6: dynroute_health takes nothing or "readiness"
--- config
    location = /health { dynroute_health on; }
--- must_die
--- error_log eval
qr/invalid parameter "on": dynroute_health takes nothing or "readiness" in \S+nginx\.conf:\d+/
