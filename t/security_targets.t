# What a rule, a variant, a runtime host or a flip may target: one answer,
# the target registry's, for nginx -t and for the API.  A dynroute_balancer
# upstream is never a target: its balancing hands the request back to
# dynroute, which would choose it again until the worker's stack ran out
# (issue 21, finding 2: nginx -t accepted such a table and the first
# request killed the worker with signal 11).
use lib 't/lib';
use Test::Nginx::Dynroute;

run_tests();

__DATA__

=== TEST 1: the reported configuration: a table's default is a balancer upstream
--- http_config
upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream edge_pass { dynroute_balancer; }
dynroute_table t { x.example.com a; default edge_pass; }
--- config
location / { dynroute t; proxy_pass http://edge_pass; }
--- must_die
--- error_log eval
qr/\[emerg\] .*upstream "edge_pass" in dynroute table "t" is a dynroute_balancer upstream, which hands each request back to dynroute: a target must be an upstream\{\} block with servers or a dynroute_rollout, in \S+nginx\.conf:5$/m



=== TEST 2: a rule naming a balancer upstream, letter case aside
--- http_config
upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream Edge_Pass { dynroute_balancer; }
dynroute_table t {
    x.example.com  EDGE_PASS;
    default        a;
}
--- config
location / { dynroute t; proxy_pass http://Edge_Pass; }
--- must_die
--- error_log eval
qr/\[emerg\] .*upstream "EDGE_PASS" in dynroute table "t" is a dynroute_balancer upstream.* in \S+nginx\.conf:6$/m



=== TEST 3: a rollout variant naming a balancer upstream
--- http_config
upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream edge_pass { dynroute_balancer fallback=primary; }
dynroute_rollout shop {
    variant stable stable    90%;
    variant canary edge_pass 10%;
}
dynroute_table t { default shop; }
--- config
location / { dynroute t; proxy_pass http://edge_pass; }
--- must_die
--- error_log eval
qr/\[emerg\] .*upstream "edge_pass" of variant "canary" in dynroute rollout "shop" is a dynroute_balancer upstream.* in \S+nginx\.conf:7$/m



=== TEST 4: a rollout with the name of a balancer upstream
--- http_config
upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream b { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream edge_pass { dynroute_balancer; }
dynroute_rollout edge_pass {
    variant stable a 90%;
    variant canary b 10%;
}
dynroute_table t { default edge_pass; }
--- config
location / { dynroute t; proxy_pass http://edge_pass; }
--- must_die
--- error_log eval
qr/\[emerg\] .*dynroute rollout "edge_pass" in \S+nginx\.conf:6 has the name of an upstream\{\} block/m



=== TEST 5: the same table with a real upstream routes through the balancer
--- http_config
upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream b { server 127.0.0.1:$TEST_NGINX_PORT3; }
upstream edge_pass { dynroute_balancer; }
dynroute_table t { x.example.com a; default b; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "a\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "b\n"; }
--- config
location / { dynroute t; proxy_pass http://edge_pass; }
--- request eval
["GET /", "GET /"]
--- more_headers eval
["Host: x.example.com", "Host: y.example.com"]
--- response_body eval
["a\n", "b\n"]
--- no_error_log
[error]



=== TEST 6: the API refuses a balancer upstream as a runtime host's target and as a flip
--- http_config
upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream canary { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream edge_pass { dynroute_balancer; }
dynroute_zone z 1m;
dynroute_rollout shop {
    variant stable stable 90%;
    variant canary canary 10%;
}
dynroute_table t { default shop; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "ok\n"; }
--- config
location / { dynroute t; proxy_pass http://edge_pass; }
location /dynroute/ { dynroute_api write=on; }
--- request eval
["PUT /dynroute/hosts/new.example.com\n{\"target\":\"edge_pass\"}",
 "PATCH /dynroute/rollouts/shop\n{\"upstreams\":{\"canary\":\"edge_pass\"}}",
 "GET /dynroute/hosts"]
--- more_headers
Content-Type: application/json
--- error_code eval
[400, 400, 200]
--- response_body_like eval
[qr/"error":"\\"edge_pass\\" is neither an upstream\{\} nor a dynroute_rollout/,
 qr/"error":".*edge_pass/,
 qr/^\{"generation":0,"hosts":\{\}\}$/]
--- no_error_log
[alert]



=== TEST 7: the upstream carrying the services is no target of a table
--- http_config
upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream services { dynroute_services; }
dynroute_table t { x.example.com a; default Services; }
--- config
location / { dynroute t; proxy_pass http://a; }
--- must_die
--- error_log eval
qr/\[emerg\] .*upstream "Services" in dynroute table "t" carries the services created at run time: name a service, in \S+nginx\.conf:5$/m



=== TEST 8: nor of a rollout's variant
--- http_config
upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream services { dynroute_services; }
dynroute_rollout shop {
    variant stable stable   90%;
    variant canary services 10%;
}
dynroute_table t { default shop; }
--- config
location / { dynroute t; proxy_pass http://stable; }
--- must_die
--- error_log eval
qr/\[emerg\] .*upstream "services" of variant "canary" in dynroute rollout "shop" carries the services created at run time: name a service/m



=== TEST 9: the API refuses the carrier as a runtime host's target and as a flip, and a service named like an upstream{} or a rollout
--- http_config
upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream canary { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream edge_pass { dynroute_balancer; }
upstream services { dynroute_services; }
dynroute_zone z 1m;
dynroute_rollout shop {
    variant stable stable 90%;
    variant canary canary 10%;
}
dynroute_table t { default shop; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "ok\n"; }
--- config
location / { dynroute t; proxy_pass http://edge_pass; }
location /dynroute/ { dynroute_api write=on; }
--- request eval
["PUT /dynroute/hosts/new.example.com\n{\"target\":\"services\"}",
 "PATCH /dynroute/rollouts/shop\n{\"upstreams\":{\"canary\":\"services\"}}",
 "PUT /dynroute/services/Edge_Pass\n{}",
 "PUT /dynroute/services/shop\n{}",
 "PUT /dynroute/services/Services\n{}",
 "GET /dynroute/hosts"]
--- more_headers
Content-Type: application/json
--- error_code eval
[400, 400, 409, 409, 409, 200]
--- response_body_like eval
[qr/"error":"\\"services\\" is neither an upstream\{\} nor a dynroute_rollout/,
 qr/"error":".*services/,
 qr/"error":"a service cannot be called \\"Edge_Pass\\": that is the configuration's upstream\{\} \\"edge_pass\\"/,
 qr/"error":"a service cannot be called \\"shop\\".*rollout \\"shop\\"/,
 qr/"error":"a service cannot be called \\"Services\\".*upstream\{\} \\"services\\"/,
 qr/^\{"generation":0,"hosts":\{\}\}$/]
--- no_error_log
[alert]
