# A rollout's fallback and overrides never do more than they say (issue
# 21, findings 7 and 8):
#   - fallback=primary passes a request to the primary only when the chosen
#     variant never received it; a request the canary read (it closed the
#     connection without answering) is not sent to stable as well, whatever
#     its method, unless resend=on says so;
#   - override_from treats an IPv4 client of a dual-stack listener
#     (::ffff:127.0.0.1) as IPv4, as nginx's allow/deny do: "::/0" trusts
#     IPv6 clients only.
use lib 't/lib';
use Test::Nginx::Dynroute;

use IO::Socket::IP ();

# ---- finding 7: a canary that reads the request and closes the connection

our $backends = <<'CONF';
    log_format counted "$server_port $request $status";
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        access_log $TEST_NGINX_PREFIX/logs/backends.log counted;
        location / { return 200 "stable\n"; }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        access_log $TEST_NGINX_PREFIX/logs/backends.log counted;
        location / { return 444; }          # reads the request, closes
    }
    upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream canary { server 127.0.0.1:$TEST_NGINX_PORT3; }
    dynroute_rollout shop {
        variant stable stable 0%;
        variant canary canary 100%;
        primary stable;
    }
    dynroute_table edge { default shop; }
CONF

sub send_to {
    my ($srv, $method, $path) = @_;
    my $body = $method eq 'PUT' ? 'hello' : '';
    return http_raw($srv, "$method $path HTTP/1.1\r\nHost: shop.example.com\r\n"
        . "Connection: close\r\nContent-Length: " . length($body)
        . "\r\n\r\n$body", 10);
}

# as reported: fallback=primary alone
{
    my $srv = start_nginx(http_config => $backends . <<'CONF', config => <<'CONF');
    upstream edge_pass { dynroute_balancer fallback=primary; }
CONF
    location / { dynroute edge; proxy_pass http://edge_pass; }
CONF
    my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
    my $blog = "$srv->{prefix}/logs/backends.log";

    for my $m (qw(GET PUT DELETE)) {
        my $r = send_to($srv, $m, "/$m");
        is($r->{status}, 502, "$m: the canary read it and closed: 502, as "
                              . 'stock nginx answers for a one-server upstream');
        is(file_lines($blog, qr/^$p3 $m \/$m /, 1), 1, "$m: it reached the canary once");
        is(file_lines($blog, qr/^$p2 $m \/$m /, 0), 0, "$m: it never reached stable");
    }

    my $log = stop_nginx($srv);
    like($log, qr/\[warn\].*dynroute: upstream "canary" failed after the request was sent to it: not passing it to the primary "stable" too \(dynroute_balancer resend=on would\)/,
         'the log says the request was sent, and why it is not passed on');
    unlike($log, qr/failed to connect/, 'and never that the connection failed');
    error_log_ok($log, 'a canary that reads and closes');
}

# ---- finding 8: override_from ::/0 and a dual-stack listener

my $v6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1);

