# The shell examples of README.md and docs/*.md run as written against the
# demo (`make demo`: nginx.conf.example).
#
# The convention: a command example is a fenced block marked ```sh (the
# commands run; each must exit 0) or ```console (lines starting with "$ "
# are commands, the lines after each are its output, stdout and stderr
# together; "..." in an output line matches any text, a line "..." alone
# any lines).  A command continues on the next line after a trailing "\"
# or inside an open single quote (Test::Nginx::Dynroute::DocExamples reads
# them).  A block marked ```sh fleet-demo (or ```console fleet-demo) runs
# against `make fleet-demo` instead: scripts/fleet-demo-check runs those
# (make test-fleet-demo), this test only checks that they exist, on the
# pages that %TAGS names (docs/fleet.md, README.md,
# docs/service-discovery.md).  Commands run one by one in bash, in order, in a
# scratch directory with the source tree's tools/ beside them
# (as from the top of the tree); an `export` stays in effect for the rest
# of its page, as in the reader's shell.  Each page gets a fresh nginx of
# the demo's configuration in a private prefix, on the demo's own ports
# (8080, 9001 to 9004), or, when one of them is busy, on free ones written
# into the configuration, the commands and the outputs alike.
#
# A command anywhere else (an indented block, a fence without a language)
# fails, and so does a ```sh or ```console block that cannot run against
# the demo unless %EXCLUDED below lists it with the reason.
use strict;
use warnings;
use Cwd ();
use IO::Socket::IP;
use lib 't/lib';
use Test::Nginx::Dynroute;
use Test::Nginx::Dynroute::Proc qw(slurp free_ports run_cmd);
use Test::Nginx::Dynroute::DocExamples qw(read_pages commands_of output_regex %TAGS);

my ($module) = grep { length } split ' ',
    (defined $ENV{TEST_NGINX_LOAD_MODULES} ? $ENV{TEST_NGINX_LOAD_MODULES}
                                           : 'build/ngx_http_dynroute_module.so');

if (!$module || $module !~ /ngx_http_dynroute_module\.so$/) {
    Test::More::plan(skip_all => 'the demo loads the dynamic module');
}

my $root = Cwd::getcwd();
my @pages = ('README.md', sort glob 'docs/*.md');

# file => [ [ qr/the block's first line/, 'why it does not run here' ] ]
my %EXCLUDED = (
    'README.md' => [
        [ qr/^make demo$/,
          'the quick start itself: this test starts the demo nginx of make demo' ],
        [ qr/^make deb$/,
          'installs packages and starts Debian\'s nginx: make test-deb does that' ],
    ],
    'docs/fleet.md' => [
        [ qr/^# etcd \(each member\): TLS/,
          'a production etcd with TLS on 10.0.0.1: t/fleet/tls.t runs that setup' ],
        [ qr/^export DYNROUTE_ETCD_PASSWORD/,
          'needs etcd with TLS: t/fleet/tls.t runs that command' ],
        [ qr/^dynroutectl --etcd http:\/\/10\.0\.0\.1:2379 register /,
          'runs until stopped, against an etcd on 10.0.0.1: t/fleet/register.t runs register' ],
    ],
    'docs/service-discovery.md' => [
        [ qr/^dynroutectl --etcd http:\/\/127\.0\.0\.1:2379 service add shop --wait$/,
          'needs nodes with a dynroute_services carrier, which the fleet demo lacks: '
          . 't/fleet/services.t runs these commands' ],
    ],
);

# ---- reading the pages -------------------------------------------------------

my $read = read_pages(@pages);
my @blocks = @{ $read->{blocks} };
ok(!@{ $read->{unclosed} }, 'every fence is closed')
    or diag('left open in: ' . join ' ', @{ $read->{unclosed} });
ok(!@{ $read->{strays} }, 'every command example is a ```sh or ```console block')
    or diag(join "\n", 'not in one:', @{ $read->{strays} });

# ---- which blocks run --------------------------------------------------------

