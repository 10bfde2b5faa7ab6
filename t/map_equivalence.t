# For any host and any set of patterns, dynroute_table must choose the same
# entry as map $host { hostnames; ... }.  Both run in one nginx over the same
# generated patterns; several hundred generated hosts (uppercase, trailing
# dots, ports) are sent and the two answers compared.
use strict;
use warnings;
use lib 't/lib';
use Test::Nginx::Dynroute;

# A fixed generator, so that a failure can be replayed.
my $seed = $ENV{DYNROUTE_EQUIV_SEED} || 20261127;
sub rnd {
    my ($n) = @_;
    $seed = ($seed * 1103515245 + 12345) % 2147483648;
    return int(($seed / 2147483648) * $n);
}

my @labels = qw(a b www api example com net x1 10 shop eu);
my @noise  = qw(zz a1b q);

sub name_of {
    my ($max) = @_;
    my $n = 1 + rnd($max);
    return join '.', map { $labels[rnd(scalar @labels)] } 1 .. $n;
}

sub patterns {
    my (%exact, %head, %tail, %seen, @out);
    while (@out < 70) {
        my $kind = rnd(7);
        my $p;
        if    ($kind <= 1) { $p = name_of(4) }
        elsif ($kind == 2) { $p = '*.' . name_of(3) }
        elsif ($kind == 3) { $p = '.' . name_of(3) }
        elsif ($kind == 4) { $p = name_of(2) . '.*' }
        elsif ($kind == 5) {
            my @re = ('~^a', '~^www\.', '~com$', '~*^API', '~^[0-9]+\.',
                      '~^(shop|eu)\.', '~\.net$', '~x1', '~^b.*\.com$');
            $p = $re[rnd(scalar @re)];
        }
        else { $p = uc(name_of(2)) }

        next if $seen{$p}++;

        # Leave out what nginx reports as conflicting.
        if ($p !~ /^~/) {
            my $l = lc $p;
            my ($type, $key) =
                  $l =~ /^\*\.(.+)$/ ? ('star', $1)
                : $l =~ /^\.(.+)$/   ? ('dot', $1)
                : $l =~ /^(.+)\.\*$/ ? ('tail', $1)
                :                      ('exact', $l);
            next if ($type eq 'exact' || $type eq 'dot') && $exact{$key};
            next if ($type eq 'star'  || $type eq 'dot') && $head{$key};
            next if $type eq 'tail' && $tail{$key};
            $exact{$key} = 1 if $type eq 'exact' || $type eq 'dot';
            $head{$key}  = 1 if $type eq 'star'  || $type eq 'dot';
            $tail{$key}  = 1 if $type eq 'tail';
        }
        push @out, $p;
    }
    return @out;
}

sub hosts {
    my @out;
    for (1 .. 300) {
        my $h = name_of(5);
        $h = $noise[rnd(scalar @noise)] . ".$h" if rnd(4) == 0;
        $h = join '', map { rnd(3) ? $_ : uc $_ } split //, $h if rnd(3) == 0;
        $h .= '.' if rnd(6) == 0;
        $h .= ':' . (1 + rnd(65000)) if rnd(5) == 0;
        push @out, $h;
    }
    return @out;
}

for my $round (1 .. 3) {
    my @p = patterns();
    my @h = hosts();

    my $map = join '', map { "        '$p[$_]'  r$_;\n" } 0 .. $#p;
    my $table = join '', map { "        '$p[$_]'  u;\n" } 0 .. $#p;

    my $srv = start_nginx(
        http_config => <<"CONF",
    upstream u { server 127.0.0.1:1; }
    map \$host \$m {
        hostnames;
        default  none;
$map    }
    dynroute_table cmp {
$table        default  u;
    }
CONF
        config => <<'CONF',
    location / {
        dynroute cmp;
        return 200 "$m|$dynroute_rule";
    }
CONF
    );

    my ($agree, @bad, %hit) = (0);
    for my $host (@h) {
        my $res = http_get($srv, '/', { Host => $host });
        my ($m, $rule) = split /\|/, $res->{body} // '', 2;
        my $want = (defined $m && $m =~ /^r(\d+)$/) ? $p[$1] : 'default';
        if ($res->{status} == 200 && defined $rule && $rule eq $want) {
            $agree++;
            $hit{$rule}++;
        } else {
            push @bad, "host '$host': map chose '$want', dynroute "
                     . "'" . ($rule // "status $res->{status}") . "'";
        }
    }

    my $log = stop_nginx($srv);
    error_log_ok($log, "round $round: no alert/crit/crash in error.log");

    is($agree, scalar @h,
       "round $round: dynroute agrees with map on $agree of "
       . scalar(@h) . " hosts over " . scalar(@p) . " patterns")
        or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);

    cmp_ok(scalar keys %hit, '>=', 15,
           "round $round: the hosts exercised " . scalar(keys %hit)
           . " different rules");
}

done_testing();
