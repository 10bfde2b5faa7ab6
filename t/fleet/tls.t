# tools/dynroute-agent and dynroutectl --etcd against an etcd that speaks
# only TLS, asks every client for a certificate signed by its CA, and has
# authentication on (Debian's /usr/bin/etcd, on free loopback ports, with a
# CA and certificates made here by openssl).  With the CA, a client
# certificate and its etcd user's password, the agent applies changes to a
# real nginx (checked by routing); every way of being refused is refused,
# and both tools say why: no client certificate, one from another CA, a
# wrong password, a user whose role does not cover the prefix, plain
# http:// to the TLS port, a CA that did not sign etcd's certificate.  The
# agent reads its configuration as the systemd unit gives it: a file whose
# relative names are the credentials beside it.  dynroutectl register
# registers over TLS, deregisters on SIGTERM after its token expired, and
# is refused (exit 1, nothing written) with a wrong password or a role that
# does not cover the prefix.  make fleet-deps installs etcd.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc;
use Test::Nginx::Dynroute::Fixtures qw(tools_node);
use File::Path ();
use File::Temp ();
use Test::More ();
use Time::HiRes ();

Test::More::plan(skip_all => "$ETCD is missing (make fleet-deps installs Debian's etcd-server)")
    unless -x $ETCD;

delete $ENV{$_} for qw(DYNROUTE_NODES DYNROUTE_ETCD_PASSWORD http_proxy HTTP_PROXY
                       https_proxy HTTPS_PROXY ETCDCTL_ENDPOINTS SSL_CERT_FILE);
$ENV{ETCDCTL_API} = 3;

my $dir = File::Temp::tempdir(CLEANUP => 1);
my ($etcd_log, @agent_logs);

# On failure, what the agents and etcd said; then the module stops ours.
END {
    my $status = $?;
    if ($etcd_log && !Test::More->builder->is_passing) {
        Test::More::diag("--- $_:\n" . slurp($_)) for @agent_logs;
        Test::More::diag("--- etcd's log (the end):\n" . tail_of(slurp($etcd_log), 40));
    }
    $? = $status;
}

# ---- certificates: a CA, etcd's, the clients'; and another CA's ------------

sub openssl {
    my $r = run_cmd('openssl', @_);
    die "openssl @_: $r->{err}\n" if $r->{exit};
}

# make_ca(NAME); make_cert(NAME, CA, SUBJECT CN, EXTENSIONS)
sub make_ca {
    my ($name) = @_;
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', 2,
            '-subj', "/CN=$name test CA", '-keyout', "$dir/$name.key", '-out', "$dir/$name.pem");
}

sub make_cert {
    my ($name, $ca, $cn, $ext) = @_;
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', "/CN=$cn",
            '-keyout', "$dir/$name.key", '-out', "$dir/$name.csr");
    spew("$dir/$name.ext", $ext);
    openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/$ca.pem",
            '-CAkey', "$dir/$ca.key", '-CAcreateserial', '-days', 2,
            '-extfile', "$dir/$name.ext", '-out', "$dir/$name.pem");
}

make_ca('ca');
make_ca('rogue');
# etcd's gateway connects to etcd itself with this certificate: clientAuth too
make_cert('etcd', 'ca', '127.0.0.1',
          "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth, clientAuth\n");
# etcd takes a client certificate's CN as the user when a request has no
# token: these CNs are no etcd users, so that the password is what counts
make_cert('client', 'ca', 'edge-node-1', "extendedKeyUsage = clientAuth\n");
make_cert('rogue-client', 'rogue', 'edge-node-1', "extendedKeyUsage = clientAuth\n");

# ---- etcd: TLS only, client certificates, authentication -------------------------

my ($etcd_port, $peer_port, $dead) = free_ports(3);
$etcd_log = "$dir/etcd.log";
my $etcd = { name => 'tls1', dir => "$dir/etcd", log => $etcd_log,
             client => $etcd_port, peer => $peer_port,
             tls => { cert => "$dir/etcd.pem", key => "$dir/etcd.key", ca => "$dir/ca.pem",
                      client_cert => "$dir/client.pem", client_key => "$dir/client.key" } };
my $endpoint = etcd_endpoint($etcd);
# tokens of etcd's authentication expire after 2 s of not being used (300 s
# by default): the agent, idle longer, authenticates again
start_etcd($etcd, '--auth-token-ttl', 2);

ok(etcd_ready(20, $etcd), 'etcd started with TLS')
    or BAIL_OUT("etcd did not start:\n" . slurp($etcd_log));
