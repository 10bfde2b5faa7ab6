# The runtime state's file and zone against what the workers' user, a
# reload and a slow client can do (issue 21, findings 1 and 3):
#   - the workers' user controls the state directory: no process writes
#     through a link planted there, the master (root) writes nothing, the
#     file is created 0640 whatever the umask, and a state file that is a
#     link is not followed;
#   - a write still read by a worker of the previous configuration never
#     drops what the new configuration's workers published: it is refused
#     (503, Retry-After), with a log line, and nothing is pruned without a
#     notice;
#   - JSON that names a member twice is refused (400, the key's name), and
#     a generation never wraps around (finding 10).
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp spew wait_for);

use File::Temp ();
use IO::Socket::IP ();
use POSIX ();

# Runs $code in a child process as the user nobody (group nogroup), as the
# workers' user would; returns the child's exit status.
sub as_nobody {
    my ($code) = @_;
    my ($uid, $gid) = (getpwnam('nobody'))[2, 3];
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        POSIX::setgid($gid) or POSIX::_exit(2);
        POSIX::setuid($uid) or POSIX::_exit(3);
        eval { $code->(); 1 } or POSIX::_exit(4);
        POSIX::_exit(0);
    }
    waitpid $pid, 0;
    return $?;
}

# one API call with a JSON body
sub api {
    my ($srv, $method, $path, $body) = @_;
    return http_raw($srv, "$method $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body");
}

my $nobody = getpwnam('nobody');

