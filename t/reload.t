# A reload builds new tables from the new configuration; the old ones are
# freed with their cycle and requests keep being answered.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;

my $http = <<'CONF';
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "A\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "B\n"; }
    dynroute_table edge {
        a.example.com  TARGET;
        ~^(?<sub>[a-z]+)\.r\.example\.com$  service_b;
        default        service_b;
    }
CONF

my $config = <<'CONF';
    location / {
        dynroute edge;
        add_header X-Sub $sub;
        proxy_pass http://$dynroute_upstream;
    }
CONF

(my $first = $http) =~ s/TARGET/service_a/;
(my $second = $http) =~ s/TARGET/service_b/;

my $srv = start_nginx(http_config => $first, config => $config, workers => 2);

my $res = http_get($srv, '/', { Host => 'a.example.com' });
is($res->{body}, "A\n", 'before the reload a.example.com goes to service_a');

for my $n (1 .. 6) {
    my $conf = $n % 2 ? $second : $first;
    my $want = $n % 2 ? "B\n" : "A\n";
    ok(reload_nginx($srv, $conf, undef), "reload $n accepted");
    $res = http_get($srv, '/', { Host => 'a.example.com' });
    is($res->{body}, $want, "after reload $n a.example.com follows the new table");
    $res = http_get($srv, '/', { Host => 'xy.r.example.com' });
    is($res->{headers}{'x-sub'}[0], 'xy', "after reload $n captures still work");
}

(my $bad = $http) =~ s/TARGET/nosuch/;
ok(!reload_nginx($srv, $bad, undef), 'a reload with an unknown upstream is refused');
$res = http_get($srv, '/', { Host => 'a.example.com' });
is($res->{body}, "A\n", 'and the running configuration keeps routing');

error_log_ok(stop_nginx($srv), 'no alert/crit/crash across reloads',
             allow_emerg => 1);

done_testing();
