# Every directive and variable in the source is documented, once, in the
# reference (docs/*.md): a directive as a "### name" heading, a variable as
# a row of a variables table.  The README links to the reference pages, the
# relative links of the docs resolve, the CORS reference shows the
# configuration that t/cors.t runs, and LICENSE is the licence that
# debian/copyright states.  Needs no nginx.
use strict;
use warnings;
use FindBin ();
use File::Basename qw(dirname);
use File::Spec;
use Test::More;

my $root = File::Spec->rel2abs("$FindBin::Bin/..");

sub slurp {
    my ($path) = @_;
    open my $fh, '<:encoding(UTF-8)', $path or die "$path: $!\n";
    local $/;
    return scalar <$fh>;
}

# ---- what the source defines -----------------------------------------------

my (%directive, %variable);     # name => source file

for my $file (sort glob "$root/src/*.cpp") {
    my $src = slurp($file);
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

    for my $line (split /\n/, slurp($page)) {
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

my $readme = slurp("$root/README.md");
for my $page (qw(docs/ngx_http_dynroute_module.md
                 docs/ngx_http_dynroute_cors_module.md))
{
    like($readme, qr/\]\(\Q$page\E(?:#[^)]*)?\)/, "README.md links to $page");
}

# ---- LICENSE is the licence debian/copyright states ------------------------

{
    my $copyright = slurp("$root/debian/copyright");
    my ($holder) = $copyright =~ /^Copyright:\s*(.+?)\s*$/m;
    my ($name, $body) = $copyright
        =~ /^Files: \*\n(?:.+\n)*?License: (\S+)\n\n(?:.+\n)*?^License: \1\n((?: .*\n)+)/m;
    my $text = join '', map { s/^ //r =~ s/^\.$//r } split /^/m, $body // '';
    ok(defined $holder && defined $name && length $text,
       'debian/copyright states the copyright and licence of Files: *');
    is(slurp("$root/LICENSE"), "Copyright (C) $holder\n\n$text",
       "LICENSE is the $name text of debian/copyright, same copyright line");
}

# ---- relative links resolve ------------------------------------------------

# Anchors as Markdown renderers make them: lowercase, punctuation dropped,
# spaces become hyphens, a repeated heading gets -1, -2, ...
sub anchors {
    my ($file) = @_;
    my (%seen, %anchor);
    my $fenced = 0;
    for my $line (split /\n/, slurp($file)) {
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
    my $text = slurp($doc);
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

# ---- the CORS example is what t/cors.t runs --------------------------------

sub lines_of {
    return join "\n", grep { length } map { s/^\s+|\s+$//gr } split /\n/, $_[0];
}

my $cors_page = slurp("$root/docs/ngx_http_dynroute_cors_module.md");
my ($example) = $cors_page
    =~ /^## Example Configuration\n.*?^```nginx\n(.*?)^```/ms;
my $title = qr/^=== TEST \d+: the example of the CORS reference[^\n]*\n/m;
my ($tested) = slurp("$root/t/cors.t") =~ /$title.*?^--- config\n(.*?)^--- /ms;

ok(defined $example && defined $tested
       && index(lines_of($example), lines_of($tested)) >= 0,
   'the CORS reference shows the configuration t/cors.t runs');

done_testing();
