# stream{}'s runtime state through the API: runtime SNI hosts of a stream
# table ({prefix}stream/hosts) and a stream rollout's weights and primary
# ({prefix}stream/rollouts/NAME), kept in the http dynroute_zone's state and
# its state file, apart from http{}'s (a host is in one table; a name of one
# never passes for the other's).  A host added and removed under a loop of
# connections fails none of them; a reload and a restart keep the state; a
# cross-site page cannot write; a stranger's SNI adds nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp ();
use IO::Socket::IP;
use JSON::PP ();
use POSIX ();
use Test::More;
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api qw(api_call);
use Test::Nginx::Dynroute::Proc qw(free_ports slurp track stop_proc wait_for);
use Test::Nginx::Dynroute::Stream qw(stream_missing make_cert tls_backend
                                     tls_line);

my $why = stream_missing();
plan skip_all => $why if $why;

my $dir = File::Temp::tempdir(CLEANUP => 1);
make_cert($dir, "$_.test") for qw(a c d);

my ($F1, $A, $C, $D) = free_ports(4);
$ENV{TEST_NGINX_STATE_DIR} = $dir;   # the state file outlives a prefix


# the upstream that answered a name: "a", "c", "d" or "closed"
sub up_of { my $l = tls_line($F1, $_[0]); $l =~ /^([acd]) / ? $1 : $l }

sub backend {
    my ($port, $tag) = @_;
    return tls_backend($port, "$dir/$tag.test", "$tag \$ssl_server_name");
}

