# What tools/dynroutectl and tools/dynroute-agent send, and where: a node
# that answers with a redirect gets an error, not a second request, and the
# Authorization header of --user reaches no other server (checked in the
# access log of the server the redirect points to); https:// nodes are
# verified against --cacert (a CA made here by openssl) or the system's
# CAs; --user is refused over http:// to another host than this one; every
# write carries Content-Type: application/json.  Real nginx servers, all
# on 127.0.0.1; the tools run with Debian's python3 (the agent's part needs
# python3-etcd3 and is skipped without it: no etcd is started, the agent
# only reports stale to the node).
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use File::Temp ();

my $ctl   = tool_path('dynroutectl');
my $agent = tool_path('dynroute-agent');

unless (-x $PYTHON && `command -v openssl 2>/dev/null`) {
    fail("$PYTHON and openssl are there (make deps installs them)");
    done_testing();
    exit;
}
delete $ENV{$_} for qw(DYNROUTE_NODES DYNROUTE_USER http_proxy https_proxy
                       HTTP_PROXY HTTPS_PROXY SSL_CERT_FILE SSL_CERT_DIR);

my $dir = File::Temp::tempdir(CLEANUP => 1);

# A port nothing listens on; and an address that is not loopback but from
# which nothing leaves this host (on Linux, 0.0.0.0 is this host): what
# --user must refuse, reached without the network by a tool that does not.
my ($dead) = free_ports(1);
my $not_loopback = "http://0.0.0.0:$dead/dynroute/";

# each stopped after 30 s if still running
sub ctl { return run_cmd({ timeout => 30 }, $PYTHON, $ctl, '--timeout', 20, @_) }

# ---- a CA, and a certificate for 127.0.0.1 signed by it ---------------------

sub openssl {
    my (@args) = @_;
    my $r = run_cmd('openssl', @args);
    die "openssl @args: $r->{err}\n" if $r->{exit};
}

openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', 2,
        '-subj', '/CN=dynroute test CA', '-keyout', "$dir/ca.key", '-out', "$dir/ca.pem");
openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1',
        '-keyout', "$dir/node.key", '-out', "$dir/node.csr");
spew("$dir/node.ext", "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n");
openssl('x509', '-req', '-in', "$dir/node.csr", '-CA', "$dir/ca.pem", '-CAkey', "$dir/ca.key",
        '-CAcreateserial', '-days', 2, '-extfile', "$dir/node.ext", '-out', "$dir/node.pem");

# ---- nginx: a node over http and https, and "another host" -------------------
#
# SERVER_PORT: the node over http; PORT3: the same node over https; both
# have /redirect/, which answers 302 to PORT2, "another host", whose access
# log records the Authorization header of every request that reaches it and
# which answers like the API would (so that a tool that follows the
# redirect has an answer to print).

(my $http = <<'CONF') =~ s/DIR/$dir/g;
    dynroute_zone routes 1m;
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    dynroute_rollout checkout {
        variant stable service_a *;
        variant canary service_a 0%;
    }
    dynroute_table main { default service_a; }

    log_format seen '$request_method $request_uri|$http_authorization|$content_type';
    access_log $TEST_NGINX_PREFIX/logs/node.log seen;

    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        access_log $TEST_NGINX_PREFIX/logs/other.log seen;
        default_type application/json;
        return 200 '{"generation": 1, "draining": false, "rollouts": {}, "hosts": {}, "revision": 7, "stale": false}';
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_PORT3 ssl;
        ssl_certificate      DIR/node.pem;
        ssl_certificate_key  DIR/node.key;
        location /redirect/ { return 302 http://127.0.0.1:$TEST_NGINX_PORT2/stolen/; }
        location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
    }
CONF

my $config = <<'CONF';
    location /redirect/ { return 302 http://127.0.0.1:$TEST_NGINX_PORT2/stolen/; }
    location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }
CONF

my $srv   = start_nginx(http_config => $http, config => $config);
my $other = "127.0.0.1:$srv->{port2}";
my $http_node  = "http://127.0.0.1:$srv->{port}";
my $https_node = "https://127.0.0.1:$srv->{port3}";
my $other_log  = "$srv->{prefix}/logs/other.log";
my $marks = 0;

