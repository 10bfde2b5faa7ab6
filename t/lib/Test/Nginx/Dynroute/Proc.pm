=head1 NAME

Test::Nginx::Dynroute::Proc - the processes a test starts beside nginx

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Nginx::Dynroute;
    use Test::Nginx::Dynroute::Proc;

    my ($client, $peer) = free_ports(2);
    my $etcd = { name => 'e1', dir => "$dir/etcd", log => "$dir/etcd.log",
                 client => $client, peer => $peer };
    start_etcd($etcd);
    etcd_ready(20, $etcd) or BAIL_OUT("no etcd:\n" . slurp($etcd->{log}));

    my $agent = spawn('agent', "$dir/agent.log", tool_cmd('dynroute-agent'),
                      '--etcd', etcd_endpoint($etcd), ...);
    ok(wait_for(15, sub { slurp("$dir/agent.log") =~ /watching/ }), ...);

    my $r = run_cmd(tool_cmd('dynroutectl'), '--etcd', etcd_endpoint($etcd), 'status');
    # {exit, status, out, err, timed_out}
    my $r = etcdctl($etcd, 'get', '/dynroute/agents/n1');

    is(stop_proc($agent, 'TERM'), 0, 'the agent exits 0 on SIGTERM');
    stop_proc($etcd->{pid});

=head1 DESCRIPTION

What the tests share beside the harness: files, free ports and polling
(every test that reads or writes a file or waits for something uses these,
and so does the harness), and the processes a test runs next to its nginx
(etcd, the tools, Prometheus, a peer of its own).  A test that runs no
process imports only what it uses, such as
C<use Test::Nginx::Dynroute::Proc qw(slurp spew wait_for);>.

Every process is started with fork and exec, its
stdin from F</dev/null>; the ones this module starts are stopped by their
PID only.  nginx is not one of them: start and stop it with the harness
(C<start_nginx>, C<stop_nginx>), which never sends it SIGKILL.

=head2 Files and ports

C<slurp($path, $offset)> (the bytes from $offset, '' when there is no
file), C<spew($path, $text)> (dies when it cannot write), C<tail_of($text,
$n)> (the last $n lines), C<free_ports($n)> ($n ports of 127.0.0.1 that were
free a moment ago).

=head2 Processes

=over

=item spawn($name, $log, @cmd)

Starts @cmd in the background, its stdout and stderr appended to $log;
returns its PID.  The process is "ours": C<stop_proc> stops it, and so
does this module's END block, whatever the test's way out (the harness
exits on SIGINT and SIGTERM, which runs END).

=item launch($log, @cmd)

The same without making it ours: the caller waits for it and stops it (the
harness starts nginx so).

=item track($pid, $name), untrack($pid)

Makes a process started otherwise (a fork of the test's own, a pipe open)
ours, and forgets it once the caller has waited for it.

=item start_slow_backend($delay, %options)

A backend of the test's own on a free port of 127.0.0.1: it reads each
request's head, waits $delay seconds, answers C<200> with the body
C<slow\n> (HTTP/1.1, C<Connection: close>) and closes the connection.
Returns its PID, ours (C<stop_proc> stops it), and its port; it exits by
itself after 60 s.  Options: C<concurrent> (true: each connection in a
process of its own, so that answers overlap; default one after another),
C<response> (the bytes it answers instead).

=item alive($pid)

True while one of ours runs; reaps it (and forgets it) once it has exited.

=item wait_pid($pid, $seconds)

Waits at most $seconds for a child: its wait status, -1 if it is no child
of ours, undef if it still runs.

=item stop_proc($pid, $signal, $seconds)

Sends $signal (default TERM) to one of ours, waits at most $seconds
(default 10), then sends SIGKILL to that PID (never to a group) and says
so with C<diag>.  Returns the wait status; undef for a PID that is not
ours (so never an nginx master).

=back

At exit, the processes still ours get SIGTERM, clients first and then the
services (etcd), each group waited for 5 s at the most before SIGKILL.

=head2 Polling and commands

=over

=item wait_for($seconds, $cond, $step)

Calls $cond every $step seconds (default 0.05) until it returns true, for
at most $seconds: the true value, or 0 when the time ran out.

=item run_cmd(\%options, @cmd), run_cmd(@cmd)

Runs a command to its end: C<{exit, status, out, err, timed_out}>; exit is
128+N when a signal N ended it.  Options: C<stdin> (text), C<timeout>
(seconds, default 60: then the command is stopped as by C<stop_proc>).

=item json_of($text)

The JSON document in $text, or C<{}>.

=item $PYTHON, tool_path($name), tool_cmd($name)

F</usr/bin/python3>, the path of the repository's F<tools/$name>, and the
command that runs it.

=back

=head2 etcd

A member is a hash of the test's own: C<name>, C<dir> (its data
directory), C<log>, C<client> and C<peer> (ports on 127.0.0.1), and
optionally C<cluster> (C<--initial-cluster>; default the member alone) and
C<tls> (C<{cert, key, ca}> of the server, which then speaks only https on
its client port and asks every client for a certificate signed by C<ca>;
C<client_cert> and C<client_key> are what C<etcdctl> presents).

