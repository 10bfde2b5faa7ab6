# Self-test of t/lib/Test/Nginx/Dynroute.pm on plain nginx (no dynroute
# directives), so it also passes with TEST_NGINX_LOAD_MODULES= .
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp);

# ---- low-level API (before run_tests, which ends with done_testing) ----
{
    my $srv = start_nginx(
        http_config => "    server { listen 127.0.0.1:\$TEST_NGINX_PORT2; return 200 \"backend\"; }\n",
        config      => "    location / { return 200 \"one:\$host\"; }\n",
        workers     => 2,
    );
    ok($srv->{pid}, 'low-level: nginx started');
    like(slurp($srv->{conf}),
         qr/\A[^\n]*worker_processes 2;[^\n]*events \{[^\n]*\}\nhttp \{[^\n]*\n    server \{ listen 127\.0\.0\.1:$srv->{port2};/,
         'low-level: conf layout');

    my $res = http_get($srv, '/', { Host => 'X.Example.com' });
    is($res->{status}, 200, 'low-level: http_get status');
    is($res->{body}, 'one:x.example.com', 'low-level: http_get body with Host');
    is_deeply($res->{headers}{'content-type'}, ['text/plain'], 'low-level: headers hash');

    $res = http_get({ port => $srv->{port2} }, '/');
    is($res->{body}, 'backend', 'low-level: backend on port2');

    ok(reload_nginx($srv, undef, "    location / { return 200 \"two\"; }\n"),
       'low-level: reload');
    for my $n (1 .. 5) {
        $res = http_get($srv, '/');
        is($res->{body}, 'two', "low-level: new config after reload ($n)");
    }

    ok(!reload_nginx($srv, undef, "    bogus_reload_directive;\n"),
       'low-level: bad reload reported');
    $res = http_raw($srv, "GET / HTTP/1.0\r\n\r\n");
    is($res->{status}, 200, 'low-level: http_raw status');
    is($res->{body}, 'two', 'low-level: old config kept after bad reload');

    my $log = stop_nginx($srv);
    ok(!$srv->{pid}, 'low-level: stopped');
    like($log, qr/unknown directive "bogus_reload_directive"/, 'low-level: emerg in log');
    error_log_ok($log, 'low-level: error.log clean apart from the emerg', allow_emerg => 1);

    my ($st, $out) = nginx_test_config(config => "    bogus_t_directive on;\n");
    isnt($st, 0, 'low-level: nginx_test_config fails');
    like($out, qr/unknown directive "bogus_t_directive" in \S+nginx\.conf:4/,
         'low-level: nginx_test_config output, config line 1 = conf line 4');
}

# ---- block preprocessors (blocks 16 to 19) --------------------------------
#
# A block that names a backend ("--- backend: TEXT", a section of this
# file's own) gets a server on port 2 answering TEXT after its http_config,
# and, when it has no --- config, a location / that proxies to it.
add_block_preprocessor(sub {
    my ($block) = @_;
    return unless defined $block->backend;
    my $backend = '    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "'
                . $block->backend . "\"; }\n";
    $block->set_value(http_config => ($block->http_config // '') . $backend);
    $block->set_value(config => "    location / { proxy_pass http://127.0.0.1:\$TEST_NGINX_PORT2; }\n")
        unless defined $block->config;
});

# "--- order: TEXT": the preprocessor added first answers TEXT with "first"
# after it, the one added last appends "last" to TEXT: "TEXT last first"
# when the one added last runs first, as in Test::Nginx.
add_block_preprocessor(sub {
    my ($block) = @_;
    return unless defined $block->order;
    $block->set_value(config => '    location / { return 200 "' . $block->order . " first\"; }\n");
});
add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(order => $block->order . ' last') if defined $block->order;
});

run_tests();

__DATA__

=== TEST 1: plain return
--- config
    location / { return 200 "hello\n"; }
--- request
GET /
--- response_body
hello
--- error_code: 200
--- no_error_log
[error]
[warn]



=== TEST 2: more_headers overrides Host
--- config
    location / { return 200 $host; }
--- request
GET /
--- more_headers
Host: A.Example.COM
--- response_body chomp
a.example.com



=== TEST 3: response_headers present and absent
--- config
    location / { add_header X-Foo "bar baz"; add_header X-Two 1; add_header X-Two 2; return 200 "ok"; }
--- request
GET /
--- response_headers
X-Foo: bar baz
x-two: 2
Content-Type: text/plain
Content-Length: 2
!X-Missing
! X-Other
--- response_body chomp
ok



=== TEST 4: 404 from a missing file, error_log with a substituted variable
--- config
    location / { root $TEST_NGINX_HTML_DIR; }
--- request
GET /nope
--- error_code: 404
--- error_log
open() "$TEST_NGINX_HTML_DIR/nope" failed
No such file or directory



=== TEST 5: POST body gets a Content-Length
--- config
    location /p { return 200 "len=$content_length method=$request_method"; }
--- request
POST /p
hello
--- response_body chomp
len=5 method=POST
--- error_code: 200



=== TEST 6: several requests, per-request expectations
--- config
    location /a { return 200 "a"; }
    location /b { return 201 "b"; }
--- request eval
["GET /a", "GET /b", "GET /a HTTP/1.0"]
--- error_code eval
[200, 201, 200]
--- response_body eval
["a", "b", "a"]
--- response_headers
Content-Type: text/plain



=== TEST 7: raw HTTP/1.0 request without Host
--- config
    location /h { return 200 "[$host]"; }
--- raw_request eval
"GET /h HTTP/1.0\r\n\r\n"
--- response_body chomp
[localhost]
--- error_code: 200



=== TEST 8: must_die, http_config line 1 is nginx.conf line 3
--- http_config
bogus_directive on;
--- config
--- must_die
--- error_log
unknown directive "bogus_directive"
nginx.conf:3



=== TEST 9: must_die, leading blank line of http_config is kept (line 2 = conf line 4)
--- http_config

    bogus_directive2 on;
--- must_die
--- error_log eval
qr/unknown directive "bogus_directive2" in \S+nginx\.conf:4\b/



=== TEST 10: backend server in http_config on PORT2 via proxy_pass
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / { return 200 "backend:$server_port:$http_host"; }
    }
--- config
    location / { proxy_pass http://127.0.0.1:$TEST_NGINX_PORT2; proxy_set_header Host $host; }
--- request
GET /x
--- more_headers
Host: proxied.example
--- response_body chomp
backend:$TEST_NGINX_PORT2:proxied.example
--- response_body_like: ^backend:\d+:proxied\.example$
--- no_error_log
[error]



=== TEST 11: chunked response is decoded
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        location / { return 200 'x <!--# echo var="nothing" default="bbb" --> x'; }
    }
--- config
    location / {
        proxy_pass http://127.0.0.1:$TEST_NGINX_PORT3;
        ssi on;
        ssi_types *;
    }
--- request
GET /
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body chomp
x bbb x



=== TEST 12: HEAD has no body
--- config
    location / { return 200 "hello"; }
--- request
HEAD /
--- error_code: 200
--- response_headers
Content-Length: 5
--- response_body chomp



=== TEST 13: eval'd log patterns, main_config and wait
--- main_config
env TEST_NGINX_DUMMY_ENV;
--- config
    location / { return 200; }
--- request
GET /
--- wait: 0.1
--- error_log eval
[qr/start worker process \d+/, "using the \"epoll\" event method"]
--- no_error_log eval
qr/\[(?:error|warn)\]/



=== TEST 14: raw_request eval array is several requests; user_files included by http_config
--- http_config
    map $host $in_file {
        include  $TEST_NGINX_HTML_DIR/hosts.conf;
        default  no;
    }
--- config
    location / { return 200 "$host=$in_file\n"; }
--- user_files
>>> hosts.conf
a.example.com  yes;
--- raw_request eval
["GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
 "GET / HTTP/1.0\r\nHost: b.example.com\r\n\r\n",
 "GET / HTTP/1.0\r\n\r\n"]
--- response_body eval
["a.example.com=yes\n", "b.example.com=no\n", "localhost=no\n"]
--- error_code: 200



=== TEST 15: user_files are served, with mtime and substitution
--- config
    location / { root $TEST_NGINX_HTML_DIR; }
--- user_files
>>> sub/page.txt 1700000000
port $TEST_NGINX_SERVER_PORT
--- request
GET /sub/page.txt
--- response_headers
Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT
--- response_body
port $TEST_NGINX_SERVER_PORT



=== TEST 16: preprocessor: a fixture after http_config, a default --- config
--- backend eval: "from " . "the fixture"
--- request
GET /x
--- response_body chomp
from the fixture
--- no_error_log
[error]



=== TEST 17: preprocessor: a block's own --- config is kept
--- backend: unused
--- config
    location / { return 200 "own config"; }
--- request
GET /
--- response_body chomp
own config



=== TEST 18: preprocessor: the fixture goes after the block's lines (line 2 = conf line 4)
--- backend: unused
--- http_config
    # line 1 of http_config
    bogus_directive3 on;
--- must_die
--- error_log eval
qr/unknown directive "bogus_directive3" in \S+nginx\.conf:4\b/



=== TEST 19: preprocessors run in Test::Nginx's order: the one added last first
--- order: ran:
--- request
GET /
--- response_body chomp
ran: last first
