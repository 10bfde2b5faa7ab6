# Ramps (docs/design/canary.md, part 3) through a real nginx with 2 workers,
# a zone with a state file, and a guard with a short window (window=1s
# interval=100ms min_requests=5) over a 5-step ramp 1% 5% 25% 50% 100%
# hold=1s.  The client is this file: a bounded loop of requests with a new
# key each, every failed one counted.  Without requests the guard waits
# and the ramp holds its step, which the tests use to stop it in place.
#   - started, the ramp walks every step to done with no failed request;
#   - a canary that starts failing at the third step (25%) trips the guard:
#     the ramp is aborted at that step, the canary at 0%;
#   - a dependency of both versions failing trips nothing, and the ramp
#     holds its step until the primary recovers;
#   - pause, resume and abort through the API; a weights PATCH pauses;
#   - a reload mid-ramp keeps the step, and so does a restart (state=);
#   - the API's refusals (400, 404, 405, 409) in JSON.
# The nginx -t errors of the "ramp" line are in t/ramp_errors.t.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Api;
use Test::Nginx::Dynroute::Proc qw(slurp spew);
use File::Temp ();
use Time::HiRes ();
use Test::More;

# the state file outlives each nginx of this test; so does the file that
# makes the canary fail
my $state_dir = File::Temp::tempdir(CLEANUP => 1);
$ENV{TEST_NGINX_STATE_DIR} = $state_dir;

my $http = <<'CONF';
    error_log $TEST_NGINX_PREFIX/logs/error.log notice;
    dynroute_zone routes 1m state=$TEST_NGINX_STATE_DIR/state.json;
    upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream canary { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            root $TEST_NGINX_STATE_DIR;
            if (-f $document_root/fail_both) { return 500 "stable fails\n"; }
            return 200 "stable\n";
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        location / {
            root $TEST_NGINX_STATE_DIR;
            if (-f $document_root/fail) { return 500 "canary fails\n"; }
            if (-f $document_root/fail_both) { return 500 "canary fails\n"; }
            return 200 "canary\n";
        }
    }
    dynroute_rollout shop {
        variant  stable  stable  100%;
        variant  canary  canary  0%;
        key      $arg_k;
        guard    errors=5% window=1s interval=100ms min_requests=5;
        ramp     canary 1% 5% 25% 50% 100% hold=1s;
    }
    dynroute_rollout plain {
        variant  stable  stable  90%;
        variant  canary  canary  10%;
    }
    dynroute_table main { default shop; }
CONF

my $config = <<'CONF';
    location / {
        dynroute    main;
        proxy_pass  http://$dynroute_upstream;
    }
    location /api/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF

sub rollout { (api_call($_[0], 'GET', '/api/rollouts/shop'))[1] }

sub ramp_of { rollout($_[0])->{ramp} }

