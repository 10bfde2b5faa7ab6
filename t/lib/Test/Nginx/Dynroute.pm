=head1 NAME

Test::Nginx::Dynroute - a small data-driven nginx test harness for dynroute

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Nginx::Dynroute;

    run_tests();

    __DATA__

    === TEST 1: exact host goes to its upstream
    --- http_config
        upstream a { server 127.0.0.1:$TEST_NGINX_SERVER_PORT; }
    --- config
        location / { return 200 "hi"; }
    --- request
    GET /
    --- more_headers
    Host: a.example.com
    --- response_body chomp
    hi
    --- error_code: 200
    --- no_error_log
    [error]

=head1 DESCRIPTION

Our own small replacement for OpenResty's Test::Nginx::Socket (which is not
installable here), written from scratch on top of Test::Base.  The section
names mean what they mean in Test::Nginx::Socket, so test files read the
same.  Only core Perl, Test::Base (libtest-base-perl) and Text::Diff are
needed.

For every block a fresh nginx prefix is made, nginx is started (master plus
C<workers()> worker processes, C<daemon off>), the request(s) are sent over a
raw TCP connection, nginx is stopped with SIGQUIT and its error.log checked.
C<run_tests()> ends with C<done_testing> unless the test file set a plan.

=head2 Exported functions

C<run_tests>, C<blocks>, C<workers(N)> (worker_processes, default 1),
C<repeat_each(N)> (send each block's request(s) N times to the same nginx),
C<add_block_preprocessor> (below),
C<master_on> and C<no_shuffle> (no-ops: there is always a master and blocks
always run in order), C<plan>, C<done_testing>, C<note> and the rest of
Test::Base's exports (C<is> with diffs, C<ok>, C<like>, C<is_deeply>,
C<diag>, ...), plus the low-level API below.

=head2 Environment

=over

=item TEST_NGINX_BINARY

nginx binary, default F</usr/sbin/nginx>.

=item TEST_NGINX_LOAD_MODULES

Space-separated .so paths to C<load_module>.  Unset: the repository's
F<build/ngx_http_dynroute_module.so> (absolute path; the repository root is
the parent of F<t/>) if that file exists, else nothing.  Empty string: load
nothing (static builds).

=item TEST_NGINX_STREAM_MODULE

The path of nginx's stream module where it is a dynamic module (Debian's
F</usr/lib/nginx/modules/ngx_stream_module.so>, from libnginx-mod-stream):
C<load_module>ed first, before C<TEST_NGINX_LOAD_MODULES>, as the stream part
of the dynroute .so needs (F<t/stream.t>).  Unset or empty for nginx with
stream compiled in (the builds from source).  C<make prove> sets it.

=item TEST_NGINX_INCLUDE_MODULES

