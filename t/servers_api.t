# Runtime lists of dynroute_servers upstreams through a real nginx with 2
# workers: every resource of {prefix}upstreams and its errors, a change
# that every worker routes by, a request in flight to a removed server,
# max_fails state that a weight change keeps, the list across a reload and
# a restart with state=, a full max= and a full zone.  Backends answer with
# their port and count what reaches them in access logs of their own.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp free_ports track stop_proc);
use IO::Socket::IP;
use JSON::PP ();
use POSIX ();
use File::Temp ();
use Time::HiRes ();

my $json = JSON::PP->new->canonical;

my $state_dir = File::Temp::tempdir(CLEANUP => 1);
$ENV{TEST_NGINX_STATE_DIR} = $state_dir;

# one API request: (status, decoded JSON or undef, response)
sub call {
    my ($srv, $method, $path, $body, $headers) = @_;
    $headers ||= {};
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $req .= "$_: $headers->{$_}\r\n" for sort keys %$headers;
    $req .= "Content-Type: application/json\r\n"
        if !exists $headers->{'Content-Type'}
           && (defined $body || $method =~ /^(?:POST|PUT|PATCH)$/);
    $req .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . ($body // '');
    my $res = http_raw($srv, $req, 30);
    my $doc = eval { $json->decode($res->{body} // '') };
    return ($res->{status} // 0, $doc, $res);
}

# $n requests on fresh connections: { "port" => count }, and the workers
# that answered
sub spread {
    my ($srv, $n, $path) = @_;
    my (%seen, %workers);
    for my $i (1 .. $n) {
        my $r = http_get($srv, ($path // '/d/') . $i);
        chomp(my $b = $r->{body} // '');
        $seen{"$r->{status} $b"}++;
        $workers{ $r->{headers}{'x-worker'}[0] // '' }++;
    }
    return (\%seen, \%workers);
}

my @extra = free_ports(2);
my $http = <<"CONF";
    error_log \$TEST_NGINX_PREFIX/logs/error.log info;
    dynroute_zone routes 1m state=\$TEST_NGINX_STATE_DIR/dynroute.json;
    log_format counted "\$server_port \$request \$connection";
    server {
        listen 127.0.0.1:\$TEST_NGINX_PORT2;
        listen 127.0.0.1:\$TEST_NGINX_PORT3;
        listen 127.0.0.1:$extra[0];
        listen [::1]:$extra[1];
        listen unix:\$TEST_NGINX_PREFIX/back.sock;
        access_log \$TEST_NGINX_PREFIX/logs/backends.log counted;
        location / { return 200 "\$server_port\\n"; }
    }
    upstream dyn {
        dynroute_servers max=4;
        server 127.0.0.1:\$TEST_NGINX_PORT2;
        keepalive 8;
    }
    upstream plain { server 127.0.0.1:\$TEST_NGINX_PORT2; }
    upstream edge { dynroute_balancer; }
    dynroute_table main { default dyn; }
CONF
my $config = <<'CONF';
    add_header X-Worker $pid always;
    add_header X-Upstream-Addr $upstream_addr always;
    location /d/ {
        proxy_pass http://dyn;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /b/ {
        dynroute main;
        proxy_pass http://edge;
    }
    location /api/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF

{
    my $srv = start_nginx(workers => 2, http_config => $http, config => $config);
    my ($p2, $p3) = ($srv->{port2}, $srv->{port3});

    my ($st, $doc) = call($srv, 'GET', '/api/upstreams');
    is($st, 200, 'GET upstreams: 200');
    is_deeply($doc->{upstreams}{dyn}{max}, 4, '... dyn with its max=');

    ($st, $doc) = call($srv, 'GET', '/api/upstreams/dyn/servers');
    is($st, 200, 'GET upstreams/dyn/servers: 200');
    is_deeply([sort keys %{ $doc->{servers} }], ["127.0.0.1:$p2"], '... its server line');

    ($st, $doc) = call($srv, 'PUT', "/api/upstreams/dyn/servers/127.0.0.1:$p3", '{}');
    is($st, 201, 'PUT a new server: 201') or Test::More::diag(Test::More::explain($doc));
    my ($seen, $workers) = spread($srv, 40);
    Test::More::diag(Test::More::explain([$seen, $workers]));
    error_log_ok(stop_nginx($srv), 'no alert/crit/crash');
}

done_testing();
