package Test::Nginx::Dynroute::DocExamples;

=head1 NAME

Test::Nginx::Dynroute::DocExamples - the shell examples of the docs

=head1 DESCRIPTION

How the command examples of README.md and docs/*.md are read, for
t/docs_examples.t (which runs them against the demo) and
scripts/fleet-demo-check (which runs docs/fleet.md's walkthrough against
C<make fleet-demo>).

The convention: a command example is a fenced block marked ```sh (the
commands run; each must exit 0) or ```console (lines starting with "$ "
are commands, the lines after each are its output, stdout and stderr
together; "..." in an output line matches any text, a line "..." alone any
lines).  A command continues on the next line after a trailing "\" or
inside an open single quote.  A word after the language names where the
block runs: ```sh fleet-demo (or ```console fleet-demo) runs against
C<make fleet-demo> instead of the demo; %TAGS says which pages may have
such blocks, in the order they run (docs/fleet.md, then README.md's
"Service discovery", then docs/service-discovery.md).

=over

=item read_pages(@pages)

C<{ blocks =E<gt> [...], strays =E<gt> [...], unclosed =E<gt> [pages] }>:
each ```sh or ```console block as C<{page, line, lang, tag, lines}> (tag:
the word after the language, '' when none), each command outside one
("page:line: text"), and the pages with a fence left open.

=item commands_of($block)

The block's commands, each C<[text, expected output lines or undef]>.

=item output_regex($map, @expected)

The regex an output must match in full; $map (or undef) rewrites each
expected line first (t/docs_examples.t's ports).

=back

=cut

use strict;
use warnings;
use Encode ();
use Exporter ();
use Test::Nginx::Dynroute::Proc qw(slurp);

our @ISA = ('Exporter');
our @EXPORT_OK = qw(read_pages commands_of output_regex %TAGS);

# the words a block may carry after its language: the page that may have
# such blocks, and where they then run
our %TAGS = ('fleet-demo' => { pages => ['docs/fleet.md', 'README.md', 'docs/service-discovery.md'],
                               where => 'against make fleet-demo: scripts/fleet-demo-check '
                                        . '(make test-fleet-demo) runs it' });

my $command_word = qr{(?:curl|dynroutectl|tools/dynroutectl|dynroute-agent|make|
                         nginx|apt-get|apt|etcd|etcdctl|systemctl|export|prove|
                         sudo|install)}x;
# a command, not a synopsis ("dynroutectl [--node URL]...") or a log line
my $command_line = qr{^\s*(?:\$\s+)?$command_word(?:\s+(?!\[)|$)};

sub read_pages {
    my (@pages) = @_;
    my (@blocks, @strays, @unclosed);
    for my $page (@pages) {
        my @lines = split /\n/, Encode::decode('UTF-8', slurp($page));
        my ($fence, $n, $prev) = (undef, 0, '');
        for my $line (@lines) {
            $n++;
            if (!$fence && $line =~ /^```(\S*)(?:[ \t]+(\S+))?\s*$/) {
                $fence = { page => $page, line => $n, lang => $1, tag => $2 // '',
                           lines => [] };
            } elsif ($fence && $line =~ /^```\s*$/) {
                if ($fence->{lang} =~ /^(?:sh|console)$/) {
                    push @blocks, $fence;
                } elsif ($fence->{lang} =~ /^(?:|text)$/) {
                    push @strays, map { "$page:$fence->{line}: $_" }
                                  grep { /$command_line/ } @{ $fence->{lines} };
                }
                undef $fence;
            } elsif ($fence) {
                push @{ $fence->{lines} }, $line;
            } elsif ($line =~ /^ {4,}\S/ && $prev =~ /^(?:\s*| {4,}\S.*)$/
                     && $line =~ $command_line) {
                push @strays, "$page:$n: $line";
            }
            $prev = $fence ? '' : $line;
        }
        push @unclosed, $page if $fence;
    }
    return { blocks => \@blocks, strays => \@strays, unclosed => \@unclosed };
}

sub commands_of {
    my ($block) = @_;
    my $console = $block->{lang} eq 'console';
    my (@cmds, $open);
    for my $line (@{ $block->{lines} }) {
        if ($open) {
            $cmds[-1][0] .= "\n$line";
        } elsif ($console && $line =~ /^\$ (.*)$/) {
            push @cmds, [$1, []];
        } elsif ($console) {
            push @{ $cmds[-1][1] }, $line if @cmds;
            next;
        } elsif ($line =~ /^\s*(?:#.*)?$/) {
            next;
        } else {
            push @cmds, [$line, undef];
        }
        my $text = $cmds[-1][0];
        my $quotes = () = $text =~ /'/g;
        $open = ($text =~ /\\$/ || $quotes % 2) ? 1 : 0;
    }
    return @cmds;
}

sub output_regex {
    my ($map, @expected) = @_;
    $map //= sub { $_[0] };
    my @parts = map {
        $_ eq '...' ? '(?:[^\n]*\n)*?'
                    : join('.*?', map { quotemeta } split /\.\.\./, $_, -1) . '\n'
    } map { $map->($_) } @expected;
    return qr/\A@{[ join '', @parts ]}\z/s;
}

1;
