# Bad configuration fails `nginx -t` with a message naming the value, the
# file and the line.  Line k of --- http_config is line k+2 of nginx.conf.
use lib 't/lib';
use Test::Nginx::Dynroute;

run_tests();

__DATA__

=== TEST 1: a bad regex
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    ~^(a  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid regex "~\^\(a": missing closing parenthesis at offset 3 in dynroute table "edge" in \S+nginx\.conf:5$/m



=== TEST 2: an unknown upstream
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    a.example.com  u;
    b.example.com  nosuch;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown upstream "nosuch" in dynroute table "edge": a target must be an upstream\{\} block, a dynroute_rollout or a named location in \S+nginx\.conf:6$/m



=== TEST 3: a host:port target is not an upstream block (no silent DNS)
--- http_config
dynroute_table edge {
    default  127.0.0.1:8080;
}
--- must_die
--- error_log eval
qr/unknown upstream "127\.0\.0\.1:8080" in dynroute table "edge".* in \S+nginx\.conf:4$/m



=== TEST 4: a name that proxy_pass uses but that is not an upstream block
--- http_config
dynroute_table edge {
    default  localhost;
}
--- config
    location /x { proxy_pass http://localhost; }
--- must_die
--- error_log eval
qr/unknown upstream "localhost" in dynroute table "edge".* in \S+nginx\.conf:4$/m



=== TEST 5: an unknown named location
--- http_config
dynroute_table edge {
    ip  @nolocal;
}
--- config
    location / { dynroute edge; }
    location @local { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] unknown named location "\@nolocal" \(did you mean "\@local"\?\) in dynroute table "edge" \(\S+nginx\.conf:4\): the server using the table in \S+nginx\.conf:7 has no such location$/m



=== TEST 6: a duplicate host
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    a.example.com  u;
    A.example.com  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*host "A\.example\.com" conflicts with "a\.example\.com" in dynroute table "edge", defined in \S+nginx\.conf:5 in \S+nginx\.conf:6$/m



=== TEST 7: the same host written twice
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    *.example.com  u;

    *.example.com  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate "\*\.example\.com" in dynroute table "edge", first defined in \S+nginx\.conf:5 in \S+nginx\.conf:7$/m



=== TEST 8: .example.com conflicts with example.com and *.example.com
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    *.example.com  u;
    .example.com   u;
}
--- must_die
--- error_log eval
qr/host "\.example\.com" conflicts with "\*\.example\.com" .* in \S+nginx\.conf:6$/m



=== TEST 9: invalid wildcards
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    *.exa*mple.com  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid hostname or wildcard "\*\.exa\*mple\.com" in dynroute table "edge" in \S+nginx\.conf:5$/m



=== TEST 10: an empty label
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    a..b  u;
}
--- must_die
--- error_log eval
qr/invalid hostname or wildcard "a\.\.b" in dynroute table "edge" in \S+nginx\.conf:5$/m



=== TEST 11: a wildcard in the middle
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    www.*.com  u;
}
--- must_die
--- error_log eval
qr/invalid hostname or wildcard "www\.\*\.com" .* in \S+nginx\.conf:5$/m



=== TEST 12: a trailing dot or a port could never match, so they are refused
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    example.com.  u;
}
--- must_die
--- error_log eval
qr/invalid hostname "example\.com\.": hosts are matched without the trailing dot in dynroute table "edge" in \S+nginx\.conf:5$/m



=== TEST 13: a host with a port
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    example.com:8080  u;
}
--- must_die
--- error_log eval
qr/invalid hostname "example\.com:8080": hosts are matched without the port .* in \S+nginx\.conf:5$/m



=== TEST 14: two defaults
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    default  u;
    default  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate "default" in dynroute table "edge", first defined in \S+nginx\.conf:5 in \S+nginx\.conf:6$/m



=== TEST 15: two ip rules
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    ip  u;
    ip  u;
}
--- must_die
--- error_log eval
qr/duplicate "ip" in dynroute table "edge", first defined in \S+nginx\.conf:5 in \S+nginx\.conf:6$/m



=== TEST 16: an unknown table in dynroute
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge { default u; }
--- config
    location / {
        dynroute egde;
    }
--- must_die
--- error_log eval
qr/\[emerg\] unknown dynroute table "egde" \(did you mean "edge"\?\) in \S+nginx\.conf:7$/m



=== TEST 17: two tables with one name
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge { default u; }
dynroute_table edge { default u; }
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate dynroute table "edge", first defined in \S+nginx\.conf:4 in \S+nginx\.conf:5$/m



=== TEST 18: a rule needs a pattern and a target
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    a.example.com  u  extra;
}
--- must_die
--- error_log eval
qr/invalid number of parameters in dynroute table "edge": expected a host pattern and a target in \S+nginx\.conf:5$/m



=== TEST 19: a bare @ is not a named location
--- http_config
dynroute_table edge {
    default  @;
}
--- must_die
--- error_log eval
qr/invalid target "\@" in dynroute table "edge" in \S+nginx\.conf:4$/m



