# Hostile Host headers and request shapes against one running nginx: every
# one gets an HTTP answer (nginx's own 400 where it refuses the Host first),
# none fails inside nginx or is proxied to an undefined place (no 500-504),
# the workers that answered the first request answer the last one (no
# worker died and was respawned), and error.log has no alert, crash or
# sanitizer report.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp wait_for);

my $http = <<'CONF';
    large_client_header_buffers 4 128k;
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "B\n"; }
    dynroute_table edge {
        ip                 @local;
        a.example.com      service_a;
        *.a.example.com    service_a;
        .example.org       service_a;
        www.example.*      service_b;
        \default           service_a;
        \ip                service_a;
        ~^(?<tenant>[a-z0-9-]+)\.t\.example\.com$  service_b;
        ~*^(a+)+$          service_a;
        ~^x+\.com$         service_b;
        default            service_b;
    }
CONF

my $config = <<'CONF';
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
        add_header X-Rule $dynroute_rule always;
    }
    location @local { return 200 "local\n"; }
    location = /health { dynroute_health; }
CONF

# Hosts sent as "Host: <value>" on HTTP/1.1.
my @hosts = (
    '', ' ', '.', '..', '...', 'a..b', 'a/b', 'a\\b', "\x00", "a\x00b",
    "\x01\x02", "\x7f", "\x80\x81", "\xff" x 100, "caf\xc3\xa9.example.com",
    "\xc0\xaf.example.com", "a.example.com\xff",
    'x' x 60000,                                   # huge
    join('.', ('a') x 10000),                      # 10,000 labels
    join('.', ('a') x 10000) . '.a.example.com',   # ... under a wildcard
    join('.', ('b') x 5000) . '.t.example.com',    # ... into a regex
    '[', ']', '[]', '[::1', '::1]', '[::1]]', '[[::1]]', '[::1]:', '[::1]:abc',
    '[::1]:99999999', '[::1]x', '[::ffff:127.0.0.1]', '[::ffff:127.0.0.1]:80',
    '[::ffff:7f00:1]', '[fe80::1%25eth0]', '[1:2:3:4:5:6:7:8:9]', '[::1]:80:80',
    '[' . ('0' x 5000) . ']', '::1', '1.2.3.4:', '1.2.3.4::80',
    '1.2.3.4:80:80', '1.2.3.4:-1', '1.2.3.4:65536', '1.2.3.4' . (':1' x 1000),
    ':80', ':', 'a.example.com:', 'a.example.com:0', 'a.example.com.:80',
    'A.EXAMPLE.COM', 'a.example.com..', '256.256.256.256', '0x7f.0.0.1',
    '127.1', '%31%32%37.0.0.1', 'a.:80.1', '.:.', '-', '_._', '*.example.com',
    '~^a', 'default', 'ip', "a b", "a\tb", '(?<x>', ('a' x 40) . '!',
    'www.example.', 'www.example.x.y.z', 'example.org', '.example.org',
    'x' x 3000 . '.com', ('a' x 63 . '.') x 200 . 'com',
);

my @shapes = (
    "GET / HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.0\r\nHost: a.example.com\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    "GET http://www.example.com/ HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
    "GET http://10.0.0.1:80/ HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
    "GET http://[::1]/ HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
    "GET http://a..b/ HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
    "GET http://a.example.com:99999/ HTTP/1.1\r\nConnection: close\r\n\r\n",
    "GET http://\@a.example.com/ HTTP/1.1\r\nConnection: close\r\n\r\n",
    "GET https://user:pw\@a.example.com/ HTTP/1.1\r\nConnection: close\r\n\r\n",
    "CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com:443\r\nConnection: close\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n .example.com\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost:    a.example.com   \r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nhOsT: A.Example.Com\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\nGET / HTTP/1.1\r\nHost: 10.0.0.1\r\nConnection: close\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    "HEAD / HTTP/1.1\r\nHost: [::ffff:10.0.0.1]\r\nConnection: close\r\n\r\n",
    "GET /health HTTP/1.1\r\nHost: \xff.\xfe\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\nHost: a.example.com\nConnection: close\n\n",
    "GET / HTTP/2.0\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n0\r\n\r\n",
);

my @requests = (
    (map { "GET / HTTP/1.1\r\nHost: $_\r\nConnection: close\r\n\r\n" } @hosts),
    @shapes,
);

sub printable {
    my ($s) = @_;
    $s = substr($s, 0, 60) . '...(' . length($s) . ' bytes)' if length $s > 60;
    $s =~ s/([^\x21-\x7e])/sprintf '\\x%02x', ord $1/ge;
    return $s;
}

# The worker processes of a master, from /proc.
sub workers_of {
    my ($master) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        next unless slurp($stat) =~ /^(\d+) \(.*\) \S (\d+) /;
        push @pids, $1 if $2 == $master;
    }
    # master_process off (under valgrind): the master serves by itself
    return join ',', @pids ? sort { $a <=> $b } @pids : ($master);
}

my $srv = start_nginx(http_config => $http, config => $config, workers => 2);
# both workers up: they start after the master listens, slowly under ASan
# (under valgrind, master_process off, the master serves alone)
my $single = ($ENV{TEST_NGINX_BINARY} // '') =~ /valgrind/;
my $before = '';
wait_for(10, sub { $before = workers_of($srv->{pid}); $single || $before =~ /,/ }, 0.1);
ok(length $before, "workers running ($before)");

my $res = http_get($srv, '/', { Host => 'a.example.com' });
is($res->{body}, "A\n", 'a first request is proxied');

for my $req (@requests) {
    my $what = printable($req =~ /\AGET \/ HTTP\/1\.1\r\nHost: (.*?)\r\nConnection: close\r\n\r\n\z/s
                         ? "Host: $1" : $req);
    $res = http_raw($srv, $req, 30);
    note("$res->{status} " . ($res->{headers}{'x-rule'}[0] // '-') . " $what")
        if defined $res->{status};
    ok(!defined $res->{error} && defined $res->{status}
       && $res->{status} =~ /\A\d\d\d\z/ && $res->{status} !~ /\A50[0-4]\z/,
       "an HTTP answer, no 500-504, to $what")
      or diag('got: ' . (defined $res->{error} ? $res->{error}
                         : "status $res->{status}") . "\n"
              . printable(substr($res->{raw} // '', 0, 300)));
}

is(workers_of($srv->{pid}), $before, 'the same workers are still running');
$res = http_get($srv, '/', { Host => 'x.a.example.com' });
is($res->{body}, "A\n", 'and a last request is proxied');
$res = http_get($srv, '/', { Host => '10.1.2.3:8080' });
is($res->{body}, "local\n", 'and an IP host is still served locally');

my $log = stop_nginx($srv);
# also fails on "exited on signal": a worker that crashed
error_log_ok($log, 'no alert/crit/crash/sanitizer report in error.log');

done_testing();
