# Bad rollouts fail `nginx -t` with a message naming the value, the file and
# the line.  Line k of --- http_config is line k+2 of nginx.conf.
use lib 't/lib';
use Test::Nginx::Dynroute;

run_tests();

__DATA__

=== TEST 1: weights that do not sum to 100%
--- http_config
upstream a { server 127.0.0.1:1; }
upstream b { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  b  45.5%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*the weights sum to 95\.5%, not 100% \("\*" takes the rest\) in dynroute rollout "r" in \S+nginx\.conf:5$/m



=== TEST 2: more than 100% before "*"
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  60%;
    variant  b  a  50%;
    variant  c  a  *;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*the weights sum to 110% before "\*", more than 100% in dynroute rollout "r" in \S+nginx\.conf:4$/m



=== TEST 3: two "*"
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  *;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*a second "\*" weight: only one variant may take the rest in dynroute rollout "r" in \S+nginx\.conf:6$/m



=== TEST 4: a weight with three decimals, without %, or above 100%
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  0.125%;
}
dynroute_rollout s {
    variant  a  a  *;
    variant  b  a  5;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid weight "0\.125%": expected a percentage with up to two decimals, such as "12\.5%", or "\*" in dynroute rollout "r" in \S+nginx\.conf:6$/m



=== TEST 5: a weight above 100%
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  100.01%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid weight "100\.01%": more than 100% in dynroute rollout "r" in \S+nginx\.conf:6$/m



=== TEST 6: one variant
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  100%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*two variants at least are needed in dynroute rollout "r" in \S+nginx\.conf:4$/m



=== TEST 7: a duplicate variant
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  a  a  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate variant "a" in dynroute rollout "r" in \S+nginx\.conf:6$/m



=== TEST 8: a reserved variant name
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  never  a  50%;
    variant  b      a  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*variant name "never" is reserved: it is an override value in dynroute rollout "r" in \S+nginx\.conf:5$/m



=== TEST 9: an unknown variant in source, named at its own line
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    source   10.0.0.0/8  c;
    variant  a  a  50%;
    variant  b  a  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown variant "c" in dynroute rollout "r" in \S+nginx\.conf:5$/m



=== TEST 10: an unknown primary
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    primary  z;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown variant "z" in dynroute rollout "r" in \S+nginx\.conf:7$/m



=== TEST 11: a bad address
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    source   10.0.0.0/33  a;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid address "10\.0\.0\.0\/33": expected an IPv4 or IPv6 address with an optional \/prefix, such as "10\.0\.0\.0\/8" in dynroute rollout "r" in \S+nginx\.conf:7$/m



=== TEST 12: host bits in a CIDR are a warning, as in allow/deny
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    source   10.1.2.3/8  a;
}
dynroute_table edge { default r; }
--- config
    location / { dynroute edge; return 200 "$dynroute_variant\n"; }
--- request
GET /
--- response_body_like: ^[ab]\n$
--- error_log eval
qr/\[warn\] .*low address bits of 10\.1\.2\.3\/8 are meaningless in \S+nginx\.conf:7$/m



=== TEST 13: an unknown upstream in a variant
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a       50%;
    variant  b  nosuch  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown upstream "nosuch" of variant "b" in dynroute rollout "r": a variant's upstream must be an upstream\{\} block in \S+nginx\.conf:6$/m



=== TEST 14: a named location as a variant's upstream
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a       50%;
    variant  b  @local  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid upstream "\@local" of variant "b" in dynroute rollout "r": a variant's upstream is an upstream\{\} block in \S+nginx\.conf:6$/m



