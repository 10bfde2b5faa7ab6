# No configuration that nginx -t accepts may crash a worker.
#
# For each seed, t/confgen/ConfGen.pm writes a random configuration from
# the grammar of dynroute's directives and nginx's own (tables, key= tables,
# rollouts, balancer upstreams, a zone, API locations, CORS, nested, regex
# and named locations, auth_request, mirror, try_files, error_page,
# realip...), mostly valid, with a share of near misses.  Where the nginx
# under test can run stream{} (t/lib/Test/Nginx/Dynroute/Stream.pm's
# stream_missing: compiled in, or TEST_NGINX_STREAM_MODULE loads it first),
# a share of them has a stream{} block too: stream tables, rollouts and
# balancer upstreams in front of TLS and plain TCP backends of the same
# nginx, with near misses of its own.  Then:
#
# - nginx -t refuses it: the output must carry an [emerg] that names the
#   configuration file and a line of it, and nothing else may go wrong
#   (nginx -t killed by a signal, a sanitizer report);
# - nginx -t accepts it: nginx starts with 2 workers, gets the requests the
#   generator made for it (hosts that hit each rule, the default and none,
#   IP literals, odd hosts, overrides, cookies, CORS, the API's reads and
#   writes, the key values of key= tables: each rule's, the default's, none,
#   odd ones), each of which must get a complete HTTP response (any status);
#   then the stream connections it made (ClientHellos whose name hits each
#   rule, none, odd names, garbage, a ClientHello cut short, a connection
#   closed at once), each of which must end, any way, within 8 s;
#   after nginx stops, its error.log and stderr may show no worker exiting
#   on a signal, no [alert], [crit] or [emerg], no AddressSanitizer,
#   LeakSanitizer or UBSan report.
#
# CONFGEN_COUNT configurations (default 180) from CONFGEN_SEED (default 1):
# seed N is always the same configuration.  LeakSanitizer, when on, checks
# the seeds divisible by CONFGEN_LEAK_EVERY (default 4; 1 for all).  A failure prints the seed, what
# went wrong and the whole configuration; CONFGEN_SEED=N CONFGEN_COUNT=1
# runs that one again.  `make test-confgen` runs this file against nginx and
# the module built with ASan and UBSan.  Outside the t/*.t glob: it is its
# own target.
use strict;
use warnings;
use FindBin ();
use lib "$FindBin::Bin/../lib", $FindBin::Bin;
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(spew free_ports);
use Test::Nginx::Dynroute::Stream qw(stream_missing make_cert);
use ConfGen;
use Cwd ();
use File::Path ();
use File::Spec ();
use File::Temp ();
use IO::Select ();
use IO::Socket::IP ();
use Time::HiRes ();

my $count = $ENV{CONFGEN_COUNT} // 180;
my $seed0 = $ENV{CONFGEN_SEED} // 1;
my $leak_every = $ENV{CONFGEN_LEAK_EVERY} // 4;
die "CONFGEN_COUNT, CONFGEN_SEED and CONFGEN_LEAK_EVERY are numbers\n"
    unless "$count $seed0 $leak_every" =~ /\A\d+ \d+ [1-9]\d*\z/;

# The modules to load, as the harness chooses them.
my $repo = Cwd::abs_path("$FindBin::Bin/../..");
my @modules = do {
    my $env = $ENV{TEST_NGINX_LOAD_MODULES};
    defined $env ? (map { File::Spec->rel2abs($_) } grep { length } split ' ', $env)
      : -e "$repo/build/ngx_http_dynroute_module.so" ? ("$repo/build/ngx_http_dynroute_module.so")
      : ();
};

# The stream module first where it is a module of its own (the packaged
# nginx: TEST_NGINX_STREAM_MODULE), as t/stream.t loads it.
unshift @modules, Test::Nginx::Dynroute::stream_module();

# Included files, the sticky secret and the state files of each seed.
my $servtemp = $ENV{TEST_NGINX_SERVTEMP};
$servtemp = "$repo/t" unless defined $servtemp && length $servtemp;
File::Path::make_path($servtemp);
my $work = File::Temp::tempdir('servroot-confgenXXXXXX', DIR => $servtemp,
                               CLEANUP => $ENV{TEST_NGINX_NO_CLEAN} ? 0 : 1);