C<start_etcd($member, @flags)> starts it (extra flags after the usual ones)
and sets C<< $member->{pid} >>; C<stop_proc($member-E<gt>{pid})> stops it.
C<etcd_endpoint(@members)> is the C<--endpoints> list;
C<etcd_ready($seconds, @members)> waits until each answers
C<etcdctl endpoint health> (false at once, with its log's end, if one
exited).  C<etcdctl_cmd(@members)> is the etcdctl command line for them
(with the TLS options), C<etcdctl($member_or_list, @args)> runs it.
C<$ETCD> and C<$ETCDCTL> are F</usr/bin/etcd> and F</usr/bin/etcdctl>, or
the environment's ETCD and ETCDCTL.

=cut

package Test::Nginx::Dynroute::Proc;

use strict;
use warnings;

use Cwd ();
use Exporter ();
use File::Basename ();
use File::Temp ();
use IO::Socket::IP ();
use JSON::PP ();
use POSIX ();
use Test::More ();
use Time::HiRes ();

our @ISA = ('Exporter');
our @EXPORT = qw(
    slurp spew tail_of free_ports
    spawn launch track untrack alive wait_pid stop_proc start_slow_backend
    wait_for run_cmd json_of $PYTHON tool_path tool_cmd
    $ETCD $ETCDCTL start_etcd etcd_endpoint etcd_ready etcdctl_cmd etcdctl
);

our $PYTHON  = '/usr/bin/python3';
our $ETCD    = $ENV{ETCD}    || '/usr/bin/etcd';
our $ETCDCTL = $ENV{ETCDCTL} || '/usr/bin/etcdctl';

# t/lib/Test/Nginx/Dynroute/Proc.pm: the repository is 6 levels up
my $Root = Cwd::abs_path(__FILE__);
$Root = File::Basename::dirname($Root) for 1 .. 6;

my $ParentPid = $$;
my %Ours;                       # pid => { name, service }

#------------------------------------------------------------------ files

sub slurp {
    my ($path, $offset) = @_;
    open my $fh, '<', $path or return '';
    binmode $fh;
    seek $fh, $offset, 0 if $offset;
    local $/;
    my $c = <$fh>;
    close $fh;
    return defined $c ? $c : '';
}

sub spew {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "cannot write $path: $!\n";
    binmode $fh;
    print {$fh} $text;
    close $fh or die "cannot write $path: $!\n";
}

sub tail_of {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    splice @l, 0, @l - $n if @l > $n;
    return join '', map { "$_\n" } @l;
}

sub free_ports {
    my ($n) = @_;
    my @socks = map {
        IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                            Proto => 'tcp', Listen => 1)
            or die "cannot bind 127.0.0.1:0: $@\n"
    } 1 .. $n;
    my @ports = map { $_->sockport } @socks;
    close $_ for @socks;
    return @ports;
}

#------------------------------------------------------------------ processes