sub stream_conf {
    my ($with_c) = @_;
    $with_c //= 1;
    my $c = $with_c ? "upstream c { server 127.0.0.1:$C; }" : '';
    my $canary = $with_c ? 'c' : 'a';
    return <<"CONF" . backend($A, 'a') . backend($C, 'c') . backend($D, 'd') . "}\n";
stream {
    upstream a { server 127.0.0.1:$A; }
    $c
    upstream d { server 127.0.0.1:$D; }
    upstream pass { dynroute_balancer; }

    dynroute_rollout db {
        variant  stable  a  100%;
        variant  canary  $canary  0%;
        key      \$ssl_preread_server_name;
    }

    dynroute_table sni {
        a.test      a;
        *.r.test    db;
        default     d;
    }

    server {
        listen 127.0.0.1:$F1;
        ssl_preread on;
        dynroute sni;
        proxy_pass \$dynroute_upstream;
    }
CONF
}

my $http = <<'CONF';
    dynroute_zone routes 1m state=$TEST_NGINX_STATE_DIR/state.json;
    upstream web_up { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "web\n"; }
    dynroute_table web {
        default  web_up;
    }
CONF

my $config = <<'CONF';
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
    location / {
        dynroute    web;
        proxy_pass  http://$dynroute_upstream;
    }
CONF

my $srv = start_nginx(http_config => $http, config => $config,
                      main_config => stream_conf(), workers => 2);

# ---- what the API shows -----------------------------------------------------

{
    my ($st, $doc) = api_call($srv, 'GET', '/dynroute/stream/');
    is($st, 200, 'GET stream/: 200');
    is_deeply([sort keys %{$doc->{tables}}], ['sni'], 'stream/: the stream table');
    is($doc->{tables}{sni}{key}, '$ssl_preread_server_name', 'with its key');
    is_deeply([sort keys %{$doc->{rollouts}}], ['db'], 'stream/: the stream rollout');
    is($doc->{rollouts}{db}{variants}{canary}{upstream}, 'c',
       'its upstreams without the prefix');
    is_deeply($doc->{upstreams}, ['a', 'c', 'd'],
              'the stream upstreams a host may name (not the balancer)');

    ($st, $doc) = api_call($srv, 'GET', '/dynroute/');
    is_deeply([sort keys %{$doc->{tables}}], ['web'], 'GET /: the http table only');
    is_deeply($doc->{rollouts}, {}, 'and no stream rollout');
    ok(!grep(/stream|^[acd]$/, @{$doc->{upstreams}}), 'nor stream upstream')
        or diag(explain($doc->{upstreams}));

    ($st) = api_call($srv, 'GET', '/dynroute/stream/rollouts/nosuch');
    is($st, 404, 'an unknown stream rollout: 404');
    ($st) = api_call($srv, 'GET', '/dynroute/stream/upstreams');
    is($st, 404, 'stream/ has hosts and rollouts, not the servers');
}

# ---- runtime SNI hosts --------------------------------------------------------

is(up_of('new.test'), 'd', 'before: new.test takes the default');
{
    my ($st, $doc) = api_call($srv, 'PUT', '/dynroute/stream/hosts/new.test',
                              '{"target":"c"}');
    is($st, 201, 'PUT stream/hosts/new.test: 201') or diag(explain($doc));
    is(up_of('new.test'), 'c', 'new.test goes to c in every worker') for 1 .. 4;
    is(up_of('NEW.Test.'), 'c', 'whatever its case, with a trailing dot');
    is(up_of('a.test'), 'a', 'the configured names are untouched');

    ($st, $doc) = api_call($srv, 'GET', '/dynroute/stream/hosts/new.test');
    is_deeply([$st, $doc->{table}, $doc->{target}], [200, 'sni', 'c'],
              'GET stream/hosts/new.test');
    ($st, $doc) = api_call($srv, 'GET', '/dynroute/stream/hosts');
    is_deeply([sort keys %{$doc->{hosts}}], ['new.test'], 'stream/hosts lists it');
    ($st, $doc) = api_call($srv, 'GET', '/dynroute/hosts');
    is_deeply($doc->{hosts}, {}, 'the http hosts do not');
    ($st, $doc) = api_call($srv, 'GET', '/dynroute/stream/');
    is($doc->{tables}{sni}{hosts}, 1, 'the stream table counts it');

    # a runtime host to a stream rollout
    ($st) = api_call($srv, 'PUT', '/dynroute/stream/hosts/db.test',
                     '{"target":"db","table":"sni"}');
    is($st, 201, 'a runtime host to the stream rollout');
    is(up_of('db.test'), 'a', 'its primary at 100%');
}

# ---- the namespaces stay apart ------------------------------------------------

{
    my ($st, $doc) = api_call($srv, 'PUT', '/dynroute/stream/hosts/x.test',
                              '{"target":"web_up"}');
    is($st, 400, 'a stream host to an http upstream: 400');
    like($doc->{error}, qr/"web_up" is neither an upstream\{\} nor a dynroute_rollout of the configuration in stream\{\}/,
         'saying so');
    ($st, $doc) = api_call($srv, 'PUT', '/dynroute/hosts/x.test', '{"target":"a"}');
    is($st, 400, 'an http host to a stream upstream: 400');
    ($st, $doc) = api_call($srv, 'PUT', '/dynroute/hosts/x.test',
                           '{"target":"stream/a"}');
    is($st, 400, 'nor with the prefix');
    ($st, $doc) = api_call($srv, 'PUT', '/dynroute/hosts/new.test',
                           '{"target":"web_up"}');
    is($st, 409, 'an http write of a stream host: 409');
    like($doc->{error}, qr/"new\.test" is a runtime host of stream table "sni": delete it there first/,
         'naming its table');
    ($st) = api_call($srv, 'DELETE', '/dynroute/hosts/new.test');
    is($st, 404, 'nor does an http DELETE see it');
    ($st, $doc) = api_call($srv, 'PUT', '/dynroute/stream/hosts/y.test',
                           '{"target":"a","table":"web"}');
    is($st, 400, 'a stream host in the http table: 400');
    is(up_of('new.test'), 'c', 'new.test still goes to c');
}

# ---- a stream rollout's weights -----------------------------------------------

sub split_of {
    my %n;
    $n{up_of("u$_.r.test")}++ for 1 .. 60;
    return \%n;
}

{
    is_deeply(split_of(), { a => 60 }, 'configured: every *.r.test name to stable');

    my ($st, $doc) = api_call($srv, 'PATCH', '/dynroute/stream/rollouts/db',
                              '{"weights":{"stable":0,"canary":100}}');
    is($st, 200, 'PATCH stream/rollouts/db: 200') or diag(explain($doc));
    is($doc->{rollout}{name}, 'db', 'the answer names it without the prefix');
    is($doc->{rollout}{variants}{canary}{weight}, 100, 'canary at 100%');
    is_deeply(split_of(), { c => 60 }, 'every *.r.test name to the canary');
    is(up_of('db.test'), 'c', 'and the runtime host to the rollout');
    my $m = http_get($srv, '/dynroute/metrics')->{body} // '';
    like($m, qr/^dynroute_stream_variant_weight_ratio\{rollout="db",variant="canary",upstream="c"\} 1$/m,
         'the metrics show the live weight');

    ($st, $doc) = api_call($srv, 'PATCH', '/dynroute/stream/rollouts/db',
                           '{"weights":{"stable":50,"canary":50}}');
    my $half = split_of();
    ok(($half->{a} // 0) > 10 && ($half->{c} // 0) > 10
       && ($half->{a} // 0) + ($half->{c} // 0) == 60,
       'at 50/50, both variants take names') or diag(explain($half));

    ($st, $doc) = api_call($srv, 'PATCH', '/dynroute/stream/rollouts/db',
                           '{"upstreams":{"canary":"a"}}');
    is($st, 400, 'a stream rollout\'s upstreams: 400');
    like($doc->{error}, qr/a stream rollout changes its "weights" and its "primary" at run time, not its "upstreams"/,
         'saying what it changes');
    ($st, $doc) = api_call($srv, 'PATCH', '/dynroute/stream/rollouts/db',
                           '{"weights":{"stable":50,"canary":40}}');
    is($st, 400, 'weights that are no split: 400');
    ($st) = api_call($srv, 'PATCH', '/dynroute/rollouts/db',
                     '{"weights":{"stable":0,"canary":100}}');
    is($st, 404, 'the http rollouts do not have it');
}

# ---- a host added and removed under a loop of connections ----------------------

{
    my $out = "$dir/loop";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 90;
        open my $fh, '>', $out or POSIX::_exit(1);
        $fh->autoflush(1);
        for my $i (1 .. 300) {
            my $name = $i % 2 ? 'a.test' : 'swap.test';
            my $line = tls_line($F1, $name);
            print $fh ($line =~ /^([acd]) \Q$name\E$/ ? "$name $1\n" : "bad $i: $line\n");
        }
        POSIX::_exit(0);
    }
    track($pid, 'connection loop');
    my $lines = sub { () = slurp($out) =~ /\n/g };
    ok(wait_for(30, sub { $lines->() >= 60 }), 'the loop runs');
    my ($st) = api_call($srv, 'PUT', '/dynroute/stream/hosts/swap.test',
                        '{"target":"c"}');
    is($st, 201, 'swap.test added under load');
    my $mid = $lines->();
    ok(wait_for(30, sub { $lines->() >= $mid + 80 }), 'the loop goes on');
    ($st) = api_call($srv, 'DELETE', '/dynroute/stream/hosts/swap.test');
    is($st, 200, 'swap.test removed under load');
    ok(wait_for(60, sub { $lines->() >= 300 }), 'the loop is done');
    stop_proc($pid);
    my $text = slurp($out);
    is(scalar(() = $text =~ /^bad/mg), 0, 'no connection failed') or diag($text);
    like($text, qr/^swap\.test d\n(?:.*\n)*?swap\.test c\n(?:.*\n)*?swap\.test d$/m,
         'swap.test went from the default to c and back');
    is(scalar(() = $text =~ /^a\.test a$/mg), 150, 'a.test stayed on a');
}

# ---- a stranger's SNI, a cross-site page --------------------------------------

{
    up_of('stranger.example');
    my ($st, $doc) = api_call($srv, 'GET', '/dynroute/stream/hosts');
    ok(!exists $doc->{hosts}{'stranger.example'}, 'a name a client sends adds no host');

    ($st) = api_call($srv, 'PUT', '/dynroute/stream/hosts/evil.test',
                     '{"target":"c"}', { Origin => 'https://evil.example' });
    is($st, 403, 'a cross-site page\'s write: 403');
    ($st) = api_call($srv, 'PATCH', '/dynroute/stream/rollouts/db',
                     'weights=1', { 'Content-Type' => 'application/x-www-form-urlencoded' });
    ok($st == 403 || $st == 415, "a form's write: refused ($st)");
    is(up_of('evil.test'), 'd', 'evil.test was not added');
}

# ---- reload, restart, a configuration without the target ------------------------

{
    ok(reload_nginx($srv, undef, undef, stream_conf()), 'reload');
    is(up_of('new.test'), 'c', 'after a reload: the runtime host');
    my $half = split_of();
    ok(($half->{a} // 0) > 10 && ($half->{c} // 0) > 10, 'and the weights')
        or diag(explain($half));

    my $state = slurp("$dir/state.json");
    like($state, qr{"stream/sni"}, 'the state file has the stream names, prefixed');

    error_log_ok(stop_nginx($srv), 'no alert, crit or crash before the restart');
    $srv = start_nginx(http_config => $http, config => $config,
                       main_config => stream_conf(), workers => 2);
    is(up_of('new.test'), 'c', 'after a restart: the runtime host, from the state file');
    my ($st, $doc) = api_call($srv, 'GET', '/dynroute/stream/rollouts/db');
    is($doc->{variants}{canary}{weight}, 50, 'and the weights');

    # a configuration without upstream c: the host to it goes, with a notice
    ok(reload_nginx($srv, undef, undef, stream_conf(0)), 'reload without upstream c');
    ok(wait_for(10, sub { up_of('new.test') eq 'd' }), 'new.test is gone: the default');
    ok(file_lines($srv->{error_log}, qr/dropped runtime host "new\.test": its target "stream\/c" is no longer configured/),
       'with a notice');
}

error_log_ok(stop_nginx($srv), 'no alert, crit or crash');

# ---- nginx -t: "stream/" begins no name of http{} with a zone ----------------

for my $case (
    [ 'upstream', "    upstream stream/x { server 127.0.0.1:1; }\n",
      qr/upstream "stream\/x" in \S+nginx\.conf:3: a name that begins with "stream\/" is the runtime state's for stream\{\} \(with a dynroute_zone\): rename it/ ],
    [ 'dynroute_table', "    dynroute_table stream/t { default web_up; }\n",
      qr/dynroute_table "stream\/t" in \S+nginx\.conf:3: a name that begins with "stream\/"/ ],
) {
    my ($what, $conf, $re) = @$case;
    my ($code, $out) = nginx_test_config(http_config => $conf . $http,
                                         config => '');
    isnt($code, 0, "nginx -t: an http $what named stream/...");
    like($out, $re, '... names it, where, and what to do') or diag($out);
}
{
    my ($code, $out) = nginx_test_config(
        http_config => "    upstream stream/x { server 127.0.0.1:1; }\n",
        config => '');
    is($code, 0, 'without a zone, such a name is fine') or diag($out);
}

done_testing();