# Can the nginx under test run a stream{} block (stream, ssl, ssl_preread;
# the module loaded)?  A share of the configurations then has one, with two
# TLS backends of their own certificates and a plain TCP one.
my $no_stream = stream_missing();
# (stream_missing also accepts the load files of TEST_NGINX_INCLUDE_MODULES,
# which this file does not read: it loads what TEST_NGINX_STREAM_MODULE names)
$no_stream //= 'stream is a dynamic module here: set TEST_NGINX_STREAM_MODULE'
    if !Test::Nginx::Dynroute::stream_module()
        && `${\($ENV{TEST_NGINX_BINARY} || "/usr/sbin/nginx")} -V 2>&1` =~ /--with-stream=dynamic/;
my @certs;
if (!$no_stream) {
    @certs = map { make_cert($work, $_) } 'tls1.test', 'tls2.test';
} else {
    note("no stream{} in the configurations: $no_stream");
}

# nginx's own UBSan reports and exit leak in stream
# (t/confgen/ubsan-stream.supp, lsan-stream.supp): added to the
# suppressions that UBSAN_OPTIONS and LSAN_OPTIONS name, in copies of those
# files.
if (!$no_stream) {
    for my $san ('ubsan', 'lsan') {
        my $var = uc($san) . '_OPTIONS';
        next unless defined $ENV{$var} && $ENV{$var} =~ /(?:^|:)suppressions=([^:]+)/;
        my $file = $1;
        my $ours = "$FindBin::Bin/$san-stream.supp";
        open my $in, '<', $file or die "$file: $!\n";
        open my $add, '<', $ours or die "$ours: $!\n";
        spew("$work/$san.supp", join('', <$in>) . join('', <$add>));
        $ENV{$var} =~ s/(^|:)suppressions=[^:]+/$1suppressions=$work\/$san.supp/;
    }
}

# How long a stream connection may take to end, whatever the outcome: the
# fronts' preread_timeout (1 s at most) and proxy_timeout (1 s), the
# backends' ssl_handshake_timeout (2 s), with room for ASan.
my $StreamBound = 8;

my $BadRe = qr/\[alert\]|\[crit\]|\[emerg\]|exited on signal|AddressSanitizer|LeakSanitizer|runtime error:/;

# Can nginx listen on ::1 here?  The configurations ask for it only then,
# and their requests from ::1 go from 127.0.0.1 otherwise.
my $ipv6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1) ? 1 : 0;

my %stat = (refused => 0, started => 0, requests => 0, failed => 0, reloaded => 0,
            restarted => 0, connections => 0);

# A request from ::1, answered completely (the harness speaks IPv4 only).
sub v6_exchange {
    my ($port, $bytes) = @_;
    my $sock = IO::Socket::IP->new(PeerHost => '::1', PeerPort => $port, Proto => 'tcp',
                                   Timeout => 10)
        or return { error => "cannot connect to [::1]:$port: $@" };
    local $SIG{PIPE} = 'IGNORE';
    print {$sock} $bytes;
    my $buf = '';
    my $sel = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + 10;
    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread $sock, $buf, 65536, length $buf;
        last unless $n;
    }
    close $sock;
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    return { error => 'no complete response header' }
        unless defined $body && $head =~ m{\AHTTP/1\.[01] (\d{3})};
    my $status = $1;
    return { error => 'body shorter than Content-Length' }
        if $head =~ /^Content-Length:\s*(\d+)/mi && length($body) < $1 && $bytes !~ /\AHEAD /;
    return { error => 'truncated chunked body' }
        if $head =~ /^Transfer-Encoding:\s*chunked/mi && $body !~ /(?:\A|\r\n)0\r\n\r\n\z/;
    return { status => $status, headers => {} };
}

sub send_request {
    my ($srv, $q) = @_;
    return v6_exchange($srv->{port}, request_bytes($q)) if $q->{v6} && $ipv6;
    return http_raw($srv, request_bytes($q), 10);
}