=== TEST 15: a rollout with an upstream's name
--- http_config
upstream a { server 127.0.0.1:1; }
upstream b { server 127.0.0.1:1; }
dynroute_rollout a {
    variant  a  a  50%;
    variant  b  b  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*dynroute rollout "a" in \S+nginx\.conf:5 has the name of an upstream\{\} block: a table target naming it would be ambiguous/m



=== TEST 16: a duplicate rollout
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r { variant a a 50%; variant b a 50%; }
dynroute_rollout r { variant a a 50%; variant b a 50%; }
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate dynroute rollout "r", first defined in \S+nginx\.conf:4 in \S+nginx\.conf:5$/m



=== TEST 17: an unknown directive, and arity
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    weight   b  a  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown directive "weight" in dynroute rollout "r": expected variant, key, header, cookie, override_from, source, sticky_cookie, primary, guard or ramp in \S+nginx\.conf:6$/m



=== TEST 18: a variant without weight
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid number of parameters in "variant" of dynroute rollout "r": expected a name, an upstream and a weight in \S+nginx\.conf:5$/m



=== TEST 19: a key that is not a variable
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    key      $cookie_uid  uid;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid key "uid" in dynroute rollout "r": expected a variable such as \$cookie_uid in \S+nginx\.conf:7$/m



=== TEST 20: an unknown key variable
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    key      $no_such_thing;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown "no_such_thing" variable/m



=== TEST 21: two header lines, a bad cookie name
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    header   X-A;
    header   X-B;
}
dynroute_rollout s {
    variant  a  a  50%;
    variant  b  a  50%;
    cookie   "a b";
}
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate "header" in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 22: a bad cookie name
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout s {
    variant  a  a  50%;
    variant  b  a  50%;
    cookie   "a=b";
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid cookie name "a=b" in dynroute rollout "s": use letters, digits, '-' and '_' in \S+nginx\.conf:7$/m



=== TEST 23: dynroute_rollout outside http{}
--- config
    dynroute_rollout r { variant a a 50%; variant b a 50%; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"dynroute_rollout" directive is not allowed here/m



=== TEST 24: a table target that is a rollout needs no upstream of that name
--- http_config
upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "a\n"; }
dynroute_table edge { default later; }
dynroute_rollout later {
    include  $TEST_NGINX_HTML_DIR/variants.conf;
}
--- user_files
>>> variants.conf
variant  a  a  *;
variant  b  a  0%;
--- config
    location / { dynroute edge; proxy_pass http://$dynroute_upstream; }
--- request
GET /
--- response_body
a



=== TEST 25: a missing ";" after a variant is named on the line that lacks it, not the next
--- http_config
upstream service_a { server 127.0.0.1:1; }
upstream service_b { server 127.0.0.1:2; }
dynroute_rollout checkout {
    variant stable service_a 90%
    variant canary service_b 10%;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "variant stable service_a 90%" in dynroute rollout "checkout" in \S+nginx\.conf:6$/m



=== TEST 26: a missing ";" after a key of two variables, before a header
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    key      $cookie_uid
             $remote_addr
    header   X-Variant;
    override_from  all;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "key \$cookie_uid \$remote_addr" in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 27: a missing ";" between a cookie and a header on one line
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    cookie  variant  header  X-Variant;
    override_from  all;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "cookie variant" in dynroute rollout "r" in \S+nginx\.conf:7$/m



=== TEST 28: a missing ";" after "override_from all"
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    header   X-Variant;
    override_from  all
    source  10.0.0.0/8  b;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "override_from all" in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 29: a missing ";" after override_from addresses, before a sticky_cookie
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    header   X-Variant;
    override_from  10.0.0.0/8  192.168.0.0/16
    sticky_cookie  dr_r;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "override_from 10\.0\.0\.0\/8 192\.168\.0\.0\/16" in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 30: a missing ";" after a sticky_cookie written over two lines
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    sticky_cookie  dr_r  max_age=1d
                   secure  httponly   # the attributes
    primary  b;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "sticky_cookie dr_r max_age=1d secure httponly" in dynroute rollout "r" in \S+nginx\.conf:8$/m



=== TEST 31: a missing ";" after a source, before a misspelt directive on the next line
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  50%;
    variant  b  a  50%;
    source   10.0.0.0/8  b
    primery  b;
}
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "source 10\.0\.0\.0\/8 b" in dynroute rollout "r" in \S+nginx\.conf:7$/m



=== TEST 32: a missing ";" in an included file, on its first line
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    include  $TEST_NGINX_HTML_DIR/variants-*.conf;
}
--- user_files
>>> variants-1.conf
variant  a  a  50%;
>>> variants-2.conf
variant  b  a  25%
variant  c  a  25%;
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "variant b a 25%" in dynroute rollout "r" in \S+\/variants-2\.conf:1$/m



=== TEST 33: a missing ";" after an include, in the block's own file
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    include  $TEST_NGINX_HTML_DIR/variants.conf;
    # the client's own id first
    key  $cookie_uid
    primary  a;
}
--- user_files
>>> variants.conf
variant  a  a  50%;
variant  b  a  50%;
--- must_die
--- error_log eval
qr/\[emerg\] missing ";" after "key \$cookie_uid" in dynroute rollout "r" in \S+nginx\.conf:7$/m



=== TEST 34: a variant written over two lines with a parameter too many is not taken for a missing ";"
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a
             50%  b;
    variant  b  a  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] invalid number of parameters in "variant" of dynroute rollout "r": expected a name, an upstream and a weight in \S+nginx\.conf:6$/m



=== TEST 35: an upstream typo in a variant: did you mean the closest upstream
--- http_config
upstream service_a { server 127.0.0.1:1; }
upstream service_b { server 127.0.0.1:2; }
dynroute_rollout checkout {
    variant stable service_a 90%;
    variant canary servce_b  10%;
}
--- must_die
--- error_log eval
qr/\[emerg\] unknown upstream "servce_b" \(did you mean "service_b"\?\) of variant "canary" in dynroute rollout "checkout": a variant's upstream must be an upstream\{\} block in \S+nginx\.conf:7$/m



=== TEST 36: no suggestion of a rollout for a variant's upstream, which is no upstream{} block
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout checkout {
    variant  a  a  50%;
    variant  b  a  50%;
}
dynroute_rollout r {
    variant  a  a        50%;
    variant  b  chekout  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] unknown upstream "chekout" of variant "b" in dynroute rollout "r": a variant's upstream must be an upstream\{\} block in \S+nginx\.conf:10$/m



=== TEST 37: no suggestion of a dynroute_balancer upstream for a variant's upstream
--- http_config
upstream a { server 127.0.0.1:1; }
upstream edge_pass { dynroute_balancer; }
dynroute_rollout r {
    variant  a  a         50%;
    variant  b  edge_pas  50%;
}
--- must_die
--- error_log eval
qr/\[emerg\] unknown upstream "edge_pas" of variant "b" in dynroute rollout "r": a variant's upstream must be an upstream\{\} block in \S+nginx\.conf:7$/m
