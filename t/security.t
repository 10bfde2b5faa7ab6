# A routing decision never opens a door that the configuration's access
# rules keep shut.  The security cases live here, in one place:
#   - subrequests (auth_request, mirror, SSI, addition, slice, cache
#     background updates) are never answered by a jump or a 421;
#   - a jump happens after the location's access checks, and once;
#   - realip configured in a location is what rollouts see;
#   - what comes back after a jump gets a clear answer, and jump chains
#     that can be seen in the configuration fail nginx -t;
#   - dynroute_health and CORS preflights answer clients, not subrequests.
# Each case comes with a control written with map, where one applies.
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Fixtures qw($STABLE_CANARY);
use Test::Nginx::Dynroute::Proc qw(spew);

my $curl = `command -v curl 2>/dev/null`;
chomp $curl;

# The reported auth_request bypass, over HTTP/2 without TLS (h2c) as well:
# IP-literal hosts must get the auth service's 401 like every other host.
{
    my $srv = start_nginx(
        http_config => <<'CONF',
    upstream app     { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream admin   { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream authsvc { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / { return 200 "admin content $request_uri\n"; }
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 401; }
    dynroute_table edge   { ip @local; default app; }
    dynroute_table admins { default admin; }
    server {
        listen 127.0.0.1:$TEST_NGINX_SERVER_PORT http2;
        server_name h2c;
        dynroute edge;
        location /        { proxy_pass http://$dynroute_upstream; }
        location /admin/  {
            dynroute admins;
            auth_request /_auth;
            proxy_pass http://$dynroute_upstream;
        }
        location = /_auth { internal; proxy_pass http://authsvc; }
        location @local   { return 200 "ok\n"; }
    }
CONF
        config => "    location / { return 404; }\n",
    );
    # the h2c server is the first server on the block's port, so the
    # default for these hosts; http2 on one listen applies to the port
  SKIP: {
        skip 'curl is not installed', 7 unless $curl;
        for my $host ('shop.example.com', '10.0.0.1', '[::1]',
                      "127.0.0.1:$srv->{port}")
        {
            my $out = `$curl -s --http2-prior-knowledge -o /dev/null \\
                -w '%{http_version} %{http_code}' -H 'Host: $host' \\
                http://127.0.0.1:$srv->{port}/admin/x`;
            is($out, '2 401', "h2c: Host $host gets the auth service's 401");
        }
        my $out = `$curl -s --http2-prior-knowledge -H 'Host: 10.0.0.1' \\
            http://127.0.0.1:$srv->{port}/probe`;
        is($out, "ok\n", 'h2c: an IP host outside /admin/ is still served locally');
        $out = `$curl -s --http2-prior-knowledge -H 'Host: shop.example.com' \\
            http://127.0.0.1:$srv->{port}/y`;
        is($out, "admin content /y\n", 'h2c: an ordinary host is proxied');
        $out = `$curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' \\
            -H 'Host: 10.0.0.1' http://127.0.0.1:$srv->{port}/admin/`;
        is($out, '401', 'h2c: /admin/ itself, IP host: 401');
    }
    error_log_ok(stop_nginx($srv), 'h2c auth_request: no alert/crit/crash');
}

# mirror: the mirror subrequest inherits the server's table; it must be
# proxied where its location says, never jump to @local.  Counted at the
# mirror backend.
{
    my $srv = start_nginx(
        http_config => <<'CONF',
    upstream app    { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream shadow { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "app\n"; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        access_log $TEST_NGINX_PREFIX/logs/shadow.log;
        return 200 "shadow\n";
    }
    dynroute_table edge  { ip @local; default app; }
    dynroute_table plain { default app; }
CONF
        config => <<'CONF',
    dynroute edge;
    location /m/ {
        dynroute plain;
        mirror /_mirror;
        proxy_pass http://$dynroute_upstream;
    }
    location = /_mirror {
        internal;
        proxy_pass http://shadow$request_uri;
    }
    location @local {
        log_subrequest on;
        access_log $TEST_NGINX_PREFIX/logs/local.log;
        return 200 "local\n";
    }
CONF
    );
    my @got;
    for my $host ('10.0.0.1', 'shop.example.com', '[::1]') {
        my $res = http_get($srv, '/m/x', { Host => $host });
        push @got, "$res->{status} $res->{body}";
    }
    is("@got", "200 app\n 200 app\n 200 app\n", 'mirrored requests are proxied');
    my $shadow = file_lines("$srv->{prefix}/logs/shadow.log", qr{GET /m/x}, 3);
    is($shadow, 3, 'mirror: each of the 3 requests reached the mirror backend');
    is(file_lines("$srv->{prefix}/logs/local.log", qr/./), 0,
       'mirror: no subrequest jumped to @local');
    error_log_ok(stop_nginx($srv), 'mirror: no alert/crit/crash');
}

# slice: the range subrequests are clones that evaluate $dynroute_upstream
# themselves; every slice of one response comes from the same variant.
{
    my $body = join '', map { sprintf "%04d\n", $_ } 1 .. 200;    # 1000 bytes
    my $srv = start_nginx(
        http_config => <<'CONF',
    upstream blue  { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream green { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        access_log $TEST_NGINX_PREFIX/logs/blue.log;
        root $TEST_NGINX_HTML_DIR;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        access_log $TEST_NGINX_PREFIX/logs/green.log;
        root $TEST_NGINX_HTML_DIR;
    }
    dynroute_rollout bg {
        variant blue  blue  50%;
        variant green green 50%;
        key $http_x_user;
    }
    dynroute_table edge { ip @local; default bg; }
CONF
        config => <<'CONF',
    dynroute edge;
    location /s/ {
        slice 100;
        proxy_set_header Range $slice_range;
        proxy_http_version 1.1;
        proxy_pass http://$dynroute_upstream;
        add_header X-Variant $dynroute_variant;
    }
    location @local { return 200 "local\n"; }
CONF
    );
    mkdir "$srv->{html_dir}/s";
    spew("$srv->{html_dir}/s/f.txt", $body);
    my %variants;
    for my $u (1 .. 4) {
        my $res = http_get($srv, '/s/f.txt', { Host => 'shop.example.com', 'X-User' => "u$u" });
        is($res->{body}, $body, "slice: user u$u gets the whole file, assembled from slices");
        $variants{"u$u"} = $res->{headers}{'x-variant'}[0];
    }
    my $want_blue = 10 * grep { $_ eq 'blue' } values %variants;
    my $n_blue = file_lines("$srv->{prefix}/logs/blue.log", qr/GET/, $want_blue);
    my $n_green = file_lines("$srv->{prefix}/logs/green.log", qr/GET/,
                             40 - $want_blue);
    is("$n_blue $n_green", "$want_blue " . (40 - $want_blue),
       'slice: every 100-byte slice of a response came from its own variant');
    my $res = http_get($srv, '/s/f.txt', { Host => '10.0.0.1' });
    is($res->{body}, "local\n", 'slice: an IP host is still served locally');
    error_log_ok(stop_nginx($srv), 'slice: no alert/crit/crash');
}

# proxy_cache_background_update: the update is a background subrequest that
# evaluates $dynroute_upstream; it refreshes the cache from the right
# upstream and never jumps.
{
    my $srv = start_nginx(
        http_config => <<'CONF',
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        access_log $TEST_NGINX_PREFIX/logs/app.log;
        location / {
            add_header Cache-Control "max-age=1";
            return 200 "app $msec\n";
        }
    }
    proxy_cache_path $TEST_NGINX_PREFIX/tmp/cache keys_zone=c:1m;
    dynroute_table edge { ip @local; default app; }
CONF
        config => <<'CONF',
    dynroute edge;
    location / {
        proxy_cache c;
        proxy_cache_key $host$request_uri;
        proxy_cache_use_stale updating;
        proxy_cache_background_update on;
        proxy_pass http://$dynroute_upstream;
        add_header X-Cache $upstream_cache_status;
    }
    location @local { return 200 "local\n"; }
CONF
    );
    my $r1 = http_get($srv, '/c', { Host => 'shop.example.com' });
    sleep 2;
    my $r2 = http_get($srv, '/c', { Host => 'shop.example.com' });
    my $n = file_lines("$srv->{prefix}/logs/app.log", qr{GET /c}, 2);
    select undef, undef, undef, 0.3;    # the cache entry is written after
    my $r3 = http_get($srv, '/c', { Host => 'shop.example.com' });
    is($r1->{headers}{'x-cache'}[0], 'MISS', 'cache: first request is a miss');
    is($r2->{headers}{'x-cache'}[0], 'STALE', 'cache: the stale copy is served');
    isnt($r3->{body}, $r1->{body}, 'cache: the background update refreshed it');
    is($n, 2, 'cache: the update subrequest was proxied to the upstream');
    error_log_ok(stop_nginx($srv), 'cache background update: no alert/crit/crash');
}

# realip configured in the location: the rollout sees the address that
# $remote_addr, the logs and allow/deny see.
{
    my $srv = start_nginx(
        http_config => $STABLE_CANARY . <<'CONF',
    dynroute_rollout by_source {
        variant stable stable *;
        variant canary canary 0%;
        source 127.0.0.0/8 canary;
    }
    dynroute_rollout by_addr {
        variant stable stable 50%;
        variant canary canary 50%;
        key $remote_addr;
    }
    dynroute_rollout by_default_key {
        variant stable stable 50%;
        variant canary canary 50%;
    }
    dynroute_table src  { default by_source; }
    dynroute_table addr { default by_addr; }
    dynroute_table dflt { default by_default_key; }
CONF
        config => <<'CONF',
    location /src/ {
        dynroute src;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
        add_header X-Addr $remote_addr;
        add_header X-Variant $dynroute_variant;
        proxy_pass http://$dynroute_upstream;
    }
    location /addr/ {
        dynroute addr;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
        proxy_pass http://$dynroute_upstream;
    }
    location /dflt/ {
        dynroute dflt;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
        proxy_pass http://$dynroute_upstream;
    }
    location /deny/ {
        dynroute src;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
        deny 127.0.0.0/8;
        proxy_pass http://$dynroute_upstream;
    }
CONF
    );
    my (%src, %addr, %dflt);
    for my $i (1 .. 200) {
        my $ip = sprintf '198.51.%d.%d', int($i / 250), $i % 250 + 1;
        my $res = http_get($srv, '/src/', { 'X-Forwarded-For' => $ip });
        $src{$res->{body}}++;
        $res = http_get($srv, '/addr/', { 'X-Forwarded-For' => $ip });
        $addr{$res->{body}}++;
        $res = http_get($srv, '/dflt/', { 'X-Forwarded-For' => $ip });
        $dflt{$res->{body}}++;
    }
    is($src{"canary\n"} || 0, 0,
       'realip in the location: source 127.0.0.0/8 matches none of 200 forwarded clients');
    my ($as, $ac) = ($addr{"stable\n"} || 0, $addr{"canary\n"} || 0);
    ok($as > 60 && $ac > 60, 'realip in the location: key $remote_addr '
       . "splits 200 clients (stable $as, canary $ac)");
    my ($ds, $dc) = ($dflt{"stable\n"} || 0, $dflt{"canary\n"} || 0);
    ok($ds > 60 && $dc > 60, 'realip in the location: the default key '
       . "splits 200 clients (stable $ds, canary $dc)");
    my $res = http_get($srv, '/src/', { 'X-Forwarded-For' => '198.51.100.7' });
    is($res->{headers}{'x-addr'}[0], '198.51.100.7', '$remote_addr is the client');
    is($res->{headers}{'x-variant'}[0], 'stable', 'and the variant agrees with it');
    $res = http_get($srv, '/src/');
    is($res->{body}, "canary\n", 'without X-Forwarded-For the proxy itself is the client');
    $res = http_get($srv, '/deny/', { 'X-Forwarded-For' => '198.51.100.7' });
    is($res->{body}, "stable\n", 'deny sees the forwarded client too (control)');
    $res = http_get($srv, '/deny/');
    is($res->{status}, 403, 'deny 127.0.0.0/8 refuses the proxy itself (control)');
    error_log_ok(stop_nginx($srv), 'realip in location: no alert/crit/crash');
}

run_tests();

__DATA__

=== TEST 1: auth_request is not bypassed by an IP-literal Host (the report)
--- http_config
    upstream app     { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream admin   { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream authsvc { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / { return 200 "admin content $request_uri\n"; }
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 401; }
    dynroute_table edge   { ip @local; default app; }
    dynroute_table admins { default admin; }
--- config
    dynroute edge;
    location /        { proxy_pass http://$dynroute_upstream; }
    location /admin/  {
        dynroute admins;
        auth_request /_auth;
        proxy_pass http://$dynroute_upstream;
    }
    location /admin-off/ {
        dynroute off;
        auth_request /_auth;
        proxy_pass http://admin;
    }
    location /admin-inherit/ {
        auth_request /_auth;
        proxy_pass http://$dynroute_upstream;
    }
    location = /_auth { internal; proxy_pass http://authsvc; }
    location @local   { return 200 "ok\n"; }
--- request eval
["GET /admin/x", "GET /admin/x", "GET /admin/x", "GET /admin/x",
 "GET /admin-off/x", "GET /admin-off/x",
 "GET /admin-inherit/x", "GET /admin-inherit/x", "GET /admin-inherit/x",
 "GET /probe"]
--- more_headers eval
["Host: shop.example.com", "Host: 10.0.0.1", "Host: [::1]",
 "Host: 127.0.0.1:8080",
 "Host: 10.0.0.1", "Host: [::1]:443",
 "Host: shop.example.com", "Host: 10.0.0.1", "Host: [2001:db8::1]",
 "Host: 10.0.0.1"]
--- error_code eval
[401, 401, 401, 401, 401, 401, 401, 401, 401, 200]
--- response_body_like eval
["401", "401", "401", "401", "401", "401", "401", "401", "401", "^ok\n\\z"]
--- no_error_log
[error]



=== TEST 2: control: the same setup with map answers 401 to every host
--- http_config
    upstream app     { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream admin   { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream authsvc { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / { return 200 "admin content $request_uri\n"; }
    }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 401; }
    map $host $backend { hostnames; default app; }
--- config
    location /admin/  {
        auth_request /_auth;
        proxy_pass http://admin;
    }
    location = /_auth { internal; proxy_pass http://authsvc; }
--- request eval
["GET /admin/x", "GET /admin/x", "GET /admin/x"]
--- more_headers eval
["Host: shop.example.com", "Host: 10.0.0.1", "Host: [::1]"]
--- error_code eval
[401, 401, 401]
--- no_error_log
[error]



=== TEST 3: a granted auth_request still lets the IP host reach @local after the checks
--- http_config
    upstream app    { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream authok { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "app\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 204; }
    dynroute_table edge { ip @local; default app; }
--- config
    dynroute edge;
    location / {
        auth_request /_auth;
        proxy_pass http://$dynroute_upstream;
    }
    location = /_auth { internal; proxy_pass http://authok; }
    location @local   { return 200 "ok $dynroute_rule\n"; }
--- request eval
["GET /a", "GET /a"]
--- more_headers eval
["Host: 10.0.0.1", "Host: shop.example.com"]
--- response_body eval
["ok ip\n", "app\n"]
--- no_error_log
[error]



=== TEST 4: a jump happens after allow/deny: an IP host cannot skip them
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "app\n"; }
    dynroute_table edge { ip @local; default app; }
--- config
    location /private/ {
        dynroute edge;
        deny all;
        proxy_pass http://$dynroute_upstream;
    }
    location /basic/ {
        dynroute edge;
        auth_basic "private";
        auth_basic_user_file $TEST_NGINX_HTML_DIR/htpasswd;
        proxy_pass http://$dynroute_upstream;
    }
    location @local { root $TEST_NGINX_HTML_DIR; }
--- user_files
>>> private/secret.txt
secret
>>> basic/secret.txt
secret
>>> htpasswd
user:{PLAIN}pass
--- request eval
["GET /private/secret.txt", "GET /private/secret.txt",
 "GET /basic/secret.txt", "GET /basic/secret.txt"]
--- more_headers eval
["Host: 10.0.0.1", "Host: shop.example.com",
 "Host: 10.0.0.1", "Host: 10.0.0.1\nAuthorization: Basic dXNlcjpwYXNz"]
--- error_code eval
[403, 403, 401, 200]
--- response_body_like eval
["403", "403", "401", "^secret\n\\z"]



=== TEST 5: a return or rewrite in the location wins over the table's jump and 421
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "app\n"; }
    dynroute_table edge { ip @local; a.example.com app; }
--- config
    dynroute edge;
    location = /moved { return 301 /new; }
    location /old/ { rewrite ^/old/(.*)$ /new/$1 last; }
    location /new/ { proxy_pass http://$dynroute_upstream; }
    location @local { return 200 "local $uri\n"; }
--- request eval
["GET /moved", "GET /moved", "GET /old/x", "GET /old/x", "GET /old/x"]
--- more_headers eval
["Host: 10.0.0.1", "Host: nowhere.example.com", "Host: 10.0.0.1",
 "Host: a.example.com", "Host: nowhere.example.com"]
--- error_code eval
[301, 301, 200, 200, 421]
--- response_body_like eval
["301", "301", "^local /new/x\n\\z", "^app\n\\z", "421"]



=== TEST 6: SSI include virtual: a fragment is never jumped; with no upstream it is a clear error
--- http_config
    upstream frag { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "fragment"; }
    dynroute_table edge { ip @local; default frag; }
--- config
    dynroute edge;
    location /page/ {
        dynroute off;
        ssi on;
        root $TEST_NGINX_HTML_DIR;
    }
    location = /frag { proxy_pass http://$dynroute_upstream; }
    location = /frag-static { proxy_pass http://frag; }
    location @local { return 200 "LOCAL"; }
--- user_files
>>> page/index.html
[<!--# include virtual="/frag" -->|<!--# include virtual="/frag-static" -->]
--- request eval
["GET /page/index.html", "GET /page/index.html", "GET /page/index.html"]
--- more_headers eval
["Host: shop.example.com", "Host: 10.0.0.1", "Host: [::1]"]
--- response_body_like eval
[qr/^\[fragment\|fragment\]\n\z/, qr/^\[(?!LOCAL).*\|fragment\]\n\z/s,
 qr/^\[(?!LOCAL).*\|fragment\]\n\z/s]
--- error_log eval
qr/dynroute: no upstream to pass to: table "edge" sends host "10\.0\.0\.1" to the named location "\@local", which a subrequest does not jump to/
--- no_error_log
invalid URL prefix



=== TEST 7: add_before_body / add_after_body: the additions are never jumped
--- http_config
    upstream frag { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "added|"; }
    dynroute_table edge { ip @local; default frag; }
--- config
    dynroute edge;
    location /page/ {
        dynroute off;
        add_before_body /before;
        add_after_body /before;
        addition_types text/plain;
        root $TEST_NGINX_HTML_DIR;
    }
    location = /before { proxy_pass http://$dynroute_upstream; }
    location @local { return 200 "LOCAL|"; }
--- user_files
>>> page/a.txt
body|
--- request eval
["GET /page/a.txt", "GET /page/a.txt"]
--- more_headers eval
["Host: shop.example.com", "Host: 10.0.0.1"]
--- response_body_like eval
[qr/^added\|body\|\nadded\|\z/, qr/^(?!.*LOCAL).*body\|\n(?!.*LOCAL)/s]
--- error_log eval
qr/dynroute: no upstream to pass to: table "edge" sends host "10\.0\.0\.1" to the named location "\@local", which a subrequest does not jump to/
--- no_error_log
invalid URL prefix



=== TEST 8: a subrequest whose decision is a named location or no rule gets a clear 500
--- http_config
    upstream authsvc { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream app     { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 204; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "granted\n"; }
    dynroute_table by_host { ip @nowhere; a.example.com authsvc; }
--- config
    location / {
        auth_request /_auth;
        proxy_pass http://app;
    }
    location = /_auth {
        internal;
        dynroute by_host;
        proxy_pass http://$dynroute_upstream;
    }
    location @nowhere { return 204; }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["Host: a.example.com", "Host: 10.0.0.1", "Host: b.example.com"]
--- error_code eval
[200, 500, 500]
--- error_log eval
[qr/dynroute: no upstream to pass to: table "by_host" sends host "10\.0\.0\.1" to the named location "\@nowhere", which a subrequest does not jump to/,
 qr/dynroute: no upstream to pass to: no rule of table "by_host" matches host "b\.example\.com"/]
--- no_error_log
invalid URL prefix



=== TEST 9: dynroute_health does not answer subrequests: an auth_request pointed at it grants nothing
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "app\n"; }
--- config
    location /admin/ {
        auth_request /health;
        proxy_pass http://app;
    }
    location = /health { dynroute_health; }
    location /page/ {
        ssi on;
        root $TEST_NGINX_HTML_DIR;
    }
--- user_files
>>> page/index.html
[<!--# include virtual="/health" -->]
--- request eval
["GET /admin/x", "GET /health", "GET /page/index.html"]
--- error_code eval
[403, 200, 200]
--- response_body_like eval
[qr/403 Forbidden/, qr/^"i am alive"\z/, qr/^\[(?!"i am alive")/]
--- error_log
dynroute_health answers clients only, not a subrequest



=== TEST 10: dynroute_health after an internal redirect answers as configured
--- config
    location / { error_page 404 = /health; return 404; }
    location = /health { dynroute_health; }
--- request
GET /anything
--- error_code: 200
--- response_body chomp
"i am alive"



=== TEST 11: after a jump, a rewrite back into a routed location gets a clear 500
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "app $uri\n"; }
    dynroute_table edge { ip @local; default app; }
--- config
    location / { dynroute edge; proxy_pass http://$dynroute_upstream; }
    location @local { rewrite ^ /rw2 last; }
    location = /rw2 { dynroute edge; proxy_pass http://$dynroute_upstream; }
--- request eval
["GET /x", "GET /x"]
--- more_headers eval
["Host: 10.0.0.1", "Host: shop.example.com"]
--- error_code eval
[500, 200]
--- error_log eval
qr/dynroute: no upstream to pass to: table "edge" sends host "10\.0\.0\.1" to the named location "\@local", and the request came back from there by an internal redirect/
--- no_error_log
invalid URL prefix



=== TEST 12: after a jump, an error page in a location that inherits dynroute is served
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "app\n"; }
    dynroute_table edge { ip @local; default app; }
--- config
    dynroute edge;
    error_page 404 /404.html;
    location / { proxy_pass http://$dynroute_upstream; }
    location = /404.html { root $TEST_NGINX_HTML_DIR; }
    location @local { return 404; }
--- user_files
>>> 404.html
not here
--- request
GET /x
--- more_headers
Host: 10.0.0.1
--- error_code: 404
--- response_body
not here
--- no_error_log
[error]



=== TEST 13: two tables whose ip rules jump to each other's named locations fail nginx -t
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table ta { ip @lb; default app; }
    dynroute_table tb { ip @la; default app; }
--- config
    location / { dynroute ta; proxy_pass http://$dynroute_upstream; }
    location @la { dynroute ta; proxy_pass http://$dynroute_upstream; }
    location @lb { dynroute tb; proxy_pass http://$dynroute_upstream; }
--- must_die
--- error_log eval
qr/\[emerg\] dynroute table "tb" \(used in .*nginx\.conf:\d+\) sends IP hosts to the named location "\@la", but it runs in "\@lb", where table "ta" \(.*nginx\.conf:4\) sends them: a request jumps to a named location only once/



=== TEST 14: a chain of two jumps for IP hosts fails nginx -t
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table outer { ip @probe; default app; }
    dynroute_table inner { ip @local; default app; }
--- config
    location / { dynroute outer; proxy_pass http://$dynroute_upstream; }
    location @probe { dynroute inner; proxy_pass http://$dynroute_upstream; }
    location @local { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] dynroute table "inner" \(used in .*nginx\.conf:\d+\) sends IP hosts to the named location "\@local", but it runs in "\@probe", where table "outer" \(.*nginx\.conf:4\) sends them/



=== TEST 15: a jump into a location that routes with another table is fine when that table agrees
--- http_config
    upstream app   { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream probe { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "backend $host\n"; }
    dynroute_table edge     { ip @local; default app; }
    dynroute_table api      { ip @local; default app; }
    dynroute_table internal { ip probe; default probe; }
--- config
    dynroute edge;
    location /api/ { dynroute api; proxy_pass http://$dynroute_upstream; }
    location /probe/ { dynroute internal; proxy_pass http://$dynroute_upstream; }
    location @local { return 200 "local $dynroute_rule\n"; }
--- request eval
["GET /api/x", "GET /", "GET /probe/", "GET /api/x"]
--- more_headers eval
["Host: 10.0.0.1", "Host: [::1]", "Host: 10.0.0.1", "Host: a.example.com"]
--- response_body eval
["local ip\n", "local ip\n", "backend probe\n", "backend app\n"]
--- no_error_log
[error]



=== TEST 16: a jump chain that the configuration does not prove: the second jump is refused with a clear 500
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "app\n"; }
    dynroute_table outer { old.example.com @moved; default app; }
    dynroute_table inner { default @gone; }
--- config
    location / { dynroute outer; proxy_pass http://$dynroute_upstream; }
    location @moved { dynroute inner; proxy_pass http://$dynroute_upstream; }
    location @gone { return 410; }
--- request
GET /
--- more_headers
Host: old.example.com
--- error_code: 500
--- error_log eval
qr/dynroute: no upstream to pass to: table "inner" sends host "old\.example\.com" to the named location "\@gone", and the request was already sent to "\@moved": a request jumps to a named location only once/



=== TEST 17: dynroute is not allowed at http level
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_table edge { default app; }
    dynroute edge;
--- config
    location / { proxy_pass http://$dynroute_upstream; }
--- must_die
--- error_log eval
qr/\[emerg\] "dynroute" is allowed in server and location only, not in http: put "dynroute edge;" in the server\{\} or location\{\} blocks it is for in \S+nginx\.conf:5$/m



=== TEST 18: a mirror of a CORS preflight is not answered by the module
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / { return 200 "$request_method $uri\n"; }
    }
--- config
    location /api/ {
        mirror /_m;
        proxy_pass http://app;
    }
    location = /_m {
        internal;
        dynroute_cors on;
        dynroute_cors_origins https://a.example;
        proxy_pass http://app/mirror;
    }
--- request
OPTIONS /api/x
--- more_headers
Origin: https://a.example
Access-Control-Request-Method: PUT
--- error_code: 200
--- response_body
OPTIONS /api/x
--- response_headers
! Access-Control-Allow-Origin



=== TEST 19: $dynroute_upstream where no table is in effect gets a clear 500
--- http_config
    upstream app { server 127.0.0.1:$TEST_NGINX_PORT2; }
--- config
    location / { proxy_pass http://$dynroute_upstream; }
--- request
GET /
--- error_code: 500
--- error_log
dynroute: no upstream to pass to: no dynroute table is in effect here
--- no_error_log
invalid URL prefix
