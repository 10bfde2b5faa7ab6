# The stream tables' metrics: sessions counted by table, rule and rollout
# variant in the http dynroute_zone's series, read at {prefix}metrics and
# {prefix}stats.  TLS clients with each kind of name, none, a ClientHello
# that never completes (counted at preread_timeout), a backend that
# refuses (502), a session held across a reload (the old worker counts
# into the same series), names a stranger sends (no series), metrics=tables
# and metrics=off.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp ();
use IO::Socket::IP;
use JSON::PP ();
use POSIX ();
use Test::More;
use Time::HiRes ();
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(free_ports track stop_proc wait_for spawn);
use Test::Nginx::Dynroute::Stream qw(stream_missing make_cert tls_backend
                                     tls_line);

my $why = stream_missing();
plan skip_all => $why if $why;

my $dir = File::Temp::tempdir(CLEANUP => 1);
make_cert($dir, "$_.test") for qw(a c d);

my ($F1, $F2, $A, $C, $D, $HOLD) = free_ports(6);


sub backend {
    my ($port, $cert, $tag) = @_;
    return tls_backend($port, "$dir/$cert.test", "$tag \$ssl_server_name");
}

# a plain TCP backend that holds each connection 3 s, then closes it
my $hold_pid = fork // die "fork: $!";
if ($hold_pid == 0) {
    my $l = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $HOLD,
                                Listen => 8, ReuseAddr => 1)
        or POSIX::_exit(1);
    alarm 120;
    while (my $c = $l->accept) {
        if (!fork) { sleep 3; POSIX::_exit(0) }
        close $c;
    }
    POSIX::_exit(0);
}
track($hold_pid, 'hold backend');

sub conf {
    my ($metrics, $extra) = @_;
    $extra //= '';
    my $conf = <<'CONF';
stream {
    upstream a    { server 127.0.0.1:%A%; }
    upstream c    { server 127.0.0.1:%C%; }
    upstream d    { server 127.0.0.1:%D%; }
    upstream down { server 127.0.0.1:1; }
    upstream hold { server 127.0.0.1:%HOLD%; }

    dynroute_rollout split {
        variant  stable  a  50%;
        variant  canary  c  50%;
        key      $ssl_preread_server_name;
    }

    dynroute_table sni {
        a.test          a;
        *.r.test        split;
        down.test       down;
        hold.test       hold;
        %EXTRA%
        default         d;
    }

    dynroute_table strict {
        a.test          a;
    }

    server {
        listen 127.0.0.1:%F1%;
        ssl_preread on;
        dynroute sni;
        proxy_pass $dynroute_upstream;
        proxy_connect_timeout 2s;
    }

    server {
        listen 127.0.0.1:%F2%;
        ssl_preread on;
        preread_timeout 1s;
        dynroute strict;
        proxy_pass $dynroute_upstream;
    }
CONF
    my %p = (A => $A, C => $C, D => $D, HOLD => $HOLD, F1 => $F1, F2 => $F2,
             EXTRA => $extra);
    $conf =~ s/%(\w+)%/$p{$1}/g;
    return $conf . backend($A, 'a', 'a') . backend($C, 'c', 'c')
        . backend($D, 'd', 'd') . "}\n";
}

my $http_zone = 'dynroute_zone routes 1m metrics=%s;';
my $api = <<'CONF';
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api; }
CONF

sub start {
    my ($metrics) = @_;
    return start_nginx(http_config => sprintf($http_zone, $metrics),
                       config => $api, main_config => conf($metrics),
                       workers => 2);
}

# {"name{labels}" => value} of the dynroute_stream_ samples
sub stream_samples {
    my ($srv) = @_;
    my $res = http_get($srv, '/dynroute/metrics');
    my %s;
    for my $line (split /\n/, $res->{body} // '') {
        next unless $line =~ /^(dynroute_stream_\S+) (\S+)$/;
        $s{$1} = $2;
    }
    return \%s;
}

sub conns {
    my ($s, $scope, $labels) = @_;
    my $sum = 0;
    for my $st (qw(200 400 403 500 502 503)) {
        $sum += $s->{"dynroute_stream_${scope}_connections_total"
                     . "{$labels,status=\"$st\"}"} // 0;
    }
    return $sum;
}

