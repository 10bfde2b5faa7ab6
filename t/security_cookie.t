# Issue 21, finding 9: a stickiness cookie was a bearer token for its
# variant, one value per variant for everyone, valid for ever.  Now a value
# is bound to the key it was issued for and carries its issue time inside
# the signature.  A block per claim, each through a real nginx:
#   1. a value issued to one key gives no variant to another key;
#   2. a canary value copied while the canary was at 50% gives nothing to
#      anyone else once the canary is ramped down to 0.01%;
#   3. a value expires on the server at max_age, even for its own key.
# The key is the X-User header, so that many keys come from one address.
# Loopback only; about 4 s.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Fixtures qw($STABLE_CANARY);
use File::Temp ();
use Time::HiRes ();

my $secret = File::Temp->new(TEMPLATE => 'dynroute-secretXXXXXX', TMPDIR => 1);
print {$secret} "security_cookie.t: not a real key";
close $secret;
$ENV{TEST_NGINX_STICKY_SECRET} = $secret->filename;

# a 50/50 rollout keyed by X-User, its cookie's max_age, the runtime API
sub http_config {
    my ($max_age) = @_;
    return <<"CONF" . $STABLE_CANARY . <<'CONF';
    dynroute_rollout checkout {
        variant  stable  stable  50%;
        variant  canary  canary  50%;
        key      \$http_x_user;
        sticky_cookie dr max_age=$max_age;
    }
CONF
    dynroute_zone cookies 1m;
    dynroute_sticky_secret $TEST_NGINX_STICKY_SECRET;
    dynroute_table edge { default checkout; }
CONF
}

my $config = <<'CONF';
    location / {
        dynroute    edge;
        add_header  X-Reason $dynroute_reason always;
        proxy_pass  http://$dynroute_upstream;
    }
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF

# one visit of user $u, with the stickiness cookie's value $v if defined:
# "variant reason" and the value of a Set-Cookie: dr=... (whatever its form)
sub visit {
    my ($srv, $u, $v) = @_;
    my %h = ('X-User' => $u);
    $h{Cookie} = "dr=$v" if defined $v;
    my $res = http_get($srv, '/', \%h);
    chomp(my $body = $res->{body} // '');
    my $reason = ($res->{headers}{'x-reason'} // [''])->[0];
    my ($set) = map { /\Adr=([^;]*)/ ? $1 : () } @{ $res->{headers}{'set-cookie'} || [] };
    return ("$body $reason", $set);
}

# users on each variant by weight: [user, the value given, the time just
# before it was asked for]
sub split_users {
    my ($srv, $prefix, $n) = @_;
    my %by;
    for my $u (map { "$prefix-$_" } 1 .. $n) {
        my $t = Time::HiRes::time();
        my ($what, $set) = visit($srv, $u);
        my ($variant) = $what =~ /\A(\w+) weight\z/ or next;
        push @{ $by{$variant} }, [$u, $set, $t] if defined $set;
    }
    return \%by;
}

# the runtime API: new weights, at once in every worker
sub set_weights {
    my ($srv, $stable, $canary) = @_;
    my $body = qq({"weights":{"stable":$stable,"canary":$canary}});
    my $res = http_raw($srv, "PATCH /dynroute/rollouts/checkout HTTP/1.1\r\n"
        . "Host: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body");
    return $res->{status} // 0;
}

# ---- 1. a value issued to one key gives no variant to another key --------

{
    my $srv = start_nginx(http_config => http_config('1h'), config => $config);
    my $by = split_users($srv, 'a', 60);
    my ($alice, $value) = @{ $by->{canary}[0] || [] };
    my @others = map { $_->[0] } @{ $by->{stable} || [] };
    ok(defined $value && @others >= 10,
       'claim 1: a canary user by weight (' . ($alice // 'none') . ') with a value, and '
       . scalar(@others) . ' stable users');

    my ($what, $set) = visit($srv, $alice, $value);
    is($what, 'canary sticky', 'claim 1 control: the value keeps its own key on the canary');

    my (%got, $fresh) = ();
    for my $u (@others) {
        ($what, $set) = visit($srv, $u, $value);
        $got{$what}++;
        $fresh++ if defined $set && $set ne $value;
    }
    my $n = @others;
    is(join(', ', map { "$_ x$got{$_}" } sort keys %got), "stable weight x$n",
       "claim 1: $n other keys that bring the canary user's value stay on stable, by weight");
    is($fresh // 0, $n, 'claim 1: ... and each gets a fresh value of its own');
    error_log_ok(stop_nginx($srv), 'claim 1: no alert/crit/crash');
}

# ---- 2. a copied canary value gives nothing at 0.01% -----------------------

{
    my $srv = start_nginx(http_config => http_config('1h'), config => $config);
    my $by = split_users($srv, 'b', 60);
    my ($holder, $value) = @{ $by->{canary}[0] || [] };
    ok(defined $value, 'claim 2: a canary value copied at 50% (from ' . ($holder // 'none') . ')');

    is(set_weights($srv, 99.99, 0.01), 200, 'claim 2: the canary ramped down to 0.01% (API)');

    my (%got, %control) = ();
    for my $u (map { "stranger-$_" } 1 .. 30) {
        my ($without) = visit($srv, $u);
        $control{$without}++;
        my ($what) = visit($srv, $u, $value);
        $got{$what}++;
    }
    is(join(', ', map { "$_ x$control{$_}" } sort keys %control), 'stable weight x30',
       'claim 2 control: at 0.01% 30 strangers without the value are on stable');
    is(join(', ', map { "$_ x$got{$_}" } sort keys %got), 'stable weight x30',
       'claim 2: 30 strangers who paste the copied canary value stay on stable');
    error_log_ok(stop_nginx($srv), 'claim 2: no alert/crit/crash');
}

# ---- 3. a value expires on the server at max_age ---------------------------

{
    my $srv = start_nginx(http_config => http_config('2s'), config => $config);
    my $by = split_users($srv, 'c', 60);
    is(set_weights($srv, 99.99, 0.01), 200, 'claim 3: the canary ramped down to 0.01% (API)');

    # a canary user of 50% whom the weight now puts on stable
    my ($holder, $value, $t0);
    for my $c (@{ $by->{canary} || [] }) {
        my ($now) = visit($srv, $c->[0]);
        ($holder, $value, $t0) = @$c, last if $now eq 'stable weight';
    }
    ok(defined $value, 'claim 3: a canary value issued at 50% to ' . ($holder // 'nobody')
       . ', on stable by weight at 0.01%');

    my ($what) = visit($srv, $holder, $value);
    is($what, 'canary sticky',
       'claim 3 control: at 0.01% the value keeps its holder on the canary for now');

    # then, within max_age plus a second of clock granularity, it expires
    my ($refused, $set);
    while (Time::HiRes::time() - $t0 < 6) {
        ($what, $set) = visit($srv, $holder, $value);
        if ($what ne 'canary sticky') {
            $refused = Time::HiRes::time() - $t0;
            last;
        }
        Time::HiRes::sleep(0.1);
    }
    ok(defined $refused && $refused >= 1 && $refused < 3.5,
       'claim 3: max_age=2s: the value is refused '
       . (defined $refused ? sprintf('%.1f s after it was issued', $refused)
                           : 'never: still valid 6 s after it was issued'));
    is($what, 'stable weight', 'claim 3: ... and its holder is split by weight again (stable)');
    ok(defined $set && $set ne $value, 'claim 3: ... with a fresh value');
    error_log_ok(stop_nginx($srv), 'claim 3: no alert/crit/crash');
}

done_testing();