# A stream connection: its bytes, then, with {shut}, the end of what the
# client sends; it must end within $StreamBound s: closed by nginx (an end
# of file or a reset), or answered (the first bytes of a backend's answer:
# the client closes then, as one that gives up), or, with {close}, closed by
# the client at once.  A connection that neither ends nor gets a byte is
# the failure.
sub stream_exchange {
    my ($port, $k) = @_;
    my $t0 = Time::HiRes::time();
    my $sock = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
                                   Timeout => 5)
        or return { error => "cannot connect to 127.0.0.1:$port: $@" };
    if ($k->{close}) {
        close $sock;
        return { outcome => 'closed at once' };
    }
    local $SIG{PIPE} = 'IGNORE';
    syswrite $sock, $k->{bytes} if length $k->{bytes};
    shutdown $sock, 1 if $k->{shut};
    my $sel = IO::Select->new($sock);
    my $deadline = $t0 + $StreamBound;
    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread $sock, my $buf, 65536;
        if (!defined $n) {
            my $e = "$!";
            close $sock;
            return { outcome => 'reset' } if $e =~ /reset/i;
            return { outcome => "read error: $e" };
        }
        close $sock;
        return { outcome => $n ? 'answered' : 'closed' };
    }
    close $sock;
    return { error => sprintf 'neither answered nor closed within %d s', $StreamBound };
}

# The connections of a configuration (all, or the first $max); problems
# go to @$p.
sub stream_connections {
    my ($c, $p, $when, $max) = @_;
    my @conns = @{$c->{connections}};
    @conns = @conns[0 .. $max - 1] if defined $max && @conns > $max;
    my $failed = 0;
    for my $k (@conns) {
        my $port = $ENV{"TEST_NGINX_SPORT$k->{sport}"};
        my $res = stream_exchange($port, $k);
        $stat{connections}++;
        next unless defined $res->{error};
        push @$p, "${when}stream connection \"$k->{name}\": $res->{error}";
        if (++$failed == 3) {
            push @$p, 'stopped there: the other connections not made';
            last;
        }
    }
}

# Cookies a response set, for a later request that sends them back.
my @saved_cookies;

sub request_bytes {
    my ($q) = @_;
    return $q->{raw} if defined $q->{raw};
    my $s = "$q->{method} $q->{path} HTTP/1.1\r\n";
    $s .= "Host: $q->{host}\r\n" if defined $q->{host};
    $s .= "$_->[0]: $_->[1]\r\n" for @{$q->{headers} || []};
    $s .= 'Cookie: ' . join('; ', @saved_cookies) . "\r\n"
        if $q->{send_saved_cookies} && @saved_cookies;
    $s .= 'Content-Length: ' . length($q->{body}) . "\r\n" if defined $q->{body};
    $s .= "Connection: close\r\n\r\n";
    $s .= $q->{body} if defined $q->{body};
    return $s;
}

sub numbered {
    my ($text) = @_;
    my $n = 0;
    return join '', map { sprintf "%4d  %s\n", ++$n, $_ } split /\n/, $text;
}

sub shorten {
    my ($s) = @_;
    $s =~ s/([^\n]{200})[^\n]+/$1.../g;
    return $s;
}

