# sticky_cookie through a real nginx with 2 workers: a first visit chosen by
# weight gets exactly one signed Set-Cookie (and Cache-Control: private),
# its value the issue time and a tag bound to the visitor's key; later
# visits with the same key that bring it keep their variant whichever worker
# answers, across a reload, on another instance, and over a ramp up while
# the variant's weight is above 0%; a new key (the application's uid cookie)
# is split by its own weight and gets a fresh cookie; a ramp down to 0% or a
# variant removed replaces the cookie; forged, foreign, another key's, old
# format, truncated, oversized, empty, non-hex and repeated cookies are
# ignored (weight decides, a fresh cookie is set); a first visit is never
# stored by proxy_cache in the same location, and a cache in front does not
# store what is marked private.  Then the configurations nginx -t refuses,
# and the reasons that set no cookie (override, source, fallback); behind an
# auth_request subrequest, after an internal redirect, with realip in the
# location, and a stranger's X-Real-IP where realip is not set up.  Expiry
# and the copied values of issue 21 are in t/security_cookie.t.  Loopback
# only.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Fixtures qw($STABLE_CANARY);
use File::Temp ();
use Time::HiRes ();

my $t0 = Time::HiRes::time();

# the secret, in a file of this test's own: fixed, so that the cookie
# values are the same on every run
my $secret = File::Temp->new(TEMPLATE => 'dynroute-secretXXXXXX', TMPDIR => 1);
print {$secret} "sticky_cookie.t: not a real key!";
close $secret;
$ENV{TEST_NGINX_STICKY_SECRET} = $secret->filename;

my $base = <<'CONF';
    upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream canary { server 127.0.0.1:$TEST_NGINX_PORT3; }
    upstream beta   { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "stable\n"; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        location / { return 200 "$host\n"; }
    }
    dynroute_sticky_secret $TEST_NGINX_STICKY_SECRET;
    dynroute_rollout checkout {
        variant  stable  stable  *;
VARIANTS
        key      $cookie_uid $arg_u;
        sticky_cookie dr max_age=1h path=/ httponly samesite=lax;
    }
    # the same variants and cookie name: its values must not count here
    dynroute_rollout other {
        variant  stable  stable  50%;
        variant  canary  canary  50%;
        key      $arg_u;
        sticky_cookie dr max_age=1h path=/ httponly samesite=lax;
    }
    dynroute_table edge {
        other.example.com  other;
        default            checkout;
    }
CONF

my $config = <<'CONF';
    location / {
        dynroute edge;
        add_header X-Variant $dynroute_variant always;
        add_header X-Reason $dynroute_reason always;
        add_header X-Worker $pid always;
        proxy_pass http://$dynroute_upstream;
    }
CONF

# the checkout rollout with these variants after stable (which takes "*")
sub conf_with {
    my (%w) = @_;
    my $v = join '', map { "        variant  $_  $_  $w{$_};\n" } sort keys %w;
    (my $c = $base) =~ s/^VARIANTS\n/$v/m;
    return $c;
}

my $SetCookieRe = qr/\Adr=([0-9a-f]{24}); Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax\z/;

# the issue time a value carries: its first 8 hex digits
sub issued { return hex substr($_[0], 0, 8) }

# a response: status, variant (the body: "stable", or the upstream name
# the other backend saw as $host), the headers that matter
sub parsed {
    my ($res) = @_;
    my $body = $res->{body} // '';
    chomp $body;
    my $hd = $res->{headers} || {};
    return {
        status  => $res->{status} // 0,
        body    => $body,
        variant => $hd->{'x-variant'}[0] // '',
        reason  => $hd->{'x-reason'}[0] // '',
        worker  => $hd->{'x-worker'}[0] // '',
        cookies => $hd->{'set-cookie'} || [],
        cc      => $hd->{'cache-control'} || [],
    };
}

# one request for key $u, with this Cookie header if defined
sub visit {
    my ($srv, $u, $cookie, %h) = @_;
    $h{Cookie} = $cookie if defined $cookie;
    return parsed(http_get($srv, "/?u=$u", \%h));
}

# the value of a response's one Set-Cookie, or undef
sub cookie_value {
    my ($r) = @_;
    return undef unless @{ $r->{cookies} } == 1;
    return $r->{cookies}[0] =~ $SetCookieRe ? $1 : undef;
}

# a response served by the variant it names (the body agrees)
sub consistent {
    my ($r) = @_;
    return $r->{status} == 200 && $r->{variant} ne '' && $r->{body} eq $r->{variant};
}

my @users = map { "user-$_" } 1 .. 1000;

my $srv = start_nginx(http_config => conf_with(canary => '10%'), config => $config,
                      workers => 2);

# ---- first visits: 1,000 keys at 10% --------------------------------------