=== TEST 20: dynroute twice in one location
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge { default u; }
--- config
    location / {
        dynroute edge;
        dynroute edge;
    }
--- must_die
--- error_log eval
qr/"dynroute" directive is duplicate in \S+nginx\.conf:\d+$/m



=== TEST 21: dynroute_table belongs to the http block
--- config
    dynroute_table edge { default u; }
--- must_die
--- error_log eval
qr/"dynroute_table" directive is not allowed here in \S+nginx\.conf:\d+$/m



=== TEST 22: a regex capture may not shadow a built-in variable
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    ~^(?<host>.+)$  u;
}
--- must_die
--- error_log eval
qr/the duplicate "host" variable in \S+nginx\.conf:5$/m



=== TEST 23: a named location is checked in every server that uses the table
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    ip       @local;
    default  u;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT2;
    location / { dynroute edge; }
}
--- config
    location / { dynroute edge; }
    location @local { return 200; }
--- must_die
--- error_log eval
qr/unknown named location "\@local" in dynroute table "edge" \(\S+nginx\.conf:5\): the server using the table in \S+nginx\.conf:10 has no such location/



=== TEST 24: readiness without a zone names its line
--- http_config
upstream u { server 127.0.0.1:1; }
--- config
    location = /ready {
        dynroute_health readiness;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"dynroute_health readiness" needs a dynroute_zone in the http\{\} block: draining is runtime state, in \S+nginx\.conf:6$/m



=== TEST 25: a duplicate of a host written in an included file names that file
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    include  $TEST_NGINX_HTML_DIR/hosts.conf;
    a.example.com  u;
}
--- user_files
>>> hosts.conf
b.example.com  u;
a.example.com  u;
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate "a\.example\.com" in dynroute table "edge", first defined in \S+\/hosts\.conf:2 in \S+nginx\.conf:6$/m



=== TEST 26: an unknown upstream in an included file is named with its file, once the table is read
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    a.example.com  u;
    include  $TEST_NGINX_HTML_DIR/hosts.conf;
    c.example.com  u;
}
--- user_files
>>> hosts.conf
b.example.com  u;

d.example.com  nosuch;
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown upstream "nosuch" in dynroute table "edge": a target must be an upstream\{\} block, a dynroute_rollout or a named location in \S+\/hosts\.conf:3$/m



=== TEST 27: after an include, a rule is named with the file that includes it
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    include  $TEST_NGINX_HTML_DIR/hosts.conf;
    c.example.com  nosuch;
}
--- user_files
>>> hosts.conf
b.example.com  u;
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown upstream "nosuch" in dynroute table "edge": a target must be an upstream\{\} block, a dynroute_rollout or a named location in \S+nginx\.conf:6$/m



=== TEST 28: included by a pattern: each file and line is named
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    include  $TEST_NGINX_HTML_DIR/hosts-*.conf;
}
--- config
    location / { dynroute edge; }
--- user_files
>>> hosts-1.conf
a.example.com  u;
b.example.com  @one;
>>> hosts-2.conf
c.example.com  u;
*.example.com  @two;
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown named location "\@one" in dynroute table "edge" \(\S+\/hosts-1\.conf:2\): the server using the table in \S+nginx\.conf:\d+ has no such location/



=== TEST 29: included by a pattern: a duplicate names the other file
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    include  $TEST_NGINX_HTML_DIR/hosts-*.conf;
}
--- user_files
>>> hosts-1.conf
a.example.com  u;
b.example.com  u;
>>> hosts-2.conf
c.example.com  u;

B.example.com  u;
--- must_die
--- error_log eval
qr/\[emerg\] .*host "B\.example\.com" conflicts with "b\.example\.com" in dynroute table "edge", defined in \S+\/hosts-1\.conf:2 in \S+\/hosts-2\.conf:3$/m



=== TEST 30: a missing ";" is named on the line that lacks it, not the next
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    a.example.com  u;
    b.example.com  u
    c.example.com  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "b\.example\.com u" in dynroute table "edge" in \S+nginx\.conf:6$/m



=== TEST 31: a missing ";" on the first line of the block, before a comment and a blank line
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {   # the edge's hosts; one a line
    a.example.com  u    # the first
    # b.example.com  u;

    "c.example.com"  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "a\.example\.com u" in dynroute table "edge" in \S+nginx\.conf:5$/m



=== TEST 32: a missing ";" in an included file, on its first line and after others
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    a.example.com  u;
    include  $TEST_NGINX_HTML_DIR/hosts-*.conf;
}
--- user_files
>>> hosts-1.conf
b.example.com  u;
c.example.com  u;
>>> hosts-2.conf
d.example.com  u
default        u;
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "d\.example\.com u" in dynroute table "edge" in \S+\/hosts-2\.conf:1$/m