for my $step (['user', 'add', 'root', '--new-user-password=root-secret'],
              ['user', 'add', 'fleet', '--new-user-password=fleet-secret'],
              ['user', 'add', 'outsider', '--new-user-password=outsider-secret'],
              ['role', 'add', 'dynroute'],
              ['role', 'grant-permission', 'dynroute', '--prefix=true', 'readwrite', '/dynroute/'],
              ['user', 'grant-role', 'fleet', 'dynroute'],
              ['auth', 'enable']) {
    my $r = etcdctl($etcd, @$step);
    is($r->{exit}, 0, "etcdctl " . join(' ', grep { defined } @$step[0 .. 2])) or diag($r->{err});
}
my $r = etcdctl($etcd, 'get', '/dynroute/x');
isnt($r->{exit}, 0, 'authentication on: etcdctl without a user is refused');
like($r->{err}, qr/permission denied|user name is empty/, '... by etcd') or diag($r->{err});

spew("$dir/fleet.password", "fleet-secret\n");
spew("$dir/wrong.password", "not-the-secret\n");
spew("$dir/outsider.password", "outsider-secret\n");

my @etcd_ok = ('--etcd', $endpoint, '--etcd-cacert', "$dir/ca.pem",
               '--etcd-cert', "$dir/client.pem", '--etcd-key', "$dir/client.key",
               '--etcd-user', 'fleet', '--etcd-password-file', "$dir/fleet.password");

sub ctl { return run_cmd(tool_cmd('dynroutectl'), @_) }

# ---- nginx ---------------------------------------------------------------------------

# The node (tools_node, Test::Nginx::Dynroute::Fixtures): shop.example.com
# goes to the rollout checkout (stable service_a *, canary service_b 0%, key
# X-User), other hosts to service_a; the API at /dynroute/, readiness at /ready.
# Here the API's requests are logged with their Content-Type.
my $srv = start_nginx(tools_node(
    http => "    log_format api '\$request_method \$request_uri|\$content_type';\n",
    api  => <<'CONF'));
    location /dynroute/ {
        allow 127.0.0.1; deny all;
        access_log $TEST_NGINX_PREFIX/logs/api.log api;
        dynroute_api write=on;
    }
CONF
my $api = "http://127.0.0.1:$srv->{port}/dynroute/";

# What answers shop.example.com for users u1..uN: "upstream variant" => count.
sub spread { return variants_of($srv, 'shop.example.com', $_[0]) }

