# IP-literal hosts are served locally (Kubernetes probes hit the pod IP),
# names that merely start with a digit are names.
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

# A jump to a named location finishes the request cleanly: the connection
# stays usable for the next (pipelined, keepalive) request.
{
    my $srv = start_nginx(
        http_config => <<'CONF',
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        ip       @local;
        default  u;
    }
CONF
        config => <<'CONF',
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
    location @local {
        return 200 "local $request_uri\n";
    }
CONF
    );

    my $res = http_raw($srv, "GET /1 HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n"
                           . "GET /2 HTTP/1.1\r\nHost: [::1]\r\n\r\n"
                           . "GET /3 HTTP/1.1\r\nHost: 10.0.0.3:80\r\n"
                           . "Connection: close\r\n\r\n");
    my @status = $res->{raw} =~ m{^HTTP/1\.1 (\d+)}mg;
    my @bodies = $res->{raw} =~ m{^(local /\d)$}mg;
    is("@status", "200 200 200", 'three pipelined jumps: three answers');
    is("@bodies", "local /1 local /2 local /3", 'in order, on one connection');
    error_log_ok(stop_nginx($srv), 'pipelined jumps: no alert/crit/crash');
}

run_tests();

__DATA__

=== TEST 1: IPv4 and IPv6 literals, with or without a port, jump to @local
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "proxied\n"; }
    dynroute_table edge {
        ip       @local;
        default  service_a;
    }
--- config
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
    location @local {
        return 200 "local $host rule=$dynroute_rule\n";
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Host: 10.0.0.1", "Host: 10.0.0.1:8080", "Host: [::1]",
 "Host: [2001:db8::1]:443", "Host: [::ffff:10.1.2.3]", "Host: 127.0.0.1"]
--- response_body eval
["local 10.0.0.1 rule=ip\n", "local 10.0.0.1 rule=ip\n", "local [::1] rule=ip\n",
 "local [2001:db8::1] rule=ip\n", "local [::ffff:10.1.2.3] rule=ip\n",
 "local 127.0.0.1 rule=ip\n"]
--- no_error_log
[error]



=== TEST 2: names that start with a digit are routed as names
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "proxied $host\n"; }
    dynroute_table edge {
        ip       @local;
        default  service_a;
    }
--- config
    location / {
        dynroute edge;
        proxy_set_header Host $host;
        proxy_pass http://$dynroute_upstream;
    }
    location @local {
        return 200 "local\n";
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Host: 1password.com", "Host: 123.com", "Host: 10.0.0.1.nip.io",
 "Host: 10.0.0.256", "Host: 010.0.0.1", "Host: 127.1"]
--- response_body eval
["proxied 1password.com\n", "proxied 123.com\n", "proxied 10.0.0.1.nip.io\n",
 "proxied 10.0.0.256\n", "proxied 010.0.0.1\n", "proxied 127.1\n"]



=== TEST 3: without an ip rule, an IP host goes through the host patterns
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        10.0.0.1  u;
        ~^10\.    u;
        default   u;
    }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["Host: 10.0.0.1", "Host: 10.0.0.2", "Host: [::1]"]
--- response_body eval
["10.0.0.1\n", "~^10\\.\n", "default\n"]



=== TEST 4: the ip rule is checked before the host patterns
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        10.0.0.1  u;
        ip        @local;
    }
--- config
    location / {
        dynroute edge;
        return 200 "$dynroute_rule\n";
    }
    location @local { return 200 "local\n"; }
--- more_headers
Host: 10.0.0.1
--- request
GET /
--- response_body
ip



=== TEST 5: dynroute at server level does not loop through its own @local
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        ip       @local;
        default  u;
    }
--- config
    dynroute edge;
    location / {
        proxy_pass http://$dynroute_upstream;
    }
    location @local {
        return 200 "local $dynroute_rule\n";
    }
--- request eval
["GET /", "GET /a/b?c=d"]
--- more_headers eval
["Host: 10.0.0.1", "Host: [::1]:80"]
--- response_body eval
["local ip\n", "local ip\n"]
--- no_error_log
[error]
rewrite or internal redirection cycle



=== TEST 6: any rule can jump to a named location, and @local can proxy
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A$request_uri\n"; }
    dynroute_table edge {
        maintenance.example.com  @maintenance;
        default                  service_a;
    }
--- config
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
    location @maintenance {
        proxy_pass http://service_a;
    }
--- request
GET /page?x=1
--- more_headers
Host: maintenance.example.com
--- response_body
A/page?x=1
--- no_error_log
[error]



=== TEST 7: subrequests (SSI) decide for themselves and never jump
--- http_config
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A$request_uri"; }
    dynroute_table edge {
        ip       @local;
        default  service_a;
    }
--- config
    location = /page {
        ssi on;
        ssi_types *;
        return 200 '[<!--# include virtual="/sub/1" -->][<!--# include virtual="/sub/2" -->]';
    }
    location /sub/ {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
    location @local {
        return 200 "local$uri";
    }
--- request eval
["GET /page", "GET /page"]
--- more_headers eval
["Host: 10.0.0.1", "Host: a.example.com"]
--- response_body_like eval
[qr{^\[(?!local).*500 Internal.*\]\[(?!local).*\]\z}s, qr{^\[A/sub/1\]\[A/sub/2\]\z}]
--- error_log
which a subrequest does not jump to
--- no_error_log
invalid URL prefix