=== TEST 33: a missing ";" between two rules on one line
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    a.example.com  u;

    b.example.com  u  *.example.com  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "b\.example\.com u" in dynroute table "edge" in \S+nginx\.conf:7$/m



=== TEST 34: four parameters on one line whose third is no host are not taken for a missing ";"
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    a.example.com  u  x/y  u;
}
--- must_die
--- error_log eval
qr/\[emerg\] invalid number of parameters in dynroute table "edge": expected a host pattern and a target in \S+nginx\.conf:5$/m



=== TEST 35: a missing ";" across what nginx reads of a file at a time (4 KB) is named on its line
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge {
    include  $TEST_NGINX_HTML_DIR/hosts.conf;
}
--- user_files eval
# lines of 21 bytes: line 195 ends at byte 4095, the next rule crosses 4096
[['hosts.conf', join('', map { sprintf("h%03d.example.com  u%s\n", $_, $_ == 195 ? '' : ';') } 1 .. 400)]]
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "h195\.example\.com u" in dynroute table "edge" in \S+\/hosts\.conf:195$/m



=== TEST 36: dynroute in http{} says where it belongs
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge { default u; }
dynroute edge;
--- must_die
--- error_log eval
qr/\[emerg\] "dynroute" is allowed in server and location only, not in http: put "dynroute edge;" in the server\{\} or location\{\} blocks it is for in \S+nginx\.conf:5$/m



=== TEST 37: dynroute off in http{} too
--- http_config
dynroute off;
--- must_die
--- error_log eval
qr/\[emerg\] "dynroute" is allowed in server and location only, not in http: "dynroute off;" is the default there in \S+nginx\.conf:3$/m



=== TEST 38: dynroute stays refused in an if block of a server
--- http_config
upstream u { server 127.0.0.1:1; }
dynroute_table edge { default u; }
--- config
    if ($http_x_edge) {
        dynroute edge;
    }
--- must_die
--- error_log eval
qr/\[emerg\] "dynroute" directive is not allowed here in \S+nginx\.conf:\d+$/m



=== TEST 39: a balancer upstream where no table is in effect, among two tables: the location's line and what to add
--- http_config
upstream u { server 127.0.0.1:1; }
upstream edge_pass { dynroute_balancer; }
dynroute_table edge { default u; }
dynroute_table other { default u; }
--- config
    location / {
        dynroute edge;
        proxy_pass http://edge_pass;
    }

    location @named {
        grpc_pass grpc://edge_pass;
    }
--- must_die
--- error_log eval
qr/\[emerg\] location "\@named" in \S+nginx\.conf:13 passes requests to upstream "edge_pass" \(\S+nginx\.conf:4\), a dynroute_balancer, but no dynroute table is in effect there: add "dynroute TABLE;" to the location or its server, TABLE being one of the dynroute_table blocks$/m



=== TEST 40: a balancer upstream and no table at all
--- http_config
upstream edge_pass { dynroute_balancer; }
--- config
    location /api/ {
        proxy_pass http://edge_pass;
    }
--- must_die
--- error_log eval
qr/\[emerg\] location "\/api\/" in \S+nginx\.conf:5 passes requests to upstream "edge_pass" \(\S+nginx\.conf:3\), a dynroute_balancer, but no dynroute table is in effect there: add "dynroute TABLE;" to the location or its server, and a dynroute_table TABLE \{ \.\.\. \} to the http\{\} block$/m



=== TEST 41: an upstream typo: did you mean the closest upstream or rollout
--- http_config
upstream service_a { server 127.0.0.1:1; }
upstream service_b { server 127.0.0.1:2; }
dynroute_table edge {
    a.example.com  service_a;
    b.example.com  servce_a;
}
--- must_die
--- error_log eval
qr/\[emerg\] unknown upstream "servce_a" \(did you mean "service_a"\?\) in dynroute table "edge": a target must be an upstream\{\} block, a dynroute_rollout or a named location in \S+nginx\.conf:7$/m



=== TEST 42: a rollout typo: did you mean the rollout
--- http_config
upstream stable { server 127.0.0.1:1; }
upstream canary { server 127.0.0.1:2; }
dynroute_rollout checkout {
    variant stable  stable  *;
    variant canary  canary  10%;
}
dynroute_table edge {
    shop.example.com  chekcout;
}
--- must_die
--- error_log eval
qr/\[emerg\] unknown upstream "chekcout" \(did you mean "checkout"\?\) in dynroute table "edge": a target must be an upstream\{\} block, a dynroute_rollout or a named location in \S+nginx\.conf:10$/m



=== TEST 43: no suggestion of a dynroute_balancer upstream, which is no target
--- http_config
upstream u { server 127.0.0.1:1; }
upstream edge_pass { dynroute_balancer; }
dynroute_table edge {
    default  edge_pas;
}
--- must_die
--- error_log eval
qr/\[emerg\] unknown upstream "edge_pas" in dynroute table "edge": a target must be an upstream\{\} block, a dynroute_rollout or a named location in \S+nginx\.conf:6$/m
