# Every directive and variable in the source is documented, once, in the
# reference (docs/*.md): a directive as a "### name" heading, a variable as
# a row of a variables table.  The README links to the reference pages, the
# relative links of the docs resolve, the CORS reference shows the
# configuration that t/cors.t runs, LICENSE is the licence that
# debian/copyright states, and the tools' manual pages say what their
# --help says.  Needs no nginx (python3 runs the tools; groff, when
# installed, renders the pages).
use strict;
use warnings;
use Encode ();
use FindBin ();
use File::Basename qw(dirname);
use File::Spec;
use Test::More;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Dynroute::Proc ();

my $root = File::Spec->rel2abs("$FindBin::Bin/..");

# A file of the tree as text; a file that is missing ends the test.
sub text_of {
    my ($path) = @_;
    die "$path: no such file\n" unless -f $path;
    return Encode::decode('UTF-8', Test::Nginx::Dynroute::Proc::slurp($path));
}

# ---- what the source defines -----------------------------------------------

my (%directive, %variable);     # name => source file

for my $file (sort glob "$root/src/*.cpp") {
    my $src = text_of($file);
    my $rel = File::Spec->abs2rel($file, $root);

    while ($src =~ /\bngx_command_t\s+\w+_commands\[\]\s*=\s*\{(.*?)\n\};/sg) {
        my $table = $1;
        $directive{$1} = $rel
            while $table =~ /\{\s*ngx_string\("(dynroute[^"]*)"\)/g;
    }

    while ($src =~ /\bngx_http_variable_t\s+\w+_vars\[\]\s*=\s*\{(.*?)\n\};/sg)
    {
        my $table = $1;
        $variable{$1} = $rel
            while $table =~ /ngx_string\("(dynroute_[^"]*)"\)/g;
    }
}

ok(scalar(keys %directive) >= 10, 'the command tables in src/ were found')
    or diag('directives found: ' . join(' ', sort keys %directive));
ok(scalar(keys %variable) >= 4, 'the variable tables in src/ were found')
    or diag('variables found: ' . join(' ', sort keys %variable));

# ---- what the reference defines --------------------------------------------

my @pages = sort glob "$root/docs/*.md";
ok(scalar @pages, 'docs/ has reference pages');

my (%heading, %row);            # name => [ "page:line", ... ]

for my $page (@pages) {
    my $rel = File::Spec->abs2rel($page, $root);
    my ($n, $fenced) = (0, 0);

    for my $line (split /\n/, text_of($page)) {
        $n++;
        if ($line =~ /^\s*(```|~~~)/) {
            $fenced = !$fenced;
            next;
        }
        next if $fenced;

        push @{ $heading{$1} }, "$rel:$n" if $line =~ /^###\s+(\S+)\s*$/;
        push @{ $row{$1} }, "$rel:$n"
            if $line =~ /^\|\s*`\$([A-Za-z0-9_]+)`\s*\|/;
    }
}

for my $name (sort keys %directive) {
    my $where = $heading{$name} || [];
    is(scalar @$where, 1,
       "directive $name ($directive{$name}) has one heading in docs/*.md")
        or diag(@$where ? "found at @$where" : 'found nowhere');
}

for my $name (sort keys %variable) {
    my $where = $row{$name} || [];
    is(scalar @$where, 1,
       "variable \$$name ($variable{$name}) has one row in docs/*.md")
        or diag(@$where ? "found at @$where" : 'found nowhere');
}

# a reference entry for something the source no longer has
for my $name (sort grep { /^dynroute/ } keys %heading) {
    ok($directive{$name}, "heading $name in docs/*.md is a directive in src/")
        or diag("at @{ $heading{$name} }");
}
for my $name (sort grep { /^dynroute/ } keys %row) {
    ok($variable{$name}, "\$$name in docs/*.md is a variable in src/")
        or diag("at @{ $row{$name} }");
}

# ---- the README points to the reference ------------------------------------

my $readme = text_of("$root/README.md");
for my $page (qw(docs/ngx_http_dynroute_module.md
                 docs/ngx_http_dynroute_cors_module.md))
{
    like($readme, qr/\]\(\Q$page\E(?:#[^)]*)?\)/, "README.md links to $page");
}

# the README is a front page; the rest belongs in docs/
ok(-s "$root/README.md" <= 12 * 1024, 'README.md is 12 KB at most')
    or diag('README.md: ' . (-s "$root/README.md") . ' bytes');

# ---- LICENSE is the licence debian/copyright states ------------------------

{
    my $copyright = text_of("$root/debian/copyright");
    my ($holder) = $copyright =~ /^Copyright:\s*(.+?)\s*$/m;
    my ($name, $body) = $copyright
        =~ /^Files: \*\n(?:.+\n)*?License: (\S+)\n\n(?:.+\n)*?^License: \1\n((?: .*\n)+)/m;
    my $text = join '', map { s/^ //r =~ s/^\.$//r } split /^/m, $body // '';
    ok(defined $holder && defined $name && length $text,
       'debian/copyright states the copyright and licence of Files: *');
    is(text_of("$root/LICENSE"), "Copyright (C) $holder\n\n$text",
       "LICENSE is the $name text of debian/copyright, same copyright line");
}

# ---- relative links resolve ------------------------------------------------

# Anchors as Markdown renderers make them: lowercase, punctuation dropped,
# spaces become hyphens, a repeated heading gets -1, -2, ...
sub anchors {
    my ($file) = @_;
    my (%seen, %anchor);
    my $fenced = 0;
    for my $line (split /\n/, text_of($file)) {
        if ($line =~ /^\s*(```|~~~)/) { $fenced = !$fenced; next }
        next if $fenced || $line !~ /^#{1,6}\s+(.*?)\s*#*\s*$/;
        (my $slug = lc $1) =~ s/[^\w\- ]//g;
        $slug =~ tr/ /-/;
        my $k = $seen{$slug}++;
        $anchor{$k ? "$slug-$k" : $slug} = 1;
    }
    return \%anchor;
}