SKIP: {
    skip 'no IPv6 loopback', 9 unless $v6;
    close $v6;

    my $srv = start_nginx(http_config => <<'CONF', config => <<'CONF');
    upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream canary { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "ok\n"; }
    dynroute_rollout shop {
        variant stable stable 100%;
        variant canary canary 0%;
        header X-Canary;
        override_from ::/0;
    }
    dynroute_table edge { default shop; }
    server {
        listen [::]:$TEST_NGINX_PORT3 ipv6only=off;
        location / {
            dynroute edge;
            proxy_pass http://$dynroute_upstream;
            add_header X-Variant "$dynroute_variant $dynroute_reason" always;
        }
        # nginx's own rule, for comparison
        location /acl { allow ::/0; deny all; dynroute_health; }
    }
CONF
    location / { return 404; }
CONF
    my $p3 = $srv->{port3};
    my $get = sub {
        my ($host, $path) = @_;
        my $s = IO::Socket::IP->new(PeerHost => $host, PeerPort => $p3,
                                    Proto => 'tcp', Timeout => 5)
            or return "connect $host: $@";
        print {$s} "GET $path HTTP/1.1\r\nHost: shop.example.com\r\n"
                 . "X-Canary: canary\r\nConnection: close\r\n\r\n";
        local $/;
        my $r = <$s>;
        close $s;
        my ($status) = $r =~ m{^HTTP/1\.1 (\d+)};
        my ($variant) = $r =~ /^X-Variant: ([^\r]*)\r$/m;
        return "$status " . ($variant // '-');
    };

    is($get->('127.0.0.1', '/acl'), '403 -',
       'control: nginx\'s "allow ::/0" refuses an IPv4 client of the dual-stack listener');
    is($get->('127.0.0.1', '/x'), '200 stable weight',
       'override_from ::/0 does not trust it either: the header is ignored');
    is($get->('::1', '/acl'), '200 -', 'control: nginx allows an IPv6 client');
    is($get->('::1', '/x'), '200 canary header',
       'override_from ::/0 trusts an IPv6 client: the header picks the canary');

    error_log_ok(stop_nginx($srv), 'override_from ::/0 on a dual-stack listener');

    # and an IPv4 range trusts the IPv4 client of the dual-stack listener

    $srv = start_nginx(http_config => <<'CONF', config => <<'CONF');
    upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream canary { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "ok\n"; }
    dynroute_rollout shop {
        variant stable stable 100%;
        variant canary canary 0%;
        header X-Canary;
        override_from 127.0.0.0/8;
    }
    dynroute_table edge { default shop; }
    server {
        listen [::]:$TEST_NGINX_PORT3 ipv6only=off;
        location / {
            dynroute edge;
            proxy_pass http://$dynroute_upstream;
            add_header X-Variant "$dynroute_variant $dynroute_reason" always;
        }
        location /acl { allow 127.0.0.0/8; deny all; dynroute_health; }
    }
CONF
    location / { return 404; }
CONF
    $p3 = $srv->{port3};
    is($get->('127.0.0.1', '/acl'), '200 -',
       'control: nginx\'s "allow 127.0.0.0/8" allows the IPv4 client of the dual-stack listener');
    is($get->('127.0.0.1', '/x'), '200 canary header',
       'override_from 127.0.0.0/8 trusts it too');
    is($get->('::1', '/x'), '200 stable weight', 'and not an IPv6 client');
    error_log_ok(stop_nginx($srv), 'override_from 127.0.0.0/8 on a dual-stack listener');
}

# resend=on: sent again where proxy_next_upstream would retry (GET, PUT,
# DELETE), never a POST
{
    my $srv = start_nginx(http_config => $backends . <<'CONF', config => <<'CONF');
    upstream resend_pass { dynroute_balancer fallback=primary resend=on; }
CONF
    location / { dynroute edge; proxy_pass http://resend_pass; }
CONF
    my ($p2, $p3) = ($srv->{port2}, $srv->{port3});
    my $blog = "$srv->{prefix}/logs/backends.log";

    for my $m (qw(GET PUT DELETE)) {
        my $r = send_to($srv, $m, "/$m");
        is("$r->{status} $r->{body}", "200 stable\n",
           "resend=on, $m: sent again, to the primary");
        is(file_lines($blog, qr/^$p3 $m \/$m /, 1)
           . file_lines($blog, qr/^$p2 $m \/$m /, 1), '11',
           "resend=on, $m: once at the canary, once at stable");
    }

    my $r = http_raw($srv, "POST /post HTTP/1.1\r\nHost: shop.example.com\r\n"
        . "Connection: close\r\nContent-Length: 5\r\n\r\nhello", 10);
    is($r->{status}, 502, 'resend=on, POST: not sent again (proxy_next_upstream)');
    is(file_lines($blog, qr/^$p2 POST /, 0), 0, 'resend=on, POST: never at stable');

    my $log = stop_nginx($srv);
    like($log, qr/\[warn\].*dynroute: upstream "canary" failed after the request was sent to it \(resend=on\), passing the request to the primary "stable"/,
         'resend=on: the log says what was sent again');
    error_log_ok($log, 'resend=on');
}

done_testing();