A glob of module load files to C<include> at the top of nginx.conf, such as
F</etc/nginx/modules-enabled/*.conf> for a module installed from its Debian
package (set C<TEST_NGINX_LOAD_MODULES> to the empty string then).  Each
prefix then gets F<modules> as a link to F</usr/lib/nginx/modules>, which is
where those files' relative C<load_module modules/...;> point.

=item TEST_NGINX_START_TIMEOUT

How long C<start_nginx> and a block wait for nginx to listen, in seconds;
default 10.  C<make valgrind> gives memcheck's slow start more.

=item TEST_NGINX_SERVTEMP

Directory in which the per-run F<servrootXXXXXX> directory is made; default
the repository's F<t/>.  Every nginx prefix of the run is a subdirectory of
it (F<NNN-bN> for blocks, F<NNN-srv> for C<start_nginx>, F<NNN-conftest> for
C<nginx_test_config>).

=item TEST_NGINX_NO_CLEAN

If true the servroot directory is kept after the run (for post-mortems).

=back

=head2 The generated nginx.conf (line numbers are stable, tests rely on them)

    line 1        load_module ...; daemon off; master_process on;
                  worker_processes N; pid <prefix>/logs/nginx.pid;
                  error_log <prefix>/logs/error.log debug; user root;
                  events { worker_connections 1024; }         (ONE line)
    line 2        http { access_log ...; client_body_temp_path ...;
                  proxy_/fastcgi_/uwsgi_/scgi_temp_path ...;
                  default_type text/plain;                     (ONE line)
    line 3..      the --- http_config section verbatim
    next line     server { listen 127.0.0.1:PORT; server_name localhost;
    next lines    the --- config section verbatim
    next lines    }   (closes server)
                  }   (closes http)
    then          the --- main_config section (main context, e.g. env)

C<user root;> is present only when the tests run as root (C<start_nginx>'s
C<user> replaces root).

B<Line k of C<--- http_config> is line k+2 of nginx.conf>, counting line 1 as
the line right after the C<--- http_config> header.  To keep that true the
C<http_config>, C<config> and C<main_config> sections do not get Test::Base's
default C<trim> filter (leading blank lines are kept); only C<norm> (CRLF to
LF) applies, unless you name filters yourself.  If http_config has H lines,
line k of C<--- config> is line H+3+k of nginx.conf.

Substituted in every config section (and in request, raw_request,
more_headers, response_*, error_log and no_error_log strings) before use:
C<$TEST_NGINX_SERVER_PORT> (the port of the server above),
C<$TEST_NGINX_PORT2> and C<$TEST_NGINX_PORT3> (two more free ports, e.g. for
backend servers declared in http_config), C<$TEST_NGINX_HTML_DIR>
(<prefix>/html, exists, is also the default document root),
C<$TEST_NGINX_PREFIX>; any other C<$TEST_NGINX_FOO> is taken from %ENV when
set.  C<${TEST_NGINX_FOO}> works too.  Ports are found by binding
127.0.0.1:0; there are no fixed ports.

=head2 Sections

=over

=item --- http_config, --- config, --- main_config

See above.

=item --- request

C<METHOD /uri> optionally followed by C< HTTP/1.0> or C< HTTP/1.1> (the
default), further lines are the request body (one trailing newline is
dropped; Content-Length is added).  Sent as
C<"METHOD URI PROTO\r\nHost: localhost\r\nConnection: close\r\n">, then the
more_headers lines, Content-Length, a blank line and the body.  Host and
Connection are left out when more_headers has them.
C<--- request eval> may give an array ref: each request goes on its own
connection, in order; C<error_code>, C<response_body>,
C<response_body_like>, C<response_headers> and C<more_headers> may then be
eval'd array refs too (element i is for request i; a scalar applies to all).

=item --- raw_request

Exact bytes to send (use C<eval> for \r\n), nothing added.  An eval'd array
ref is several requests, each on its own connection, like C<--- request
eval> (B<unlike> Test::Nginx, where the elements are pieces of one request).
Bytes after the first response on a connection are ignored.

=item --- more_headers

C<Name: value> lines added to the request.

=item --- response_body, --- response_body_like

Exact body (compared with diffs), or a regex (string compiled as
C<qr/$x/s>, or an eval'd qr//).  Chunked bodies are decoded; HEAD
responses have no body.

=item --- error_code

Expected status; not checked when absent.

=item --- response_headers

C<Name: value> (present with exactly that value; the name is
case-insensitive; with repeated headers any value may match) and
C<!Name> / C<! Name> (absent).

=item --- error_log, --- no_error_log

Each line is a substring that must (must not) appear in error.log.  With
C<eval>: a qr//, an array ref of strings and qr//s, or one string (one
pattern, may span lines).

=item --- must_die

nginx is not started; C<nginx -t> must fail.  error_log / no_error_log are
matched against its output followed by error.log.

=item --- user_files

Files written into the html dir (C<$TEST_NGINX_HTML_DIR>) before nginx is
started (or C<nginx -t> run), so http_config can C<include> them:

    --- user_files
    >>> hosts.conf
    a.example.com  u;
    >>> sub/page.html 1700000000
    <p>hi</p>

A C<< >>> name >> line starts a file (optional second field: mtime);
variables are substituted in the content.  An eval'd array ref of
C<[name, content, mtime?]> works too.

=item --- timeout: N

Seconds to wait for each response (default 10).

=item --- wait: N

Seconds to sleep after the requests, before stopping nginx.

=back

Test::Base's own C<--- ONLY>, C<--- SKIP>, C<--- LAST> and filters work.

=head2 Block preprocessors

What many blocks of a file share is given once, as in Test::Nginx::Socket:

    # A block without --- config routes by the table edge and answers the
    # rule that matched.
    add_block_preprocessor(sub {
        my ($block) = @_;
        $block->set_value(config => $RULE_LOCATION) unless defined $block->config;
    });

Each code ref is called with each block before the block runs, the one
added last first (as in Test::Nginx).  It reads the block's sections with
their accessors (C<< $block->http_config >>; undef for a section the block
does not have) and adds or replaces one with
C<< $block->set_value($section, $value) >>.  It runs after the block's
filters (an eval'd section holds its value by then) and before the
C<$TEST_NGINX_*> substitution, so a fixture may name the ports.  A
preprocessor that dies fails the block as a harness error.

Two uses: a default for the blocks that lack a section (above), and a
fixture added to a section, such as the upstreams stable and canary with
their servers appended to C<--- http_config> of the blocks that declare no
upstream of their own.  L<Test::Nginx::Dynroute::Fixtures> holds the
fixtures that several files use.  The file says at its top what its
preprocessor gives, and a block still shows what it is about: its table,
rollout or API location, the requests and what they must get.

B<Line numbers.>  A fixture goes B<after> the block's own lines of
C<--- http_config> (append, never prepend): line k of the block's
http_config stays line k+2 of nginx.conf, so C<nginx.conf:N> in its
C<--- error_log> patterns stays right.  The lines of C<--- config> move down
by the lines added; a block whose patterns name a line of its
C<--- config> gets no fixture in http_config.  A default for a missing
section moves nothing the block wrote.

=head2 Tests emitted per block

Per request (times C<repeat_each>): 1 for C<error_code> if given, 1 per
C<response_headers> line, 1 for C<response_body>, 1 for
C<response_body_like>; per block: 1 per C<error_log> and C<no_error_log>
pattern, 1 for C<must_die>, and always 1 named
C<< "<block name> - no alert/crit/crash in error.log" >> that fails on
C<[alert]>, C<[crit]>, C<exited on signal>, C<AddressSanitizer>,
C<LeakSanitizer>, C<runtime error:> in error.log or nginx's stderr, on the
master (or C<nginx -t>) being killed by a signal (a crash while parsing the
config leaves no log line at all; a must_die block whose C<nginx -t>
segfaults fails here), and, except for must_die blocks, on C<[emerg]> or a
non-zero exit of the master.  Extra failing tests appear only when something breaks (nginx did
not start, no complete response, harness error).

=head2 Low-level API

    my $srv = start_nginx(http_config => $h, config => $c,
                          main_config => $m, workers => 1);
    # hashref: port, port2, port3, prefix, pid, conf, error_log, html_dir,
    # stderr_log, workers.  Croaks (with nginx's stderr and error.log) if
    # nginx does not come up within 10 s (TEST_NGINX_START_TIMEOUT).
    my $srv = start_nginx(conf => $whole_nginx_conf, globals => 'daemon off;',
                          links => { 'modules/x.so' => $path });
    my $srv = start_nginx(http_config => $h, config => $c,
                          user => 'nobody nogroup');
    # as root, the workers run as that user instead of root
    # runs a complete configuration file of your own instead of the generated
    # layout ($TEST_NGINX_* substituted; globals go to nginx -g; links are
    # symlinks made inside the prefix first).
    my $srv = start_nginx(conf => $conf, port => 8080);
    # a configuration that listens on a fixed port of its own: start_nginx
    # waits for that port instead of $TEST_NGINX_SERVER_PORT
    my $res = http_get($srv, $path, \%headers, $timeout);
    # {status, reason, protocol, headers => {lc name => [values]}, body,
    #  raw, error}; HTTP/1.1, Host from %headers or localhost,
    #  Connection: close.  $srv may also be {port => N} or a port number.
    my $res = http_raw($srv, $bytes, $timeout);       # same, raw bytes
    my $seen = variants_of($srv, 'shop.example.com', 10);
    # GET / as users u1..u10 (X-User: u1 ...): {"body X-Variant" => count},
    # the body without its newline, "-" for no X-Variant header
    reload_nginx($srv, $new_http_config, $new_config);
    reload_nginx($srv, $new_whole_conf);    # a server started with conf =>
    reload_nginx($srv, undef, undef, $new_main_config);  # e.g. stream{}
    # undef keeps the old section; rewrites nginx.conf, sends HUP, waits
    # (max 10 s) for the new worker(s) to start and the old ones to stop
    # accepting.  True on success, false (with diag) if the new config was
    # rejected ([emerg]) or nothing happened in time.
    my $log = stop_nginx($srv);
    # QUIT, wait max 10 s, then TERM and wait again (never SIGKILL).
    my $n = file_lines($path, qr/.../, $at_least, $seconds);
    # lines of a file (an access log) matching, waiting up to $seconds
    # (5 by default) for $at_least of them
    # Returns error.log, followed by nginx's stderr if it wrote any.
    error_log_ok($log, $name);            # the alert/crit/crash check
    error_log_ok($log, $name, allow_emerg => 1);
    my ($status, $output) = nginx_test_config(http_config => ..., config => ...);
    # runs nginx -t; exit status (128+N if killed by signal N) and
    # stdout+stderr followed by error.log

Because C<run_tests()> calls C<done_testing>, put low-level tests B<before>
C<run_tests()> in a file that has both (or set a plan).  A file that uses
only the low-level API calls C<done_testing()> itself.

Running servers left at exit (or on SIGINT/SIGTERM of the test) are stopped
the same way.

Files, free ports, polling and the processes a test runs beside nginx
(etcd, the tools, Prometheus, a peer of its own) come from
L<Test::Nginx::Dynroute::Proc> (F<t/lib/Test/Nginx/Dynroute/Proc.pm>), the
one place they are written: C<slurp>, C<spew>, C<tail_of>, C<free_ports>,
C<wait_for>, processes started and stopped by PID, C<run_cmd>, etcd.  This
module does not export them; a test imports what it uses:

    use Test::Nginx::Dynroute::Proc qw(slurp spew wait_for);

and this module reads and writes files, picks ports and launches nginx
with the same functions.

=head2 Writing this module: Spiffy

C<use Test::Base -Base> source-filters this file: every C<sub name {> at the
start of a line gets C<my $self = shift;> inserted.  Plain functions are
therefore declared C<sub name() {> (Spiffy then removes the empty
prototype).

=cut

package Test::Nginx::Dynroute;

use Test::Base -Base;

use Cwd ();
use File::Basename ();
use File::Path ();
use File::Spec ();
use File::Temp ();
use IO::Select ();
use IO::Socket::IP ();
use POSIX ();
use Test::Builder ();
# Files, ports and processes: the helpers of the tests that run other
# processes (and of every test that reads or writes a file).  nginx is
# launched, not made ours: no SIGKILL at exit, stop_nginx stops it.
use Test::Nginx::Dynroute::Proc qw(slurp spew tail_of free_ports launch wait_pid wait_for);
use Test::More ();
use Time::HiRes ();

our @EXPORT = qw(
    run_tests workers master_on repeat_each no_shuffle add_block_preprocessor
    start_nginx http_get http_raw reload_nginx stop_nginx
    error_log_ok nginx_test_config file_lines variants_of
    done_testing note
);

*done_testing = \&Test::More::done_testing;
*note = \&Test::More::note;

# Test::Base runs run_compare() from its END block unless Test::Builder::plan
# was called; done_testing does not call it, and run_compare would croak on
# our blocks.  Test::Base wraps Test::Builder::plan to note that a plan was
# seen; calling it without arguments notes that and does nothing else.
Test::Builder->new->plan();

my $Workers    = 1;
my $RepeatEach = 1;
my $ServRoot;
my $PrefixSeq  = 0;
my %Running;                       # master pid => server hashref
my $ParentPid  = $$;
my @Preprocessors;                 # code refs, the one added last first

my $TDir = do {
    my $f = Cwd::abs_path(__FILE__);
    my $d = $f;
    $d = File::Basename::dirname($d) for 1 .. 4;   # .../t
    $d;
};
my $RepoRoot = File::Basename::dirname($TDir);


my $BadLogRe = qr/\[alert\]|\[crit\]|exited on signal|AddressSanitizer|LeakSanitizer|runtime error:/;

#------------------------------------------------------------------ settings

sub workers() {
    $Workers = shift if @_;
    return $Workers;
}

sub repeat_each() {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub master_on() { return 1 }

# Test::Nginx::Socket's: unshift, so that the one added last runs first.
sub add_block_preprocessor(&) {
    my ($code) = @_;
    Carp::croak('add_block_preprocessor takes a code ref') unless ref $code eq 'CODE';
    unshift @Preprocessors, $code;
}

sub no_shuffle() { return 1 }

sub _binary() {
    my $b = $ENV{TEST_NGINX_BINARY};
    return (defined $b && length $b) ? $b : '/usr/sbin/nginx';
}

# The stream module to load before the others (TEST_NGINX_STREAM_MODULE),
# or nothing.
sub stream_module() {
    my $m = $ENV{TEST_NGINX_STREAM_MODULE};
    return (defined $m && length $m) ? ($m) : ();
}

sub _modules() {
    my $env = $ENV{TEST_NGINX_LOAD_MODULES};
    if (!defined $env) {
        my $def = "$RepoRoot/build/ngx_http_dynroute_module.so";
        return -e $def ? ($def) : ();
    }
    return map { File::Spec->rel2abs($_) } grep { length } split ' ', $env;
}

#------------------------------------------------------------------ files

# How many lines of the file at $path match $re.  A backend writes its
# access log line after it answered, and a background subrequest finishes
# after the response: with $at_least, wait (up to $seconds, 5 by default)
# for that many.  A check that a line never comes waits briefly for one.
sub file_lines() {
    my ($path, $re, $at_least, $seconds) = @_;
    my $n = 0;
    wait_for($seconds // 5, sub {
        $n = grep { /$re/ } split /\n/, slurp($path);
        return $n >= ($at_least // 0);
    }, 0.1);
    return $n;
}

sub _servroot() {
    return $ServRoot if defined $ServRoot;
    my $parent = $ENV{TEST_NGINX_SERVTEMP};
    $parent = $TDir unless defined $parent && length $parent;
    File::Path::make_path($parent) unless -d $parent;
    $ServRoot = File::Temp::tempdir('servrootXXXXXX', DIR => $parent,
                                    CLEANUP => $ENV{TEST_NGINX_NO_CLEAN} ? 0 : 1);
    return $ServRoot;
}

sub _subst() {
    my ($text, $vars) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s{\$(?:\{(TEST_NGINX_\w+)\}|(TEST_NGINX_\w+))}{
        my $n = defined $1 ? $1 : $2;
        exists $vars->{$n} ? $vars->{$n}
          : defined $ENV{$n} ? $ENV{$n}
          : $&
    }ge;
    return $text;
}

sub _section_text() {
    my ($t) = @_;
    return '' unless defined $t && length $t;
    $t .= "\n" unless $t =~ /\n\z/;
    return $t;
}

#------------------------------------------------------------------ servers

# Makes a prefix, picks ports, writes nginx.conf.  Returns the server hash.
sub _prepare_server() {
    my (%a) = @_;
    my $tag = defined $a{tag} ? $a{tag} : 'srv';
    $tag =~ s/[^\w.-]+/_/g;
    my $prefix = sprintf '%s/%03d-%s', _servroot(), ++$PrefixSeq, $tag;
    File::Path::make_path("$prefix/conf", "$prefix/logs", "$prefix/tmp", "$prefix/html");
    # load files of installed modules name them relative to the prefix, as
    # Debian's "load_module modules/...;"
    symlink '/usr/lib/nginx/modules', "$prefix/modules"
        if length($ENV{TEST_NGINX_INCLUDE_MODULES} // '');
    my ($p1, $p2, $p3) = free_ports(3);
    $p1 = $a{port} if defined $a{port};
    my $srv = {
        prefix      => $prefix,
        port        => $p1,
        port2       => $p2,
        port3       => $p3,
        html_dir    => "$prefix/html",
        conf        => "$prefix/conf/nginx.conf",
        error_log   => "$prefix/logs/error.log",
        stderr_log  => "$prefix/logs/stderr.log",
        workers     => defined $a{workers} ? $a{workers} : $Workers,
        http_config => $a{http_config},
        config      => $a{config},
        main_config => $a{main_config},
        full_conf   => $a{conf},
        globals     => $a{globals},
        user        => $a{user},
        pid         => undef,
    };
    $srv->{vars} = {
        TEST_NGINX_SERVER_PORT => $p1,
        TEST_NGINX_PORT2       => $p2,
        TEST_NGINX_PORT3       => $p3,
        TEST_NGINX_HTML_DIR    => "$prefix/html",
        TEST_NGINX_PREFIX      => $prefix,
    };
    for my $link (sort keys %{ $a{links} || {} }) {
        my $path = "$prefix/$link";
        File::Path::make_path(File::Basename::dirname($path));
        symlink $a{links}{$link}, $path or die "symlink $path: $!\n";
    }
    _write_conf($srv);
    return $srv;
}

sub _conf_text() {
    my ($srv) = @_;
    my $p = $srv->{prefix};
    my $v = $srv->{vars};
    return _subst($srv->{full_conf}, $v) if defined $srv->{full_conf};
    my $inc = $ENV{TEST_NGINX_INCLUDE_MODULES};
    my $line1 = join ' ',
        ((defined $inc && length $inc) ? ("include $inc;") : ()),
        (map { "load_module $_;" } stream_module(), _modules()),
        'daemon off;', 'master_process on;',
        "worker_processes $srv->{workers};",
        "pid $p/logs/nginx.pid;",
        "error_log $p/logs/error.log debug;",
        ($> == 0 ? ('user ' . ($srv->{user} // 'root') . ';') : ()),
        'events { worker_connections 1024; }';
    my $line2 = join ' ', 'http {',
        "access_log $p/logs/access.log;",
        "client_body_temp_path $p/tmp/client_body;",
        "proxy_temp_path $p/tmp/proxy;",
        "fastcgi_temp_path $p/tmp/fastcgi;",
        "uwsgi_temp_path $p/tmp/uwsgi;",
        "scgi_temp_path $p/tmp/scgi;",
        'default_type text/plain;';
    return "$line1\n$line2\n"
        . _section_text(_subst($srv->{http_config}, $v))
        . "server { listen 127.0.0.1:$srv->{port}; server_name localhost;\n"
        . _section_text(_subst($srv->{config}, $v))
        . "}\n}\n"
        . _section_text(_subst($srv->{main_config}, $v));
}

sub _write_conf() {
    my ($srv) = @_;
    spew($srv->{conf}, _conf_text($srv));
}

sub _nginx_cmd() {
    my ($srv, @extra) = @_;
    return (_binary(), @extra, '-p', "$srv->{prefix}/", '-e', $srv->{error_log},
            '-c', $srv->{conf},
            (defined $srv->{globals} ? ('-g', $srv->{globals}) : ()));
}

sub _describe_status() {
    my ($st) = @_;
    return 'unknown status' unless defined $st;
    return 'was not our child' if $st == -1;
    return 'killed by signal ' . ($st & 127) if $st & 127;
    return 'exit code ' . ($st >> 8);
}

# Is something listening on 127.0.0.1:$port?  /proc/net/tcp is read so that
# the probe does not leave a connection (and "client closed connection"
# lines) in error.log; without /proc, a connect() is tried.
sub _listening() {
    my ($port) = @_;
    if (open my $fh, '<', '/proc/net/tcp') {
        my $want = sprintf '0100007F:%04X', $port;
        my $any  = sprintf '00000000:%04X', $port;
        while (my $l = <$fh>) {
            my @f = split ' ', $l;
            next unless @f > 3;
            return 1 if ($f[1] eq $want || $f[1] eq $any) && $f[3] eq '0A';
        }
        return 0;
    }
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# Starts nginx for a prepared server.  True when it listens; false with
# $srv->{start_error} set otherwise.
sub _launch() {
    my ($srv) = @_;
    my $pid = launch($srv->{stderr_log}, _nginx_cmd($srv));
    $srv->{pid} = $pid;
    $Running{$pid} = $srv;
    my $wait = $ENV{TEST_NGINX_START_TIMEOUT} || 10;
    my $deadline = Time::HiRes::time() + $wait;
    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        if ($r == $pid) {
            my $st = $?;
            delete $Running{$pid};
            $srv->{pid} = undef;
            $srv->{exit_status} = $st;
            $srv->{start_error} = "nginx exited before listening ("
                . _describe_status($st) . ")\n"
                . "--- stderr ($srv->{stderr_log}):\n" . slurp($srv->{stderr_log})
                . "--- error.log ($srv->{error_log}):\n" . tail_of(slurp($srv->{error_log}), 40);
            return 0;
        }
        return 1 if _listening($srv->{port});
        if (Time::HiRes::time() >= $deadline) {
            $srv->{start_error} = "nginx did not listen on 127.0.0.1:$srv->{port} within $wait s\n"
                . "--- stderr:\n" . slurp($srv->{stderr_log})
                . "--- error.log:\n" . tail_of(slurp($srv->{error_log}), 40);
            stop_nginx($srv);
            return 0;
        }
        Time::HiRes::sleep(0.02);
    }
}

sub start_nginx() {
    my (%a) = @_;
    my $srv = _prepare_server(%a, tag => 'srv');
    _launch($srv) or Carp::croak("start_nginx: $srv->{start_error}");
    return $srv;
}

sub stop_nginx() {
    my ($srv) = @_;
    if (my $pid = $srv->{pid}) {
        kill 'QUIT', $pid;
        my $st = wait_pid($pid, 10);
        if (!defined $st) {
            Test::More::diag("nginx master $pid still running 10 s after SIGQUIT; sending SIGTERM");
            kill 'TERM', $pid;
            $st = wait_pid($pid, 10);
        }
        if (defined $st) {
            delete $Running{$pid};
            $srv->{pid} = undef;
            $srv->{exit_status} = $st;
        } else {
            Test::More::diag("nginx master $pid still running 10 s after SIGTERM; leaving it");
            $srv->{stop_failed} = 1;
        }
    }
    my $log = slurp($srv->{error_log});
    my $err = slurp($srv->{stderr_log});
    $log .= "--- nginx stderr ---\n$err" if length $err;
    return $log;
}

sub reload_nginx() {
    my ($srv, $http_config, $config, $main_config) = @_;
    Carp::croak('reload_nginx: nginx is not running') unless $srv->{pid};
    if (defined $srv->{full_conf}) {
        $srv->{full_conf} = $http_config if defined $http_config;
    } else {
        $srv->{http_config} = $http_config if defined $http_config;
        $srv->{config} = $config if defined $config;
        $srv->{main_config} = $main_config if defined $main_config;
    }
    _write_conf($srv);
    my $offset = -s $srv->{error_log} || 0;
    my $old = $srv->{workers};
    kill 'HUP', $srv->{pid};
    my $deadline = Time::HiRes::time() + 10;
    my $started_at;
    while (1) {
        my $new = slurp($srv->{error_log}, $offset);
        if ($new =~ /^(.*\[emerg\].*)$/m) {
            Test::More::diag("reload_nginx: new configuration rejected: $1");
            return 0;
        }
        my $starts = () = $new =~ /start worker process/g;
        my $stops  = () = $new =~ /gracefully shutting down/g;
        if ($starts >= $srv->{workers}) {
            return 1 if $stops >= $old;
            $started_at = Time::HiRes::time() unless defined $started_at;
            # old workers should say so at once; do not insist forever
            return 1 if Time::HiRes::time() - $started_at > 2;
        }
        if (waitpid($srv->{pid}, POSIX::WNOHANG()) == $srv->{pid}) {
            $srv->{exit_status} = $?;
            delete $Running{$srv->{pid}};
            $srv->{pid} = undef;
            Test::More::diag('reload_nginx: nginx master exited ('
                             . _describe_status($srv->{exit_status}) . ')');
            return 0;
        }
        if (Time::HiRes::time() >= $deadline) {
            Test::More::diag('reload_nginx: no new worker process within 10 s');
            return 0;
        }
        Time::HiRes::sleep(0.02);
    }
}

sub nginx_test_config() {
    my (%a) = @_;
    my $srv = _prepare_server(%a, tag => 'conftest');
    return _config_test($srv);
}

# nginx -t; returns (exit status, stdout+stderr followed by error.log).
sub _config_test() {
    my ($srv) = @_;
    my $outf = "$srv->{prefix}/logs/nginx-t.out";
    my $pid = launch($outf, _nginx_cmd($srv, '-t'));
    my $st = wait_pid($pid, 30);
    if (!defined $st) {
        kill 'KILL', $pid;      # nginx -t has no workers
        wait_pid($pid, 5);
        Test::More::diag('nginx -t did not finish within 30 s');
        $st = 255 << 8;
    }
    $srv->{test_status} = $st;
    my $code = ($st & 127) ? 128 + ($st & 127) : $st >> 8;
    my $out = slurp($outf);
    $out .= "\n" if length $out && $out !~ /\n\z/;
    return ($code, $out . slurp($srv->{error_log}));
}

#------------------------------------------------------------------ checks

sub _bad_lines() {
    my ($text, $allow_emerg) = @_;
    my @bad;
    for my $l (split /\n/, defined $text ? $text : '') {
        push @bad, $l if $l =~ $BadLogRe || (!$allow_emerg && $l =~ /\[emerg\]/);
    }
    return @bad;
}

sub error_log_ok() {
    my ($text, $name, %opt) = @_;
    $name = 'no alert/crit/crash in error.log' unless defined $name;
    my @bad = _bad_lines($text, $opt{allow_emerg});
    push @bad, @{$opt{extra}} if $opt{extra};
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = Test::More::ok(!@bad, $name);
    unless ($ok) {
        my @show = @bad > 30 ? (@bad[0 .. 29], '...') : @bad;
        Test::More::diag(join '', map { "  $_\n" } @show);
    }
    return $ok;
}

#------------------------------------------------------------------ client

sub _port_of() {
    my ($srv) = @_;
    return ref $srv ? $srv->{port} : $srv;
}

sub http_raw() {
    my ($srv, $bytes, $timeout) = @_;
    my $method = $bytes =~ /\A\s*(\S+)/ ? $1 : '';
    return _exchange(_port_of($srv), $bytes, $timeout, $method);
}

sub http_get() {
    my ($srv, $path, $headers, $timeout) = @_;
    $headers ||= {};
    my %lc = map { (lc($_) => 1) } keys %$headers;
    my $req = "GET $path HTTP/1.1\r\n";
    my @names = sort keys %$headers;
    @names = ((grep { lc $_ eq 'host' } @names), (grep { lc $_ ne 'host' } @names));
    $req .= "Host: localhost\r\n" unless $lc{host};
    for my $n (@names) {
        my $v = $headers->{$n};
        $req .= "$n: $_\r\n" for ref $v eq 'ARRAY' ? @$v : ($v);
    }
    $req .= "Connection: close\r\n" unless $lc{connection};
    $req .= "\r\n";
    return _exchange(_port_of($srv), $req, $timeout, 'GET');
}

# GET / as users u1..u$n (X-User: uN) with Host $host: how many answers
# had each "body X-Variant" (the body without its newline; "-" for no
# X-Variant header).
sub variants_of() {
    my ($srv, $host, $n) = @_;
    my %seen;
    for my $user (1 .. $n) {
        my $res = http_get($srv, '/', { Host => $host, 'X-User' => "u$user" });
        chomp(my $body = $res->{body} // 'no answer');
        $seen{"$body " . ($res->{headers}{'x-variant'}[0] // '-')}++;
    }
    return \%seen;
}

sub _exchange() {
    my ($port, $bytes, $timeout, $method) = @_;
    $timeout = 10 unless defined $timeout && $timeout > 0;
    my $res = { status => undef, reason => undef, protocol => undef,
                headers => {}, body => '', raw => '', error => undef };
    local $SIG{PIPE} = 'IGNORE';
    utf8::encode($bytes) if utf8::is_utf8($bytes);
    my $deadline = Time::HiRes::time() + $timeout;
    my $sock = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                   Proto => 'tcp', Timeout => $timeout);
    unless ($sock) {
        $res->{error} = "cannot connect to 127.0.0.1:$port: $@";
        return $res;
    }
    $sock->blocking(0);
    my $sel = IO::Select->new($sock);
    my $off = 0;
    while ($off < length $bytes) {
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0) {
            $res->{error} = "timed out after ${timeout}s sending the request";
            last;
        }
        next unless $sel->can_write($left);
        my $n = syswrite($sock, $bytes, 65536, $off);
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
            last;    # server closed early; read whatever it answered
        }
        $off += $n;
    }
    my $buf = '';
    unless ($res->{error}) {
        while (1) {
            my $left = $deadline - Time::HiRes::time();
            if ($left <= 0) {
                $res->{error} = "timed out after ${timeout}s reading the response"
                    . " (got " . length($buf) . " bytes)";
                last;
            }
            next unless $sel->can_read($left);
            my $n = sysread($sock, my $chunk, 65536);
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
                $res->{error} = "read failed: $!" unless length $buf;
                last;
            }
            last if $n == 0;
            $buf .= $chunk;
        }
    }
    close $sock;
    $res->{raw} = $buf;
    _parse_response($res, $buf, $method) if length $buf;
    $res->{error} = 'connection closed without a response'
        if !length $buf && !defined $res->{error};
    return $res;
}

sub _parse_response() {
    my ($res, $buf, $method) = @_;
    while (1) {
        my $i = index $buf, "\r\n\r\n";
        if ($i < 0) {
            $res->{error} ||= 'incomplete response header';
            return;
        }
        my $head = substr $buf, 0, $i;
        $buf = substr $buf, $i + 4;
        my @lines = split /\r\n/, $head;
        my $sl = shift @lines;
        unless ($sl =~ m{\AHTTP/(\d+\.\d+)\s+(\d{3})(?:\s+(.*))?\z}) {
            $res->{error} ||= "bad status line: $sl";
            return;
        }
        @$res{qw(protocol status reason)} = ($1, $2, defined $3 ? $3 : '');
        $res->{headers} = {};
        for my $l (@lines) {
            push @{$res->{headers}{lc $1}}, $2 if $l =~ /\A([^:\s]+)\s*:\s*(.*?)\s*\z/;
        }
        last unless $res->{status} =~ /\A1/ && $res->{status} != 101;
    }
    my $h = $res->{headers};
    if (uc($method || '') eq 'HEAD' || $res->{status} =~ /\A(?:1\d\d|204|304)\z/) {
        $res->{body} = '';
    } elsif ($h->{'transfer-encoding'} && grep { /chunked/i } @{$h->{'transfer-encoding'}}) {
        my ($body, $err) = _dechunk($buf);
        $res->{body} = $body;
        $res->{error} ||= $err if $err;
    } elsif ($h->{'content-length'}) {
        my $len = $h->{'content-length'}[0];
        if (length $buf < $len) {
            $res->{error} ||= 'body shorter than Content-Length ('
                . length($buf) . " < $len)";
        }
        $res->{body} = substr $buf, 0, $len;
    } else {
        $res->{body} = $buf;
    }
}

sub _dechunk() {
    my ($data) = @_;
    my ($out, $pos) = ('', 0);
    while (1) {
        my $eol = index $data, "\r\n", $pos;
        return ($out, 'truncated chunked body') if $eol < 0;
        my $line = substr $data, $pos, $eol - $pos;
        return ($out, "bad chunk size line: $line") unless $line =~ /\A([0-9a-fA-F]+)/;
        my $size = hex $1;
        $pos = $eol + 2;
        return ($out, undef) if $size == 0;     # trailers ignored
        return ($out, 'truncated chunk') if length($data) < $pos + $size + 2;
        $out .= substr $data, $pos, $size;
        $pos += $size;
        return ($out, 'missing CRLF after chunk') unless substr($data, $pos, 2) eq "\r\n";
        $pos += 2;
    }
}

#------------------------------------------------------------------ blocks

sub _has() {
    my ($block, $sec) = @_;
    return exists $block->{$sec};
}

sub _val() {
    my ($block, $sec) = @_;
    return undef unless exists $block->{$sec};
    my $v = $block->{$sec};
    return ref $v eq 'ARRAY' ? $v->[0] : $v;
}

# Value of a per-request section for request $i (array ref = per request).
sub _pick() {
    my ($block, $sec, $i) = @_;
    my $v = _val($block, $sec);
    return ref $v eq 'ARRAY' ? $v->[$i] : $v;
}

sub _is_eval() {
    my ($block, $sec) = @_;
    my $map = $block->{_section_map};
    $map = $map->[0] if ref $map eq 'ARRAY';
    my $f = $map && $map->{$sec} ? $map->{$sec}{filters} : undef;
    return defined $f && $f =~ /(?:^|\s)eval(?:\s|$)/;
}

sub _header_lines() {
    my ($text) = @_;
    return () unless defined $text;
    return grep { /\S/ } map { s/\r\z//r } split /\n/, $text;
}

sub _build_request() {
    my ($text, $more, $vars) = @_;
    $text = _subst(defined $text ? $text : '', $vars);
    $text =~ s/\A\s+//;
    my ($line, $body) = split /\n/, $text, 2;
    $line = '' unless defined $line;
    $line =~ s/\s+\z//;
    my ($method, $uri, $proto) = split ' ', $line, 3;
    die "bad --- request line: '$line'\n" unless defined $uri;
    $proto = 'HTTP/1.1' unless defined $proto && length $proto;
    if (defined $body) {
        $body =~ s/\n\z//;
        $body = undef unless length $body;
    }
    my @extra = _header_lines(_subst($more, $vars));
    my %has = map { /\A\s*([^:\s]+)\s*:/ ? (lc($1) => 1) : () } @extra;
    my $req = "$method $uri $proto\r\n";
    $req .= "Host: localhost\r\n" unless $has{host};
    $req .= "Connection: close\r\n" unless $has{connection};
    $req .= "$_\r\n" for @extra;
    $req .= 'Content-Length: ' . length($body) . "\r\n"
        if defined $body && !$has{'content-length'} && !$has{'transfer-encoding'};
    $req .= "\r\n";
    $req .= $body if defined $body;
    return ($req, $method);
}

# The log patterns of a section: list of strings and qr//s.
sub _patterns() {
    my ($block, $sec, $vars) = @_;
    return () unless _has($block, $sec);
    my $v = _val($block, $sec);
    return () unless defined $v;
    return ($v) if ref $v eq 'Regexp';
    if (ref $v eq 'ARRAY') {
        return map { ref $_ ? $_ : _subst($_, $vars) } grep { defined && (ref || length) } @$v;
    }
    return (_subst($v, $vars)) if _is_eval($block, $sec) && length $v;
    return grep { length } split /\n/, _subst($v, $vars);
}

sub _pat_matches() {
    my ($text, $p) = @_;
    return ref $p ? scalar($text =~ $p) : index($text, $p) >= 0;
}

sub _pat_desc() {
    my ($p) = @_;
    return ref $p ? "$p" : qq{"$p"};
}

sub _check_logs() {
    my ($block, $name, $log, $vars) = @_;
    for my $p (_patterns($block, 'error_log', $vars)) {
        Test::More::ok(_pat_matches($log, $p),
            "$name - pattern " . _pat_desc($p) . ' appears in error.log')
          or Test::More::diag(length $log ? "error.log (tail):\n" . tail_of($log, 30)
                                          : 'error.log (and nginx output) is empty');
    }
    for my $p (_patterns($block, 'no_error_log', $vars)) {
        my @hits = grep { _pat_matches($_, $p) } split /\n/, $log;
        @hits = ('(matches across lines)') if !@hits && _pat_matches($log, $p);
        Test::More::ok(!@hits,
            "$name - pattern " . _pat_desc($p) . ' does not appear in error.log')
          or Test::More::diag('matching lines:' . join('', map { "\n  $_" } @hits[0 .. ($#hits < 9 ? $#hits : 9)]));
    }
}

sub _check_response() {
    my ($block, $name, $res, $i, $sfx, $vars) = @_;
    if (defined $res->{error}) {
        Test::More::fail("$name - complete response received$sfx");
        Test::More::diag("$res->{error}\nraw response so far:\n"
                         . substr($res->{raw}, 0, 2000));
    }
    my $code = _pick($block, 'error_code', $i);
    if (defined $code) {
        $code =~ s/\A\s+|\s+\z//g;
        Test::More::is($res->{status}, $code, "$name - status code ok$sfx");
    }
    my $rh = _pick($block, 'response_headers', $i);
    for my $l (_header_lines(_subst($rh, $vars))) {
        if ($l =~ /\A\s*!\s*([^:\s]+)\s*\z/) {
            my $h = $1;
            my $got = $res->{headers}{lc $h};
            Test::More::ok(!$got, "$name - header $h absent$sfx")
              or Test::More::diag("got $h: " . join(', ', @$got));
        } elsif ($l =~ /\A\s*([^:\s]+)\s*:\s*(.*?)\s*\z/) {
            my ($h, $want) = ($1, $2);
            my $got = $res->{headers}{lc $h};
            if (!$got) {
                Test::More::fail("$name - header $h$sfx");
                Test::More::diag("header $h missing; expected '$want'");
            } elsif (grep { $_ eq $want } @$got) {
                Test::More::pass("$name - header $h$sfx");
            } else {
                Test::More::is(join(', ', @$got), $want, "$name - header $h$sfx");
            }
        } else {
            die "bad --- response_headers line: '$l'\n";
        }
    }
    if (_has($block, 'response_body')) {
        my $want = _pick($block, 'response_body', $i);
        if (defined $want) {
            is($res->{body}, _subst($want, $vars), "$name - response_body$sfx");
        }
    }
    if (_has($block, 'response_body_like')) {
        my $re = _pick($block, 'response_body_like', $i);
        if (defined $re) {
            unless (ref $re eq 'Regexp') {
                my $s = _subst($re, $vars);
                $s =~ s/\n\z//;
                $re = qr/$s/s;
            }
            Test::More::like($res->{body}, $re, "$name - response_body_like$sfx");
        }
    }
}

# --- user_files: ">>> name [mtime]" lines start files written into the html
# dir (before nginx -t or start); an eval'd array ref of [name, content
# (, mtime)] works too.
sub _write_user_files() {
    my ($block, $srv) = @_;
    return unless _has($block, 'user_files');
    my $v = _val($block, 'user_files');
    my @files;
    if (ref $v eq 'ARRAY') {
        @files = map { [@$_] } @$v;
    } elsif (defined $v) {
        my $cur;
        for my $l (split /^/, $v) {
            if ($l =~ /\A>>>\s*(\S+)(?:\s+(\d+))?\s*\z/) {
                $cur = [$1, '', $2];
                push @files, $cur;
            } elsif ($cur) {
                $cur->[1] .= $l;
            } elsif ($l =~ /\S/) {
                die "--- user_files must start with a '>>> name' line\n";
            }
        }
    }
    for my $f (@files) {
        my ($name, $content, $mtime) = @$f;
        die "--- user_files: bad file name '$name'\n"
            if !defined $name || $name =~ m{\A/|(?:\A|/)\.\.(?:/|\z)};
        my $path = "$srv->{html_dir}/$name";
        File::Path::make_path(File::Basename::dirname($path));
        spew($path, _subst(defined $content ? $content : '', $srv->{vars}));
        utime $mtime, $mtime, $path if defined $mtime;
    }
}

sub _run_block() {
    my ($block) = @_;
    my $name = $block->name;
    $name = 'block ' . $block->seq_num unless defined $name && length $name;
    my $srv = _prepare_server(
        tag         => 'b' . $block->seq_num,
        workers     => $Workers,
        http_config => _val($block, 'http_config'),
        config      => _val($block, 'config'),
        main_config => _val($block, 'main_config'),
    );
    my $vars = $srv->{vars};
    my $crash_name = "$name - no alert/crit/crash in error.log";

    _write_user_files($block, $srv);

    if (_has($block, 'must_die')) {
        my ($st, $out) = _config_test($srv);
        Test::More::ok($st != 0, "$name - nginx -t fails (must_die)")
          or Test::More::diag("nginx -t output:\n$out");
        _check_logs($block, $name, $out, $vars);
        my @extra;
        push @extra, 'nginx -t ' . _describe_status($srv->{test_status})
            if $srv->{test_status} & 127;
        error_log_ok($out, $crash_name, allow_emerg => 1, extra => \@extra);
        return;
    }

    # Build the requests first: a malformed section is a harness error.
    my @reqs;
    if (_has($block, 'raw_request')) {
        my $r = _val($block, 'raw_request');
        for my $one (ref $r eq 'ARRAY' ? @$r : ($r)) {
            my $bytes = _subst(defined $one ? $one : '', $vars);
            push @reqs, [$bytes, $bytes =~ /\A\s*(\S+)/ ? $1 : ''];
        }
    } elsif (_has($block, 'request')) {
        my $r = _val($block, 'request');
        my @list = ref $r eq 'ARRAY' ? @$r : ($r);
        for my $i (0 .. $#list) {
            push @reqs, [_build_request($list[$i], _pick($block, 'more_headers', $i), $vars)];
        }
    }
    my $timeout = _val($block, 'timeout');
    $timeout = 10 unless defined $timeout && $timeout =~ /\A\s*[\d.]+\s*\z/ && $timeout > 0;

    unless (_launch($srv)) {
        Test::More::fail("$name - nginx started");
        Test::More::diag($srv->{start_error});
        my @extra;
        push @extra, 'nginx master ' . _describe_status($srv->{exit_status})
            if defined $srv->{exit_status} && $srv->{exit_status} > 0
               && ($srv->{exit_status} & 127);
        error_log_ok(slurp($srv->{error_log}) . slurp($srv->{stderr_log}), $crash_name,
                     extra => \@extra);
        return;
    }

    my $ok = eval {
        for my $rep (1 .. $RepeatEach) {
            for my $i (0 .. $#reqs) {
                my $sfx = '';
                $sfx .= " (req $i)" if @reqs > 1;
                $sfx .= " (repeat $rep)" if $rep > 1;
                my $res = _exchange($srv->{port}, $reqs[$i][0], $timeout, $reqs[$i][1]);
                _check_response($block, $name, $res, $i, $sfx, $vars);
            }
        }
        1;
    };
    my $err = $@;
    my $wait = _val($block, 'wait');
    Time::HiRes::sleep($wait) if $ok && defined $wait && $wait =~ /\A\s*[\d.]+\s*\z/ && $wait > 0;
    my $log = stop_nginx($srv);
    die $err unless $ok;
    _check_logs($block, $name, $log, $vars);
    my @extra;
    push @extra, 'nginx master did not exit after SIGQUIT/SIGTERM' if $srv->{stop_failed};
    push @extra, 'nginx master ended with ' . _describe_status($srv->{exit_status})
        if defined $srv->{exit_status} && $srv->{exit_status} != 0;
    error_log_ok($log, $crash_name, extra => \@extra);
}

sub run_tests() {
    for my $block (blocks()) {
        my $ok = eval {
            $_->($block) for @Preprocessors;
            _run_block($block);
            1;
        };
        unless ($ok) {
            my $err = $@;
            my $name = $block->name;
            Test::More::fail("$name - harness error");
            Test::More::diag($err);
        }
    }
    my $tb = Test::Builder->new;
    Test::More::done_testing() unless $tb->has_plan;
}

#------------------------------------------------------------------ cleanup

sub _stop_all() {
    return unless $$ == $ParentPid;
    for my $pid (keys %Running) {
        my $srv = $Running{$pid} or next;
        stop_nginx($srv);
    }
}

for my $sig (qw(INT TERM)) {
    $SIG{$sig} = sub { _stop_all(); exit(128 + ($sig eq 'INT' ? 2 : 15)) }
        if !defined $SIG{$sig} || $SIG{$sig} eq '' || $SIG{$sig} eq 'DEFAULT';
}

END {
    local ($?, $!, $@);
    _stop_all();
}

#------------------------------------------------------------------ blocks class

# Test::Base applies its default filters (norm trim) to every section; trim
# would drop leading blank lines of the config sections and so shift the
# documented nginx.conf line numbers.  Keep trim only when asked for.
package Test::Nginx::Dynroute::Block;
our @ISA = ('Test::Base::Block');

sub _get_filters {
    my ($type, $string) = @_;
    my @filters = $self->SUPER::_get_filters(@_);
    if ($type =~ /\A(?:http_config|config|main_config)\z/
        && !(defined $string && $string =~ /(?:^|\s)\+?trim(?:\s|$)/)) {
        @filters = grep { $_ ne 'trim' } @filters;
    }
    return @filters;
}

package Test::Nginx::Dynroute;

1;