# fork + exec: stdin from $stdin (/dev/null), stdout to $out, stderr to $err
# (the same as stdout when undef); $out and $err are paths to append to or
# handles.
sub _fork_exec {
    my ($stdin, $out, $err, @cmd) = @_;
    my $pid = fork;
    die "fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', $stdin // '/dev/null' or POSIX::_exit(126);
        if (ref $out) {
            open STDOUT, '>&', $out or POSIX::_exit(126);
        } else {
            open STDOUT, '>>', $out or POSIX::_exit(126);
        }
        if (defined $err) {
            open STDERR, '>&', $err or POSIX::_exit(126);
        } else {
            open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        }
        { exec { $cmd[0] } @cmd; }
        print STDERR "exec $cmd[0] failed: $!\n";
        POSIX::_exit(127);
    }
    return $pid;
}

sub launch {
    my ($log, @cmd) = @_;
    return _fork_exec(undef, $log, undef, @cmd);
}

sub track {
    my ($pid, $name, $service) = @_;
    $Ours{$pid} = { name => $name, service => $service ? 1 : 0 };
    return $pid;
}

sub untrack {
    my ($pid) = @_;
    delete $Ours{$pid} if defined $pid;
}

sub start_slow_backend {
    my ($delay, %o) = @_;
    my $answer = $o{response} // "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                               . "Connection: close\r\n\r\nslow\n";
    my $l = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
                                Listen => 64, ReuseAddr => 1)
        or die "listen: $@";
    my $port = $l->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        local $SIG{ALRM} = sub { POSIX::_exit(0) };
        local $SIG{CHLD} = 'IGNORE';    # reaps the concurrent answers
        alarm 60;                       # bounded: the test is over by then
        while (my $c = $l->accept) {
            my $child = $o{concurrent} ? fork : undef;
            if (!$o{concurrent} || (defined $child && $child == 0)) {
                my $buf = '';
                while ($buf !~ /\r\n\r\n/) {
                    my $n = sysread $c, $buf, 65536, length $buf;
                    last unless $n;
                }
                Time::HiRes::sleep($delay);
                print $c $answer;
                close $c;
                POSIX::_exit(0) if $o{concurrent};
                next;
            }
            close $c;
        }
        POSIX::_exit(0);
    }
    close $l;
    return (track($pid, 'slow backend'), $port);
}

sub spawn {
    my ($name, $log, @cmd) = @_;
    return track(launch($log, @cmd), $name);
}

sub alive {
    my ($pid) = @_;
    return 0 unless $pid && $Ours{$pid};
    return 1 if waitpid($pid, POSIX::WNOHANG()) == 0;
    untrack($pid);
    return 0;
}

sub wait_pid {
    my ($pid, $secs) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    my $step = 0.001;           # short commands: answered within a few ms
    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        return $? if $r == $pid;
        return -1 if $r < 0;
        return undef if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep($step);
        $step *= 2 if $step < 0.02;
    }
}

sub stop_proc {
    my ($pid, $sig, $secs) = @_;
    return undef unless $pid && $Ours{$pid};
    $sig //= 'TERM';
    $secs //= 10;
    kill $sig, $pid;
    my $st = wait_pid($pid, $secs);
    unless (defined $st) {
        Test::More::diag("$Ours{$pid}{name} ($pid) still running $secs s after SIG$sig: SIGKILL");
        kill 'KILL', $pid;
        $st = wait_pid($pid, 10);
    }
    untrack($pid);
    return defined $st && $st >= 0 ? $st : undef;
}

