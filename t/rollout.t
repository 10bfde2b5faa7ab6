# Rollouts through a real nginx: the override order (header, cookie,
# source, weight), the variables, and the fallback to the primary when the
# chosen variant's upstream is down.
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Fixtures qw($STABLE_CANARY);

# A block that declares no upstream of its own gets the upstreams stable
# and canary after its --- http_config: $STABLE_CANARY, whose servers answer
# "stable\n" and "canary\n".
add_block_preprocessor(sub {
    my ($block) = @_;
    my $http = $block->http_config // '';
    $block->set_value(http_config => $http . $STABLE_CANARY)
        unless $http =~ /^\s*upstream\s/m;
});

# A rollout keyed on a named capture of the table's own regex splits by that
# capture: 200 tenants from one client address, 30% canary.  (Were the
# variant picked before the captures are set, every tenant would fall back to
# the client address and get the same variant.)
{
    my $srv = start_nginx(http_config => $STABLE_CANARY . <<'CONF', config => <<'CONF');
    dynroute_rollout by_tenant {
        variant stable stable *;
        variant canary canary 30%;
        key     $tenant;
    }
    dynroute_table edge {
        ~^(?<tenant>[a-z0-9]+)\.t\.example\.com$  by_tenant;
    }
CONF
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
        add_header X-Tenant $tenant;
    }
CONF
    my ($canary, $stable, $moved) = (0, 0, 0);
    for my $t (1 .. 200) {
        my $host = "tenant$t.t.example.com";
        my $r1 = http_get($srv, '/', { Host => $host });
        my $r2 = http_get($srv, '/', { Host => $host, Cookie => "x=$t" });
        $moved++ if $r1->{body} ne $r2->{body};
        $r1->{body} eq "canary\n" ? $canary++ : $stable++;
    }
    ok($canary >= 40 && $canary <= 80,
       "capture key: $canary of 200 tenants in the 30% canary, $stable stable");
    is($moved, 0, 'capture key: a tenant keeps its variant');
    error_log_ok(stop_nginx($srv), 'capture key: no alert/crit/crash');
}

run_tests();

__DATA__

=== TEST 1: weights alone: a 100% variant takes everyone
--- http_config
dynroute_rollout checkout {
    variant  stable  stable  100%;
    variant  canary  canary  0%;
    header   X-Canary;
    override_from 127.0.0.1;
}
dynroute_table edge { default checkout; }
--- config
    location / {
        dynroute edge;
        add_header X-Variant $dynroute_variant always;
        add_header X-Upstream $dynroute_upstream always;
        add_header X-Primary $dynroute_primary always;
        add_header X-Rule $dynroute_rule always;
        proxy_pass http://$dynroute_upstream;
    }
--- request
GET /
--- response_body
stable
--- response_headers
X-Variant: stable
X-Upstream: stable
X-Primary: stable
X-Rule: default