sub action {
    my ($srv, $action, $name) = @_;
    return api_call($srv, 'POST', '/api/rollouts/' . ($name // 'shop') . '/ramp',
                    qq({"action": "$action"}));
}

# Requests with new keys until $until->() says so or $seconds pass;
# returns (requests, failed, canary answers, what stopped it).
my $seq = 0;
sub traffic {
    my ($srv, $seconds, $until) = @_;
    my ($n, $failed, $canary) = (0, 0, 0);
    my $deadline = Time::HiRes::time() + $seconds;
    my $next_look = 0;
    while (Time::HiRes::time() < $deadline) {
        my $r = http_get($srv, '/x?k=' . (++$seq));
        $n++;
        if (($r->{status} // 0) != 200) {
            $failed++;
        } elsif (($r->{body} // '') eq "canary\n") {
            $canary++;
        }
        if ($until && Time::HiRes::time() >= $next_look) {
            $next_look = Time::HiRes::time() + 0.05;
            return ($n, $failed, $canary, 1) if $until->();
        }
    }
    return ($n, $failed, $canary, 0);
}

my $srv = start_nginx(workers => 2, http_config => $http, config => $config);

# ---- before a start: ready, and the variant stays at 0% ---------------------

my $ro = rollout($srv);
is($ro->{ramp}{state}, 'ready', 'a configured ramp is ready, not running');
is_deeply($ro->{ramp}{steps}, [1, 5, 25, 50, 100], 'GET shows the steps');
is($ro->{ramp}{variant}, 'canary', '... the variant');
is($ro->{ramp}{hold}, 1, '... and the hold, in seconds');
traffic($srv, 1.5);
is(rollout($srv)->{variants}{canary}{weight}, 0,
   'traffic alone starts nothing: the canary stays at 0%');

# ---- a healthy ramp walks to done -------------------------------------------

my ($st, $doc) = action($srv, 'start');
is($st, 200, 'POST {"action": "start"}: 200');
is($doc->{ramp}{state}, 'running', '... the ramp runs');
is($doc->{ramp}{step}, 0, '... at its first step');
is($doc->{variants}{canary}{weight}, 1, '... the canary at 1%');
is($doc->{variants}{stable}{weight}, 99, '... the primary at the rest');
ok($doc->{generation} > 0, '... the answer has the generation');
ok($doc->{ramp}{next_in} > 0 && $doc->{ramp}{next_in} <= 1,
   '... and says when the step may move');

my $t0 = Time::HiRes::time();
my ($n, $failed, $canary, $reached) = traffic($srv, 60, sub {
    (ramp_of($srv)->{state} // '') eq 'done';
});
my $took = Time::HiRes::time() - $t0;
ok($reached, sprintf('the 5-step ramp reached done in %.1f s under %d requests',
                     $took, $n));
is($failed, 0, '... with no failed request');
ok($canary > 0, "... the canary answered $canary of them");
$ro = rollout($srv);
is($ro->{variants}{canary}{weight}, 100, '... the canary at 100%');
is($ro->{variants}{stable}{weight}, 0, '... the primary at 0%');
like($ro->{ramp}{why}, qr/^done: held \S+ at 100%, \d+\.\d% 5xx of \d+ responses$/,
     '... why: ' . ($ro->{ramp}{why} // ''));

my $log = slurp($srv->{error_log});
my @moves = $log =~ /\[notice\] .*rollout "shop" ramp: (variant "canary" .*?)(?:,|$)/mg;
like($log, qr/\[notice\] .*rollout "shop" ramp: variant "canary" 1% -> 5% \(held \S+s, \d+\.\d% 5xx of \d+ responses\)/,
     'each move is logged at notice, with the figures');
for my $pair (['5%', '25%'], ['25%', '50%'], ['50%', '100%']) {
    like($log, qr/rollout "shop" ramp: variant "canary" \Q$pair->[0]\E -> \Q$pair->[1]\E \(held/,
         "... $pair->[0] -> $pair->[1]");
}
like($log, qr/rollout "shop" ramp: variant "canary" done at 100%/, '... and done');

# ---- a canary that fails at the third step: aborted there --------------------

($st) = api_call($srv, 'DELETE', '/api/rollouts/shop');
is($st, 200, 'DELETE puts the rollout back: the ramp is ready again');
is(ramp_of($srv)->{state}, 'ready', '... ready');

($st, $doc) = action($srv, 'start');
is($st, 200, 'started again');
my $fail = "$state_dir/fail";
my $failing_at;
($n, $failed, $canary, $reached) = traffic($srv, 60, sub {
    my $r = rollout($srv);
    if (!defined $failing_at && ($r->{ramp}{step} // 0) >= 2) {
        $failing_at = $r->{ramp}{step};
        spew($fail, "x");
    }
    return ($r->{ramp}{state} // '') ne 'running';
});
ok($reached, "the ramp stopped ($n requests, $failed failed)");
is($failing_at, 2, 'the canary began to fail at the third step (25%)');
$ro = rollout($srv);
is($ro->{ramp}{state}, 'aborted', 'the guard aborted the ramp');
is($ro->{ramp}{step}, 2, '... at that step');
is($ro->{variants}{canary}{weight}, 0, '... the canary at 0%');
is($ro->{variants}{stable}{weight}, 100, '... the primary has it all');
is($ro->{guard}{tripped}{variant}, 'canary', '... the guard tripped on the canary');
like($ro->{ramp}{why}, qr/5xx/, '... why: the trip\'s ' . ($ro->{ramp}{why} // ''));
($n, $failed) = traffic($srv, 0.5);
is($failed, 0, 'afterwards no request fails');
unlink $fail;

($st, $doc) = action($srv, 'start');
is($st, 409, 'start while the guard has tripped: 409');
like($doc->{error} // '', qr/clear the trip with a PATCH/, '... saying to clear it first');

# ---- a dependency of both failing: no trip, the ramp holds its step ----------

($st) = api_call($srv, 'DELETE', '/api/rollouts/shop');
is($st, 200, 'shared failure: the rollout reset');
my $both = "$state_dir/fail_both";
spew($both, "x");
traffic($srv, 1.5);     # the primary's whole window fails
($st) = action($srv, 'start');
is($st, 200, 'shared failure: started while the primary fails');
($n, $failed) = traffic($srv, 3);
$ro = rollout($srv);
ok($failed > 0, "shared failure: both versions failed ($failed of $n) for three holds");
is($ro->{ramp}{state}, 'running', '... no trip: the ramp still runs');
is($ro->{ramp}{step}, 0, '... and holds its first step');
ok(!$ro->{guard}{tripped}, '... the guard did not trip');
is($ro->{guard}{window}{canary}{state}, 'waiting', '... the canary waits while the primary fails');
unlink $both;
# The failures leave the window before traffic resumes: a window that
# holds both, with the canary's handful of answers beside the primary's
# thousands, is noisy enough at min_requests=5 to trip (docs/canary.md).
Time::HiRes::sleep(1.5);
($n, $failed, $canary, $reached) = traffic($srv, 20, sub { (ramp_of($srv)->{step} // 0) >= 1 });
ok($reached, "the primary recovered: the ramp moves on ($n requests)");
($st) = api_call($srv, 'DELETE', '/api/rollouts/shop');

# ---- pause, resume, abort; a weights PATCH pauses ----------------------------

api_call($srv, 'DELETE', '/api/rollouts/shop');
action($srv, 'start');
($n, $failed, $canary, $reached) = traffic($srv, 30, sub {
    (ramp_of($srv)->{step} // 0) >= 1;
});
ok($reached, 'running again, at the second step');
($st, $doc) = action($srv, 'pause');
is($st, 200, 'pause: 200');
is($doc->{ramp}{state}, 'paused', '... paused');
my $step = $doc->{ramp}{step};
my $weight = $doc->{variants}{canary}{weight};
traffic($srv, 2.5);
$ro = rollout($srv);
is($ro->{ramp}{step}, $step, 'paused: no step under traffic, past the hold');
is($ro->{variants}{canary}{weight}, $weight, '... the weight stays');
is($ro->{ramp}{why}, "paused by an operator at $weight%" . ' after ' . ($ro->{ramp}{why} =~ /after (\S+)$/)[0],
   '... why: ' . $ro->{ramp}{why});

($st, $doc) = action($srv, 'pause');
is($st, 409, 'pause when paused: 409');
($st, $doc) = action($srv, 'resume');
is($st, 200, 'resume: 200');
is($doc->{ramp}{state}, 'running', '... running');
($n, $failed, $canary, $reached) = traffic($srv, 30, sub {
    (ramp_of($srv)->{step} // 0) > $step;
});
ok($reached, 'resumed: the next step comes');

($st, $doc) = action($srv, 'abort');
is($st, 200, 'abort: 200');
is($doc->{ramp}{state}, 'aborted', '... aborted');
is($doc->{variants}{canary}{weight}, 0, '... the canary at 0%');
like($doc->{ramp}{why}, qr/^aborted by an operator at \d+%$/, '... why: ' . $doc->{ramp}{why});
($st, $doc) = action($srv, 'abort');
is($st, 409, 'abort when aborted: 409');

action($srv, 'start');
($st, $doc) = api_call($srv, 'PATCH', '/api/rollouts/shop',
                       '{"weights": {"stable": 97, "canary": 3}}');
is($st, 200, 'a weights PATCH of a running ramp: 200');
$ro = rollout($srv);
is($ro->{ramp}{state}, 'paused', '... pauses the ramp');
is($ro->{variants}{canary}{weight}, 3, '... the weights are the PATCH\'s');
traffic($srv, 2);
is(rollout($srv)->{variants}{canary}{weight}, 3, '... and the ramp moves them no more');

# ---- a reload mid-ramp, then a restart with state=, keep the step ------------

api_call($srv, 'DELETE', '/api/rollouts/shop');
action($srv, 'start');
($n, $failed, $canary, $reached) = traffic($srv, 30, sub {
    (ramp_of($srv)->{step} // 0) >= 2;
});
ok($reached, 'running at the third step');
my $before = rollout($srv);
ok(reload_nginx($srv), 'reloaded');
$ro = rollout($srv);
is($ro->{ramp}{state}, 'running', 'after the reload: still running');
is($ro->{ramp}{step}, $before->{ramp}{step}, '... at the same step');
is($ro->{variants}{canary}{weight}, $before->{variants}{canary}{weight},
   '... at the same weight');
($n, $failed, $canary, $reached) = traffic($srv, 30, sub {
    (ramp_of($srv)->{step} // 0) > $before->{ramp}{step};
});
ok($reached, '... and the new worker 0 moves it on');
is($failed, 0, '... no request failed across the reload');

$before = rollout($srv);
error_log_ok(stop_nginx($srv), 'no alert, crit or crash before the restart');
$srv = start_nginx(workers => 2, http_config => $http, config => $config);
$ro = rollout($srv);
is($ro->{ramp}{state}, $before->{ramp}{state},
   "after a restart with state=: $ro->{ramp}{state}");
is($ro->{ramp}{step}, $before->{ramp}{step}, '... at the same step');
is($ro->{variants}{canary}{weight}, $before->{variants}{canary}{weight},
   '... at the same weight');

# ---- dynroutectl ramp: where it stands, and the actions --------------------

{
    my $node = "http://127.0.0.1:$srv->{port}/api/";
    my $ctl = sub {
        my $out = `python3 tools/dynroutectl --node $node ramp @_ 2>&1`;
        return ($? >> 8, $out);
    };
    my ($code, $out) = $ctl->('shop');
    is($code, 0, 'dynroutectl ramp shop: exit 0');
    my $at = $ro->{ramp}{step};
    my @marks = map { $_ == $at ? "[$ro->{ramp}{steps}[$_]%]" : "$ro->{ramp}{steps}[$_]%" } 0 .. 4;
    like($out, qr/^  rollout shop: ramp of canary \Q@marks\E, hold 1s$/m,
         '... shows the steps, the one in force marked');
    like($out, qr/^    running at step ${\($at + 1)} of 5 \(\d+%\), held [\d.]+s, next in [\d.]+s$/m,
         '... where it stands');
    like($out, qr/^    why: held [\d.]+m?s at \d+%, \d+\.\d% 5xx of \d+ responses$/m,
         '... and why it moved') or diag($out);
    ($code, $out) = $ctl->('shop', 'pause');
    is($code, 0, 'dynroutectl ramp shop pause: exit 0');
    like($out, qr/: ok, generation \d+, pause\n.*\n    paused at step/s, '... paused') or diag($out);
    ($code, $out) = $ctl->('shop', 'pause');
    is($code, 1, 'pause again: exit 1');
    like($out, qr/409 Conflict: cannot pause the ramp of rollout "shop": it is paused already/,
         '... with the API\'s reason') or diag($out);
    ($code, $out) = $ctl->('plain');
    like($out, qr/rollout plain has no ramp/, 'a rollout without a ramp: said');
    ($code, $out) = $ctl->('shop', 'resume');
    is($code, 0, 'resume: exit 0');
}

# ---- refusals -----------------------------------------------------------------

($st, $doc) = action($srv, 'start', 'plain');
is($st, 409, 'a rollout without a ramp: 409');
like($doc->{error} // '', qr/has no ramp/, '... in JSON: ' . ($doc->{error} // ''));
($st, $doc) = action($srv, 'start', 'nope');
is($st, 404, 'no such rollout: 404');
like($doc->{error} // '', qr/no rollout "nope"/, '... in JSON');
($st, $doc) = action($srv, 'jump');
is($st, 400, 'an unknown action: 400');
like($doc->{error} // '', qr/unknown action "jump"/, '... in JSON');
($st, $doc) = api_call($srv, 'POST', '/api/rollouts/shop/ramp', 'start');
is($st, 400, 'a body that is not JSON: 400');
($st, $doc) = api_call($srv, 'PUT', '/api/rollouts/shop/ramp', '{"action": "start"}');
is($st, 405, 'PUT: 405');
($st, $doc) = api_call($srv, 'POST', '/api/rollouts/shop/ramp', '{"action": "pause"}',
                       { 'If-Match' => '"99999"' });
is($st, 409, 'If-Match of another generation: 409');
like($doc->{error} // '', qr/not 99999 \(If-Match\)/, '... in JSON');
($st, $doc) = api_call($srv, 'POST', '/api/rollouts/shop/ramp', '{"action": "pause"}',
                       { 'Origin' => 'http://evil.example' });
is($st, 403, 'a cross-site POST: 403');

error_log_ok(stop_nginx($srv));

done_testing();
