# Rollouts through a real nginx: the variant of a key is the same in every
# worker, after a reload and on another instance with the same
# configuration; ramping a canary up keeps its users; an empty key falls
# back to the client address.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Fixtures qw($STABLE_CANARY);

my $http = $STABLE_CANARY . <<'CONF';
    dynroute_rollout checkout {
        variant  stable  stable  *;
        variant  canary  canary  WEIGHT;
        key      $http_x_user $cookie_uid;
    }
    dynroute_table edge { default checkout; }
CONF

my $config = <<'CONF';
    location / {
        dynroute edge;
        add_header X-Variant $dynroute_variant always;
        add_header X-Worker $pid always;
        proxy_pass http://$dynroute_upstream;
    }
CONF

sub conf_with { my ($w) = @_; (my $c = $http) =~ s/WEIGHT/$w/; $c }

my @keys = map { "user-$_" } 1 .. 1000;

# key => variant, asking each key on its own connection
sub variants {
    my ($srv, $name) = @_;
    my (%v, $bad, %workers);
    for my $k (@keys) {
        my $res = http_get($srv, '/', { 'X-User' => $k });
        $workers{ $res->{headers}{'x-worker'}[0] // '' }++;
        my $body = $res->{body} // '';
        chomp $body;
        my $hdr = $res->{headers}{'x-variant'}[0] // '';
        $bad++ unless ($res->{status} // 0) == 200 && $body eq $hdr;
        $v{$k} = $body;
    }
    ok(!$bad, "$name: 1000 answers, each from the variant it names");
    return wantarray ? (\%v, scalar keys %workers) : \%v;
}

sub differences {
    my ($a, $b) = @_;
    return scalar grep { $a->{$_} ne $b->{$_} } @keys;
}

sub share {
    my ($v, $name) = @_;
    return 100 * (grep { $v->{$_} eq $name } @keys) / @keys;
}

my $srv = start_nginx(http_config => conf_with('30%'), config => $config,
                      workers => 2);

my ($first, $workers) = variants($srv, 'two workers, first pass');
is($workers, 2, 'both workers answered');
my $again = variants($srv, 'two workers, second pass');
is(differences($first, $again), 0,
   'every key gets the same variant again, whichever worker answers');

my $canary = share($first, 'canary');
ok($canary > 25 && $canary < 35, "30% canary: $canary% of 1000 keys");

ok(reload_nginx($srv, conf_with('30%'), undef), 'reload with the same rollout');
my $reloaded = variants($srv, 'after a reload');
is(differences($first, $reloaded), 0, 'a reload keeps every key in its variant');

my $other = start_nginx(http_config => conf_with('30%'), config => $config,
                        workers => 1);
my $elsewhere = variants($other, 'another instance');
is(differences($first, $elsewhere), 0,
   'another instance with the same configuration agrees on 1000 keys');

# ramp 30% -> 60%: every canary user stays in the canary
ok(reload_nginx($srv, conf_with('60%'), undef), 'reload: canary at 60%');
my $ramped = variants($srv, 'at 60%');
my $left = grep { $first->{$_} eq 'canary' && $ramped->{$_} ne 'canary' } @keys;
is($left, 0, 'ramping up moves no canary user out of the canary');
my $now = share($ramped, 'canary');
ok($now > 55 && $now < 65, "60% canary: $now% of 1000 keys");

# the first non-empty key: the header, else the cookie, else the address
my $cookie_same = 0;
for my $n (1 .. 20) {
    my $by_header = http_get($other, '/', { 'X-User' => "u$n" });
    my $by_cookie = http_get($other, '/', { 'Cookie' => "a=b; uid=u$n" });
    $cookie_same++ if $by_cookie->{body} eq $by_header->{body};
}
is($cookie_same, 20, 'an empty $http_x_user falls to $cookie_uid (20 keys)');

my $header_first = 0;
for my $n (1 .. 20) {
    my $alone = http_get($other, '/', { 'X-User' => "u$n" });
    my $both = http_get($other, '/', { 'X-User' => "u$n", 'Cookie' => 'uid=x' });
    $header_first++ if $both->{body} eq $alone->{body};
}
is($header_first, 20, 'a non-empty $http_x_user comes before $cookie_uid');

# ten rollouts, so that agreeing by chance is unlikely (0.5^10)
my $many = "    upstream stable { server 127.0.0.1:\$TEST_NGINX_PORT2; }\n"
         . "    upstream canary { server 127.0.0.1:\$TEST_NGINX_PORT3; }\n"
         . "    server { listen 127.0.0.1:\$TEST_NGINX_PORT2; return 200 \"stable\\n\"; }\n"
         . "    server { listen 127.0.0.1:\$TEST_NGINX_PORT3; return 200 \"canary\\n\"; }\n";
for my $n (0 .. 9) {
    $many .= "    dynroute_rollout r$n { variant stable stable 50%; "
           . "variant canary canary 50%; key \$http_x_user; }\n";
}
$many .= "    dynroute_table edge {\n"
       . join('', map { "        h$_.example.com r$_;\n" } 0 .. 9)
       . "    }\n";
my $fallback = start_nginx(http_config => $many, config => $config);
my ($same, @seen) = (0);
for my $n (0 .. 9) {
    my $addr = http_get($fallback, '/', { Host => "h$n.example.com" });
    my $as_key = http_get($fallback, '/',
                          { Host => "h$n.example.com", 'X-User' => '127.0.0.1' });
    $same++ if $addr->{body} eq $as_key->{body};
    push @seen, $addr->{body};
}
is($same, 10, 'with every key variable empty the key is $remote_addr');
ok((grep { $_ ne $seen[0] } @seen), 'and that is no fixed variant');
error_log_ok(stop_nginx($fallback), 'fallback instance: no alert/crit/crash');

# blue/green: 100% / 0%, switched by swapping the weights and reloading
my $bg = <<'CONF';
    upstream blue  { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream green { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "blue\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "green\n"; }
    dynroute_rollout site {
        variant  blue   blue   BLUE;
        variant  green  green  GREEN;
        header   X-Deploy;
        override_from 127.0.0.1;
        key      $http_x_user;
    }
    dynroute_table edge { default site; }
CONF
sub colours { my ($b, $g) = @_; (my $c = $bg) =~ s/BLUE/$b/; $c =~ s/GREEN/$g/; $c }
sub answers {
    my ($srv, %h) = @_;
    my %n;
    $n{ http_get($srv, '/', { 'X-User' => "u$_", %h })->{body} }++ for 1 .. 100;
    return join ' ', map { chomp(my $k = $_); "$k=$n{$_}" } sort keys %n;
}
my $site = start_nginx(http_config => colours('100%', '0%'), config => $config);
is(answers($site), 'blue=100', 'blue/green: everyone on blue');
is(answers($site, 'X-Deploy' => 'green'), 'green=100', 'X-Deploy: green tests the idle side');
ok(reload_nginx($site, colours('0%', '100%'), undef), 'switch: swap the weights, reload');
is(answers($site), 'green=100', 'after the switch everyone is on green');
is(answers($site, 'X-Deploy' => 'never'), 'blue=100', 'never: the primary, blue');
ok(reload_nginx($site, colours('100%', '0%'), undef), 'switch back');
is(answers($site), 'blue=100', 'everyone is on blue again');
error_log_ok(stop_nginx($site), 'blue/green: no alert/crit/crash');

error_log_ok(stop_nginx($other), 'second instance: no alert/crit/crash');
error_log_ok(stop_nginx($srv), 'no alert/crit/crash across reloads');

done_testing();