# The sanitizer reports in a log, each once (two workers often make the
# same), with the frames that say where.
sub sanitizer_reports {
    my ($log) = @_;
    my (%seen, @out);
    my @l = split /\n/, $log;
    for my $i (0 .. $#l) {
        next unless $l[$i] =~ /ERROR: (?:Address|Leak)Sanitizer|runtime error:/;
        my @block;
        for my $j ($i .. ($i + 60 > $#l ? $#l : $i + 60)) {
            push @block, $l[$j];
            last if $l[$j] =~ /^SUMMARY: /;
        }
        (my $key = join "\n", @block) =~ s/0x[0-9a-f]+|==\d+==/X/g;
        push @out, @block, '' unless $seen{$key}++;
    }
    return @out;
}

# Does an [emerg] line name the configuration file, or a file it includes,
# and a line?
sub located {
    my ($c, $l) = @_;
    while ($l =~ m{(/[^\s:"()]+):(\d+)}g) {
        return 1 if $1 =~ m{/conf/nginx\.conf\z} || exists $c->{files}{$1};
    }
    return 0;
}

sub diff_lines {
    my ($a, $b) = @_;
    my @a = split /\n/, $a;
    my @b = split /\n/, $b;
    my @d;
    my ($i, $j) = (0, 0);
    while ($i < @a || $j < @b) {
        if ($i < @a && $j < @b && $a[$i] eq $b[$j]) { $i++; $j++; next }
        if ($j < @b && ($i >= @a || !grep { $_ eq $b[$j] } @a[$i .. $#a])) {
            push @d, sprintf('+%4d  %s', $j + 1, $b[$j++]);
        } else {
            push @d, sprintf('-%4d  %s', $i + 1, $a[$i++]);
        }
    }
    return @d;
}

sub report {
    my ($c, $what, $problems, @details) = @_;
    my @problems = @$problems;
    my $files = join '', map { "--- $_\n$c->{files}{$_}" } sort keys %{$c->{files}};
    my $text = "seed $c->{seed} ($c->{summary}): $what\n"
         . join('', map { '  ' . shorten($_) . "\n" } @problems[0 .. ($#problems > 29 ? 29 : $#problems)])
         . (@problems > 30 ? '  ... and ' . (@problems - 30) . " more\n" : '')
         . join('', map { "  $_\n" } @details)
         . "run it again: CONFGEN_SEED=$c->{seed} CONFGEN_COUNT=1\n"
         . "--- the configuration (\$TEST_NGINX_* are the test's ports and prefix)\n"
         . numbered($c->{conf}) . $files;
    $text =~ s/([^\x20-\x7e\n])/sprintf '\\x%02x', ord $1/ge;
    diag($text);
}

# The stream part's TLS backends are nginx's own TLS servers, with nothing
# of dynroute: the odd ClientHellos the fronts pass them on (a bad server
# name extension, a handshake record too short) make nginx 1.22 log its
# OpenSSL 3 error at [crit] (the reasons it does not know as a client's).
# Those lines, of those two ports only, are not the module's.
sub backend_tls_noise {
    my ($l) = @_;
    return 0 unless $l =~ /\[crit\] .*SSL_do_handshake\(\) failed \(SSL: [^)]*\) while SSL handshaking, client: 127\.0\.0\.1, server: 127\.0\.0\.1:(\d+)$/;
    my $port = $1;
    return scalar grep { defined && $_ == $port } @ENV{'TEST_NGINX_SPORT0', 'TEST_NGINX_SPORT1'};
}

sub check_stopped {
    my ($srv, $log, $p, $reports) = @_;
    push @$p, "the master exited with " . ($srv->{exit_status} >> 8)
        . ' (signal ' . ($srv->{exit_status} & 127) . ')'
        if defined $srv->{exit_status} && $srv->{exit_status} != 0;
    push @$p, 'the master did not stop' if $srv->{stop_failed};
    push @$p, grep { /$BadRe/ && !backend_tls_noise($_) } split /\n/, $log;
    push @$reports, sanitizer_reports($log);
}

# The restart: the drifted copy, and a state file written for it (from
# another version of the configuration, or edited by hand), which nginx
# must take or refuse calmly.  A state file it cannot use is logged, not
# fatal (docs/runtime-api.md, Persistence); nginx must start.
sub restart {
    my ($c, $p, $reports) = @_;
    my $rs = $c->{restart};
    spew($_, $rs->{files}{$_}) for keys %{$rs->{files}};
    my ($st, $out) = nginx_test_config(conf => $rs->{conf});
    push @$p, map { "nginx -t of the restarted copy: $_" } grep { /$BadRe/ && !/\[emerg\]/ } split /\n/, $out;
    push @$reports, sanitizer_reports($out);
    if ($st != 0) {
        push @$p, "nginx -t refused the restarted copy without file:line: $_"
            for grep { /\[emerg\]/ && !located($c, $_) } split /\n/, $out;
        return;
    }
    my $srv = eval { start_nginx(conf => $rs->{conf}, workers => 2) };
    if (!$srv) {
        push @$p, "nginx -t accepted the restarted copy, but nginx did not start: $@";
        return;
    }
    $stat{restarted}++;
    for my $q (@{$rs->{requests}},
               grep { $_->{name} =~ /^(?:host |API GET|runtime host|rollout )/ } @{$c->{requests}}) {
        my $res = send_request($srv, $q);
        $stat{requests}++;
        push @$p, "after the restart, request \"$q->{name}\": no complete response: $res->{error}"
            if defined $res->{error} || !defined $res->{status};
    }
    check_stopped($srv, stop_nginx($srv), $p, $reports);
}

# The reload into the drifted copy: nginx -t decides as before; a copy it
# accepts must be taken by the running nginx, which must then answer the
# hosts, rollouts and API reads of the first configuration again.
sub reload {
    my ($c, $srv, $p) = @_;
    my ($st, $out) = nginx_test_config(conf => $c->{reload}{conf});
    push @$p, grep { /$BadRe/ && !/\[emerg\]/ } split /\n/, $out;
    if ($st != 0) {
        push @$p, "nginx -t refused the reloaded copy without file:line: $_"
            for grep { /\[emerg\]/ && !located($c, $_) } split /\n/, $out;
        return;
    }
    if (!reload_nginx($srv, $c->{reload}{conf})) {
        push @$p, "nginx -t accepted the reloaded copy ($c->{reload}{what}), but the reload failed";
        return;
    }
    $stat{reloaded}++;
    for my $q (grep { $_->{name} =~ /^(?:host |API GET|runtime host|rollout )/ } @{$c->{requests}}) {
        my $res = send_request($srv, $q);
        $stat{requests}++;
        push @$p, "after the reload, request \"$q->{name}\": no complete response: $res->{error}"
            if defined $res->{error} || !defined $res->{status};
    }
    stream_connections($c, $p, 'after the reload, ', 4) if @{$c->{connections}};
}
my %fam;
my @failed;
my $t0 = Time::HiRes::time();

for my $seed ($seed0 .. $seed0 + $count - 1) {
    # LeakSanitizer's check at each process's exit is three quarters of the
    # time of a configuration: it runs for the seeds divisible by
    # CONFGEN_LEAK_EVERY; AddressSanitizer and UBSan for all of them.
    local $ENV{ASAN_OPTIONS} = $ENV{ASAN_OPTIONS};
    $ENV{ASAN_OPTIONS} =~ s/\bdetect_leaks=1\b/detect_leaks=0/
        if defined $ENV{ASAN_OPTIONS} && $seed % $leak_every;
    my $dir = "$work/s$seed";
    File::Path::make_path($dir);
    my $c = ConfGen::generate($seed, dir => $dir, modules => \@modules, root => $> == 0,
                              ipv6 => $ipv6, stream => !$no_stream, certs => \@certs);
    # the stream part's ports, which the harness takes from the environment
    local @ENV{map { "TEST_NGINX_SPORT$_" } 0 .. $ConfGen::STREAM_PORTS - 1}
        = free_ports($ConfGen::STREAM_PORTS);
    spew($_, $c->{files}{$_}) for keys %{$c->{files}};
    my $lines = () = $c->{conf} =~ /\n/g;

    my ($st, $out) = nginx_test_config(conf => $c->{conf});
    if ($st != 0) {
        $stat{refused}++;
        $fam{$c->{family}}{refused}++;
        my @p;
        push @p, "nginx -t was killed by signal " . ($st - 128) if $st > 128;
        # nginx's own check of variables, after the whole configuration is
        # read, names no file for any module: unknown "name" variable
        my @emerg = grep { /\[emerg\]/ && !/\[emerg\] (?:\d+#\d+: )?unknown "\w+" variable$/ }
                    split /\n/, $out;
        my $own_var = !@emerg && $out =~ /\[emerg\].*unknown "\w+" variable$/m;
        my @located = grep { located($c, $_) } @emerg;
        if ($own_var) {
        } elsif (!@emerg) {
            push @p, 'nginx -t failed without an [emerg] line';
        } elsif (!@located) {
            push @p, "an [emerg] without the configuration's file:line: $_" for @emerg;
        } else {
            my ($line) = $located[0] =~ m{/conf/nginx\.conf:(\d+)};
            push @p, "an [emerg] names line $line of a $lines-line file: $located[0]"
                if defined $line && ($line < 1 || $line > $lines + 1);
        }
        push @p, grep { $_ !~ /\[emerg\]/ && /$BadRe/ } split /\n/, $out;
        my ($first) = (@located, @emerg, $own_var ? ('[emerg] x unknown variable') : (), '');
        if (ok(!@p, "seed $seed ($c->{family}): nginx -t refused it: " . shorten($first =~ s/^.*?\[emerg\] \S+ //r))) {
            next;
        }
        report($c, 'nginx -t refused it, but not cleanly', \@p, '--- nginx -t said:',
               (grep { !/^\s*$|^-{20,}|Suppressions used|count\s+bytes template|^\s+\d+\s+\d+ \w+$/ }
                split /\n/, $out));
        push @failed, $seed;
        $fam{$c->{family}}{failed}++;
        next;
    }

    # nginx -t accepted it: nginx must start and survive the requests
    my @p = grep { /$BadRe/ } split /\n/, $out;
    my @reports = sanitizer_reports($out);
    my $srv = eval { start_nginx(conf => $c->{conf}, workers => 2) };
    if (!$srv) {
        push @p, "nginx -t accepted the configuration, but nginx did not start: $@";
    } else {
        $stat{started}++;
        $fam{$c->{family}}{started}++;
        my $unanswered = 0;
        for my $i (0 .. $#{$c->{requests}}) {
            my $q = $c->{requests}[$i];
            my $res = send_request($srv, $q);
            $stat{requests}++;
            @saved_cookies = map { /^([^;]+)/ ? $1 : () } @{$res->{headers}{'set-cookie'} || []}
                if $q->{save_cookies};
            next unless defined $res->{error} || !defined $res->{status};
            push @p, "request \"$q->{name}\": no complete response: $res->{error}";
            # enough to show it; a crashing worker's reports take their time
            if (++$unanswered == 5 && $i < $#{$c->{requests}}) {
                push @p, 'stopped there: ' . ($#{$c->{requests}} - $i) . ' more requests not sent';
                last;
            }
        }
        stream_connections($c, \@p, '') if @{$c->{connections}} && $unanswered < 5;
        reload($c, $srv, \@p) if $c->{reload} && $srv->{pid};
        my $log = stop_nginx($srv);
        check_stopped($srv, $log, \@p, \@reports);
        restart($c, \@p, \@reports) if $c->{restart} && !@p;
    }
    if (ok(!@p, "seed $seed ($c->{family}): started, " . scalar(@{$c->{requests}})
                . ' requests answered, ' . (@{$c->{connections}}
                    ? scalar(@{$c->{connections}}) . ' stream connections ended, ' : '')
                . 'no crash')) {
        next;
    }
    report($c, 'nginx -t accepted it, and then', \@p,
           ($c->{reload} ? ('--- the reloaded copy differs:', diff_lines($c->{conf}, $c->{reload}{conf})) : ()),
           ($c->{restart} ? ('--- the restarted copy differs:', diff_lines($c->{conf}, $c->{restart}{conf}),
                             '--- its state file:', shorten(join '', values %{$c->{restart}{files}})) : ()),
           (@reports ? ('--- the sanitizer reports:', @reports) : ()));
    push @failed, $seed;
    $fam{$c->{family}}{failed}++;
}

my $secs = Time::HiRes::time() - $t0;
note(join "\n", 'family: refused by nginx -t / started / failed',
     map { sprintf '  %-26s %3d / %3d / %3d', $_, $fam{$_}{refused} // 0,
           $fam{$_}{started} // 0, $fam{$_}{failed} // 0 } sort keys %fam);
diag(sprintf 'ran %d random configurations (seeds %d..%d) in %.0f s: %d refused by nginx -t, '
     . '%d started (%d reloaded into a changed copy, %d restarted with a state file) '
     . 'and got %d requests and %d stream connections; %d failed%s',
     $count, $seed0, $seed0 + $count - 1, $secs, $stat{refused}, $stat{started},
     $stat{reloaded}, $stat{restarted}, $stat{requests}, $stat{connections}, scalar @failed,
     @failed ? " (seeds @failed)" : '');
done_testing();