=== TEST 2: the header override: always, never, a variant's name, junk
--- http_config
upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream canary { server 127.0.0.1:$TEST_NGINX_PORT3; }
upstream dark   { server 127.0.0.1:$TEST_NGINX_PORT3; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "stable\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "other\n"; }
dynroute_rollout checkout {
    variant  stable  stable  100%;
    variant  canary  canary  0%;
    variant  dark    dark    0%;
    header   X-Canary;
    override_from 127.0.0.1;
}
dynroute_table edge { default checkout; }
--- config
    location / {
        dynroute edge;
        add_header X-Variant $dynroute_variant always;
        add_header X-Upstream $dynroute_upstream always;
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["X-Canary: always", "X-Canary: never", "X-Canary: dark",
 "X-Canary: junk", "X-Canary: Always", "x-canary: dark",
 "X-Canary: dark\r\nX-Canary: always"]
--- response_headers eval
["X-Variant: canary", "X-Variant: stable", "X-Variant: dark",
 "X-Variant: stable", "X-Variant: stable", "X-Variant: dark",
 "X-Variant: dark"]
--- response_body eval
["other\n", "stable\n", "other\n", "stable\n", "stable\n", "other\n",
 "other\n"]



=== TEST 3: the cookie override, and the header before the cookie
--- http_config
dynroute_rollout checkout {
    variant  stable  stable  100%;
    variant  canary  canary  *;
    header   X-Canary;
    cookie   canary;
    override_from 127.0.0.1;
}
dynroute_table edge { default checkout; }
--- config
    location / {
        dynroute edge;
        add_header X-Variant $dynroute_variant always;
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Cookie: canary=always", "Cookie: a=1; canary=canary; b=2",
 "Cookie: a=1\r\nCookie: canary=always",
 "Cookie: canary=junk",
 "X-Canary: never\r\nCookie: canary=always",
 "X-Canary: junk\r\nCookie: canary=always"]
--- response_body eval
["canary\n", "canary\n", "canary\n", "stable\n", "stable\n", "canary\n"]



=== TEST 4: source CIDRs: first match, after header and cookie
--- http_config
dynroute_rollout office {
    variant  stable  stable  100%;
    variant  canary  canary  0%;
    header   X-Canary;
    cookie   canary;
    override_from 127.0.0.1;
    source   10.0.0.0/8    stable;
    source   127.0.0.0/8   canary;
    source   127.0.0.1     stable;
}
dynroute_rollout elsewhere {
    variant  stable  stable  100%;
    variant  canary  canary  0%;
    source   192.0.2.0/24  canary;
    source   ::1           canary;
}
dynroute_table edge {
    office.example.com  office;
    default             elsewhere;
}
--- config
    location / {
        dynroute edge;
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["Host: office.example.com", "Host: office.example.com\r\nX-Canary: never",
 "Host: office.example.com\r\nCookie: canary=stable", "Host: other.example.com"]
--- response_body eval
["canary\n", "stable\n", "stable\n", "stable\n"]



=== TEST 5: the primary: always picks the first other variant, never the primary
--- http_config
upstream blue  { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream green { server 127.0.0.1:$TEST_NGINX_PORT3; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "blue\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "green\n"; }
dynroute_rollout site {
    variant  blue   blue   0%;
    variant  green  green  100%;
    primary  green;
    header   X-Canary;
    override_from 127.0.0.1;
}
dynroute_table edge { default site; }
--- config
    location / {
        dynroute edge;
        add_header X-Primary $dynroute_primary always;
        proxy_pass http://$dynroute_upstream;
    }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["", "X-Canary: always", "X-Canary: never"]
--- response_body eval
["green\n", "blue\n", "green\n"]
--- response_headers
X-Primary: green



=== TEST 6: the canary is down: error_page falls back to $dynroute_primary
--- http_config
upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream canary { server 127.0.0.1:$TEST_NGINX_PORT3; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "stable\n"; }
dynroute_rollout checkout {
    variant  stable  stable  *;
    variant  canary  canary  100%;
}
dynroute_table edge { default checkout; }
--- config
    location / {
        dynroute edge;
        add_header X-Variant $dynroute_variant always;
        proxy_pass http://$dynroute_upstream;
        proxy_intercept_errors on;
        error_page 502 503 504 = @fallback;
    }
    location @fallback {
        add_header X-Variant $dynroute_variant always;
        add_header X-Served-By $dynroute_primary always;
        proxy_pass http://$dynroute_primary;
    }
--- request
GET /
--- error_code: 200
--- response_body
stable
--- response_headers
X-Variant: canary
X-Served-By: stable
--- error_log
connect() failed (111: Connection refused) while connecting to upstream



=== TEST 7: rollouts and plain targets in one table; named locations too
--- http_config
dynroute_rollout checkout {
    variant  stable  stable  0%;
    variant  canary  canary  100%;
}
dynroute_table edge {
    ip                  @local;
    shop.example.com    checkout;
    api.example.com     stable;
}
--- config
    location / {
        dynroute edge;
        add_header X-Variant $dynroute_variant always;
        add_header X-Primary $dynroute_primary always;
        proxy_pass http://$dynroute_upstream;
    }
    location @local {
        add_header X-Variant "[$dynroute_variant]" always;
        return 200 "local\n";
    }
--- request eval
["GET /", "GET /", "GET /"]
--- more_headers eval
["Host: shop.example.com", "Host: api.example.com", "Host: 127.0.0.1"]
--- response_body eval
["canary\n", "stable\n", "local\n"]
--- response_headers eval
["X-Variant: canary", "!X-Variant", "X-Variant: []"]



=== TEST 8: $dynroute_primary of a plain rule is its upstream
--- http_config
upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "stable\n"; }
dynroute_table edge { default stable; }
--- config
    location / {
        dynroute edge;
        add_header X-Primary $dynroute_primary always;
        proxy_pass http://$dynroute_upstream;
    }
--- request
GET /
--- response_headers
X-Primary: stable
!X-Variant