# SIGTERM to a group at once, up to 5 s for all of it, SIGKILL to the rest.
sub _stop_group {
    my (@pids) = @_;
    return unless @pids;
    kill 'TERM', @pids;
    my $deadline = Time::HiRes::time() + 5;
    while (@pids && Time::HiRes::time() < $deadline) {
        @pids = grep { waitpid($_, POSIX::WNOHANG()) == 0 } @pids;
        Time::HiRes::sleep(0.02) if @pids;
    }
    for my $pid (@pids) {
        Test::More::diag("$Ours{$pid}{name} ($pid) still running 5 s after SIGTERM: SIGKILL");
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
}

END {
    local ($?, $!, $@);
    if ($$ == $ParentPid) {
        _stop_group(grep { !$Ours{$_}{service} } keys %Ours);
        _stop_group(grep { $Ours{$_}{service} } keys %Ours);
        %Ours = ();
    }
}

#------------------------------------------------------------------ polling, commands

sub wait_for {
    my ($secs, $cond, $step) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return 0 if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep($step // 0.05);
    }
}

sub run_cmd {
    my %o = ref $_[0] eq 'HASH' ? %{ shift() } : ();
    my (@cmd) = @_;
    my ($out, $err) = (File::Temp->new, File::Temp->new);
    my $in;
    if (defined $o{stdin}) {
        $in = File::Temp->new;
        print {$in} $o{stdin};
        close $in;
    }
    my $pid = track(_fork_exec($in ? "$in" : undef, $out, $err, @cmd), "command $cmd[0]");
    my $st = wait_pid($pid, $o{timeout} // 60);
    my $timed_out = !defined $st;
    if ($timed_out) {
        Test::More::diag("@cmd: still running after " . ($o{timeout} // 60) . ' s');
        $st = stop_proc($pid, 'TERM', 5) // -1;
    }
    untrack($pid);
    return { exit => $st & 127 ? 128 + ($st & 127) : $st >> 8, status => $st,
             out => slurp("$out"), err => slurp("$err"), timed_out => $timed_out };
}

sub json_of {
    my ($text) = @_;
    return eval { JSON::PP->new->decode($text) } // {};
}

sub tool_path {
    my ($name) = @_;
    return "$Root/tools/$name";
}

sub tool_cmd {
    my ($name) = @_;
    return ($PYTHON, tool_path($name));
}

#------------------------------------------------------------------ etcd

sub _client_url {
    my ($m) = @_;
    return ($m->{tls} ? 'https' : 'http') . "://127.0.0.1:$m->{client}";
}

sub etcd_endpoint {
    my (@members) = @_;
    return join ',', map { _client_url($_) } @members;
}

sub start_etcd {
    my ($m, @flags) = @_;
    my $client = _client_url($m);
    my $peer = "http://127.0.0.1:$m->{peer}";
    my @tls = $m->{tls} ? ('--cert-file', $m->{tls}{cert}, '--key-file', $m->{tls}{key},
                           '--trusted-ca-file', $m->{tls}{ca}, '--client-cert-auth')
                        : ();
    my $pid = spawn("etcd $m->{name}", $m->{log}, $ETCD,
        '--name', $m->{name}, '--data-dir', $m->{dir},
        '--listen-client-urls', $client, '--advertise-client-urls', $client,
        '--listen-peer-urls', $peer, '--initial-advertise-peer-urls', $peer,
        '--initial-cluster', $m->{cluster} // "$m->{name}=$peer",
        @tls, @flags);
    $Ours{$pid}{service} = 1;
    return $m->{pid} = $pid;
}

sub etcdctl_cmd {
    my (@members) = @_;
    my $tls = $members[0]{tls};
    return ($ETCDCTL, '--endpoints=' . etcd_endpoint(@members),
            $tls ? ('--cacert', $tls->{ca}) : (),
            $tls && $tls->{client_cert} ? ('--cert', $tls->{client_cert},
                                           '--key', $tls->{client_key}) : ());
}

sub etcdctl {
    my ($members, @args) = @_;
    return run_cmd(etcdctl_cmd(ref $members eq 'ARRAY' ? @$members : $members), @args);
}

sub etcd_ready {
    my ($secs, @members) = @_;
    my $exited;
    my $ok = wait_for($secs, sub {
        for my $m (@members) {
            unless (alive($m->{pid})) {
                $exited = $m;
                return 1;
            }
            return 0 if run_cmd(etcdctl_cmd($m), '--dial-timeout=1s',
                                '--command-timeout=2s', 'endpoint', 'health')->{exit};
        }
        return 1;
    }, 0.1);
    if ($exited) {
        Test::More::diag("etcd $exited->{name} exited; its log ends:\n"
                         . tail_of(slurp($exited->{log}), 20));
        return 0;
    }
    return $ok;
}

1;
