# The runtime API (dynroute_zone, dynroute_api, dynroute_health readiness)
# through a real nginx: every endpoint and every error status, routing that
# follows each change through $dynroute_upstream and dynroute_balancer,
# atomicity across 2 workers under load, persistence across reload, restart
# and a killed worker, a corrupt state file, an unwritable path, a full zone,
# refused clients and subrequests, and 100,000 runtime hosts.  Everything on
# 127.0.0.1 and unix sockets inside the test's prefix.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api;
use Test::Nginx::Dynroute::Proc qw(slurp spew);
use JSON::PP ();
use POSIX ();
use File::Temp ();
use Time::HiRes ();

my $json = JSON::PP->new->canonical;

# the state file outlives each nginx of this test
my $state_dir = File::Temp::tempdir(CLEANUP => 1);
$ENV{TEST_NGINX_STATE_DIR} = $state_dir;
my $state_file = "$state_dir/dynroute.json";

my $http = <<'CONF';
    error_log $TEST_NGINX_PREFIX/logs/error.log info;
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    upstream service_b_green { server unix:$TEST_NGINX_PREFIX/green.sock; }
    upstream edge_pass { dynroute_balancer; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "service_a\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "service_b\n"; }
    server { listen unix:$TEST_NGINX_PREFIX/green.sock; return 200 "green\n"; }

    dynroute_zone routes 32m state=$TEST_NGINX_STATE_DIR/dynroute.json;

    dynroute_rollout checkout {
        variant  stable  service_a  90%;
        variant  canary  service_b  10%;
        key      $http_x_user;
    }

    dynroute_table main {
        shop.example.com  checkout;
        a.example.com     service_a;
        default           service_a;
    }

    dynroute_table internal {
        default  service_b;
    }
CONF

my $config = <<'CONF';
    location / {
        dynroute    main;
        proxy_pass  http://$dynroute_upstream;
        add_header  X-Variant $dynroute_variant always;
        add_header  X-Rule $dynroute_rule always;
    }
    location /b/ {
        dynroute    main;
        proxy_pass  http://edge_pass;
        add_header  X-Variant $dynroute_variant always;
    }
    location /internal/ {
        dynroute    internal;
        proxy_pass  http://$dynroute_upstream;
    }
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
    location /ro/       { dynroute_api; }
    location /closed/   { deny all; dynroute_api write=on; }
    location /guarded/ {
        auth_request  /dynroute/;
        proxy_pass    http://service_a;
    }
    location = /ready { dynroute_health readiness; }
CONF

# what answers Host for user u$n through $path: "body variant"
sub route {
    my ($srv, $host, $user, $path) = @_;
    my $res = http_get($srv, $path // '/', { Host => $host, 'X-User' => "u$user" });
    chomp(my $body = $res->{body} // '');
    my $variant = ($res->{headers}{'x-variant'} // [''])->[0];
    return "$body $variant";
}

sub spread {
    my ($srv, $host, $n, $path) = @_;
    my %seen;
    $seen{ route($srv, $host, $_, $path) }++ for 1 .. $n;
    return join ', ', map { "$_=$seen{$_}" } sort keys %seen;
}

# ---- nginx -t: what the configuration may and may not say ----------------

{
    my ($code, $out) = nginx_test_config(
        http_config => "dynroute_zone routes 1m state=/nonexistent/dir/state.json;",
        config      => 'location /api/ { allow 127.0.0.1; deny all; dynroute_api write=on; }');
    isnt($code, 0, 'nginx -t: an unwritable state path fails');
    like($out, qr/dynroute_zone "routes" in \S+nginx\.conf:3: cannot keep the state file "\/nonexistent\/dir\/state\.json" in "\/nonexistent\/dir": No such file or directory/,
         'nginx -t: the unwritable state path is named with file and line');

    # the location's access rules are nginx's own modules' to read: the
    # docs say to put them there (Security)
    ($code, $out) = nginx_test_config(
        http_config => 'dynroute_zone routes 1m;',
        config      => 'location /api/ { dynroute_api write=on; }');
    is($code, 0, 'nginx -t: write=on without access control is allowed');

    ($code, $out) = nginx_test_config(
        http_config => '',
        config      => 'location /api/ { dynroute_api; }');
    isnt($code, 0, 'nginx -t: dynroute_api without a zone fails');
    like($out, qr/dynroute_api in \S+nginx\.conf:\d+ needs a dynroute_zone/, '... and says so');

    ($code, $out) = nginx_test_config(
        http_config => '',
        config      => 'location = /ready { dynroute_health readiness; }');
    like($out, qr/"dynroute_health readiness" needs a dynroute_zone/,
         'nginx -t: readiness without a zone fails');

    ($code, $out) = nginx_test_config(
        http_config => 'dynroute_zone routes 1m;',
        config      => 'location ~ ^/api/ { dynroute_api; }');
    like($out, qr/dynroute_api needs a prefix location/, 'nginx -t: a regex location is refused');

    ($code, $out) = nginx_test_config(
        http_config => 'dynroute_zone routes 10k;', config => '');
    like($out, qr/dynroute_zone "routes" is too small: 64k at least/, 'nginx -t: a tiny zone is refused');
}

# ---- every endpoint ---------------------------------------------------------

my $srv = start_nginx(http_config => $http, config => $config, workers => 2);

my ($st, $doc, $res) = api_call($srv, 'GET', '/dynroute/');
is($st, 200, 'GET {prefix}: 200');
is($doc->{generation}, 0, 'GET {prefix}: generation 0 at start');
is($res->{headers}{etag}[0], '"0"', 'GET {prefix}: the generation as the ETag');
is($res->{headers}{'cache-control'}[0], 'no-store', 'GET {prefix}: not to be cached');
is($json->encode($doc->{rollouts}{checkout}),
   '{"primary":"stable","runtime":false,"variants":{"canary":{"configured_upstream":"service_b","configured_weight":10,"upstream":"service_b","weight":10},"stable":{"configured_upstream":"service_a","configured_weight":90,"upstream":"service_a","weight":90}}}',
   'GET {prefix}: the rollout with its configured and live values');
is($json->encode($doc->{tables}), '{"internal":{"hosts":0,"rules":1},"main":{"hosts":0,"rules":3}}',
   'GET {prefix}: the tables');
is($doc->{draining}, JSON::PP::false, 'GET {prefix}: not draining');

($st, $doc) = api_call($srv, 'GET', '/dynroute/rollouts/checkout');
is($st, 200, 'GET rollouts/NAME: 200');
is($doc->{name}, 'checkout', 'GET rollouts/NAME: the rollout');

like(spread($srv, 'shop.example.com', 60), qr/^service_a stable=\d+, service_b canary=\d+$/,
     'before any change: the configured 90/10 split');

($st, $doc) = api_call($srv, 'PATCH', '/dynroute/rollouts/checkout',
                       '{"weights":{"stable":0,"canary":100}}');
is($st, 200, 'PATCH weights: 200');
is($doc->{generation}, 1, 'PATCH weights: generation 1');
is($doc->{rollout}{variants}{canary}{weight}, 100, 'PATCH weights: the new weight');
is(spread($srv, 'shop.example.com', 40), 'service_b canary=40',
   'PATCH weights 0/100: every user on the canary ($dynroute_upstream)');
is(spread($srv, 'shop.example.com', 40, '/b/'), 'service_b canary=40',
   'PATCH weights 0/100: every user on the canary (dynroute_balancer)');

($st, $doc) = api_call($srv, 'PATCH', '/dynroute/rollouts/checkout',
                       '{"upstreams":{"canary":"service_b_green"}}');
is($st, 200, 'PATCH upstreams (a blue/green flip): 200');
is(spread($srv, 'shop.example.com', 40), 'green canary=40',
   'flip: the canary served by service_b_green ($dynroute_upstream)');
is(spread($srv, 'shop.example.com', 40, '/b/'), 'green canary=40',
   'flip: the canary served by service_b_green (dynroute_balancer)');

($st, $doc) = api_call($srv, 'PATCH', '/dynroute/rollouts/checkout', '{"primary":"canary"}');
is($st, 200, 'PATCH primary: 200');
is($doc->{rollout}{primary}, 'canary', 'PATCH primary: the new primary');

($st, $doc) = api_call($srv, 'DELETE', '/dynroute/rollouts/checkout');
is($st, 200, 'DELETE rollouts/NAME: 200');
is($doc->{rollout}{runtime}, JSON::PP::false, 'DELETE rollouts/NAME: no runtime values left');
like(spread($srv, 'shop.example.com', 60), qr/^service_a stable=\d+, service_b canary=\d+$/,
     'DELETE rollouts/NAME: the configured split again');

is(route($srv, 'tenant1.example.com', 1), 'service_a ', 'a new host goes to the default');
($st, $doc) = api_call($srv, 'PUT', '/dynroute/hosts/Tenant1.Example.com', '{"target":"service_b","table":"main"}');
is($st, 201, 'PUT hosts/HOST: 201 for a new host');
is(route($srv, 'tenant1.example.com', 1), 'service_b ', 'PUT hosts/HOST: the host is routed to its target');
is(http_get($srv, '/', { Host => 'tenant1.example.com' })->{headers}{'x-rule'}[0],
   'tenant1.example.com', 'a runtime host: $dynroute_rule is the host');
is(route($srv, 'tenant1.example.com', 1, '/internal/'), 'service_b ',
   'a runtime host of table main is not one of table internal');

($st, $doc) = api_call($srv, 'PUT', '/dynroute/hosts/a.example.com', '{"target":"checkout","table":"main"}');
is($st, 201, 'PUT hosts/HOST over a configured exact host: 201');
is(route($srv, 'a.example.com', 7) =~ /^service_[ab] (stable|canary)$/ ? 'rollout' : 'no',
   'rollout', 'a runtime entry wins over a configured exact host');

($st, $doc) = api_call($srv, 'PUT', '/dynroute/hosts/tenant1.example.com', '{"target":"service_a","table":"main"}');
is($st, 200, 'PUT hosts/HOST again: 200 (replaced)');
is(route($srv, 'tenant1.example.com', 1), 'service_a ', 'PUT hosts/HOST again: the new target');

($st, $doc) = api_call($srv, 'GET', '/dynroute/hosts/tenant1.example.com');
is("$st $doc->{table} $doc->{target}", '200 main service_a', 'GET hosts/HOST');
($st, $doc) = api_call($srv, 'GET', '/dynroute/hosts');
is(join(',', sort keys %{ $doc->{hosts} }), 'a.example.com,tenant1.example.com', 'GET hosts');

($st, $doc) = api_call($srv, 'PATCH', '/dynroute/hosts',
                       '{"t2.example.com":{"target":"service_b","table":"main"},"a.example.com":null}');
is($st, 200, 'PATCH hosts (bulk): 200');
is("$doc->{added} $doc->{replaced} $doc->{removed}", '1 0 1', 'PATCH hosts: what it did');
is(route($srv, 't2.example.com', 1), 'service_b ', 'PATCH hosts: the added host is routed');
is(route($srv, 'a.example.com', 1), 'service_a ', 'PATCH hosts: the removed host is configured again');

($st, $doc) = api_call($srv, 'DELETE', '/dynroute/hosts/t2.example.com');
is($st, 200, 'DELETE hosts/HOST: 200');
is(route($srv, 't2.example.com', 1), 'service_a ', 'DELETE hosts/HOST: back to the default');

($st, $doc) = api_call($srv, 'POST', '/dynroute/drain');
is("$st $doc->{draining}", '200 1', 'POST drain: 200, draining');
is(http_get($srv, '/ready')->{status}, 503, 'draining: readiness 503');
is(route($srv, 'tenant1.example.com', 1), 'service_a ', 'draining: traffic is still served');
($st, $doc) = api_call($srv, 'POST', '/dynroute/ready');
is("$st $doc->{draining}", '200 0', 'POST ready: 200, serving');

# what a fleet agent reports (dynroute-agent): PUT {prefix}fleet
($st, $doc) = api_call($srv, 'GET', '/dynroute/fleet');
is($st, 404, 'GET fleet before any report: 404');
ok(!exists((api_call($srv, 'GET', '/dynroute/'))[1]{fleet}), 'GET {prefix}: no fleet before a report');
for my $bad ('{"revision":"7"}', '{"stale":true}', '{"revision":7,"node":"a"}', '{"revision":-3}') {
    ($st, $doc) = api_call($srv, 'PUT', '/dynroute/fleet', $bad);
    is($st, 400, "PUT fleet $bad: 400");
    like($doc->{error} // '', qr/revision|unknown field/, '... with the reason');
}
($st, $doc) = api_call($srv, 'PUT', '/ro/fleet', '{"revision":7}');
is($st, 405, 'PUT fleet through a read-only location: 405');
($st, $doc) = api_call($srv, 'PUT', '/dynroute/fleet', '{"revision":7,"stale":true}');
is("$st $doc->{revision} $doc->{stale}", '200 7 1', 'PUT fleet: 200');
($st, $doc) = api_call($srv, 'GET', '/dynroute/');
is($json->encode($doc->{fleet}), '{"revision":7,"stale":true}', 'GET {prefix}: the fleet report');
my $metrics = http_get($srv, '/dynroute/metrics')->{body} // '';
like($metrics, qr/^dynroute_fleet_revision 7$/m, 'metrics: dynroute_fleet_revision');
like($metrics, qr/^dynroute_fleet_stale 1$/m, 'metrics: dynroute_fleet_stale');
($st, $doc) = api_call($srv, 'PUT', '/dynroute/fleet', '{"revision":8}');
is("$st $doc->{revision} $doc->{stale}", '200 8 0', 'PUT fleet again: stale clears');
is(http_get($srv, '/ready')->{status}, 200, 'ready: readiness 200');

# ---- every error ------------------------------------------------------------

my $gen = (api_call($srv, 'GET', '/dynroute/'))[1]{generation};

my @errors = (
    ['GET',    '/dynroute/rollouts/nope', undef, 404, qr/^no rollout "nope"$/],
    ['PATCH',  '/dynroute/rollouts/nope', '{"primary":"x"}', 404, qr/^no rollout "nope"$/],
    ['GET',    '/dynroute/hosts/none.example.com', undef, 404, qr/^no runtime host "none\.example\.com"$/],
    ['DELETE', '/dynroute/hosts/none.example.com', undef, 404, qr/^no runtime host/],
    ['GET',    '/dynroute/nothing/here', undef, 404, qr/^no such API resource "\/dynroute\/nothing\/here"$/],
    ['PATCH',  '/dynroute/rollouts/checkout', '{"weights": {"stable": 50, }', 400, qr/^malformed JSON in the request body: .*line 1, column \d+/],
    ['PATCH',  '/dynroute/rollouts/checkout', '[1]', 400, qr/^the request body must be a JSON object$/],
    ['PATCH',  '/dynroute/rollouts/checkout', '{"weights":{"blue":100}}', 400, qr/^rollout "checkout" has no variant "blue"$/],
    ['PATCH',  '/dynroute/rollouts/checkout', '{"weights":{"stable":60,"canary":30}}', 400, qr/^the weights sum to 90%, not 100%/],
    ['PATCH',  '/dynroute/rollouts/checkout', '{"upstreams":{"canary":"evil.example.com"}}', 400, qr/^"evil\.example\.com" is not an upstream\{\} of the configuration$/],
    ['PATCH',  '/dynroute/rollouts/checkout', '{"upstreams":{"canary":"edge_pass"}}', 400, qr/is not an upstream\{\}/],
    ['PATCH',  '/dynroute/rollouts/checkout', '{"colour":"blue"}', 400, qr/^unknown field "colour"/],
    ['PUT',    '/dynroute/hosts/x.example.com', '{"target":"service_a"}', 400, qr/^say which "table" host "x\.example\.com" belongs to: "main", "internal"$/],
    ['PUT',    '/dynroute/hosts/x.example.com', '{"target":"@local","table":"main"}', 400, qr/^"\@local" is neither an upstream\{\} nor a dynroute_rollout/],
    ['PUT',    '/dynroute/hosts/*.example.com', '{"target":"service_a","table":"main"}', 400, qr/^invalid character in host name/],
    ['PUT',    '/dynroute/hosts/10.0.0.1', '{"target":"service_a","table":"main"}', 400, qr/is an IP address/],
    ['PATCH',  '/dynroute/rollouts/checkout', '{"primary":"canary"}', 400, qr/^If-Match must be a generation number$/, { 'If-Match' => 'W/"x"' }],
    ['PATCH',  '/dynroute/rollouts/checkout', '{"primary":"canary"}', 409, qr/^the state is at generation $gen, not 99999 \(If-Match\)/, { 'If-Match' => '"99999"' }],
    ['POST',   '/dynroute/rollouts/checkout', '{}', 405, qr/^method not allowed here$/, {}, 'GET, HEAD, PATCH, DELETE'],
    ['PUT',    '/dynroute/', '{}', 405, qr/^method not allowed here$/, {}, 'GET, HEAD'],
    ['GET',    '/dynroute/drain', undef, 405, qr/^method not allowed here$/, {}, 'POST'],
    ['PATCH',  '/ro/rollouts/checkout', '{"primary":"canary"}', 405, qr/^this API location is read-only \(dynroute_api write=off\)$/, {}, 'GET, HEAD'],
    ['POST',   '/ro/drain', undef, 405, qr/read-only/, {}, ''],
);

for my $e (@errors) {
    my ($m, $path, $body, $want, $re, $hdr, $allow) = @$e;
    my ($s, $d, $r) = api_call($srv, $m, $path, $body, $hdr);
    my $name = "$m $path" . ($hdr && %$hdr ? ' (' . join(',', %$hdr) . ')' : '');
    is($s, $want, "$name: $want");
    like($d->{error} // '(no JSON error)', $re, "$name: the reason");
    is($r->{headers}{allow}[0], $allow, "$name: Allow: $allow") if defined $allow;
}

($st, $doc) = api_call($srv, 'PATCH', '/dynroute/rollouts/checkout', '{"primary":"canary"}',
                       { 'If-Match' => "\"$gen\"" });
is($st, 200, 'If-Match of the current generation: 200');
is($doc->{generation}, $gen + 1, 'If-Match: the next generation');
api_call($srv, 'DELETE', '/dynroute/rollouts/checkout');

($st, $doc) = api_call($srv, 'GET', '/ro/');
is($st, 200, 'write=off: GET is allowed');

($st, $doc, $res) = api_call($srv, 'PATCH', '/dynroute/hosts', '{"a":' . ('1' x (1024 * 1024)) . '}');
is($st, 413, 'a body over 1 MiB: 413');
like($doc->{error} // '', qr/over the API's limit of 1 MiB/, 'a body over 1 MiB: the reason');

{
    # chunked, so nginx cannot tell the size beforehand
    my $chunk = '{"x":"' . ('y' x (1024 * 1024)) . '"}';
    my $raw = "PATCH /dynroute/hosts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
            . sprintf('%x', length $chunk) . "\r\n$chunk\r\n0\r\n\r\n";
    my $r = http_raw($srv, $raw, 30);
    is($r->{status}, 413, 'a chunked body over 1 MiB: 413');
}

($st) = api_call($srv, 'GET', '/closed/');
is($st, 403, 'a client the location denies: 403');
($st, undef, $res) = api_call($srv, 'GET', '/guarded/');
is($st, 403, 'a subrequest (auth_request) to the API: 403, no access granted');

is((api_call($srv, 'GET', '/dynroute/'))[1]{generation}, $gen + 2, 'no refused call changed the generation');

# ---- atomicity: 2 workers, load, a change of two parts at once -------------

# State A: stable 100 %, canary on service_b.  State B: canary 100 %, canary
# on service_b_green.  A mix of the two would send users to service_b.
my $to_b = '{"weights":{"stable":0,"canary":100},"upstreams":{"canary":"service_b_green"}}';
my $to_a = '{"weights":{"stable":100,"canary":0},"upstreams":{"canary":"service_b"}}';
api_call($srv, 'PATCH', '/dynroute/rollouts/checkout', $to_a);

my @kids;
my $out = "$srv->{prefix}/load";
mkdir $out;
for my $k (1 .. 4) {
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        my %seen;
        my $until = Time::HiRes::time() + 4;
        my $n = 0;
        while (Time::HiRes::time() < $until && $n < 20000) {
            $seen{ route($srv, 'shop.example.com', ++$n) }++;
        }
        my $ok = eval { spew("$out/$k", join '', map { "$_\t$seen{$_}\n" } sort keys %seen); 1 };
        POSIX::_exit($ok ? 0 : 1);
    }
    push @kids, $pid;
}
my $flips = 0;
my $flip_until = Time::HiRes::time() + 3.5;
while (Time::HiRes::time() < $flip_until && $flips < 2000) {
    my ($s) = api_call($srv, 'PATCH', '/dynroute/rollouts/checkout', $flips % 2 ? $to_a : $to_b);
    last unless $s == 200;
    $flips++;
}
waitpid $_, 0 for @kids;
my %all;
for my $k (1 .. 4) {
    for (split /\n/, slurp("$out/$k")) { my ($what, $n) = split /\t/; $all{$what} += $n }
}
my $total = 0;
$total += $_ for values %all;
ok($flips >= 20, "atomicity: $flips changes made under load");
ok($total >= 200, "atomicity: $total requests answered");
is(join(', ', grep { $_ ne 'service_a stable' && $_ ne 'green canary' } sort keys %all), '',
   'atomicity: every answer is state A (service_a stable) or state B (green canary), none fails or mixes')
    or diag(explain(\%all));
ok(($all{'service_a stable'} // 0) > 0 && ($all{'green canary'} // 0) > 0,
   'atomicity: both states served');
api_call($srv, 'DELETE', '/dynroute/rollouts/checkout');

# ---- persistence -------------------------------------------------------------

api_call($srv, 'PATCH', '/dynroute/rollouts/checkout', '{"weights":{"stable":0,"canary":100},"upstreams":{"canary":"service_b_green"}}');
api_call($srv, 'PUT', '/dynroute/hosts/keep.example.com', '{"target":"service_b","table":"main"}');
my $before = (api_call($srv, 'GET', '/dynroute/'))[1];
my $file = slurp($state_file);
my $on_disk = $json->decode($file);
is($on_disk->{generation}, $before->{generation}, 'the state file holds the acknowledged generation');
is($on_disk->{hosts}{'keep.example.com'}{target}, 'service_b', 'the state file holds the runtime host');
ok(!-e "$state_file.tmp", 'no temporary file left behind');

ok(reload_nginx($srv), 'reload');
my $after = (api_call($srv, 'GET', '/dynroute/'))[1];
is($json->encode($after), $json->encode($before), 'reload: the same state, the same generation');
is(spread($srv, 'shop.example.com', 20), 'green canary=20', 'reload: routing by the runtime state');
is(route($srv, 'keep.example.com', 1), 'service_b ', 'reload: the runtime host');

# kill -9 a worker: the master starts another, which reads the zone
{
    my @pids = slurp($srv->{error_log}) =~ /start worker process (\d+)/g;
    my @alive = grep { kill 0, $_ } @pids;
    ok(@alive >= 1, 'a worker to kill');
    kill 'KILL', $alive[-1];
    my $deadline = Time::HiRes::time() + 10;
    Time::HiRes::sleep(0.1) while kill(0, $alive[-1]) && Time::HiRes::time() < $deadline;
    Time::HiRes::sleep(0.5);
    is(spread($srv, 'shop.example.com', 30), 'green canary=30', 'kill -9 of a worker: every worker routes by the runtime state');
    is(route($srv, 'keep.example.com', 1), 'service_b ', 'kill -9 of a worker: the runtime host');
}

my $log = stop_nginx($srv);
error_log_ok(join("\n", grep { !/exited on signal 9/ } split /\n/, $log),
             'no alert in error.log (but the killed worker)');


# a full stop and start: the state file
$srv = start_nginx(http_config => $http, config => $config, workers => 2);
is($json->encode((api_call($srv, 'GET', '/dynroute/'))[1]), $json->encode($before),
   'stop and start: the same state, the same generation');
is(spread($srv, 'shop.example.com', 20), 'green canary=20', 'stop and start: routing by the runtime state');
is(route($srv, 'keep.example.com', 1), 'service_b ', 'stop and start: the runtime host');

# a reload into a configuration without service_b_green and without table
# "main"'s rollout target: what no longer exists is dropped, one notice each
{
    (my $next = $http) =~ s/^\s*upstream service_b_green .*\n//m;
    $next =~ s/^\s*server \{ listen unix:.*\n//m;
    my $kept = slurp($state_file);
    my ($code, $out) = nginx_test_config(http_config => $next, config => $config);
    is($code, 0, 'nginx -t of the next configuration: ok');
    like($out, qr/dynroute: dropped the runtime upstream "service_b_green"/,
         'nginx -t: says what a start would drop');
    is(slurp($state_file), $kept, 'nginx -t: the state file is untouched');
    ok(reload_nginx($srv, $next), 'reload without service_b_green');
    my $log = slurp($srv->{error_log});
    like($log, qr/\[notice\].*dynroute: dropped the runtime upstream "service_b_green" of variant "canary" of rollout "checkout": no such upstream\{\} any more/,
         'reload: a notice for the dropped upstream');
    my $d = (api_call($srv, 'GET', '/dynroute/'))[1];
    is($d->{rollouts}{checkout}{variants}{canary}{upstream}, 'service_b', 'reload: the flip is dropped');
    is($d->{rollouts}{checkout}{variants}{canary}{weight}, 100, 'reload: the weights are kept');
    is(spread($srv, 'shop.example.com', 20), 'service_b canary=20', 'reload: routing by what is left');
    is($json->decode(slurp($state_file))->{rollouts}{checkout}{upstreams}, undef,
       'reload: the state file no longer has the flip');
    ok(reload_nginx($srv, $http), 'reload back');
}
$log = stop_nginx($srv);
error_log_ok($log);

# a corrupt (here: truncated) state file is reported and ignored
spew($state_file, substr($file, 0, length($file) / 2));
$srv = start_nginx(http_config => $http, config => $config, workers => 2);
like(slurp($srv->{error_log}), qr/\[error\].*dynroute: ignoring the state file "\Q$state_file\E", starting from the configuration: malformed JSON/,
     'a truncated state file: reported');
$doc = (api_call($srv, 'GET', '/dynroute/'))[1];
is("$doc->{generation} $doc->{rollouts}{checkout}{runtime}", '0 0', 'a truncated state file: the configuration applies');
like(spread($srv, 'shop.example.com', 60), qr/^service_a stable=\d+, service_b canary=\d+$/,
     'a truncated state file: the configured split');
($st) = api_call($srv, 'PUT', '/dynroute/hosts/new.example.com', '{"target":"service_a","table":"main"}');
is($st, 201, 'a truncated state file: changes are accepted again');
is($json->decode(slurp($state_file))->{generation}, 1, '... and the state file rewritten');

# the state file cannot be written any more: the change is refused, 500
chmod 0500, $state_dir;
if (open my $probe, '>', "$state_dir/probe") {
    close $probe;
    unlink "$state_dir/probe";
    pass('unwritable state file: skipped (root ignores the directory mode here)');
} else {
    ($st, $doc) = api_call($srv, 'POST', '/dynroute/drain');
    is($st, 500, 'unwritable state file: 500');
    like($doc->{error}, qr/^the state file could not be written, nothing changed: cannot open/, '... with the reason');
    is((api_call($srv, 'GET', '/dynroute/'))[1]{draining}, JSON::PP::false, '... and nothing changed');
}
chmod 0700, $state_dir;
$log = stop_nginx($srv);
error_log_ok($log);
unlink $state_file;

# ---- a full zone: 507, nothing changed ----------------------------------------

{
    # without counters, so that the zone holds the hosts blocks alone
    (my $small = $http) =~ s/dynroute_zone routes 32m state=\S+;/dynroute_zone routes 64k metrics=off;/;
    my $s = start_nginx(http_config => $small, config => $config);
    my ($code, $last_gen) = (0, 0);
    for my $chunk (0 .. 40) {
        my $body = '{' . join(',', map { sprintf '"h%d-%d.example.com":{"target":"service_a","table":"main"}', $chunk, $_ } 1 .. 100) . '}';
        my ($c, $d) = api_call($s, 'PATCH', '/dynroute/hosts', $body);
        $code = $c;
        if ($c != 200) {
            like($d->{error}, qr/^dynroute_zone "routes" is full, nothing changed: make it larger$/, 'a full zone: the reason');
            last;
        }
        $last_gen = $d->{generation};
    }
    is($code, 507, 'a full zone: 507');
    my $d = (api_call($s, 'GET', '/dynroute/'))[1];
    is($d->{generation}, $last_gen, 'a full zone: the generation is the last accepted one');
    is(scalar(keys %{ $d->{hosts} }), 100 * $last_gen, 'a full zone: every accepted host is there, no other');
    is(route($s, 'h0-1.example.com', 1), 'service_a ', 'a full zone: routing still works');
    # a new host block is written before the old one is freed: a removal
    # needs that room too, and is refused the same way
    ($code) = api_call($s, 'DELETE', '/dynroute/hosts/h0-1.example.com');
    is($code, 507, 'a full zone: a removal needs room for the new block too');
    ($code) = api_call($s, 'POST', '/dynroute/drain');
    is($code, 200, 'a full zone: a change that keeps the hosts block is accepted');
    is(route($s, 'h0-1.example.com', 1), 'service_a ', 'a full zone: nothing was lost');
    error_log_ok(stop_nginx($s), 'a full zone: no alert or crit');
}

# ---- 100,000 runtime hosts ----------------------------------------------------

{
    my $s = start_nginx(http_config => $http, config => $config, workers => 2);
    my $t0 = Time::HiRes::time();
    my $ok = 1;
    for my $chunk (0 .. 9) {
        my $body = '{' . join(',', map {
            my $n = $chunk * 10000 + $_;
            sprintf '"tenant%d.example.com":{"target":"%s","table":"main"}', $n, $n % 2 ? 'service_b' : 'service_a'
        } 0 .. 9999) . '}';
        my ($c, $d) = api_call($s, 'PATCH', '/dynroute/hosts', $body);
        $ok &&= ($c == 200 && $d->{added} == 10000);
    }
    my $secs = Time::HiRes::time() - $t0;
    ok($ok, sprintf '100,000 runtime hosts added through the API in 10 requests (%.1f s)', $secs);
    my $d = (api_call($s, 'GET', '/dynroute/'))[1];
    is($d->{tables}{main}{hosts}, 100000, '100,000 runtime hosts: counted');
    my $wrong = 0;
    for my $i (0 .. 199) {
        my $n = ($i * 7919) % 100000;
        my $want = $n % 2 ? 'service_b ' : 'service_a ';
        $wrong++ unless route($s, "tenant$n.example.com", 1) eq $want;
    }
    is($wrong, 0, '100,000 runtime hosts: 200 of them, spread over the range, each routed to its target');
    is(route($s, 'tenant100000.example.com', 1), 'service_a ', '100,000 runtime hosts: another host goes to the default');
    error_log_ok(stop_nginx($s));
}

# ---- writers at once: every change made once, in order, file and zone alike -

# 4 clients put 40 hosts each, at once, through 2 workers: a change is
# built outside the zone's mutex and published only on the generation it was
# built on, or built again
{
    unlink $state_file;
    my $s = start_nginx(http_config => $http, config => $config, workers => 2);
    my $out = "$s->{prefix}/writers";
    mkdir $out;
    my @kids;
    for my $k (1 .. 4) {
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            my $answers = '';
            for my $i (1 .. 40) {
                my ($c, $d) = api_call($s, 'PUT', "/dynroute/hosts/w$k-$i.example.com",
                                       '{"target":"service_b","table":"main"}');
                $answers .= "$c " . ($d->{generation} // '-') . "\n";
            }
            POSIX::_exit(eval { spew("$out/$k", $answers); 1 } ? 0 : 1);
        }
        push @kids, $pid;
    }
    waitpid $_, 0 for @kids;
    my (%status, %gens);
    for my $k (1 .. 4) {
        for (split /\n/, slurp("$out/$k")) {
            my ($c, $g) = split;
            $status{$c}++;
            $gens{$g}++;
        }
    }
    is(join(',', map { "$_ x$status{$_}" } sort keys %status), '201 x160',
       'writers at once: 160 hosts put through 2 workers, each one 201');
    is(scalar(grep { $gens{$_} == 1 } keys %gens), 160,
       'writers at once: 160 answers, 160 different generations');
    my $d = (api_call($s, 'GET', '/dynroute/'))[1];
    is("$d->{generation} " . scalar(keys %{ $d->{hosts} }), '160 160',
       'writers at once: the zone is at generation 160 with the 160 hosts');
    my $file = $json->decode(slurp($state_file));
    is("$file->{generation} " . scalar(keys %{ $file->{hosts} }), '160 160',
       'writers at once: and so is the state file');
    is(route($s, 'w3-17.example.com', 1), 'service_b ', 'writers at once: a host of them routes');
    error_log_ok(stop_nginx($s), 'writers at once');
}

unlink $state_file;
done_testing();