sub host_answer { return http_get($srv, '/', { Host => $_[0] })->{body} // 'no answer' }

# ---- the agent as the systemd unit runs it: a config file and its
# ---- credentials side by side, named relative to it ----------------------------

my $cred = "$dir/credentials";
File::Path::make_path($cred);
system('cp', "$dir/ca.pem", "$cred/etcd-ca.pem");
system('cp', "$dir/client.pem", "$cred/etcd-client.pem");
system('cp', "$dir/client.key", "$cred/etcd-client.key");
system('cp', "$dir/fleet.password", "$cred/etcd-password");
spew("$cred/agent.conf", <<"CONF");
[agent]
etcd = $endpoint
node = n1
api = $api
etcd-cacert = etcd-ca.pem
etcd-cert = etcd-client.pem
etcd-key = etcd-client.key
etcd-user = fleet
etcd-password-file = etcd-password
CONF

my $agent_log = "$dir/agent-n1.log";
push @agent_logs, $agent_log;
my $agent_pid = spawn('agent n1', $agent_log, tool_cmd('dynroute-agent'),
                      '--config', "$cred/agent.conf");
ok(wait_for(15, sub { slurp($agent_log) =~ /watching \/dynroute\/ from revision/ }),
   'the agent: TLS, client certificate, user and password from its config file: it watches')
    or diag(slurp($agent_log));
like(slurp($agent_log), qr/etcd 127\.0\.0\.1:\d+ \(TLS, CA \Q$cred\E\/etcd-ca\.pem, client certificate \Q$cred\E\/etcd-client\.pem, user fleet\)/,
     "the agent: the config's relative names are beside it");

$r = ctl(@etcd_ok, 'status');
like($r->{out}, qr/^  agent n1: revision \d+, following, 0 refused, \Q$api\E$/m,
     'dynroutectl --etcd over TLS as fleet: the agent is registered') or diag(Test::More::explain($r));

is_deeply(spread(10), { 'service_a stable' => 10 }, 'before any change: all on stable');
$r = ctl(@etcd_ok, '--wait', 'set-weights', 'checkout', 'stable=0', 'canary=100');
is($r->{exit}, 0, 'set-weights --wait over TLS: exit 0') or diag(Test::More::explain($r));
is_deeply(spread(10), { 'service_b canary' => 10 }, 'set-weights: every user on canary');

{
    local $ENV{DYNROUTE_ETCD_PASSWORD} = 'fleet-secret';
    $r = ctl(@etcd_ok[0 .. 9], '--wait', 'host', 'add', 'tenant1.example.com', 'service_b');
}
is($r->{exit}, 0, 'host add --wait, the password from $DYNROUTE_ETCD_PASSWORD: exit 0') or diag(Test::More::explain($r));
is(host_answer('tenant1.example.com'), "service_b\n", 'host add: routed to its target');

$r = ctl(@etcd_ok, '--wait', 'drain', 'n1');
is($r->{exit}, 0, 'drain n1 --wait: exit 0') or diag(Test::More::explain($r));
is(http_get($srv, '/ready')->{status}, 503, 'drain n1: readiness answers 503');
$r = ctl(@etcd_ok, '--wait', 'ready', 'n1');
is($r->{exit}, 0, 'ready n1 --wait: exit 0') or diag(Test::More::explain($r));
is(http_get($srv, '/ready')->{status}, 200, 'ready n1: readiness answers 200');

# the agent's token expires while it waits for changes: waiting out the
# token's TTL is what this checks, so no poll can replace the sleep
my $offset = length slurp($agent_log);
Time::HiRes::sleep(3);
$r = ctl(@etcd_ok, '--wait', 'host', 'add', 'tenant2.example.com', 'service_b');
is($r->{exit}, 0, 'a change after the token expired: exit 0') or diag(Test::More::explain($r));
is(host_answer('tenant2.example.com'), "service_b\n", 'a change after the token expired: routed');
my $since = substr(slurp($agent_log), $offset);
like($since, qr/^dynroute-agent: etcd: the authentication token expired: authenticated again$/m,
     'the expired token: the agent authenticates again') or diag($since);
unlike($since, qr/invalid auth token|stale|applied everything/,
       '... without a retry, a stale report or a full read') or diag($since);

file_lines("$srv->{prefix}/logs/api.log", qr/^POST \/dynroute\/ready\|/, 1);
my @writes = grep { /^(POST|PUT|PATCH) / } split /\n/, slurp("$srv->{prefix}/logs/api.log");
ok(scalar(grep { /^POST \/dynroute\/drain\|/ } @writes), "the agent's writes include POST drain");
is_deeply([ grep { !/\|application\/json$/ } @writes ], [],
          "every POST, PUT and PATCH of the agent carries Content-Type: application/json")
    or diag(Test::More::explain(\@writes));

# ---- refused: each agent says why, keeps retrying, changes nothing --------------

# Starts an agent with the options (its API on a port where nothing listens:
# it never reaches etcd's state), waits for the line, stops it.
sub refused_agent {
    my ($name, $line, @options) = @_;
    my $log = "$dir/agent-$name.log";
    push @agent_logs, $log;
    my $pid = spawn("agent $name", $log, tool_cmd('dynroute-agent'),
                    '--node', $name, '--api', "http://127.0.0.1:$dead/dynroute/", @options);
    # seen twice: the agent retries
    my $seen = wait_for(15, sub { my @l = slurp($log) =~ /$line/g; @l >= 2 });
    my $status = stop_proc($pid, 'TERM');
    return ($seen, $status, slurp($log));
}

my @ca = ('--etcd', $endpoint, '--etcd-cacert', "$dir/ca.pem");
my @cert = ('--etcd-cert', "$dir/client.pem", '--etcd-key', "$dir/client.key");
my ($seen, $status, $log) = refused_agent('nocert',
    qr/etcd: 127\.0\.0\.1:\d+: TLS handshake refused: etcd wants a client certificate \([A-Z0-9_]+\), and none is given; retrying in/,
    @ca, '--etcd-user', 'fleet', '--etcd-password-file', "$dir/fleet.password");
ok($seen, 'no client certificate: refused, the agent says why and retries') or diag($log);
is($status, 0, 'no client certificate: SIGTERM, exit 0');

($seen, undef, $log) = refused_agent('rogue',
    qr/TLS handshake refused: etcd does not accept the client certificate \S*rogue-client\.pem \([A-Z0-9_]+\): is it signed by a CA that etcd trusts\?; retrying in/,
    @ca, '--etcd-cert', "$dir/rogue-client.pem", '--etcd-key', "$dir/rogue-client.key",
    '--etcd-user', 'fleet', '--etcd-password-file', "$dir/fleet.password");
ok($seen, "a client certificate of another CA: refused, the agent says why") or diag($log);

($seen, undef, $log) = refused_agent('wrongpw',
    qr/etcd: 127\.0\.0\.1:\d+: authentication failed: wrong user name or password \(user fleet\); retrying in/,
    @ca, @cert, '--etcd-user', 'fleet', '--etcd-password-file', "$dir/wrong.password");
ok($seen, 'a wrong password: refused, the agent says why and retries') or diag($log);

($seen, undef, $log) = refused_agent('outsider',
    qr/etcd: 127\.0\.0\.1:\d+: permission denied: the roles of user outsider do not allow this .*; retrying in/,
    @ca, @cert, '--etcd-user', 'outsider', '--etcd-password-file', "$dir/outsider.password");
ok($seen, 'a user whose role does not cover the prefix: refused, the agent says why') or diag($log);

($seen, undef, $log) = refused_agent('plain',
    qr/etcd: 127\.0\.0\.1:\d+: etcd speaks TLS here: use https:\/\/ \(and its CA\); retrying in/,
    '--etcd', "http://127.0.0.1:$etcd_port");
ok($seen, 'plain http:// to the TLS port: the agent says to use https://') or diag($log);

($seen, undef, $log) = refused_agent('rogueca',
    qr/etcd: 127\.0\.0\.1:\d+: TLS: etcd's certificate does not verify against \S*rogue\.pem: [^;]+; retrying in/,
    '--etcd', $endpoint, '--etcd-cacert', "$dir/rogue.pem", @cert,
    '--etcd-user', 'fleet', '--etcd-password-file', "$dir/fleet.password");
ok($seen, "a CA that did not sign etcd's certificate: the agent says so") or diag($log);

is(etcdctl($etcd, '--user', 'root:root-secret', 'get', '--print-value-only', '/dynroute/agents/nocert')->{out}, '',
   'none of the refused agents is registered');

# ---- refused: dynroutectl says why, exit 1 ------------------------------------

my @cases = (
    ['no client certificate', [@ca, '--etcd-user', 'fleet', '--etcd-password-file', "$dir/fleet.password"],
     qr/^dynroutectl: etcd: no endpoint answers \(127\.0\.0\.1:\d+: TLS handshake refused: etcd wants a client certificate/],
    ['a wrong password', [@ca, @cert, '--etcd-user', 'fleet', '--etcd-password-file', "$dir/wrong.password"],
     qr/^dynroutectl: etcd: 127\.0\.0\.1:\d+: authentication failed: wrong user name or password \(user fleet\)$/],
    ['a user without the role', [@ca, @cert, '--etcd-user', 'outsider', '--etcd-password-file', "$dir/outsider.password"],
     qr/^dynroutectl: etcd: 127\.0\.0\.1:\d+: permission denied: the roles of user outsider do not allow this/],
    ['no user (the certificate\'s CN is none)', [@ca, @cert],
     qr/^dynroutectl: etcd: 127\.0\.0\.1:\d+: permission denied: no etcd user given, and etcd takes the client certificate's CN for one/],
    ['plain http:// to the TLS port', ['--etcd', "http://127.0.0.1:$etcd_port"],
     qr/^dynroutectl: etcd: no endpoint answers \(127\.0\.0\.1:\d+: etcd speaks TLS here: use https:\/\//],
);
for my $case (@cases) {
    my ($what, $options, $said) = @$case;
    $r = ctl(@$options, 'set-weights', 'checkout', 'stable=100');
    is($r->{exit}, 1, "dynroutectl --etcd, $what: exit 1");
    like($r->{err}, $said, "dynroutectl --etcd, $what: says why") or diag($r->{err});
}
is_deeply(spread(10), { 'service_b canary' => 10 }, 'the refused writes changed nothing');

$r = ctl('--etcd', "http://127.0.0.1:$etcd_port", '--etcd-user', 'fleet',
         '--etcd-password-file', "$dir/fleet.password", 'status');
is($r->{exit}, 2, 'an etcd user over http://: a usage error');
like($r->{err}, qr/etcd-user needs https:\/\/ endpoints: over http:\/\/ the password would cross the network in clear text/,
     'an etcd user over http://: says why');

# ---- the unit's empty credentials: an absent file is a credential of one
# ---- empty line (its SetCredential= default); the agent names the file -------

spew("$dir/absent", "\n");
for my $case (['etcd-cacert', "CA file $dir/absent: no PEM certificate in it", '--etcd-cacert', "$dir/absent"],
              ['etcd-cert', "certificate $dir/absent with key $dir/client.key: not a PEM certificate with its key",
               '--etcd-cacert', "$dir/ca.pem", '--etcd-cert', "$dir/absent", '--etcd-key', "$dir/client.key"],
              ['etcd-password-file', "$dir/absent: no password in it", '--etcd-cacert', "$dir/ca.pem",
               '--etcd-user', 'fleet', '--etcd-password-file', "$dir/absent"]) {
    my ($what, $said, @options) = @$case;
    $r = run_cmd(tool_cmd('dynroute-agent'), '--etcd', $endpoint, @options);
    is($r->{exit}, 2, "the agent, an empty $what: exit 2 at start");
    like($r->{err}, qr/^dynroute-agent: error: \Q$said\E$/m, "the agent, an empty $what: names the file")
        or diag($r->{err});
}

# ---- dynroutectl register over TLS, as etcd's user fleet -----------------------------

my $reg_key = '/dynroute/services/shop_api/servers/10.0.0.5:8080';
sub root_get { return etcdctl($etcd, '--user', 'root:root-secret', 'get', '--print-value-only', $_[0])->{out} }

my $reg_log = "$dir/register.log";
push @agent_logs, $reg_log;
# a lease of 30 s: no keep-alive (every 10 s) while the token expires below
my $reg_pid = spawn('register', $reg_log, tool_cmd('dynroutectl'), @etcd_ok,
                    'register', 'shop_api', '10.0.0.5:8080', '--weight', 3, '--ttl', 30);
ok(wait_for(10, sub { slurp($reg_log) =~ /^etcd: registered \Q$reg_key\E \{"weight":3\}, lease [0-9a-f]+, ttl 30 s$/m }),
   'register over TLS, as fleet (certificate, password file): registered') or diag(slurp($reg_log));
is(root_get($reg_key), qq({"weight":3}\n), 'register over TLS: the key written');
# idle for longer than etcd's tokens live: 2 s, and etcd expires them on a
# tick of 1 s (as the agent's check above waits 3 s); deleting the key then
# needs a new one
Time::HiRes::sleep(3.5);
is(stop_proc($reg_pid, 'TERM'), 0, 'register, SIGTERM after its token expired: exit 0');
like(slurp($reg_log), qr/^etcd: the authentication token expired: authenticated again$/m,
     'register: the expired token: authenticated again');
like(slurp($reg_log), qr/^etcd: deregistered \Q$reg_key\E: key deleted, lease [0-9a-f]+ revoked$/m,
     'register: the key deleted, the lease revoked') or diag(slurp($reg_log));
is(root_get($reg_key), '', 'register: the key is gone');

for my $case (['a wrong password', "$dir/wrong.password", 'fleet',
               qr/authentication failed: wrong user name or password \(user fleet\)/],
              ['a user whose role does not cover the prefix', "$dir/outsider.password", 'outsider',
               qr/permission denied: the roles of user outsider do not allow this/]) {
    my ($what, $password, $user, $said) = @$case;
    $r = ctl(@ca, @cert, '--etcd-user', $user, '--etcd-password-file', $password,
             'register', 'shop_api', '10.0.0.6');
    is($r->{exit}, 1, "register, $what: exit 1");
    like($r->{err}, qr/^dynroutectl: etcd: 127\.0\.0\.1:\d+: $said.*; \/dynroute\/services\/shop_api\/servers\/10\.0\.0\.6:80 not registered$/m,
         "register, $what: says why, and that it is not registered") or diag($r->{err});
}
is(root_get('/dynroute/services/shop_api/servers/10.0.0.6:80'), '', 'the refused registrations wrote nothing');

# ---- SIGTERM ------------------------------------------------------------------------

is(stop_proc($agent_pid, 'TERM'), 0, 'SIGTERM: the agent exits 0');
like(slurp($agent_log), qr/lease revoked, agents\/n1 removed/, 'SIGTERM: the lease revoked (over TLS, authenticated)');
stop_proc($etcd->{pid}, 'TERM');

error_log_ok(stop_nginx($srv), 'no alert/crit/crash');
my $tracebacks = join '', grep { /Traceback/ } map { slurp($_) } @agent_logs;
is($tracebacks, '', 'no agent printed a traceback');

done_testing();