# The lines of "another host"'s access log written since the last call:
# a request of our own is logged after what ran before (one worker).
my $other_seen = 0;
sub other_saw {
    my $mark = '/mark-' . ++$marks;
    http_get($srv->{port2}, $mark);
    file_lines($other_log, qr/^GET \Q$mark\E\|/, 1);
    my $text = slurp($other_log);
    my $new = substr($text, $other_seen);
    $other_seen = length $text;
    return [ grep { !/^GET \/mark-\d+\|/ } split /\n/, $new ];
}

sub draining { return json_of(http_get($srv, '/dynroute/')->{body})->{draining} }

is_deeply(other_saw(), [], 'another host: nothing before the tests');

# ---- dynroutectl: a redirect is an error, and nothing is sent to it ----------

my $r = ctl('--node', "$http_node/redirect/", '--user', 'ops:secret', 'status');
is($r->{exit}, 1, 'a node that redirects: status exits 1');
like($r->{err}, qr{^dynroutectl: \Q$http_node\E/redirect/: 302 Moved Temporarily: a redirect to http://\Q$other\E/stolen/, not followed: the API never redirects}m,
     'a node that redirects: stderr names the URL tried, the status and the Location') or diag($r->{err});
is($r->{out}, '', 'a node that redirects: nothing on stdout');
is_deeply(other_saw(), [], 'a node that redirects: the other host received nothing (no Authorization)');

$r = ctl('--node', "$http_node/redirect/", '--user', 'ops:secret', 'drain');
is($r->{exit}, 1, 'a node that redirects a POST: drain exits 1');
like($r->{err}, qr{302 Moved Temporarily: a redirect to http://\Q$other\E/stolen/, not followed}, 'a node that redirects a POST: said so');
is_deeply(other_saw(), [], 'a node that redirects a POST: the other host received nothing');

# https -> http: a redirect out of TLS is refused the same way (the CA given
# as the system's, through SSL_CERT_FILE, which Python's ssl reads)
{
    local $ENV{SSL_CERT_FILE} = "$dir/ca.pem";
    $r = ctl('--node', "$https_node/redirect/", '--user', 'ops:secret', 'status');
}
is($r->{exit}, 1, 'an https node that redirects to http: exit 1');
like($r->{err}, qr{302 Moved Temporarily: a redirect to http://\Q$other\E/stolen/, not followed}, 'https -> http: said so')
    or diag($r->{err});
is_deeply(other_saw(), [], 'https -> http: the other host received nothing');

# ---- dynroutectl: https nodes are verified ------------------------------------

$r = ctl('--node', "$https_node/dynroute/", '--cacert', "$dir/ca.pem", '--user', 'ops:secret', 'status');
is($r->{exit}, 0, 'https with --cacert: status exits 0') or diag($r->{err});
like($r->{out}, qr/^127\.0\.0\.1:\d+: generation \d+, serving$/m, 'https with --cacert: the status');

$r = ctl('--node', "$https_node/dynroute/", 'status');
is($r->{exit}, 1, 'https without --cacert: exit 1 (not a CA of the system)');
like($r->{err}, qr/TLS: the node's certificate does not verify against the system's CAs .*: (self[- ]signed|unable to get local issuer)/,
     'https without --cacert: the verification failure, named') or diag($r->{err});

$r = ctl('--node', "$https_node/dynroute/", '--cacert', "$dir/node.pem", 'status');
is($r->{exit}, 1, 'https with the wrong CA file: exit 1');

$r = ctl('--node', "$http_node/dynroute/", '--cacert', "$dir/ca.pem", 'status');
is($r->{exit}, 2, '--cacert without an https:// node: a usage error');

$r = ctl('--node', $not_loopback, '--user', 'ops:secret', 'status');
is($r->{exit}, 2, '--user over http:// to another host: a usage error (nothing sent)');
like($r->{err}, qr/password would cross the network in clear text/, '--user over http:// to another host: says why');
{
    local $ENV{DYNROUTE_USER} = 'ops:secret';
    $r = ctl('--node', $not_loopback, 'status');
}
is($r->{exit}, 2, 'DYNROUTE_USER over http:// to another host: a usage error too');

# ---- every write is JSON ---------------------------------------------------------

my $node_log = "$srv->{prefix}/logs/node.log";
my $before = () = slurp($node_log) =~ /\n/g;
for my $cmd (['drain'], ['ready'], ['set-weights', 'checkout', 'stable=100'],
             ['host', 'add', 'a.example.com', 'service_a'],
             ['host', 'rm', 'a.example.com'], ['reset', 'checkout']) {
    $r = ctl('--node', "$http_node/dynroute/", @$cmd);
    is($r->{exit}, 0, "@$cmd: exit 0") or diag($r->{err});
}
file_lines($node_log, qr/^DELETE \/dynroute\/rollouts\/checkout\|/, 1);
my @lines = split /\n/, slurp($node_log);
my @writes = grep { /^(POST|PUT|PATCH) / } @lines[$before .. $#lines];
is(scalar(@writes), 4, 'four writes with a body: POST drain, POST ready, PATCH, PUT')
    or diag(Test::More::explain(\@writes));
is_deeply([ grep { !/\|application\/json$/ } @writes ], [],
          'each carries Content-Type: application/json (POST drain and ready too)');
ok(!draining(), 'drain then ready: the node serves');

# ---- the agent's API client ----------------------------------------------------------

my $has_etcd3 = run_cmd($PYTHON, '-c', 'import etcd3')->{exit} == 0;
SKIP: {
    skip 'python3-etcd3 is not installed (make fleet-deps)', 7 unless $has_etcd3;

    # etcd is never there: the agent retries it and tells the node it is
    # stale, through the API, which is what is checked here
    my $run_agent = sub {
        my ($api, $until, @options) = @_;
        my $log = "$dir/agent-" . ++$marks . '.log';
        my $pid = spawn('agent', $log, $PYTHON, $agent, '--etcd', "http://127.0.0.1:$dead",
                        '--node', 'n1', '--api', $api, @options);
        my $seen = wait_for(20, sub { slurp($log) =~ $until });
        stop_proc($pid, 'TERM');
        return ($seen, slurp($log));
    };

    my ($seen, $log) = $run_agent->("$http_node/redirect/",
        qr/nginx: GET fleet: 302 Moved Temporarily: a redirect to http:\/\/\Q$other\E\/stolen\/, not followed/,
        '--user', 'ops:secret');
    ok($seen, 'the agent, an API that redirects: logged, not followed') or diag($log);
    is_deeply(other_saw(), [], 'the agent, an API that redirects: the other host received nothing');

    ($seen, $log) = $run_agent->("$https_node/dynroute/", qr/reported stale at revision/,
                                 '--api-cacert', "$dir/ca.pem");
    ok($seen, 'the agent, an https API with --api-cacert: it reports stale to the node') or diag($log);
    my $fleet = json_of(http_get($srv, '/dynroute/fleet')->{body});
    ok($fleet->{stale}, 'the agent, an https API with --api-cacert: the node has it');
    like((grep { /^PUT \/dynroute\/fleet\|/ } split /\n/, slurp($node_log))[-1] // '',
         qr/\|application\/json$/, 'the agent: its PUT carries Content-Type: application/json');

    ($seen, $log) = $run_agent->("$https_node/dynroute/",
        qr/nginx: GET fleet: TLS: the API's certificate does not verify against the system's CAs/);
    ok($seen, 'the agent, an https API without --api-cacert: the verification failure, logged') or diag($log);

    my $res = run_cmd({ timeout => 30 }, $PYTHON, $agent, '--etcd', "http://127.0.0.1:$dead",
                      '--api', $not_loopback, '--user', 'ops:secret');
    is($res->{exit}, 2, 'the agent, --user over http:// to another host: refused at start');
}

# ---- the etcd code of both tools is one and the same ----------------------------

my %block = map {
    my ($text) = slurp(tool_path($_)) =~ /^(# ---- etcd over TLS, .*?)^# ---- (?!tools)/ms;
    ($_ => $text // '')
} qw(dynroutectl dynroute-agent);
ok(length $block{dynroutectl} > 1000 && $block{dynroutectl} eq $block{'dynroute-agent'},
   "the tools' etcd access code is the same in both");

error_log_ok(stop_nginx($srv), 'no alert/crit/crash');
done_testing();