my (%var, %cookie, %workers);
{
    my ($bad_cookie, $bad_cc, $bad_reason, $bad_answer, $bad_time, @why) = (0) x 5;
    my $start = time;
    for my $u (@users) {
        my $r = visit($srv, $u);
        $workers{ $r->{worker} }++;
        $bad_answer++, push @why, "$u: $r->{status} '$r->{body}' '$r->{variant}'"
            unless consistent($r);
        my $v = cookie_value($r);
        unless (defined $v) {
            $bad_cookie++;
            push @why, "$u: Set-Cookie: " . join(' | ', @{ $r->{cookies} });
        }
        $bad_cc++ unless "@{ $r->{cc} }" eq 'private';
        $bad_reason++ unless $r->{reason} eq 'weight';
        $bad_time++ unless defined $v && issued($v) >= $start - 1 && issued($v) <= time + 1;
        $var{$u} = $r->{variant};
        $cookie{$u} = $v // '';
    }
    is($bad_answer, 0, 'first visits: 1000 answers, each from the variant it names')
        or diag(join "\n", @why[0 .. ($#why < 9 ? $#why : 9)]);
    is($bad_cookie, 0, 'first visits: exactly one Set-Cookie each, '
       . 'dr=<24 hex>; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax')
        or diag(join "\n", @why[0 .. ($#why < 9 ? $#why : 9)]);
    is($bad_cc, 0, 'first visits: Cache-Control: private, once');
    is($bad_reason, 0, 'first visits: $dynroute_reason is weight');
    is(scalar keys %workers, 2, 'first visits: both workers answered');
    my $canary = grep { $var{$_} eq 'canary' } @users;
    my $stable = grep { $var{$_} eq 'stable' } @users;
    diag("1000 first visits: stable $stable, canary $canary");
    ok($canary >= 60 && $canary <= 140,
       "10% canary: $canary of 1000 first visits (binomial tolerance 60..140)");
    is($bad_time, 0, 'first visits: each value starts with its issue time (8 hex digits)');
    my %distinct = map { $_ => 1 } values %cookie;
    is(scalar keys %distinct, 1000, 'a value per key: 1000 keys, 1000 values');
}

# ---- later visits ----------------------------------------------------------

# every user with its cookie, $n times: how many kept their variant with
# reason sticky and no Set-Cookie
sub revisit {
    my ($srv, $name, $n, %o) = @_;
    my ($kept, $total, %w, @why) = (0, 0);
    for my $rep (1 .. $n) {
        for my $u (@users) {
            my $c = "dr=$cookie{$u}";
            $c = "uid=$o{uid}$u; $c" if defined $o{uid};
            my $r = visit($srv, $u, $c);
            $total++;
            $w{ $r->{worker} }++;
            if (consistent($r) && $r->{variant} eq $var{$u} && $r->{reason} eq 'sticky'
                && !@{ $r->{cookies} } && !@{ $r->{cc} })
            {
                $kept++;
            } elsif (@why < 5) {
                push @why, "$u ($var{$u}): $r->{status} $r->{variant}/$r->{body} "
                    . "reason $r->{reason}, Set-Cookie: @{ $r->{cookies} }, "
                    . "Cache-Control: @{ $r->{cc} }";
            }
        }
    }
    is($kept, $total, "$name: all $total visits with the cookie kept their variant "
       . '(reason sticky, no Set-Cookie, no Cache-Control)')
        or diag(join "\n", @why);
    return scalar keys %w;
}

is(revisit($srv, 'later visits, 2 workers', 3), 2, 'later visits: both workers answered');

# the app's own uid cookie appears and changes the key: the cookie was
# bound to the old key, so the new key's weight decides and a fresh cookie
# is bound to it
{
    my ($would_move, $split, $holds, @why) = (0, 0, 0);
    for my $u (@users) {
        my $fresh = visit($srv, $u, "uid=app-$u");
        $would_move++ if $fresh->{variant} ne $var{$u};
        my $r = visit($srv, $u, "uid=app-$u; dr=$cookie{$u}");
        my $v = cookie_value($r);
        if (consistent($r) && $r->{variant} eq $fresh->{variant} && $r->{reason} eq 'weight'
            && defined $v && "@{ $r->{cc} }" eq 'private')
        {
            $split++;
        } elsif (@why < 5) {
            push @why, "$u: $r->{variant} ($fresh->{variant} by weight), reason $r->{reason}, "
                . "Set-Cookie: @{ $r->{cookies} }";
        }
        next unless defined $v;
        my $again = visit($srv, $u, "uid=app-$u; dr=$v");
        $holds++ if $again->{variant} eq $fresh->{variant} && $again->{reason} eq 'sticky'
                    && !@{ $again->{cookies} };
    }
    ok($would_move > 50, "a new key moves $would_move of 1000 users by weight");
    is($split, 1000, 'a new key (uid cookie) with the old key\'s cookie: the new key\'s '
       . 'weight decides, with a fresh cookie')
        or diag(join "\n", @why);
    is($holds, 1000, 'a new key: its fresh cookie then holds for it');
}

ok(reload_nginx($srv, conf_with(canary => '10%'), undef), 'reload with the same rollout');
revisit($srv, 'after a reload', 1);

# another instance with the same secret file accepts the cookies
{
    my $other = start_nginx(http_config => conf_with(canary => '10%'), config => $config);
    my ($kept, $other_key) = (0, 0);
    for my $u (@users[0 .. 199]) {
        my $r = visit($other, $u, "dr=$cookie{$u}");
        $kept++ if $r->{variant} eq $var{$u} && $r->{reason} eq 'sticky';
        $r = visit($other, $u, "dr=$cookie{$u}; uid=elsewhere-$u");
        $other_key++ if $r->{reason} eq 'sticky';
    }
    is($kept, 200, 'another instance with the same secret keeps 200 users');
    is($other_key, 0, '... and, as here, their values hold for no other key');
    error_log_ok(stop_nginx($other), 'second instance: no alert/crit/crash');
}

# ---- a ramp: 10% -> 25% ----------------------------------------------------

ok(reload_nginx($srv, conf_with(canary => '25%'), undef), 'reload: canary at 25%');
{
    my ($stayed, $canary_kept, $stable_kept, $held) = (0, 0, 0, 0);
    my $by_weight = 0;
    for my $u (@users) {
        my $fresh = visit($srv, $u);               # what weight says now
        $by_weight++ if $fresh->{variant} eq 'canary';
        my $r = visit($srv, $u, "dr=$cookie{$u}");
        next unless consistent($r) && $r->{variant} eq $var{$u}
                    && $r->{reason} eq 'sticky' && !@{ $r->{cookies} };
        $stayed++;
        $var{$u} eq 'canary' ? $canary_kept++ : $stable_kept++;
        $held++ if $var{$u} eq 'stable' && $fresh->{variant} eq 'canary';
    }
    my $canary = grep { $var{$_} eq 'canary' } @users;
    is($canary_kept, $canary, "ramp 10% -> 25%: all $canary canary cookie holders stay canary");
    is($stable_kept, 1000 - $canary, 'ramp 10% -> 25%: every stable cookie holder stays stable');
    ok($held > 0, "ramp 10% -> 25%: $held stable users whose key now hashes to canary "
       . 'stayed stable by their cookie');
    ok($by_weight >= 200 && $by_weight <= 300,
       "25% canary: $by_weight of 1000 first visits");
    diag(sprintf 'ramp 10%% -> 25%%: %d of 1000 cookie holders stayed put (%.1f%%): '
         . '%d canary, %d stable (%d of them hashed to canary by now)',
         $stayed, $stayed / 10, $canary_kept, $stable_kept, $held);
}

# ---- a ramp down to 0%: the canary's cookies are replaced -----------------

ok(reload_nginx($srv, conf_with(canary => '0%'), undef), 'reload: canary at 0%');
{
    my ($moved, $replaced, $stayed, $again, %new) = (0, 0, 0, 0);
    my @canary = grep { $var{$_} eq 'canary' } @users;
    for my $u (@users) {
        my $r = visit($srv, $u, "dr=$cookie{$u}");
        if ($var{$u} eq 'canary') {
            $moved++ if consistent($r) && $r->{variant} eq 'stable'
                        && $r->{reason} eq 'weight';
            my $v = cookie_value($r);
            $replaced++ if defined $v && $v ne $cookie{$u}
                           && "@{ $r->{cc} }" eq 'private';
            $new{$u} = $v // '';
            my $next = visit($srv, $u, "dr=" . ($v // ''));
            $again++ if $next->{variant} eq 'stable' && $next->{reason} eq 'sticky'
                        && !@{ $next->{cookies} };
        } else {
            $stayed++ if $r->{variant} eq 'stable' && $r->{reason} eq 'sticky'
                         && !@{ $r->{cookies} };
        }
    }
    my $n = @canary;
    is($moved, $n, "ramp down to 0%: all $n canary cookie holders get stable by weight");
    is($replaced, $n, 'ramp down to 0%: each gets a Set-Cookie with a new value '
       . '(and Cache-Control: private)');
    is($again, $n, 'ramp down to 0%: the replaced cookie then keeps them on stable');
    is($stayed, 1000 - $n, 'ramp down to 0%: stable cookie holders are kept by their cookie');
    $var{$_} = 'stable', $cookie{$_} = $new{$_} for @canary;
}

# ---- a variant removed from the configuration -----------------------------

ok(reload_nginx($srv, conf_with(canary => '10%', beta => '20%'), undef),
   'reload: a third variant, beta at 20%');
my @beta;
{
    my $bad = 0;
    for my $u (map { "new-$_" } 1 .. 300) {
        my $r = visit($srv, $u);
        my $v = cookie_value($r);
        $bad++ unless consistent($r) && defined $v;
        next unless $r->{variant} eq 'beta';
        push @beta, [$u, $v];
    }
    is($bad, 0, 'beta at 20%: 300 first visits, each with its cookie');
    ok(@beta >= 30, scalar(@beta) . ' of 300 new users on beta');
    my %vals = map { $_->[1] => 1 } @beta;
    is(scalar keys %vals, scalar @beta, 'a value per beta user');
}
ok(reload_nginx($srv, conf_with(canary => '10%'), undef), 'reload: beta removed');
{
    my ($replaced, @why) = (0);
    for my $b (@beta) {
        my ($u, $v) = @$b;
        my $fresh = visit($srv, $u);
        my $r = visit($srv, $u, "dr=$v");
        my $nv = cookie_value($r);
        if (consistent($r) && $r->{variant} eq $fresh->{variant} && $r->{reason} eq 'weight'
            && defined $nv && $nv ne $v)
        {
            $replaced++;
        } elsif (@why < 5) {
            push @why, "$u: $r->{variant} ($fresh->{variant} by weight), reason $r->{reason}, "
                . "Set-Cookie: @{ $r->{cookies} }";
        }
    }
    is($replaced, scalar @beta, 'beta removed: each beta cookie is replaced by the '
       . 'weight\'s variant and a new value')
        or diag(join "\n", @why);
    revisit($srv, 'beta removed, stable and canary users', 1);
}

# ---- forged and foreign cookies --------------------------------------------

ok(reload_nginx($srv, conf_with(canary => '50%'), undef), 'reload: canary at 50%');
{
    # each key's own value here (by weight at 50%), and the other rollout's
    # value for the same key (same secret, variant names and cookie name)
    my @keys = map { "f-$_" } 1 .. 40;
    my (%own, %want, %foreign);
    for my $u (@keys) {
        my $r = visit($srv, $u);
        ($own{$u}, $want{$u}) = (cookie_value($r), $r->{variant});
        $foreign{$u} = cookie_value(visit($srv, $u, undef, Host => 'other.example.com'));
    }
    is(scalar(grep { defined $own{$_} && defined $foreign{$_} } @keys), 40,
       'each key\'s value here and the other rollout\'s for the same key');
    ok(!grep({ $own{$_} eq $foreign{$_} } @keys),
       'the other rollout\'s values differ from checkout\'s');

    # a canary value issued to a key of its own (another visitor)
    my $donor = (grep { visit($srv, $_)->{variant} eq 'canary' } map { "d-$_" } 1 .. 40)[0];
    my $copied = cookie_value(visit($srv, $donor));
    ok(defined $copied && visit($srv, $donor, "dr=$copied")->{reason} eq 'sticky',
       "another visitor's canary value, valid for its own key ($donor)");

    my $hex = sub { join '', map { (0 .. 9, 'a' .. 'f')[int rand 16] } 1 .. $_[0] };
    # the key's own value with one digit of the tag, or of the time, changed
    my $flip = sub {
        my ($v, $at) = @_;
        substr($v, $at, 1) = substr($v, $at, 1) eq '0' ? '1' : '0';
        return $v;
    };
    my $upper = sub { my $x = uc $_[0]; $x eq $_[0] ? "G$x" : $x };
    my @kinds = (
        [random         => sub { 'dr=' . $hex->(24) }],
        [old_format     => sub { 'dr=' . $hex->(16) }],
        [foreign        => sub { "dr=$foreign{$_[0]}" }],
        [another_key    => sub { "dr=$copied" }],
        [tag_digit_off  => sub { 'dr=' . $flip->($own{$_[0]}, 23) }],
        [time_digit_off => sub { 'dr=' . $flip->($own{$_[0]}, 7) }],
        [truncated_23   => sub { 'dr=' . substr($own{$_[0]}, 0, 23) }],
        [tag_only       => sub { 'dr=' . substr($own{$_[0]}, 8) }],
        [oversized_25   => sub { "dr=$own{$_[0]}0" }],
        [oversized_4k   => sub { 'dr=' . ($own{$_[0]} x 171) }],
        [empty          => sub { 'dr=' }],
        [no_equals      => sub { 'dr' }],
        [non_hex        => sub { 'dr=' . ('z' x 24) }],
        [upper_case     => sub { 'dr=' . $upper->($own{$_[0]}) }],
        [same_name_x2   => sub { 'dr=' . $hex->(24) . '; dr=' . substr($own{$_[0]}, 0, 23) }],
        [forged_then_valid => sub { 'dr=' . $hex->(24) . "; dr=$own{$_[0]}" }],
        [two_headers    => sub { ['dr=' . $hex->(24), "dr=$own{$_[0]}"] }],
    );
    my ($total, $e5xx, $wrong, $not_weight, $no_cookie, $diff, %per) = (0) x 6;
    my @why;
    for my $k (@kinds) {
        my ($kind, $make) = @$k;
        for my $u (@keys) {
            my $want = $want{$u};
            my $cv = $make->($u);
            my $r;
            if (ref $cv) {
                # two Cookie headers
                $r = parsed(http_raw($srv, "GET /?u=$u HTTP/1.1\r\nHost: localhost\r\n"
                                     . "Connection: close\r\n"
                                     . join('', map { "Cookie: $_\r\n" } @$cv) . "\r\n"));
            } else {
                $r = visit($srv, $u, $cv);
            }
            $total++;
            $diff++ if $want eq 'stable';     # a forged canary value would show
            my $v = cookie_value($r);
            my @bad;
            push @bad, '5xx' if $r->{status} >= 500;
            push @bad, 'variant' unless consistent($r) && $r->{variant} eq $want;
            push @bad, 'reason' unless $r->{reason} eq 'weight';
            push @bad, 'cookie' unless defined $v && "@{ $r->{cc} }" eq 'private'
                                       && visit($srv, $u, "dr=$v")->{reason} eq 'sticky';
            $e5xx++ if grep { $_ eq '5xx' } @bad;
            $wrong++ if grep { $_ eq 'variant' } @bad;
            $not_weight++ if grep { $_ eq 'reason' } @bad;
            $no_cookie++ if grep { $_ eq 'cookie' } @bad;
            $per{$kind}++ unless @bad;
            push @why, "$kind $u: @bad: $r->{status} $r->{variant}/$r->{body} "
                . "(weight: $want) reason $r->{reason}, Set-Cookie: @{ $r->{cookies} }"
                if @bad && @why < 10;
        }
        is($per{$kind} // 0, 40, "forged cookie, $kind: 40 keys get the weight's variant, "
           . 'reason weight, a fresh Set-Cookie that then holds');
    }
    is($e5xx, 0, 'forged cookies: no 5xx');
    diag(sprintf 'forged cookies: %d kinds x 40 keys = %d requests (%d where a canary '
         . 'value would have moved the user): %d 5xx, %d unintended variants, '
         . '%d not by weight, %d without a fresh Set-Cookie',
         scalar @kinds, $total, $diff, $e5xx, $wrong, $not_weight, $no_cookie);
    diag(join "\n", @why) if @why;
}

error_log_ok(stop_nginx($srv), 'no alert/crit/crash across 2 workers and reloads');

# ---- proxy_cache -----------------------------------------------------------
#
# port 2: the backends, one server per upstream name (proxy_pass sends it as
# Host), answers cacheable for 60 s; port 3: dynroute, with proxy_cache in
# the same location, the cache key without the variant; the block's server:
# a cache in front of port 3.

my $cache_http = <<'CONF';
    proxy_cache_path $TEST_NGINX_PREFIX/tmp/same  keys_zone=same:1m;
    proxy_cache_path $TEST_NGINX_PREFIX/tmp/front keys_zone=front:1m;
    upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream canary { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        server_name stable;
        location / { add_header Cache-Control "max-age=60"; return 200 "stable\n"; }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        server_name canary;
        location / { add_header Cache-Control "max-age=60"; return 200 "canary\n"; }
    }
    dynroute_sticky_secret $TEST_NGINX_STICKY_SECRET;
    dynroute_rollout checkout {
        variant  stable  stable  50%;
        variant  canary  canary  50%;
        key      $http_x_user;
        header   X-Canary;
        override_from 127.0.0.1;
        sticky_cookie dr;
    }
    dynroute_table edge { default checkout; }
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3;
        add_header X-Variant $dynroute_variant always;
        add_header X-Reason $dynroute_reason always;
        add_header X-Cache $upstream_cache_status always;
        location / {
            dynroute edge;
            proxy_pass http://$dynroute_upstream;
            proxy_cache same;
            proxy_cache_key $host$request_uri;
        }
        location /nocache/ {
            dynroute edge;
            proxy_pass http://$dynroute_upstream;
        }
        location /plain/ {
            proxy_pass http://stable;
            proxy_cache same;
            proxy_cache_key $host$request_uri;
        }
    }
CONF

my $cache_config = <<'CONF';
    # a cache in front: Set-Cookie ignored, so only Cache-Control keeps
    # what is one client's own out of it
    location /f/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_PORT3/nocache/;
        proxy_cache front;
        proxy_cache_key $request_uri;
        proxy_ignore_headers Set-Cookie;
        add_header X-Front-Cache $upstream_cache_status always;
    }
CONF

{
    my $srv = start_nginx(http_config => $cache_http, config => $cache_config);
    my $p3 = { port => $srv->{port3} };
    my $get = sub {
        my ($port, $path, %h) = @_;
        my $res = http_get($port, $path, \%h);
        my $hd = $res->{headers} || {};
        my $body = $res->{body} // '';
        chomp $body;
        return { status => $res->{status} // 0, body => $body,
                 variant => $hd->{'x-variant'}[0] // '',
                 reason => $hd->{'x-reason'}[0] // '',
                 cache => $hd->{'x-cache'}[0] // '',
                 front => $hd->{'x-front-cache'}[0] // '',
                 cookies => $hd->{'set-cookie'} || [],
                 cc => join(', ', @{ $hd->{'cache-control'} || [] }) };
    };

    # which users the weight puts where
    my (%by);
    for my $n (1 .. 40) {
        my $r = $get->($p3, '/nocache/probe', 'X-User' => "c$n");
        push @{ $by{ $r->{variant} } }, "c$n";
    }
    ok(@{ $by{stable} || [] } >= 3 && @{ $by{canary} || [] } >= 3,
       'proxy_cache: users on both variants found');
    my ($s1, $s2) = @{ $by{stable} };
    my ($c1, $c2) = @{ $by{canary} };
    my ($sticky) = ($get->($p3, '/nocache/x', 'X-User' => $s1)->{cookies}[0] // '')
        =~ /\A(dr=[0-9a-f]{24});/;
    ok(defined $sticky, 'proxy_cache: a stable user\'s cookie');

    # control: this location's cache stores what the backends send
    my @plain = map { $get->($p3, '/plain/x')->{cache} } 1 .. 2;
    is("@plain", 'MISS HIT', 'proxy_cache control: a backend answer is stored (MISS, HIT)');

    # (a) the same location: first visits are not stored
    my @seq;
    for my $u ($s1, $c1, $s2, $c2) {
        my $r = $get->($p3, '/a', 'X-User' => $u);
        push @seq, "$r->{body}/$r->{variant}/$r->{cache}/"
                 . (@{ $r->{cookies} } == 1 ? 'cookie' : 'no-cookie') . "/$r->{cc}";
    }
    is("@seq", join(' ', map { "$_/$_/MISS/cookie/private" } qw(stable canary stable canary)),
       'proxy_cache in the same location: first visits (stable, canary, stable, canary) '
       . 'are each a MISS with their own variant, a cookie and Cache-Control: private');
    # control: the same location stores a response of no one's own (the
    # sticky cookie decided)
    my @ctl = map { my $r = $get->($p3, '/a-control', 'X-User' => $s1, Cookie => $sticky);
                    "$r->{body}/$r->{reason}/$r->{cache}" } 1 .. 2;
    is("@ctl", 'stable/sticky/MISS stable/sticky/HIT',
       'proxy_cache in the same location, control: a sticky response is stored');
    my @files = glob "$srv->{prefix}/tmp/same/*";
    is(scalar @files, 2, 'proxy_cache in the same location: only the two controls were stored');

    # (b) a cache in front: Cache-Control: private is not stored
    my @front;
    for my $u ($s1, $c1, $s2, $c2) {
        my $r = $get->($srv, '/f/first', 'X-User' => $u);
        push @front, "$r->{body}/$r->{front}/$r->{cc}";
    }
    is("@front", join(' ', map { "$_/MISS/private" } qw(stable canary stable canary)),
       'a cache in front (Set-Cookie ignored): first visits are not stored');
    my @ov = map { my $r = $get->($srv, '/f/override', 'X-User' => $s1, 'X-Canary' => 'always');
                   "$r->{body}/$r->{front}/$r->{cc}" } 1 .. 3;
    is("@ov", join(' ', ('canary/MISS/private') x 3),
       'a cache in front: an override response (no Set-Cookie) is not stored either');
    # control: a response of no one's own (the sticky cookie decided) is stored
    my @st = map { my $r = $get->($srv, '/f/sticky', 'X-User' => $s1, Cookie => $sticky);
                   "$r->{body}/$r->{front}" } 1 .. 2;
    is("@st", 'stable/MISS stable/HIT',
       'a cache in front control: a sticky (not private) response is stored');

    error_log_ok(stop_nginx($srv), 'proxy_cache: no alert/crit/crash');
}

# the attributes as configured, in a fixed order; Path=/ by default
{
    my $srv = start_nginx(http_config => <<'CONF', config => <<'CONF');
    upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "a\n"; }
    dynroute_sticky_secret $TEST_NGINX_STICKY_SECRET;
    dynroute_rollout every {
        variant  a  a  *;
        variant  b  a  10%;
        sticky_cookie dr_v1 samesite=none domain=example.com path=/shop secure max_age=90s;
    }
    dynroute_rollout bare {
        variant  a  a  *;
        variant  b  a  10%;
        sticky_cookie Dr-2;
    }
    dynroute_table edge { bare.example.com bare; default every; }
CONF
    location / { dynroute edge; proxy_pass http://$dynroute_upstream; }
CONF
    my $r = http_get($srv, '/');
    like(join(' | ', @{ $r->{headers}{'set-cookie'} || [] }),
         qr/\Adr_v1=[0-9a-f]{24}; Path=\/shop; Domain=example\.com; Max-Age=90; Secure; SameSite=None\z/,
         'sticky_cookie with every attribute');
    $r = http_get($srv, '/', { Host => 'bare.example.com' });
    like(join(' | ', @{ $r->{headers}{'set-cookie'} || [] }),
         qr/\ADr-2=[0-9a-f]{24}; Path=\/\z/, 'sticky_cookie with no attribute: Path=/');
    error_log_ok(stop_nginx($srv), 'attributes: no alert/crit/crash');
}

# a subrequest, an internal redirect, realip in the location, and a
# stranger's X-Real-IP where realip is not configured
{
    my $http = conf_with(canary => '10%') . <<'CONF';
    dynroute_rollout office {
        variant  stable  stable  90%;
        variant  canary  canary  10%;
        source   10.0.0.0/8  canary;
        sticky_cookie dro;
    }
    dynroute_table byaddr { default office; }
CONF
    my $srv = start_nginx(http_config => $http, config => $config . <<'CONF');
    location /guarded/ {
        auth_request  /check;
        dynroute      edge;
        add_header    X-Variant $dynroute_variant always;
        add_header    X-Reason $dynroute_reason always;
        proxy_pass    http://$dynroute_upstream/;
    }
    location = /check {
        internal;
        dynroute    edge;
        proxy_pass  http://$dynroute_upstream/;
    }
    location /old/ { rewrite ^/old/(.*)$ /$1 last; }
    location /behind/ {
        set_real_ip_from  127.0.0.1;
        real_ip_header    X-Real-IP;
        dynroute    byaddr;
        add_header  X-Variant $dynroute_variant always;
        add_header  X-Reason $dynroute_reason always;
        proxy_pass  http://$dynroute_upstream/;
    }
    location /direct/ {
        dynroute    byaddr;
        add_header  X-Variant $dynroute_variant always;
        add_header  X-Reason $dynroute_reason always;
        proxy_pass  http://$dynroute_upstream/;
    }
CONF
    my ($sub_ok, $redir_ok, $same) = (0, 0, 0);
    for my $u (@users[0 .. 59]) {
        my $direct = visit($srv, $u);
        my $g = parsed(http_get($srv, "/guarded/?u=$u"));
        my $o = parsed(http_get($srv, "/old/?u=$u"));
        $sub_ok++ if consistent($g) && $g->{reason} eq 'weight'
                     && defined cookie_value($g) && $g->{variant} eq $direct->{variant};
        $redir_ok++ if consistent($o) && $o->{reason} eq 'weight'
                       && defined cookie_value($o) && $o->{variant} eq $direct->{variant};
        my $held = visit($srv, $u, 'dr=' . (cookie_value($g) // ''));
        $same++ if $held->{reason} eq 'sticky' && $held->{variant} eq $direct->{variant};
    }
    is($sub_ok, 60, 'behind an auth_request subrequest: one Set-Cookie, from the main request, the variant a direct visit gets');
    is($redir_ok, 60, 'after an internal redirect: one Set-Cookie, the variant a direct visit gets');
    is($same, 60, '... whose value then holds on a direct visit');

    # realip in the location: a source pick sets no cookie; a weight pick,
    # keyed by the address realip gave, sets one that then holds
    my $r = parsed(http_get($srv, '/behind/', { 'X-Real-IP' => '10.1.2.3' }));
    is("$r->{body} $r->{reason} " . scalar @{ $r->{cookies} }, 'canary source 0',
       'realip 10.1.2.3: the source rule picks the canary, no cookie');
    my (%by, %addr) = ();
    for my $i (1 .. 200) {
        my $w = parsed(http_get($srv, '/behind/', { 'X-Real-IP' => "203.0.113.$i" }));
        my $again = parsed(http_get($srv, '/behind/', { 'X-Real-IP' => "203.0.113.$i" }));
        next unless consistent($w) && $w->{reason} eq 'weight' && $w->{cookies}[0]
                    && $w->{cookies}[0] =~ /\Adro=([0-9a-f]{24}); Path=\/\z/
                    && $again->{variant} eq $w->{variant};
        $by{ $w->{variant} } = $1;
        $addr{ $w->{variant} } = "203.0.113.$i";
    }
    ok($by{stable} && $by{canary}, 'realip 203.0.113.x: weight picks by the real address, both variants, each with its cookie');
    $r = parsed(http_get($srv, '/behind/', { 'X-Real-IP' => $addr{canary}, Cookie => "dro=$by{canary}" }));
    is("$r->{body} $r->{reason} " . scalar @{ $r->{cookies} }, 'canary sticky 0',
       'realip: the canary cookie holds from the address it was issued to, no new cookie');
    $r = parsed(http_get($srv, '/behind/', { 'X-Real-IP' => $addr{stable}, Cookie => "dro=$by{canary}" }));
    is("$r->{body} $r->{reason} " . scalar @{ $r->{cookies} }, 'stable weight 1',
       'realip: ... not from another address (the key), which gets its own by weight');
    $r = parsed(http_get($srv, '/behind/', { 'X-Real-IP' => '10.1.2.3', Cookie => "dro=$by{stable}" }));
    is("$r->{body} $r->{reason}", 'canary source', '... a source rule comes before the cookie');

    # no realip here: a stranger's X-Real-IP is not the address
    my ($spoofed) = (0);
    for my $i (1 .. 20) {
        my $d = parsed(http_get($srv, '/direct/', { 'X-Real-IP' => '10.1.2.3', 'X-Forwarded-For' => '10.1.2.3' }));
        $spoofed++ if $d->{reason} eq 'source';
    }
    is($spoofed, 0, 'without realip, X-Real-IP 10.1.2.3 from a stranger picks nothing by source');
    error_log_ok(stop_nginx($srv), 'subrequest, redirect, realip: no alert/crit/crash');
}

# key $cookie_<the sticky cookie's name>: a later visit's key is the value
# itself, so the values are bound to no key (they still carry their issue
# time); nginx's $cookie_ names ignore case, so $cookie_DR is the cookie dr.
# Without max_age the cookie is a session cookie (no Max-Age).
{
    my $srv = start_nginx(http_config => $STABLE_CANARY . <<'CONF', config => $config);
    dynroute_sticky_secret $TEST_NGINX_STICKY_SECRET;
    dynroute_rollout checkout {
        variant  stable  stable  50%;
        variant  canary  canary  50%;
        key      $cookie_DR $arg_u;
        sticky_cookie dr;
    }
    dynroute_table edge { default checkout; }
CONF
    my (%val, %var, $form) = ();
    for my $u (map { "k-$_" } 1 .. 40) {
        my $r = visit($srv, $u);
        ($r->{cookies}[0] // '') =~ /\Adr=([0-9a-f]{24}); Path=\/\z/ or next;
        $form++;
        $val{ $r->{variant} } //= $1;
        $var{ $r->{variant} } //= $u;
    }
    is($form, 40, 'key $cookie_DR: 40 first visits, each with a session cookie dr=<24 hex>; Path=/');
    my ($own, $any) = (0, 0);
    for my $variant (qw(stable canary)) {
        my $r = visit($srv, $var{$variant}, "dr=$val{$variant}");
        $own++ if $r->{variant} eq $variant && $r->{reason} eq 'sticky' && !@{ $r->{cookies} };
        for my $u (map { "other-$_" } 1 .. 20) {
            $r = visit($srv, $u, "dr=$val{$variant}");
            $any++ if $r->{variant} eq $variant && $r->{reason} eq 'sticky';
        }
    }
    is($own, 2, 'key $cookie_DR: each variant\'s value holds on the next visit, whose key it is');
    is($any, 40, 'key $cookie_DR: the values are bound to no key: they hold for any visitor');
    error_log_ok(stop_nginx($srv), 'the cookie as the key: no alert/crit/crash');
}

diag(sprintf 'sticky_cookie.t low-level part: %.1f s', Time::HiRes::time() - $t0);

run_tests();

__DATA__

=== TEST 1: sticky_cookie without dynroute_sticky_secret
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    sticky_cookie dr;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*sticky_cookie of dynroute rollout "r" in \S+nginx\.conf:7 needs a secret to sign its cookies: add "dynroute_sticky_secret FILE;"/m



=== TEST 2: a secret of 15 bytes is too short
--- user_files
>>> secret
0123456789abcd
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_sticky_secret $TEST_NGINX_HTML_DIR/secret;
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    sticky_cookie dr;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*the sticky secret "\S+\/secret" is too short: 16 bytes at least .* in \S+nginx\.conf:4$/m



=== TEST 3: a secret of 16 bytes will do
--- user_files
>>> secret
0123456789abcde
--- http_config
upstream a { server 127.0.0.1:$TEST_NGINX_PORT2; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "a\n"; }
dynroute_sticky_secret $TEST_NGINX_HTML_DIR/secret;
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    sticky_cookie dr;
}
dynroute_table edge { default r; }
--- config
    location / { dynroute edge; proxy_pass http://$dynroute_upstream; }
--- request
GET /
--- response_body
a
--- response_headers
Cache-Control: private



=== TEST 4: a secret file that cannot be read
--- http_config
dynroute_sticky_secret $TEST_NGINX_HTML_DIR/no-such-secret;
--- must_die
--- error_log eval
qr/\[emerg\] .*cannot read the sticky secret "\S+\/no-such-secret" \(2: No such file or directory\) in \S+nginx\.conf:3$/m



=== TEST 5: samesite=none without secure
--- user_files
>>> secret
0123456789abcdef0123456789abcdef
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_sticky_secret $TEST_NGINX_HTML_DIR/secret;
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    sticky_cookie dr path=/ samesite=none httponly;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*sticky_cookie "dr" in dynroute rollout "r" has samesite=none without secure, which browsers refuse: add secure in \S+nginx\.conf:8$/m



=== TEST 6: an unknown parameter
--- user_files
>>> secret
0123456789abcdef0123456789abcdef
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_sticky_secret $TEST_NGINX_HTML_DIR/secret;
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;
    sticky_cookie dr max_age=1h expires=1h;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "expires=1h" of sticky_cookie in dynroute rollout "r": expected max_age=TIME, domain=NAME, path=\/PATH, secure, httponly or samesite=strict\|lax\|none in \S+nginx\.conf:8$/m



=== TEST 7: a bad max_age
--- user_files
>>> secret
0123456789abcdef0123456789abcdef
--- http_config
upstream a { server 127.0.0.1:1; }
dynroute_sticky_secret $TEST_NGINX_HTML_DIR/secret;
dynroute_rollout r {
    variant  a  a  *;
    variant  b  a  10%;

    sticky_cookie dr max_age=soon;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "max_age=soon" of sticky_cookie in dynroute rollout "r".* in \S+nginx\.conf:9$/m



=== TEST 8: override, source and fallback set no cookie; weight does
--- user_files
>>> secret
0123456789abcdef0123456789abcdef
--- http_config
upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
upstream canary { server 127.0.0.1:$TEST_NGINX_PORT3; }
upstream down   { server 127.0.0.1:$TEST_NGINX_PORT3 down; }
upstream edge_pass { dynroute_balancer fallback=primary; }
server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "stable\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "canary\n"; }
dynroute_sticky_secret $TEST_NGINX_HTML_DIR/secret;
dynroute_rollout checkout {
    variant  stable  stable  100%;
    variant  canary  canary  0%;
    header   X-Canary;
    cookie   canary;
    override_from 127.0.0.1;
    sticky_cookie dr;
}
dynroute_rollout office {
    variant  stable  stable  100%;
    variant  canary  canary  0%;
    source   127.0.0.0/8  canary;
    sticky_cookie dr;
}
dynroute_rollout risky {
    variant  stable  stable  *;
    variant  canary  down    100%;
    sticky_cookie dr;
}
dynroute_table edge {
    office.example.com  office;
    risky.example.com   risky;
    default             checkout;
}
--- config
    add_header X-Variant $dynroute_variant always;
    add_header X-Reason $dynroute_reason always;
    location / {
        dynroute edge;
        proxy_pass http://edge_pass;
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /"]
--- more_headers eval
["", "X-Canary: always", "Cookie: canary=always", "Host: office.example.com",
 "Host: risky.example.com"]
--- response_body eval
["stable\n", "canary\n", "canary\n", "canary\n", "stable\n"]
--- response_headers eval
["X-Reason: weight\nCache-Control: private",
 "X-Reason: header\n!Set-Cookie\nCache-Control: private",
 "X-Reason: cookie\n!Set-Cookie\nCache-Control: private",
 "X-Reason: source\n!Set-Cookie\n!Cache-Control",
 "X-Variant: canary\nX-Reason: fallback\n!Set-Cookie\n!Cache-Control"]
--- error_log
has no live servers, passing the request to the primary "stable"
