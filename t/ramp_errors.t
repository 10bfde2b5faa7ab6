# The "ramp" line of a dynroute_rollout block refused by nginx -t, each with
# the file and line and what to write instead.  Every block gets the
# upstreams stable and canary and a dynroute_zone unless it has its own.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;

add_block_preprocessor(sub {
    my ($block) = @_;
    my $http = $block->http_config // '';
    $block->set_value(http_config => $http . <<'CONF');
upstream stable { server 127.0.0.1:1; }
upstream canary { server 127.0.0.1:1; }
dynroute_zone routes 1m;
CONF
});

run_tests();

__DATA__

=== TEST 1: steps that go down
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    guard   errors=5% window=10s;
    ramp    canary 1% 25% 5% 100% hold=30s;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*step "5%" of the ramp does not go up from "25%": write the steps in increasing order, each larger than the one before in dynroute rollout "shop" in \S+nginx\.conf:7$/m



=== TEST 2: a step of 0% or above 100%
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    guard   errors=5%;
    ramp    canary 0% 50% hold=30s;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid step "0%" of the ramp: a step is a percent from 0\.01% to 100%, such as "5%" in dynroute rollout "shop" in \S+nginx\.conf:7$/m



=== TEST 3: no hold=
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    guard   errors=5%;
    ramp    canary 5% 50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*the ramp has no "hold=": say how long each step is held, such as "hold=30s" in dynroute rollout "shop" in \S+nginx\.conf:7$/m



=== TEST 4: a variant the rollout does not have
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    guard   errors=5%;
    ramp    canry 5% 50% hold=30s;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown variant "canry" of the ramp in dynroute rollout "shop" in \S+nginx\.conf:7: ramp one of the rollout's variants$/m



=== TEST 5: the primary
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    guard   errors=5%;
    ramp    stable 5% 50% hold=30s;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*variant "stable" of the ramp in dynroute rollout "shop" in \S+nginx\.conf:7 is the primary, which takes what the ramp leaves: ramp another variant, or say "primary VARIANT;"$/m



=== TEST 6: no guard in the rollout
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    ramp    canary 5% 50% hold=30s;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*the ramp in dynroute rollout "shop" in \S+nginx\.conf:6 has no guard to pass each step: add "guard errors=5%;" \(or latency=\) to the rollout$/m



=== TEST 7: a hold shorter than the guard's window
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    ramp    canary 5% 50% hold=5s;
    guard   errors=5% window=10s;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid "hold=5s" of the ramp in dynroute rollout "shop" in \S+nginx\.conf:6: a step is held at least the guard's window \(10s\), so that it is judged on its own traffic: write "hold=10s" or more$/m



=== TEST 8: two ramps
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    guard   errors=5%;
    ramp    canary 5% 50% hold=30s;
    ramp    canary 10% hold=30s;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate "ramp" in dynroute rollout "shop" \(the first in \S+nginx\.conf:7\): a rollout ramps one variant in \S+nginx\.conf:8$/m



=== TEST 9: too few parameters
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    guard   errors=5%;
    ramp    canary hold=30s;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid number of parameters in "ramp" of dynroute rollout "shop": expected a variant, its steps and hold= in \S+nginx\.conf:7$/m



=== TEST 10: a valid ramp starts, ready
--- http_config
dynroute_rollout shop {
    variant stable stable 100%;
    variant canary canary 0%;
    guard   errors=5% window=10s;
    ramp    canary 1% 5% 25% 50% 100% hold=10s;
}
--- config
location /api/ { dynroute_api; }
--- request
GET /api/rollouts/shop
--- response_body_like: "ramp":\{"variant":"canary","steps":\[1,5,25,50,100\],"hold":10\.0,"state":"ready"\}