# The node of these tests: service_a answers "a\n"; the zone z keeps its
# state in $state; the table edge sends every host to service_a; location /
# routes by it, the API is at /dynroute/ (write=on).  start_nginx's
# arguments.
sub api_node {
    my ($state) = @_;
    return (http_config => <<CONF, config => <<'CONF');
    upstream service_a { server 127.0.0.1:\$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:\$TEST_NGINX_PORT2; return 200 "a\\n"; }
    dynroute_zone z 1m state=$state;
    dynroute_table edge { default service_a; }
CONF
    location / { dynroute edge; proxy_pass http://$dynroute_upstream; }
    location /dynroute/ { dynroute_api write=on; }
CONF
}

# A directory the workers' user owns, as the docs ask, inside one that
# everyone may cross: (the outer one, the state directory).
sub state_dir_of_nobody {
    my $top = File::Temp::tempdir('dynroute-stateXXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    chmod 0711, $top;
    my $dir = "$top/state";
    mkdir $dir, 0700 or die "mkdir $dir: $!\n";
    chown $nobody, (getgrnam('nogroup'))[2], $dir;
    return ($top, $dir);
}

# ---- finding 1: a link planted where the state file's temporary file goes

SKIP: {
    skip 'runs the workers as nobody: needs root', 14
        unless $> == 0 && defined $nobody;

    # a state directory as the docs ask, and a file of root's own next to it
    my ($top, $dir) = state_dir_of_nobody();
    my $victim = "$top/root-only";
    spew($victim, "root's own\n");
    chmod 0600, $victim;

    # as nobody: a state file with a host whose target the configuration
    # does not have (so that a start prunes it and saves the state), and
    # the temporary names the old code used, and this one might, as links
    # to root's file
    my $state = "$dir/dynroute.state";
    is(as_nobody(sub {
        spew($state, '{"version":1,"generation":7,"draining":false,'
                   . '"rollouts":{},"hosts":{"old.example.com":'
                   . '{"table":"edge","target":"gone"}}}');
        symlink $victim, "$state.tmp" or die;
        symlink $victim, "$dir/.dynroute.state.tmp" or die;
    }), 0, 'as nobody: a state file to prune and links to root\'s file planted');

    my $old_umask = umask 0;            # as nginx's daemon mode has it
    my $srv = start_nginx(api_node($state), user => 'nobody nogroup');
    umask $old_umask;

    my $r = http_get($srv, '/dynroute/hosts');
    is($r->{body}, '{"generation":8,"hosts":{}}',
       'the host of an unknown target is pruned at start');
    is(slurp($victim), "root's own\n", 'root\'s file is untouched');
    is(sprintf('%o', (stat $victim)[2] & 07777), '600',
       'and keeps its mode');
    is(readlink("$state.tmp"), $victim, 'the planted link is left as it was');

    # the pruned state was saved by a worker, not by the root master
    ok(wait_for(5, sub { slurp($state) =~ /"generation":8/ }),
       'the pruned state is saved');
    my @st = stat $state;
    is($st[4], $nobody, 'by the workers\' user, not root');
    is(sprintf('%o', $st[2] & 07777), '640', 'mode 0640 under umask 0');

    $r = api($srv, 'PUT', '/dynroute/hosts/new.example.com',
             '{"target":"service_a"}');
    is($r->{status}, 201, 'a change through the API');
    is(sprintf('%o', (stat $state)[2] & 07777), '640',
       'the state file it writes is 0640 too');
    like(slurp($state), qr/new\.example\.com/, 'and holds the change');
    opendir my $dh, $dir or die;
    my @left = grep { /^\.dynroute\.state\.(?!tmp$)/ } readdir $dh;
    is("@left", '', 'no temporary file is left behind');

    my $log = stop_nginx($srv);
    like($log, qr/\[notice\].*dropped runtime host "old\.example\.com": its target "gone" is no longer configured/,
         'the prune has its notice');
    error_log_ok($log, 'links planted in the state directory');
}

# ---- a state file that is a link is not followed by the root master

SKIP: {
    skip 'runs the workers as nobody: needs root', 5
        unless $> == 0 && defined $nobody;

    my ($top, $dir) = state_dir_of_nobody();
    # root's file, in the state file's own format: read through the link,
    # it would show in the API
    my $victim = "$top/root-only";
    spew($victim, '{"version":1,"generation":3,"rollouts":{},"hosts":'
                . '{"secret.example.com":{"table":"edge","target":"service_a"}}}');
    chmod 0600, $victim;
    my $state = "$dir/dynroute.state";
    is(as_nobody(sub { symlink $victim, $state or die }), 0,
       'as nobody: the state file is a link to root\'s file');

    my $srv = start_nginx(api_node($state), user => 'nobody nogroup');
    my $r = http_get($srv, '/dynroute/hosts');
    is($r->{body}, '{"generation":0,"hosts":{}}',
       'root\'s file is not read through the link');
    my $log = stop_nginx($srv);
    like($log, qr/\[error\].*the state file "\Q$state\E" is a symbolic link, which is not followed/,
         'and the log says why');
    like(slurp($victim), qr/secret/, 'root\'s file is untouched');
    error_log_ok($log, 'a state file that is a link');
}

# ---- finding 3: a slow write in a worker of the previous configuration

{
    my %node = api_node('$TEST_NGINX_PREFIX/dynroute.state');
    my $srv = start_nginx(%node);

    # a PUT whose body is still on its way when nginx reloads
    my $body = '{"target":"service_a"}';
    my $slow = IO::Socket::IP->new(PeerHost => '127.0.0.1',
                                   PeerPort => $srv->{port}, Proto => 'tcp')
        or die "connect: $!\n";
    $slow->autoflush(1);
    print {$slow} "PUT /dynroute/hosts/slow.example.com HTTP/1.1\r\n"
        . "Host: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n"
        . substr($body, 0, 5);
    select undef, undef, undef, 0.2;    # read by the old worker

    ok(reload_nginx($srv, $node{http_config} . <<'CONF'), 'reloaded with a new upstream');
    upstream service_new { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "new\n"; }
CONF

    my $r = api($srv, 'PUT', '/dynroute/hosts/newtenant.example.com',
                '{"target":"service_new"}');
    is($r->{status}, 201, 'the new configuration\'s worker adds a host of '
                          . 'the new upstream');
    my ($gen) = $r->{body} =~ /"generation":(\d+)/;

    # the old worker gets the rest of the body now
    print {$slow} substr($body, 5);
    my $answer = '';
    while (defined(my $line = <$slow>)) { $answer .= $line }
    close $slow;
    like($answer, qr{^HTTP/1\.1 503 }, 'the old worker refuses the write: 503');
    like($answer, qr/^Retry-After: 1\r$/m, 'with Retry-After');
    like($answer, qr/"error":"this request reached a worker of the configuration from before nginx's last reload: nothing changed, send it again"/,
         'and a JSON reason that says to send it again');

    $r = http_get($srv, '/dynroute/hosts');
    like($r->{body}, qr/"newtenant\.example\.com":\{"table":"edge","target":"service_new"\}/,
         'the new host is still there');
    like($r->{body}, qr/"generation":$gen,/, 'at the generation it was added at');
    like(slurp("$srv->{prefix}/dynroute.state"), qr/newtenant\.example\.com/,
         'and in the state file');
    $r = http_get($srv, '/', { Host => 'newtenant.example.com' });
    is($r->{body}, "new\n", 'and routes');

    # sent again, the write lands in a worker of the new configuration
    $r = api($srv, 'PUT', '/dynroute/hosts/slow.example.com', $body);
    is($r->{status}, 201, 'sent again, the write is applied');

    # a reload that drops the upstream: the first worker prunes, and says so
    ok(reload_nginx($srv, $node{http_config}), 'reloaded without the new upstream');
    $r = http_get($srv, '/dynroute/hosts');
    unlike($r->{body}, qr/newtenant/, 'the host of the dropped upstream is pruned');
    my $log = stop_nginx($srv);
    like($log, qr/\[notice\].*dynroute: change refused: this worker runs the configuration from before the last reload/,
         'the refusal has its log line');
    like($log, qr/\[notice\].*dropped runtime host "newtenant\.example\.com": its target "service_new" is no longer configured/,
         'the prune has its notice');
    error_log_ok($log, 'a write in a worker of the previous configuration');
}

# ---- finding 10: duplicate keys, and a generation at its limit

{
    my $dir = File::Temp::tempdir('dynroute-stateXXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    spew("$dir/dynroute.state", '{"version":1,"generation":18446744073709551615,'
        . '"draining":false,"rollouts":{},"hosts":{"kept.example.com":'
        . '{"table":"edge","target":"service_a"}}}');
    my $srv = start_nginx(http_config => <<CONF, config => <<'CONF');
    upstream service_a { server 127.0.0.1:\$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:\$TEST_NGINX_PORT2; }
    server { listen 127.0.0.1:\$TEST_NGINX_PORT2; return 200 "a\\n"; }
    dynroute_zone z 1m state=$dir/dynroute.state;
    dynroute_rollout shop {
        variant stable service_a 90%;
        variant canary service_b 10%;
    }
    dynroute_table edge { default shop; }
CONF
    location /dynroute/ { dynroute_api write=on; }
CONF

    # the reported state file: a generation of 2^64 - 1
    my $r = http_get($srv, '/dynroute/');
    my ($g0) = $r->{body} =~ /"generation":(\d+)/;
    $r = api($srv, 'PUT', '/dynroute/hosts/new.example.com',
             '{"target":"service_a"}');
    my ($g1) = $r->{body} =~ /"generation":(\d+)/;
    ok(defined $g1 && $g1 > $g0, "the next write's generation ($g1) is past "
                                 . "the one before ($g0): no wrap");

    # the reported body: which weight of "stable" would count?
    $r = api($srv, 'PATCH', '/dynroute/rollouts/shop',
                '{"weights":{"stable":100,"stable":0,"canary":100}}');
    is($r->{status}, 400, 'a member named twice: 400');
    is($r->{body}, '{"error":"duplicate key \\"stable\\" in the request body"}',
       'the answer names the key');
    $r = http_get($srv, '/dynroute/rollouts/shop');
    like($r->{body}, qr/"stable":\{"weight":90,/, 'the weights are the configured ones');

    my $log = stop_nginx($srv);
    like($log, qr/\[error\].*ignoring the state file "[^"]+", starting from the configuration: not a valid state file: "generation" is over 9007199254740991/,
         'a state file whose generation is over the limit is refused, and said so');
    error_log_ok($log, 'duplicate keys and generations');
}

done_testing();
