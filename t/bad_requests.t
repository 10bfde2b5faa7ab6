# Hostile Host headers get an HTTP answer (nginx's own 400 where it rejects
# the Host first), never a crash and never an undefined route.
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

my $long = join('.', ('a') x 2000) . '.example.com';
my $huge = ('x' x 7000) . '.com';

$ENV{TEST_NGINX_LONG_HOST} = $long;
$ENV{TEST_NGINX_HUGE_HOST} = $huge;

run_tests();

__DATA__

=== TEST 1: malformed hosts are refused by nginx before routing
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge { default u; }
--- raw_request eval
["GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: a..b\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: .\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: a\x00b\r\nConnection: close\r\n\r\n"]
--- error_code: 400



=== TEST 2: odd but valid hosts are routed to a defined rule
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        ip             @local;
        *.example.com  u;
        a.example.com  u;
        default        u;
    }
--- config
    location / {
        dynroute edge;
        return 200 "$dynroute_rule\n";
    }
    location @local { return 200 "local\n"; }
--- raw_request eval
["GET / HTTP/1.1\r\nHost: caf\xc3\xa9.example.com\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: [::1\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: [::1]:abc\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: [1.2.3.4]\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: a.example.com:99999999\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: .example.com\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: ~^a\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: 999.1.1.1\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.1\r\nHost: [::ffff:1.2.3.4]:1\r\nConnection: close\r\n\r\n"]
--- response_body eval
["*.example.com\n", "default\n", "default\n", "ip\n", "default\n",
 "a.example.com\n", "*.example.com\n", "default\n", "default\n", "ip\n"]
--- error_code: 200



=== TEST 3: the host of an absolute request URI wins over the Host header
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge {
        a.example.com  u;
        default        u;
    }
--- raw_request eval
"GET http://a.example.com/x HTTP/1.1\r\nHost: other.example.com\r\nConnection: close\r\n\r\n"
--- response_body
a.example.com



=== TEST 4: thousands of labels and huge hosts are matched, not crashed on
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    large_client_header_buffers 4 16k;
    dynroute_table edge {
        *.example.com  u;
        www.*          u;
        ~^x+\.com$     u;
        default        u;
    }
--- request eval
["GET /", "GET /"]
--- more_headers eval
["Host: $ENV{TEST_NGINX_LONG_HOST}", "Host: $ENV{TEST_NGINX_HUGE_HOST}"]
--- response_body eval
["*.example.com\n", "~^x+\\.com\$\n"]
--- error_code: 200



=== TEST 5: a header too large for the buffers gets nginx's own answer
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge { default u; }
--- request
GET /
--- more_headers eval
"Host: " . ("a" x 20000) . ".com"
--- error_code: 400



=== TEST 6: HTTP/1.0 without Host is matched on the server name
--- http_config
    upstream u { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge { localhost u; }
--- raw_request eval
"GET / HTTP/1.0\r\n\r\n"
--- response_body
localhost