my %runs;                               # page => [blocks]
my (%used, %tagged);
for my $block (@blocks) {
    if (length $block->{tag}) {
        my $tag = $TAGS{ $block->{tag} };
        ok($tag && grep({ $_ eq $block->{page} } @{ $tag->{pages} }),
           "$block->{page}:$block->{line}: ```$block->{lang} $block->{tag}: "
           . 'a known place to run, for this page') or next;
        $tagged{ $block->{tag} }++;
        note("$block->{page}:$block->{line}: not run here: $tag->{where}");
        next;
    }
    my ($first) = grep { /\S/ } @{ $block->{lines} };
    $first = '' unless defined $first;
    (my $cmd = $first) =~ s/^\$ //;
    my @why = grep { $cmd =~ $_->[0] } @{ $EXCLUDED{ $block->{page} } || [] };
    if (@why) {
        $used{"$block->{page} $why[0][0]"}++;
        note("$block->{page}:$block->{line}: not run: $why[0][1]");
        next;
    }
    push @{ $runs{ $block->{page} } }, $block;
}
for my $page (sort keys %EXCLUDED) {
    for my $x (@{ $EXCLUDED{$page} }) {
        is($used{"$page $x->[0]"} // 0, 1,
           "$page: the exclusion $x->[0] names one block ($x->[1])");
    }
}
ok($tagged{'fleet-demo'}, 'docs/fleet.md has a walkthrough against make fleet-demo');
ok(scalar(keys %runs) >= 3, 'README.md and docs/ have examples that run')
    or diag(join ' ', sort keys %runs);

# ---- the demo ----------------------------------------------------------------

my $example = slurp('nginx.conf.example') or die "nginx.conf.example: missing\n";
my @demo_ports = (8080, 9001 .. 9004);
is_deeply([sort { $a <=> $b } $example =~ /listen\s+127\.0\.0\.1:(\d+);/g],
          \@demo_ports, 'the demo listens on 8080 and 9001 to 9004');

# a demo port in use (a `make demo` running, another test): free ones instead
my %port = map { $_ => $_ } @demo_ports;
if (grep { !port_free($_) } @demo_ports) {
    my @free = free_ports(scalar @demo_ports);
    @port{@demo_ports} = @free;
    note('demo ports busy; running on ' . join ' ', @free);
}

sub port_free {
    my ($p) = @_;
    my $s = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $p,
                                Proto => 'tcp', Listen => 1, ReuseAddr => 1);
    return $s ? 1 : 0;
}

sub ports {
    my ($text) = @_;
    $text =~ s/\b127\.0\.0\.1:(\d+)\b/'127.0.0.1:' . ($port{$1} \/\/ $1)/ge;
    return $text;
}

for my $page (@pages) {
    my $blocks = $runs{$page} or next;
    my $srv = start_nginx(
        conf    => ports($example),
        port    => $port{8080},
        globals => 'daemon off;' . ($> == 0 ? ' user root;' : ''),
        links   => { 'modules/ngx_http_dynroute_module.so' => Cwd::abs_path($module),
                     'cwd/tools' => "$root/tools" },
    );
    my $cwd = "$srv->{prefix}/cwd";
    my @exports;

    for my $block (@$blocks) {
        for my $c (commands_of($block)) {
            my ($cmd, $expected) = @$c;
            my $run = ports($cmd);
            my $name = "$page:$block->{line}: $cmd";
            my $res = run_cmd({ timeout => 30 }, 'bash', '-c',
                join "\n", "cd \Q$cwd\E || exit 99", 'exec 2>&1', 'set -o pipefail',
                           @exports, $run);
            is($res->{exit}, 0, "$name: exits 0") or diag($res->{out});
            push @exports, $run if $run =~ /^export\s/;
            next unless $expected;
            (my $out = $res->{out}) =~ s/\n?\z/\n/;
            $out = '' if $res->{out} eq '';
            like($out, output_regex(\&ports, @$expected), "$name: the output shown")
                or diag("expected:\n" . join("\n", @$expected));
        }
    }
    error_log_ok(stop_nginx($srv), "$page: the demo ran the examples without alert/crit/crash");
}

done_testing();