my $srv = start('rules');

# ---- connections of every kind ---------------------------------------------

is(tls_line($F1, 'a.test'), "a a.test\n", 'a.test: upstream a') for 1 .. 5;
my %variant;
$variant{tls_line($F1, "u$_.r.test") =~ /^([ac]) / ? $1 : 'bad'}++ for 1 .. 40;
is(($variant{a} // 0) + ($variant{c} // 0), 40, 'the rollout served 40');
is(tls_line($F1, undef), "d \n", 'no SNI: the default') for 1 .. 2;
like(tls_line($F1, 'down.test'), qr/^closed/, 'a backend that refuses: closed');
like(tls_line($F2, 'x.test'), qr/^closed/, 'strict, an unknown name: closed');

# a ClientHello that never completes, at preread_timeout
{
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $F2)
        or die "connect: $@";
    syswrite($s, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    my $rin = '';
    vec($rin, fileno($s), 1) = 1;
    ok(select(my $rout = $rin, undef, undef, 10), 'the unfinished hello is closed');
}

# a name a stranger sends never becomes a label
tls_line($F1, 'stranger-name.example');

my $s;
ok(wait_for(5, sub {
    $s = stream_samples($srv);
    conns($s, 'table', 'table="sni"') == 49
        && conns($s, 'table', 'table="strict"') == 2 }),
   'every session counted once by its table')
    or diag(explain($s));

is($s->{'dynroute_stream_table_connections_total{table="sni",status="200"}'},
   48, 'sni: 48 sessions ended with 200');
cmp_ok(conns($s, 'table', 'table="sni"')
       - $s->{'dynroute_stream_table_connections_total{table="sni",status="200"}'},
       '==', 1, 'sni: the refused backend ended otherwise');
ok(($s->{'dynroute_stream_table_connections_total{table="sni",status="502"}'} // 0) == 1,
   'sni: the refused backend is a 502');
is($s->{'dynroute_stream_table_unnamed_total{table="sni"}'}, 2,
   'sni: two sessions without a name');
is($s->{'dynroute_stream_table_unrouted_total{table="sni"}'}, 0,
   'sni: none unrouted (a default)');
is($s->{'dynroute_stream_table_unrouted_total{table="strict"}'}, 1,
   'strict: the unknown name was closed (the unfinished hello had no decision)');
is($s->{'dynroute_stream_table_preread_timeouts_total{table="strict"}'}, 1,
   'strict: one ClientHello not whole at preread_timeout');
is($s->{'dynroute_stream_table_preread_timeouts_total{table="sni"}'}, 0,
   'sni: no preread timeout');
is($s->{'dynroute_stream_table_session_seconds_count{table="sni"}'}, 49,
   'the session histogram counts every session');
cmp_ok($s->{'dynroute_stream_table_received_bytes_total{table="sni"}'}, '>',
       49 * 50, 'bytes from the clients (their ClientHellos at least)');
cmp_ok($s->{'dynroute_stream_table_sent_bytes_total{table="sni"}'}, '>',
       48 * 100, 'bytes to the clients (the backends\' handshakes)');

is(conns($s, 'rule', 'table="sni",rule="a.test"'), 5, 'rule a.test: 5');
is(conns($s, 'rule', 'table="sni",rule="*.r.test"'), 40, 'rule *.r.test: 40');
is(conns($s, 'rule', 'table="sni",rule="default"'), 3,
   'rule default: the two without a name and the stranger');
is(conns($s, 'rule', 'table="sni",rule="down.test"'), 1, 'rule down.test: 1');
is(conns($s, 'variant', 'rollout="split",variant="stable"'), $variant{a} // 0,
   'variant stable: the sessions upstream a answered');
is(conns($s, 'variant', 'rollout="split",variant="canary"'), $variant{c} // 0,
   'variant canary: the sessions upstream c answered');
is($s->{'dynroute_stream_variant_weight_ratio{rollout="split",variant="canary",upstream="c"}'},
   '0.5', 'the variant\'s weight');
ok(!grep(/stranger/, keys %$s), 'a name a stranger sent is no label');

# promtool lints the exposition with the stream families (where it is
# installed: make test-prometheus installs it, before the ASan run)
SKIP: {
    my $promtool = $ENV{PROMTOOL} || '/usr/bin/promtool';
    skip "no $promtool", 1 unless -x $promtool;
    my $file = "$srv->{prefix}/metrics.txt";
    open my $fh, '>', $file or die "$file: $!";
    print $fh http_get($srv, '/dynroute/metrics')->{body} // '';
    close $fh;
    my $out = `$promtool check metrics < '$file' 2>&1`;
    ok($? == 0 && $out !~ /\S/, 'promtool check metrics finds no problem')
        or diag("promtool: $out");
}

# the status page's JSON
{
    my $res = http_get($srv, '/dynroute/stats');
    my $j = eval { JSON::PP::decode_json($res->{body}) } // {};
    my ($t) = grep { $_->{name} eq 'strict' } @{$j->{stream}{tables} // []};
    is($t->{connections}, 2, 'stats: strict has 2 connections');
    is($t->{preread_timeouts}, 1, 'stats: and 1 preread timeout');
    my ($ro) = @{$j->{stream}{rollouts} // []};
    is($ro->{name}, 'split', 'stats: the stream rollout');
}

# ---- a session held across a reload ----------------------------------------

{
    # s_client waits for a handshake the hold backend never makes; the
    # session ends when the backend closes, 3 s in
    my $pid = spawn('s_client', '/dev/null', 'openssl', 's_client',
                    '-connect', "127.0.0.1:$F1", '-servername', 'hold.test');
    Time::HiRes::sleep(0.5);
    is(conns(stream_samples($srv), 'rule', 'table="sni",rule="hold.test"'), 0,
       'the held session has not ended yet');
    ok(reload_nginx($srv, undef, undef, conf('rules', 'new.test c;')),
       'reload while the session is held');
    is(tls_line($F1, 'new.test'), "c new.test\n", 'the new rule routes');
    ok(wait_for(10, sub {
        conns(stream_samples($srv), 'rule', 'table="sni",rule="hold.test"') == 1 }),
       'the old worker counted the held session when it ended');
    stop_proc($pid);
    my $t = stream_samples($srv);
    cmp_ok($t->{'dynroute_stream_rule_session_seconds_sum{table="sni",rule="hold.test"}'},
           '>=', 2, 'it lasted about 3 s');
    is(conns($t, 'rule', 'table="sni",rule="a.test"'), 5,
       'the reload kept the counts');
    is(conns($t, 'rule', 'table="sni",rule="new.test"'), 1,
       'the new rule has its series');
    is(conns($t, 'table', 'table="sni"'), 49 + 2, 'sni: two more sessions');
}

stop_nginx($srv);

# ---- metrics=tables and metrics=off ----------------------------------------

{
    my $t = start('tables');
    tls_line($F1, 'a.test');
    my $m;
    ok(wait_for(5, sub { $m = stream_samples($t);
                         conns($m, 'table', 'table="sni"') == 1 }),
       'metrics=tables: the table counts');
    ok(!grep(/dynroute_stream_rule_/, keys %$m), 'metrics=tables: no rule series');
    ok(grep(/dynroute_stream_variant_/, keys %$m), 'metrics=tables: the variants');
    stop_nginx($t);

    $t = start('off');
    is(tls_line($F1, 'a.test'), "a a.test\n", 'metrics=off: routed');
    my $res = http_get($t, '/dynroute/metrics');
    unlike($res->{body} // '', qr/dynroute_stream_/, 'metrics=off: no stream series');
    stop_nginx($t);
}

# ---- stream without an http dynroute_zone: routed, nothing counted -----------

{
    my $t = start_nginx(http_config => '', config => '',
                        main_config => conf('off'), workers => 1);
    is(tls_line($F1, 'a.test'), "a a.test\n", 'no zone: routed');
    stop_nginx($t);
}

stop_proc($hold_pid);

done_testing();