my @documents = grep { -f } map { "$root/$_" }
    qw(README.md HACKING.md bench/README.md fuzz/README.md);
push @documents, sort(glob("$root/docs/*.md")), sort(glob("$root/docs/*/*.md"));

for my $doc (@documents) {
    my $rel  = File::Spec->abs2rel($doc, $root);
    my $text = text_of($doc);
    $text =~ s/^\s*```.*?^\s*```//msg;      # no links in code blocks

    while ($text =~ /\]\(([^)\s]+)\)/g) {
        my $link = $1;
        next if $link =~ m{^[a-z][a-z0-9+.-]*:}i;  # a URL with a scheme
        my ($path, $frag) = $link =~ /^([^#]*)(?:#(.*))?$/;
        my $target = length $path
            ? File::Spec->catfile(dirname($doc), $path) : $doc;
        my $ok = -e $target;
        $ok &&= anchors($target)->{$frag}
            if $ok && defined $frag && $target =~ /\.md$/;
        ok($ok, "$rel: link $link resolves");
    }
}

# ---- the manual pages say what the tools do ---------------------------------

# Each tool's --help (with python3, as Debian's package runs it) against its
# manual page in tools/man/: every option is an entry of OPTIONS and every
# entry there an option; every command of dynroutectl an entry of COMMANDS;
# every environment variable the source reads an entry of ENVIRONMENT; the
# agent's configuration keys and its unit's credentials named.

sub roff_sections {             # { "SECTION" => text }
    my ($roff) = @_;
    my (%section, $name);
    for my $line (split /\n/, $roff) {
        if ($line =~ /^\.SH\s+"?(.*?)"?\s*$/) { $name = $1; next }
        $section{$name} .= "$line\n" if defined $name;
    }
    return \%section;
}

sub roff_plain {                # a line of roff as the reader sees its words
    my ($t) = @_;
    $t =~ s/^\.\w+\s*//;
    $t =~ s/\\f[BIRP]|\\c$|\\&|"//g;
    $t =~ s/\\\(lq|\\\(rq//g;
    $t =~ s/\\-/-/g;
    $t =~ s/\\e/\\/g;
    $t =~ s/\s+/ /g;
    return $t =~ s/^ | $//gr;
}

sub roff_tags {                 # the tags of the .TP entries of a section
    my ($text) = @_;
    return map { roff_plain($_) } ($text // '') =~ /^\.TP\n(.*)$/mg;
}

sub tag_options {               # the options a tag defines
    return map { /(?<![\w-])(--?[a-z][a-z0-9]*(?:-[a-z0-9]+)*)/g } @_;
}

my %help_cache;
sub help_of {
    my ($tool, @argv) = @_;
    my $key = join ' ', $tool, @argv;
    return $help_cache{$key} //= do {
        local $ENV{COLUMNS} = 200;      # no line wrapped inside an entry
        my $cmd = join ' ', map { quotemeta } 'python3', "$root/tools/$tool",
            @argv, '--help';
        my $out = `$cmd 2>&1`;
        ok($? == 0, "$key --help runs") or diag($out);
        $out;
    };
}

sub help_options {
    my ($help) = @_;
    return map { /^(\S.*?)(?:\s{2,}|$)/ ? ($1 =~ /(--?[a-z][a-z0-9-]*)/g) : () }
           $help =~ /^  (-.*)$/mg;
}

sub help_commands {             # the names listed under COMMAND or SUBCOMMAND
    my ($help) = @_;
    return $help =~ /^    ([a-z][a-z0-9-]*)(?:\s|$)/mg;
}

my %man = (dynroutectl => 'tools/man/dynroutectl.1',
           'dynroute-agent' => 'tools/man/dynroute-agent.8');

# the package installs a page for each tool it installs
my @installed = map { m{^tools/(\S+)\s+usr/s?bin\b} ? $1 : () }
                split /\n/, text_of("$root/debian/dynroute-tools.install");
my %packaged = map { $_ => 1 } grep { /\S/ }
               split /\n/, text_of("$root/debian/dynroute-tools.manpages");
is_deeply([sort @installed], [sort keys %man],
          'the tools dynroute-tools installs are those with manual pages');
for my $tool (sort keys %man) {
    ok($packaged{$man{$tool}},
       "debian/dynroute-tools.manpages installs $man{$tool}");
}

for my $tool (sort keys %man) {
    my $page = $man{$tool};
    my $roff = text_of("$root/$page");
    my $sec  = roff_sections($roff);

    for my $name ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'EXIT STATUS',
                  'ENVIRONMENT', 'FILES', 'EXAMPLES', 'SEE ALSO')
    {
        ok(defined $sec->{$name}, "$page has a $name section");
    }
    like(roff_plain($sec->{NAME} // ''), qr/^\Q$tool\E - \S/,
         "$page: NAME is \"$tool - what it does\"");

    # options: both ways
    my %help = map { $_ => 1 } help_options(help_of($tool));
    my %documented = map { $_ => 1 } tag_options(roff_tags($sec->{OPTIONS}));
    ok(scalar(keys %help) >= 10, "$tool --help lists its options")
        or diag(join ' ', sort keys %help);
    for my $option (sort keys %help) {
        ok($documented{$option}, "$page: OPTIONS has an entry for $option");
    }
    for my $option (sort keys %documented) {
        ok($help{$option}, "$page: $option of OPTIONS is in $tool --help");
    }

    # environment variables the source reads: both ways
    my $src = text_of("$root/tools/$tool");
    my %env = map { $_ => 1 }
        $src =~ /\bos\.environ\.(?:get|setdefault)\(\s*"([A-Z0-9_]+)"/g;
    my %env_doc = map { /^([A-Z][A-Z0-9_]+)$/ ? ($1 => 1) : () }
                  roff_tags($sec->{ENVIRONMENT});
    for my $var (sort keys %env) {
        ok($env_doc{$var}, "$page: ENVIRONMENT has an entry for $var");
    }
    for my $var (sort keys %env_doc) {
        ok($env{$var}, "$page: $var of ENVIRONMENT is read by tools/$tool");
    }
}

# dynroutectl: every command and subcommand, and the options of their own
{
    my $page = $man{dynroutectl};
    my $sec = roff_sections(text_of("$root/$page"));
    my @tags = roff_tags($sec->{COMMANDS});
    my $text = roff_plain(join ' ', split /\n/, $sec->{COMMANDS} // '');
    my %global = map { $_ => 1 } help_options(help_of('dynroutectl'));
    my %own;                            # option => the commands taking it
    my @paths = map { [$_] } help_commands(help_of('dynroutectl'));
    ok(scalar @paths >= 8, 'dynroutectl --help lists its commands');
    while (my $path = shift @paths) {
        my $help = help_of('dynroutectl', @$path);
        if (my @sub = help_commands($help)) {   # host: its subcommands
            push @paths, map { [@$path, $_] } @sub;
            next;
        }
        my $cmd = join ' ', @$path;
        ok((grep { /^\Q$cmd\E(?: |$)/ } @tags),
           "$page: COMMANDS has an entry for $cmd");
        push @{ $own{$_} }, $cmd for grep { !$global{$_} } help_options($help);
    }
    for my $option (sort keys %own) {
        like($text, qr/(?<![\w-])\Q$option\E(?![\w-])/,
             "$page: COMMANDS names $option (of @{ $own{$option} })");
    }
}

# dynroute-agent: the keys of its configuration file, and its unit
{
    my $page = $man{'dynroute-agent'};
    my $sec  = roff_sections(text_of("$root/$page"));
    my $conf = roff_plain(join ' ', split /\n/,
                          $sec->{'CONFIGURATION FILE'} // '');
    my %keys = map { s/^--//r => 1 } grep { !/^-(?:h|-help|-config)$/ }
               help_options(help_of('dynroute-agent'));
    for my $key (sort keys %keys) {
        like($conf, qr/(?<![\w-])\Q$key\E(?![\w-])/,
             "$page: CONFIGURATION FILE names the key $key");
    }
    for my $line (grep { /^#?\s*[a-z][a-z-]* = / }
                  split /\n/, text_of("$root/tools/agent.conf"))
    {
        my ($key) = $line =~ /^#?\s*([a-z][a-z-]*) = /;
        ok($keys{$key}, "tools/agent.conf: $key is an option of the agent");
    }

    my $unit = text_of("$root/tools/systemd/dynroute-agent.service");
    my $systemd = roff_plain(join ' ', split /\n/, $sec->{SYSTEMD} // '');
    my @credentials = $unit =~ /^LoadCredential=([^:\n]+):/mg;
    ok(scalar @credentials, 'the unit passes credentials');
    for my $name (@credentials) {
        like($systemd, qr/(?<![\w.-])\Q$name\E(?![\w-])/,
             "$page: SYSTEMD names the credential $name");
    }
    my ($exec) = $unit =~ m{^ExecStart=/usr/bin/(.*)$}m;
    ok(defined $exec && index($systemd, $exec) >= 0,
       "$page: SYSTEMD shows the unit's command line")
        or diag("ExecStart: " . ($exec // 'none'));
    like($unit, qr/^Documentation=man:dynroute-agent\(8\)/m,
         "the unit's Documentation= is $page");
    is(text_of("$root/debian/dynroute-tools.dynroute-agent.service"), $unit,
       'the unit the package installs is tools/systemd/dynroute-agent.service');
    ok($unit !~ m{^Documentation=.*/usr/share/doc/}m,
       "the unit's Documentation= names no file under /usr/share/doc "
       . '(dh_compress renames them .gz)');
}

# groff, as man and lintian run it, renders each page without a warning
SKIP: {
    my $groff = grep { -x "$_/groff" } split /:/, $ENV{PATH} // '';
    skip 'groff is not installed (Debian: groff-base)', scalar keys %man
        unless $groff;
    for my $page (sort values %man) {
        local $ENV{LC_ALL} = 'C.UTF-8';
        my $out = `groff -man -Tutf8 -ww -z \Q$root/$page\E 2>&1`;
        ok($? == 0 && $out eq '', "groff renders $page without a warning")
            or diag($out);
    }
}

# ---- the CORS example is what t/cors.t runs --------------------------------

sub lines_of {
    return join "\n", grep { length } map { s/^\s+|\s+$//gr } split /\n/, $_[0];
}

my $cors_page = text_of("$root/docs/ngx_http_dynroute_cors_module.md");
my ($example) = $cors_page
    =~ /^## Example Configuration\n.*?^```nginx\n(.*?)^```/ms;
my $title = qr/^=== TEST \d+: the example of the CORS reference[^\n]*\n/m;
my ($tested) = text_of("$root/t/cors.t") =~ /$title.*?^--- config\n(.*?)^--- /ms;

ok(defined $example && defined $tested
       && index(lines_of($example), lines_of($tested)) >= 0,
   'the CORS reference shows the configuration t/cors.t runs');

done_testing();
