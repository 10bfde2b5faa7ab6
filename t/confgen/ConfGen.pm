# Random nginx configurations for dynroute, from the grammar of its
# directives (docs/ngx_http_dynroute_module.md, docs/runtime-api.md,
# docs/ngx_http_dynroute_cors_module.md, docs/metrics.md, and, with
# stream => 1, docs/ngx_stream_dynroute_module.md) and of the nginx
# directives people write next to them, with the requests to send to each
# (and the stream connections to make: {connections}).
#
# generate($seed, %opt) is a pure function of the seed and the options: the
# same seed gives the same configuration, the same files and the same
# requests.  Most configurations are valid; a share carries one "near
# miss" (a typo, an unknown target, a balancer upstream as a target, a
# duplicate name...), named in {family}, so that nginx -t is exercised on
# both sides.  t/confgen/random.t runs them.
package ConfGen;

use strict;
use warnings;

# ---- a deterministic random source (xorshift32) ---------------------------

sub _rng {
    my ($seed) = @_;
    my $x = ($seed ^ 0x9E3779B9) & 0xFFFFFFFF;
    $x = 0x2545F491 if $x == 0;
    my $r = bless { x => $x }, 'ConfGen::Rng';
    $r->step for 1 .. 32;
    return $r;
}

package ConfGen::Rng;

sub step {
    my ($r) = @_;
    my $x = $r->{x};
    $x ^= ($x << 13) & 0xFFFFFFFF;
    $x ^= $x >> 17;
    $x ^= ($x << 5) & 0xFFFFFFFF;
    return $r->{x} = $x;
}

sub below { my ($r, $n) = @_; return $n <= 1 ? 0 : $r->step % $n }
sub chance { my ($r, $p) = @_; return $r->step / 4294967296 < $p }
sub pick { my ($r, @a) = @_; return $a[$r->below(scalar @a)] }
sub range { my ($r, $lo, $hi) = @_; return $lo + $r->below($hi - $lo + 1) }

sub shuffle {
    my ($r, @a) = @_;
    for (my $i = $#a; $i > 0; $i--) {
        my $j = $r->below($i + 1);
        @a[$i, $j] = @a[$j, $i];
    }
    return @a;
}

# a few distinct elements of @a, in their order
sub some {
    my ($r, $n, @a) = @_;
    my @idx = sort { $a <=> $b } (($r->shuffle(0 .. $#a))[0 .. ($n > @a ? $#a : $n - 1)]);
    return @a[@idx];
}

package ConfGen;

# ---- the families of near misses ------------------------------------------

# name => weight.  'valid' is the rest.  The two first are the configurations
# of issue 21's finding 2: nginx -t accepted them and the first request that
# reached the balancer recursed until the worker died.
our %FAMILIES = (
    'balancer-target'           => 5,   # a table rule targets a balancer upstream
    'rollout-balancer'          => 4,   # a rollout variant names one
    'typo-target'               => 2,
    'unknown-named-location'    => 1,
    'missing-named-location'    => 1,
    'named-location-variant'    => 1,
    'duplicate-host'            => 1,
    'duplicate-table'           => 1,
    'duplicate-rollout'         => 1,
    'rollout-named-upstream'    => 1,
    'weights-sum'               => 1,
    'override-without-from'     => 1,
    'bad-regex'                 => 1,
    'bad-cidr'                  => 1,
    'unknown-key-variable'      => 1,
    'sticky-without-secret'     => 1,
    'cors-star-credentials'     => 1,
    'cors-without-origins'      => 1,
    'balancer-with-server'      => 1,
    'balancer-without-dynroute' => 1,
    'api-without-zone'          => 1,
    'unknown-table'             => 1,
    'typo-directive'            => 1,
    'missing-brace'             => 1,
    'dynroute-in-http'          => 1,
    'readiness-without-zone'    => 1,
    'api-not-prefix'            => 1,
    'duplicate-zone'            => 1,
    'short-secret'              => 1,
    'api-only-write'            => 1,   # only= with write=on
    'api-bad-origin'            => 1,   # origin=* or a path, host=*.x
    'resend-without-fallback'   => 1,
    'servers-with-method'       => 1,   # dynroute_servers and a method, a
                                        # zone, or after keepalive; hash= with
                                        # backup, without a key, a bad key
    'services-misused'          => 1,   # dynroute_services with a server
                                        # line, a zone, a method, after
                                        # keepalive, twice, or as a target
    'key-misused'               => 3,   # a key= table: an unknown variable,
                                        # $dynroute_*, an ip line, key=
                                        # twice, a literal or a bad form
);
our $VALID_WEIGHT = 66;

# The variables a key= table is keyed by, and how a request sets them.
my @KEYS = (
    { var => '$http_x_tenant', how => 'header', header => 'X-Tenant' },
    { var => '${http_x_tenant}', how => 'header', header => 'X-Tenant' },
    { var => '$arg_t', how => 'arg' },
    { var => '$cookie_tenant', how => 'cookie' },
    # a map's result: X-Route as it is, or the part after "via-"
    { var => '$route_key', how => 'map', header => 'X-Route' },
    # $uri: a path has a /, so every value gets the default
    { var => '$uri', how => 'uri' },
    # a named capture of the table's own regex location (others leave it unset)
    { var => '$kseg', how => 'capture' },
);

my @DOMAINS = qw(example.com example.net shop.test);
my @UPSTREAM_NAMES = qw(svc_a svc_b svc_c svc_d blue green api_v1 api_v2);
my @ROLLOUT_NAMES = qw(shop checkout site search);
my @TABLE_NAMES = qw(edge main inner tenants);
my @BALANCER_NAMES = qw(edge_pass pass2);
my @NAMED = qw(@local @fallback @static @other);
my @VARIANT_NAMES = qw(stable canary blue green v3 exp-1 b.2);
my @CAPTURES = qw(tenant sub region);

# generate($seed, dir => DIR, modules => [paths], root => 0|1,
#          exclude => {family => 1}, stream => 0|1, certs => [two paths])
# Returns { seed, family, conf, files => {path => content}, requests => [...],
#           connections => [...], summary }.  Ports are left as
# $TEST_NGINX_SERVER_PORT (the server under test), $TEST_NGINX_PORT2 and
# $TEST_NGINX_PORT3 (backends), the prefix as $TEST_NGINX_PREFIX: the
# harness substitutes them.  With stream => 1, about a quarter of the
# configurations have a stream{} block whose ports are $TEST_NGINX_SPORT0 to
# $TEST_NGINX_SPORT5 ($STREAM_PORTS of them: the caller sets them in the
# environment), its TLS backends with the certificates certs names (PATH.crt
# and PATH.key); a connection's {sport} is the index of its port.
sub generate {
    my ($seed, %opt) = @_;
    my $r = _rng($seed);
    my $g = bless {
        r => $r, seed => $seed, dir => $opt{dir} // '/nonexistent',
        files => {}, requests => [], opt => \%opt,
    }, __PACKAGE__;
    $g->{family} = $g->_pick_family($opt{exclude} || {});
    $g->_model;
    $g->_mutate;
    # the stream{} part draws from a source of its own: the http part of a
    # seed is the same whether the nginx under test has stream or not
    if ($opt{stream}) {
        local $g->{r} = _rng($seed ^ 0x5713EA);
        $g->_stream_model if $g->{r}->chance(0.25);
    }
    $g->{conf} = $g->_render;
    $g->_requests;
    if ($g->{stream}) {
        local $g->{r} = $g->{stream}{rng};
        $g->_stream_connections;
    }
    my $c = {
        seed => $seed, family => $g->{family}, conf => $g->{conf},
        files => $g->{files}, requests => $g->{requests},
        connections => $g->{connections} || [],
        summary => $g->_summary,
    };
    # a quarter of the configurations are reloaded into a drifted copy;
    # with a state file, half of those are restarted instead, from a state
    # file of their own (a previous version's, a hand-edited one)
    if ($r->chance(0.25)) {
        my $restart = $g->{zone} && $g->{zone}{state} && $r->chance(0.5);
        my ($conf, $what) = $g->_drift;
        if (defined $conf && $restart) {
            my ($state, $how) = $g->_state_file;
            my $hosts = () = $state =~ /"st\d+\.example\.com"/g;
            $c->{restart} = { conf => $conf, what => $what,
                              files => { "$g->{dir}/dynroute.state" => $state },
                              requests => [ map { { name => "state host st$_.example.com",
                                                    method => 'GET', path => '/',
                                                    host => "st$_.example.com" } } 1 .. $hosts ] };
            $c->{summary} .= ", restarted ($what) with a state file ($how)";
        } elsif (defined $conf) {
            $c->{reload} = { conf => $conf, what => $what };
            $c->{summary} .= ", reloaded ($what)";
        }
    }
    return $c;
}

# A state file for a restart: what the API could have left under the same
# or another configuration, or what a careless hand left.
sub _state_file {
    my ($g) = @_;
    my $r = $g->{r};
    my @ups = map { $_->{name} } @{$g->{ups}};
    my @bals = map { $_->{name} } @{$g->{bals}};
    my @rolls = map { $_->{name} } @{$g->{rolls}};
    my @tables = map { $_->{name} } @{$g->{tables}};
    my @anything = (@ups, @ups, @rolls, @bals, @{$g->{named}}, 'nosuch');
    my $gen = $r->pick('3', '0', '18446744073709551615', '18446744073709551614');
    my @hosts;
    for my $i (1 .. $r->range(0, 5)) {
        push @hosts, qq("st$i.example.com":{"table":") . $r->pick(@tables, @tables, 'nosuch')
            . qq(","target":") . $r->pick(@anything) . '"}';
    }
    my @ro;
    for my $ro ($r->some($r->range(0, 2), @{$g->{rolls}})) {
        my @v = map { $_->{name} } @{$ro->{variants}};
        my @parts;
        if ($r->chance(0.7)) {
            my $w = $r->pick('even', 'first', 'over', 'unknown', 'string');
            my @w = $w eq 'first' ? (100, (0) x $#v)
                  : $w eq 'over' ? ((60) x @v)
                  : map { int(100 / @v) + ($_ == 0 ? 100 % @v : 0) } 0 .. $#v;
            my @names = $w eq 'unknown' ? ('nosuch', @v[1 .. $#v]) : @v;
            push @parts, '"weights":{' . join(',', map {
                qq("$names[$_]":) . ($w eq 'string' ? qq("$w[$_]%") : $w[$_]) } 0 .. $#v) . '}';
        }
        push @parts, qq("upstreams":{"$v[-1]":") . $r->pick(@anything) . '"}' if $r->chance(0.5);
        push @parts, qq("primary":") . $r->pick(@v, 'nosuch') . '"' if $r->chance(0.3);
        push @ro, qq("$ro->{name}":{) . join(',', @parts) . '}';
    }
    push @ro, qq("gone":{"weights":{"a":50,"b":50}}) if $r->chance(0.2);
    my $text = qq({"version":1,"generation":$gen,"draining":) . $r->pick('false', 'true')
        . qq(,"rollouts":{) . join(',', @ro) . qq(},"hosts":{) . join(',', @hosts) . "}}\n";
    my $how = $r->pick(('as written') x 6, 'truncated', 'empty', 'not JSON', 'nested',
                       'duplicate keys', 'version 2', 'a long host', 'many hosts');
    if ($how eq 'truncated') {
        $text = substr $text, 0, $r->below(length $text);
    } elsif ($how eq 'empty') {
        $text = '';
    } elsif ($how eq 'not JSON') {
        $text = "\x00\xff garbage {{{";
    } elsif ($how eq 'nested') {
        $text = '{"version":1,"hosts":' . ('[' x 50000) . ']}';
    } elsif ($how eq 'duplicate keys') {
        $text =~ s/^\{/{"generation":7,"hosts":{"dup.example.com":{"table":"x","target":"y"}},/;
    } elsif ($how eq 'version 2') {
        $text =~ s/"version":1/"version":2/;
    } elsif ($how eq 'a long host') {
        $text =~ s/"hosts":\{/'"hosts":{"' . ('a' x 70000) . '.example.com":{"table":"' . $tables[0]
            . '","target":"' . $ups[0] . '"},'/e;
        $text =~ s/,\}\}\n\z/}}\n/;
    } elsif ($how eq 'many hosts') {
        my $many = join ',', map { qq("m$_.example.com":{"table":"$tables[0]","target":"$ups[0]"}) } 1 .. 20000;
        $text =~ s/"hosts":\{/"hosts":{$many,/;
        $text =~ s/,\}\}\n\z/}}\n/;
    }
    return ($text, $how);
}

# A copy of the configuration as an operator's next version might be:
# a name changed everywhere, weights moved, a rule gone, the zone resized,
# another metrics= mode, an upstream more, or nothing at all.  Runtime
# state from the API (hosts, weights, upstreams) then meets a configuration
# that has other names.
sub _drift {
    my ($g) = @_;
    my $r = $g->{r};
    my $t = $g->{conf};
    my @ups = map { $_->{name} } @{$g->{ups}};
    my @kinds = ('same', 'rename-upstream', 'add-upstream', 'drop-rule');
    push @kinds, 'rename-rollout', 'rename-variant', 'weights' if @{$g->{rolls}};
    push @kinds, 'zone-size', 'metrics', 'metrics' if $g->{zone};
    push @kinds, 'stream-rename-upstream', 'stream-drop-rule' if $g->{stream};
    my $kind = $r->pick(@kinds);
    if ($kind eq 'rename-upstream') {
        my $u = $r->pick(@ups);
        $t =~ s/\b\Q$u\E\b/${u}_new/g;
        $kind .= " $u";
    } elsif ($kind eq 'rename-rollout') {
        my $n = $r->pick(@{$g->{rolls}})->{name};
        $t =~ s/(dynroute_rollout |\s)\Q$n\E([;\s])/$1${n}2$2/g;
        $kind .= " $n";
    } elsif ($kind eq 'rename-variant') {
        my $ro = $r->pick(@{$g->{rolls}});
        my ($v) = grep { /^\w+$/ } map { $_->{name} } @{$ro->{variants}};
        return (undef) unless defined $v;
        my ($start, $end) = _block($t, "dynroute_rollout $ro->{name} {");
        return (undef) unless defined $start;
        my $block = substr $t, $start, $end - $start;
        $block =~ s/\b\Q$v\E\b(?=( \S+ \S+;| *;))/${v}x/g;
        substr($t, $start, $end - $start) = $block;
        $kind .= " $ro->{name}.$v";
    } elsif ($kind eq 'weights') {
        my $ro = $r->pick(@{$g->{rolls}});
        my ($start, $end) = _block($t, "dynroute_rollout $ro->{name} {");
        return (undef) unless defined $start;
        my $block = substr $t, $start, $end - $start;
        my @w = $block =~ /^\s+variant \S+ \S+ (\S+);/mg;
        push @w, shift @w;
        $block =~ s/^(\s+variant \S+ \S+ )\S+;/$1 . shift(@w) . ';'/mge;
        substr($t, $start, $end - $start) = $block;
        $kind .= " $ro->{name}";
    } elsif ($kind eq 'zone-size') {
        my $size = $r->pick('128k', '2m', '8m');
        $t =~ s/^(\s*dynroute_zone \S+ )\S+/$1$size/m;
        $kind .= " $size";
    } elsif ($kind eq 'metrics') {
        my $m = $r->pick('rules', 'tables', 'off');
        $t =~ s/ metrics=\w+//;
        $t =~ s/^(\s*dynroute_zone [^;]+)/$1 metrics=$m/m;
        $kind .= " $m";
    } elsif ($kind eq 'stream-rename-upstream') {
        my $u = $r->pick(map { $_->{name} } @{$g->{stream}{ups}});
        $t =~ s/\b\Q$u\E\b/${u}_new/g;
        $kind .= " $u";
    } elsif ($kind eq 'stream-drop-rule') {
        my @rules = $t =~ /^(\s+\S*\.tls\.\S+ \S+;\n)/mg;
        return (undef) unless @rules;
        my $rule = $r->pick(@rules);
        $t =~ s/\Q$rule\E//;
        ($rule = $rule) =~ s/^\s+|\s+$//g;
        $kind .= " $rule";
    } elsif ($kind eq 'add-upstream') {
        $t =~ s/^(\s*)(dynroute_table )/$1upstream svc_added { server 127.0.0.1:\$TEST_NGINX_PORT3; }\n$1$2/m;
    } elsif ($kind eq 'drop-rule') {
        my @rules = $t =~ /^(\s+r\d+\.\S+ \S+;\n)/mg;
        return (undef) unless @rules;
        my $rule = $r->pick(@rules);
        $t =~ s/\Q$rule\E//;
        ($rule = $rule) =~ s/^\s+|\s+$//g;
        $kind .= " $rule";
    }
    return ($t, $kind);
}

# The offsets of a block that starts with $head, up to its closing brace.
sub _block {
    my ($t, $head) = @_;
    my $start = index $t, $head;
    return () if $start < 0;
    my $end = index $t, "\n    }\n", $start;
    return () if $end < 0;
    return ($start, $end);
}

sub _pick_family {
    my ($g, $exclude) = @_;
    my @f = grep { !$exclude->{$_} } sort keys %FAMILIES;
    my $total = $VALID_WEIGHT;
    $total += $FAMILIES{$_} for @f;
    my $n = $g->{r}->below($total);
    return 'valid' if $n < $VALID_WEIGHT;
    $n -= $VALID_WEIGHT;
    for my $f (@f) {
        return $f if $n < $FAMILIES{$f};
        $n -= $FAMILIES{$f};
    }
    return 'valid';
}

# ---- the model --------------------------------------------------------------

sub _model {
    my ($g) = @_;
    my $r = $g->{r};
    my $fam = $g->{family};

    # plain upstreams
    my @ups;
    for my $name ($r->some($r->range(2, 5), @UPSTREAM_NAMES)) {
        push @ups, $g->_upstream($name);
    }
    $g->{ups} = \@ups;

    # balancer upstreams
    my $nbal = $r->pick(0, 1, 1, 1, 2);
    $nbal = 1 if !$nbal && $fam =~ /^(balancer-target|rollout-balancer|balancer-|resend-)/;
    $g->{bals} = [ map { my $f = $r->chance(0.4);
                         { name => $_, fallback => $f, resend => $f && $r->chance(0.4) } }
                   @BALANCER_NAMES[0 .. $nbal - 1] ];

    # now and then, the carrier of the services created at run time
    $g->{carrier} = undef;
    if ($r->chance(0.2) || $fam eq 'services-misused') {
        my @p = ($r->chance(0.5) ? ('max_services=' . $r->pick(1, 10, 1000)) : (),
                 $r->chance(0.5) ? ('servers=' . $r->pick(1, 64, 4096)) : ());
        $g->{carrier} = { name => 'runtime_svc',
                          lines => [ join(' ', 'dynroute_services', @p) . ';',
                                     $r->chance(0.5) ? ('keepalive ' . $r->pick(4, 64) . ';') : () ] };
    }

    # the zone, the sticky secret
    $g->{zone} = undef;
    if ($r->chance(0.7)) {
        $g->{zone} = {
            name => $r->pick('routes', 'dynroute'),
            size => $r->pick('128k', '256k', '1m', '1m', '4m', '64k'),
            state => $r->chance(0.4),
            metrics => $r->pick(undef, undef, 'rules', 'tables', 'off'),
        };
    }
    $g->{secret} = $r->chance(0.3);

    # rollouts
    my @rolls;
    for my $name ($r->some($r->pick(0, 1, 1, 2, 3), @ROLLOUT_NAMES)) {
        push @rolls, $g->_rollout($name);
    }
    $g->{rolls} = \@rolls;

    # named locations: every server that routes defines them all
    $g->{named} = [ $r->some($r->range(1, 3), @NAMED) ];

    # tables
    my @tables;
    my $rule_seq = 0;
    my @tnames = $r->some($r->range(1, 3), @TABLE_NAMES);
    $g->{first_table} = $tnames[0];
    for my $name (@tnames) {
        push @tables, $g->_table($name, \$rule_seq);
    }
    $g->{tables} = \@tables;

    # servers
    $g->{servers} = [ $g->_server(1) ];
    push @{$g->{servers}}, $g->_server(0) for 1 .. $r->pick(0, 0, 1, 2);
    # a location of its own for each key= table, where its requests go
    for my $t (grep { $_->{key} } @tables) {
        push @{$g->{servers}[0]{locations}}, { match => $t->{key}{how} eq 'capture'
                                                   ? "~ ^/key-$t->{name}/(?<kseg_$t->{name}>[^/]*)"
                                                   : "/key-$t->{name}/",
            lines => ["dynroute $t->{name};", $g->_pass, $g->_location_extras] };
    }

    # CORS at server level in the main server
    if ($r->chance(0.25)) {
        $g->{servers}[0]{cors} = $g->_cors;
    }
    $g->{realip} = $r->chance(0.3);
    $g->{logfmt} = $r->chance(0.6);
    $g->{v6} = $r->chance(0.3);     # the main server listens on ::1 too
    $g->{map} = $r->chance(0.2);
    $g->{order} = $r->chance(0.2) ? 'shuffled' : 'usual';
}

sub _backend_port {
    my ($g) = @_;
    return $g->{r}->pick('$TEST_NGINX_PORT2', '$TEST_NGINX_PORT3');
}

sub _upstream {
    my ($g, $name) = @_;
    my $r = $g->{r};
    my @l;
    my $method = $r->pick((undef) x 6, 'hash $remote_addr consistent;',
                          'hash $http_x_user;', 'least_conn;', 'random;',
                          'ip_hash;', 'random two least_conn;');
    push @l, $method if defined $method;
    # dynroute_servers: the workers' own round robin over the same lines,
    # or nginx's consistent hash with hash=KEY (no backup then)
    my $servers = !defined $method && $r->chance(0.3);
    my $hash = $servers && $r->chance(0.3);
    push @l, 'dynroute_servers' . ($r->chance(0.3) ? ' max=' . $r->pick(4, 64, 1024) : '')
        . ($hash ? ' hash=' . $r->pick('$arg_k', '$request_uri', '$cookie_uid$arg_t', 'constant')
                 : '') . ';'
        if $servers;
    my $dead = $r->chance(0.12);        # every server refuses: 502s
    if ($dead) {
        push @l, 'server 127.0.0.1:1 max_fails=1 fail_timeout=30s;';
    } else {
        my $srv = 'server 127.0.0.1:' . $g->_backend_port;
        $srv .= ' weight=' . $r->range(1, 5) if $r->chance(0.2);
        $srv .= ' max_fails=2 fail_timeout=5s' if $r->chance(0.2);
        push @l, "$srv;";
        push @l, 'server 127.0.0.1:1 max_fails=1;' if $r->chance(0.2);
        push @l, 'server 127.0.0.1:' . $g->_backend_port . ' down;'
            if $r->chance(0.1);
        push @l, 'server 127.0.0.1:' . $g->_backend_port . ' backup;'
            if $r->chance(0.15) && !$hash
                && (!defined $method || $method =~ /least_conn;\z/ && $method !~ /random/);
    }
    push @l, "zone ${name}_z 64k;" if !$servers && $r->chance(0.15);
    push @l, 'keepalive ' . $r->pick(2, 8, 32) . ';' if $r->chance(0.35);
    return { name => $name, lines => \@l, dead => $dead };
}

sub _weights {
    my ($g, $n) = @_;
    my $r = $g->{r};
    my $style = $r->pick('int', 'int', 'decimal', 'star', 'zero');
    my @w;
    if ($style eq 'zero') {
        @w = (100, (0) x ($n - 1));
        @w = $r->shuffle(@w);
        return map { "$_%" } @w;
    }
    my $left = 10000;                   # hundredths of a percent
    for my $i (1 .. $n - 1) {
        my $x = $r->below($left + 1);
        $x = int($x / 100) * 100 unless $style eq 'decimal';
        push @w, $x;
        $left -= $x;
    }
    push @w, $left;
    my @s = map {
        my $v = $_ / 100;
        $v =~ s/(\.\d\d)\d+$/$1/;
        "$v%";
    } @w;
    $s[$r->below($n)] = '*' if $style eq 'star';
    return @s;
}

sub _rollout {
    my ($g, $name) = @_;
    my $r = $g->{r};
    my $n = $r->pick(2, 2, 2, 3, 4);
    my @vn = $r->some($n, @VARIANT_NAMES);
    my @w = $g->_weights($n);
    my @variants = map {
        { name => $vn[$_], up => $r->pick(map { $_->{name} } @{$g->{ups}}),
          weight => $w[$_] }
    } 0 .. $n - 1;
    my $ro = { name => $name, variants => \@variants, lines => [] };
    my $l = $ro->{lines};
    push @$l, 'key ' . join(' ', $r->some($r->range(1, 3),
                                          '$cookie_uid', '$http_x_user', '$arg_u',
                                          '$remote_addr')) . ';'
        if $r->chance(0.6);
    my $overrides = 0;
    if ($r->chance(0.6)) {
        $ro->{header} = $r->pick('X-Canary', 'X-Deploy', 'X-Variant');
        push @$l, "header $ro->{header};";
        $overrides = 1;
    }
    if ($r->chance(0.5)) {
        $ro->{cookie} = $r->pick('canary', 'variant', 'dr-ovr');
        push @$l, "cookie $ro->{cookie};";
        $overrides = 1;
    }
    if ($overrides || $r->chance(0.2)) {
        push @$l, 'override_from ' . $r->pick('127.0.0.1', 'all', '10.0.0.0/8 ::1',
                                              '127.0.0.0/8 2001:db8::/32', '::/0')
            . ';';
    }
    for (1 .. $r->pick(0, 0, 1, 2)) {
        push @$l, 'source ' . $r->pick('10.0.0.0/8', '127.0.0.1', '192.0.2.0/24',
                                       '::1', '::ffff:127.0.0.0/104', '203.0.113.7')
            . ' ' . $r->pick(@vn) . ';';
    }
    push @$l, 'primary ' . $r->pick(@vn) . ';' if $r->chance(0.3);
    if ($g->{secret} && $r->chance(0.5)) {
        my $c = "sticky_cookie dr_$name";
        $c .= ' max_age=' . $r->pick('1h', '30d', '60s') if $r->chance(0.5);
        $c .= ' httponly' if $r->chance(0.4);
        my $secure = $r->chance(0.4);
        $c .= ' secure' if $secure;
        $c .= ' samesite=' . $r->pick('lax', 'strict', ($secure ? 'none' : 'lax'))
            if $r->chance(0.5);
        $c .= ' path=/' if $r->chance(0.2);
        push @$l, "$c;";
        $ro->{sticky} = "dr_$name";
    }
    # part of the block from an included file
    if (@$l && $r->chance(0.15)) {
        my $file = "$g->{dir}/rollout-$name.conf";
        my @moved = splice @$l, 0, $r->range(1, scalar @$l);
        $g->{files}{$file} = join("\n", @moved) . "\n";
        push @$l, "include $file;";
    }
    return $ro;
}

sub _target {
    my ($g, %o) = @_;
    my $r = $g->{r};
    my @t;
    push @t, map { $_->{name} } @{$g->{ups}} for 1 .. 3;
    push @t, map { $_->{name} } @{$g->{rolls}} for 1 .. 2;
    push @t, @{$g->{named}} unless $o{no_named};
    return $r->pick(@t);
}

# One rule of a table, with a host that it matches.
sub _rule {
    my ($g, $k) = @_;
    my $r = $g->{r};
    my $d = $r->pick(@DOMAINS);
    my $kind = $r->pick(qw(exact exact exact leading dot trailing regex
                           regex_caseless regex_prefix));
    my ($pat, $host, $cap);
    if ($kind eq 'exact') {
        ($pat, $host) = ("r$k.$d", "r$k.$d");
    } elsif ($kind eq 'leading') {
        ($pat, $host) = ("*.r$k.$d", "x.y.r$k.$d");
    } elsif ($kind eq 'dot') {
        ($pat, $host) = (".r$k.$d", $r->pick("r$k.$d", "w.r$k.$d"));
    } elsif ($kind eq 'trailing') {
        ($pat, $host) = ("r$k.$d.*", "r$k.$d.org");
    } elsif ($kind eq 'regex') {
        $cap = $r->pick(@CAPTURES);
        (my $qd = $d) =~ s/\./\\./g;
        ($pat, $host) = ("~^(?<$cap>[a-z]+)\\.r$k\\.$qd\$", "acme.r$k.$d");
    } elsif ($kind eq 'regex_caseless') {
        ($pat, $host) = ("~*^API\\d*\\.r$k\\.", "api7.r$k.$d");
    } else {
        ($pat, $host) = ("~^r$k-", "r$k-anything.example.org");
    }
    return { pat => $pat, host => $host, kind => $kind, cap => $cap };
}

sub _table {
    my ($g, $name, $seq) = @_;
    my $r = $g->{r};
    my @rules;
    for (1 .. $r->range(1, 6)) {
        my $rule = $g->_rule(++$$seq);
        $rule->{target} = $g->_target;
        push @rules, $rule;
    }
    if ($r->chance(0.15)) {
        push @rules, { pat => $r->pick('\\default', '\\ip'), target => $g->_target,
                       kind => 'escaped' };
        $rules[-1]{host} = substr $rules[-1]{pat}, 1;
    }
    my $t = { name => $name, rules => \@rules };
    $t->{ip} = $r->chance(0.7) ? $g->_target : undef;
    # keyed by a variable: its value is matched as a Host would be (no ip
    # rule there)
    if ($r->chance(0.3) || $g->{family} eq 'key-misused' && $name eq $g->{first_table}) {
        $t->{key} = { %{ $r->pick(@KEYS) } };
        $t->{key}{var} = "\$kseg_$name" if $t->{key}{how} eq 'capture';
        $t->{ip} = undef;
        $g->{map_route_key} = 1 if $t->{key}{how} eq 'map';
    }
    $t->{default} = $r->chance(0.8) ? $g->_target : undef;
    if ($r->chance(0.15)) {
        my $file = "$g->{dir}/table-$name.rules";
        my @inc;
        for (1 .. $r->range(1, 3)) {
            my $k = ++$$seq;
            my $d = $r->pick(@DOMAINS);
            push @inc, { pat => "inc$k.$d", host => "inc$k.$d", kind => 'exact',
                         target => $g->_target };
        }
        $t->{include} = { file => $file, rules => \@inc };
    }
    return $t;
}

sub _cors {
    my ($g) = @_;
    my $r = $g->{r};
    my @origins = $r->some($r->range(1, 3), 'https://app.example.com',
                           'http://localhost:3000', 'https://*.preview.example.com');
    my $star = $r->chance(0.2);
    my %c = (
        origins => $star ? ['*'] : \@origins,
        credentials => !$star && $r->chance(0.5),
        methods => $r->chance(0.5) ? [$r->some($r->range(1, 4), qw(GET POST PUT DELETE PATCH))] : undef,
        headers => $r->chance(0.5) ? ($r->chance(0.3) ? ['*'] : ['Content-Type', 'X-Request-Id']) : undef,
        max_age => $r->chance(0.4) ? $r->pick('10m', '1h', '0') : undef,
    );
    return \%c;
}

# How a routed location passes the request on.
sub _pass {
    my ($g) = @_;
    my $r = $g->{r};
    my @p = ('proxy_pass http://$dynroute_upstream;') x 2;
    push @p, ("proxy_pass http://$_->{name};") x 3 for @{$g->{bals}};
    push @p, 'proxy_pass http://' . $r->pick(map { $_->{name} } @{$g->{ups}}) . ';';
    push @p, 'return 200 "routed to $dynroute_upstream by $dynroute_rule\n";';
    return $r->pick(@p);
}

sub _location_extras {
    my ($g) = @_;
    my $r = $g->{r};
    my @l;
    push @l, 'proxy_http_version 1.1;', 'proxy_set_header Connection "";'
        if $r->chance(0.4);
    push @l, 'proxy_set_header Host $host;' if $r->chance(0.4);
    push @l, 'add_header X-Dynroute "$dynroute_rule|$dynroute_variant|$dynroute_reason|'
        . '$dynroute_served|$dynroute_primary|$dynroute_fallback" always;'
        if $r->chance(0.5);
    push @l, 'error_page 502 504 = ' . $r->pick(@{$g->{named}}) . ';' if $r->chance(0.2);
    push @l, 'error_page 421 = ' . $r->pick(@{$g->{named}}) . ';' if $r->chance(0.1);
    push @l, 'proxy_next_upstream error timeout ' . $r->pick('http_502', 'non_idempotent')
        . ';' if $r->chance(0.15);
    push @l, 'proxy_connect_timeout 2s;', 'proxy_read_timeout 5s;';
    return @l;
}

# The locations of a server.  Each is { match, lines, children, paths },
# paths being the URIs the requests should try there.
sub _server {
    my ($g, $main) = @_;
    my $r = $g->{r};
    my @tables = map { $_->{name} } @{$g->{tables}};
    my $s = { main => $main, locations => [], paths => [] };
    $s->{names} = $main ? ['localhost'] : [ 'v' . (scalar(@{$g->{servers} || []})) . '.vhost.test' ];
    $s->{dynroute} = $r->chance($main ? 0.3 : 0.6) ? $r->pick(@tables) : undef;
    my $routed = sub { $s->{dynroute} // $r->pick(@tables) };
    my $L = $s->{locations};

    # location /: always routed
    {
        my $t = $routed->();
        my @l = ((defined $s->{dynroute} && $r->chance(0.5)) ? () : ("dynroute $t;"));
        push @l, $g->_pass, $g->_location_extras;
        push @$L, { match => '/', lines => \@l, paths => ['/', '/x/y?z=1'], table => $t };
    }
    my @kinds = $r->some($r->range(2, 9), qw(nested exact regex internal auth try
                                             rewrite return acl mirror health
                                             health_ready cors_loc off if ssi
                                             addition cache altpass setvar
                                             realip_loc));
    @kinds = grep { $_ ne 'health_ready' } @kinds unless $g->{zone};
    for my $k (@kinds) {
        if ($k eq 'nested') {
            my $t = $routed->();
            push @$L, { match => '/n/', lines => ["dynroute $t;", $g->_pass],
                        paths => ['/n/', '/n/deep/x', '/n/a.json'],
                        children => [
                            { match => '/n/deep/', lines => [
                                  $r->chance(0.5) ? ('dynroute off;', 'return 200 "deep\n";')
                                                  : ($g->_pass) ] },
                            { match => '~ \.json$', lines => [
                                  'dynroute ' . $r->pick(@tables) . ';', $g->_pass ] },
                        ] };
        } elsif ($k eq 'exact') {
            push @$L, { match => '= /exact', lines => ['dynroute ' . $routed->() . ';',
                        'return 200 "$dynroute_upstream $dynroute_rule $dynroute_variant\n";'],
                        paths => ['/exact'] };
        } elsif ($k eq 'regex') {
            push @$L, { match => '~ ^/re/(?<tail>[a-z]*)$',
                        lines => ['dynroute ' . $routed->() . ';', $g->_pass],
                        paths => ['/re/abc', '/re/'] };
        } elsif ($k eq 'internal') {
            push @$L, { match => '/int/', lines => ['internal;', 'dynroute ' . $routed->() . ';',
                        $g->_pass], paths => ['/int/x'] };
        } elsif ($k eq 'auth') {
            my $sub = $r->pick('proxy_pass http://127.0.0.1:$TEST_NGINX_PORT2/auth-ok;',
                               'proxy_pass http://127.0.0.1:$TEST_NGINX_PORT2/auth-no;',
                               'proxy_pass http://$dynroute_upstream/auth-ok;',
                               'return 204;', 'dynroute_health;');
            push @$L, { match => '/auth/', lines => ['auth_request /_auth;',
                        'dynroute ' . $routed->() . ';', $g->_pass], paths => ['/auth/x'] };
            push @$L, { match => '= /_auth', lines => ['internal;',
                        'proxy_pass_request_body off;', 'proxy_set_header Content-Length "";',
                        $sub] };
        } elsif ($k eq 'try') {
            push @$L, { match => '/try/', lines => ['dynroute ' . $routed->() . ';',
                        'try_files $uri ' . $r->pick(@{$g->{named}}) . ';'],
                        paths => ['/try/x'] };
        } elsif ($k eq 'rewrite') {
            push @$L, { match => '/rw/', lines => ['rewrite ^/rw/(.*)$ /$1 last;'],
                        paths => ['/rw/exact', '/rw/n/x'] };
        } elsif ($k eq 'return') {
            push @$L, { match => '/ret/', lines => ['dynroute ' . $routed->() . ';',
                        'return 302 /;'], paths => ['/ret/'] };
        } elsif ($k eq 'acl') {
            push @$L, { match => '/acl/', lines => ['dynroute ' . $routed->() . ';',
                        $r->pick('allow 127.0.0.1; deny all;', 'deny all;',
                                 'allow 10.0.0.0/8; deny all;'),
                        $g->_pass], paths => ['/acl/x'] };
        } elsif ($k eq 'mirror') {
            push @$L, { match => '/mirror/', lines => ['mirror /_mirror;',
                        'dynroute ' . $routed->() . ';', $g->_pass], paths => ['/mirror/x'] };
            push @$L, { match => '= /_mirror', lines => ['internal;',
                        $r->pick('proxy_pass http://$dynroute_upstream;',
                                 'proxy_pass http://127.0.0.1:$TEST_NGINX_PORT3;')] };
        } elsif ($k eq 'health') {
            push @$L, { match => '= /health', lines => ['dynroute_health;'],
                        paths => ['/health'] };
        } elsif ($k eq 'health_ready') {
            push @$L, { match => '= /ready', lines => ['dynroute_health readiness;'],
                        paths => ['/ready'] };
        } elsif ($k eq 'cors_loc') {
            my $c = $g->_cors;
            push @$L, { match => '/cors/', lines => ['dynroute ' . $routed->() . ';',
                        $g->_pass], cors => $c, paths => ['/cors/x'] };
        } elsif ($k eq 'if') {
            push @$L, { match => '/if/', lines => ['dynroute ' . $routed->() . ';',
                        'if ($http_x_if) { ' . $g->_pass . ' }',
                        'if ($dynroute_variant) { add_header X-Had-Variant 1; }',
                        'return 200 "no if: $dynroute_rule\n";'],
                        paths => ['/if/'], if_header => 1 };
        } elsif ($k eq 'ssi') {
            push @$L, { match => '/ssi/', lines => ['ssi on;', 'dynroute ' . $routed->() . ';',
                        'return 200 \'[<!--# include virtual="/ssi-part/x" -->]\';'],
                        paths => ['/ssi/'] };
            push @$L, { match => '/ssi-part/', lines => ['dynroute ' . $routed->() . ';', $g->_pass] };
        } elsif ($k eq 'addition') {
            push @$L, { match => '/add/', lines => ['dynroute ' . $routed->() . ';',
                        'add_before_body /ssi-part/before;', 'add_after_body /exact;',
                        $g->_pass], paths => ['/add/x.html'] };
            push @$L, { match => '/ssi-part/', lines => ['dynroute ' . $routed->() . ';', $g->_pass] }
                unless grep { $_->{match} eq '/ssi-part/' } @$L;
        } elsif ($k eq 'cache') {
            $g->{cache} = 1;
            push @$L, { match => '/cache/', lines => ['dynroute ' . $routed->() . ';',
                        'proxy_cache dyncache;', 'proxy_cache_valid 200 10s;',
                        $r->pick('proxy_cache_key $scheme$host$request_uri$dynroute_upstream;',
                                 'proxy_cache_key $host$uri;'),
                        $r->chance(0.3) ? ('proxy_cache_background_update on;',
                                           'proxy_cache_use_stale updating;') : (),
                        $g->_pass], paths => ['/cache/a', '/cache/a'] };
        } elsif ($k eq 'altpass') {
            my @b = map { $_->{name} } @{$g->{bals}};
            my $how = $r->pick('fastcgi_pass', 'uwsgi_pass', 'scgi_pass', 'grpc_pass');
            my $to = @b && $r->chance(0.6) ? $r->pick(@b) : '$dynroute_upstream';
            $to = "grpc://$to" if $how eq 'grpc_pass';
            push @$L, { match => '/alt/', lines => ['dynroute ' . $routed->() . ';',
                        "$how $to;"], paths => ['/alt/x'] };
        } elsif ($k eq 'setvar') {
            $s->{setvar} = 1;
            push @$L, { match => '/set/', lines => ['set $early "$dynroute_upstream|$dynroute_variant";',
                        'dynroute ' . $routed->() . ';',
                        'set $late "$dynroute_rule";',
                        'add_header X-Early $early always;', $g->_pass], paths => ['/set/'] };
        } elsif ($k eq 'realip_loc') {
            push @$L, { match => '/rip/', lines => ['set_real_ip_from 127.0.0.0/8;',
                        'real_ip_header X-Real-IP;', 'dynroute ' . $routed->() . ';',
                        $g->_pass], paths => ['/rip/'], realip_header => 1 };
        } elsif ($k eq 'off') {
            push @$L, { match => '/off/', lines => ['dynroute off;',
                        'return 200 "not routed\n";'], paths => ['/off/'] };
        }
    }
    # the API
    my $api_family = $g->{family} =~ /^api-/;
    $g->{zone} //= { name => 'routes', size => '1m' } if $g->{family} eq 'api-not-prefix';
    if ($main && ($g->{zone} || $api_family) && ($r->chance(0.85) || $api_family)) {
        my $prefix = $r->pick('/dynroute/', '/dynroute/', '/dynroute/', '/api/dr/');
        my $write = $r->chance(0.7);
        my $d = $write ? 'dynroute_api write=on' : $r->pick('dynroute_api', 'dynroute_api write=off');
        # the names and origins an operator may add (issue 21, finding 4)
        $d .= ' host=' . $r->pick('api.internal', 'Edge1.Example.COM') if $r->chance(0.3);
        $d .= ' origin=' . $r->pick('https://ops.example.com', 'http://127.0.0.1:9',
                                    'https://*.ops.example.com') if $r->chance(0.3);
        my @l = ("$d;");
        unshift @l, 'allow 127.0.0.1;', 'deny all;' if $r->chance(0.5);
        push @$L, { match => $prefix, lines => \@l };
        $s->{api} = { prefix => $prefix, write => $write };
        # read-only monitoring views: the metrics, the status page
        if ($r->chance(0.3)) {
            push @$L, { match => '= /metrics', lines => ['dynroute_api only=metrics;'],
                        paths => ['/metrics', '/metrics?x=1'] };
        }
        if ($r->chance(0.3)) {
            push @$L, { match => '/monitor/',
                        lines => ['dynroute_api only=' . $r->pick('status', 'metrics',
                                  'metrics,status', 'status,metrics') . ';'],
                        paths => ['/monitor/', '/monitor/ui', '/monitor/stats',
                                  '/monitor/metrics', '/monitor/hosts', '/monitor/drain'] };
        }
        # the other forms a location can take (issue 21, finding 5)
        my $form = $g->{family} eq 'api-not-prefix' ? $r->pick('regex', 'named')
                 : $r->pick((undef) x 3, 'exact', 'noslash', 'nested');
        if (!$form) {
        } elsif ($form eq 'exact') {
            push @$L, { match => '= /drx/metrics', lines => ['dynroute_api only=metrics;'],
                        paths => ['/drx/metrics', '/drx/metricsx'] };
        } elsif ($form eq 'noslash') {
            push @$L, { match => '/pub', lines => ['dynroute_api;'],
                        paths => ['/pub', '/pubhosts', '/pub/metrics', '/pubrollouts/x'] };
        } elsif ($form eq 'regex') {
            push @$L, { match => '~ ^/rx(/.*)?$', lines => ['dynroute_api;'],
                        paths => ['/rx', '/rx/', '/rx/hosts', '/rx/metrics'] };
        } elsif ($form eq 'nested') {
            push @$L, { match => '/outer/', lines => ['return 404;'],
                        children => [ { match => '/outer/api/', lines => ['dynroute_api;'] } ],
                        paths => ['/outer/api/', '/outer/api/stats', '/outer/x'] };
        } elsif ($form eq 'named') {
            push @$L, { match => '@api', lines => ['dynroute_api;'] };
            push @$L, { match => '/toapi/', lines => ['try_files /nonexistent @api;'],
                        paths => ['/toapi/', '/toapi/hosts'] };
        }
    }
    # named locations
    my $routed_t = $routed->();
    for my $n (@{$g->{named}}) {
        my $body = $r->pick('return 200 "local $host\n";',
                            'dynroute off; return 204;',
                            'proxy_pass http://' . $r->pick(map { $_->{name} } @{$g->{ups}}) . ';',
                            'proxy_pass http://$dynroute_upstream;',
                            'return 200 "$dynroute_rule $dynroute_upstream\n";',
                            # a balancer after the jump: needs a table in effect
                            (map { "dynroute $routed_t; proxy_pass http://$_->{name};" } @{$g->{bals}}),
                            (map { "proxy_pass http://$_->{name};" } grep { $s->{dynroute} } @{$g->{bals}}));
        push @$L, { match => $n, lines => [$body] };
    }
    $s->{error_page} = $r->pick(@{$g->{named}}) if $r->chance(0.15);
    $s->{server_set} = $r->chance(0.15);
    $s->{server_if} = $r->chance(0.15);
    return $s;
}

# ---- near misses ------------------------------------------------------------

sub _routed_table_of_slash {
    my ($g) = @_;
    my $loc = $g->{servers}[0]{locations}[0];
    my ($t) = grep { $_->{name} eq $loc->{table} } @{$g->{tables}};
    return ($t, $loc);
}

sub _mutate {
    my ($g) = @_;
    my $r = $g->{r};
    my $f = $g->{family};
    return if $f eq 'valid';
    my @tables = @{$g->{tables}};
    if ($f eq 'balancer-target') {
        # the location / proxies, so that the request reaches the balancer
        my ($t, $loc) = $g->_routed_table_of_slash;
        my $bal = $r->pick(@{$g->{bals}})->{name};
        $loc->{lines} = [ (grep { !/^(proxy_pass|return)/ } @{$loc->{lines}}),
                          $r->pick("proxy_pass http://$bal;",
                                   'proxy_pass http://$dynroute_upstream;') ];
        unshift @{$loc->{lines}}, "dynroute $t->{name};"
            unless grep { /^dynroute / } @{$loc->{lines}};
        if ($r->chance(0.5) || !@{$t->{rules}}) {
            $t->{default} = $bal;
        } else {
            $r->pick(@{$t->{rules}})->{target} = $bal;
        }
    } elsif ($f eq 'rollout-balancer') {
        my ($t, $loc) = $g->_routed_table_of_slash;
        my $bal = $r->pick(@{$g->{bals}})->{name};
        my $ro = $g->{rolls}[0];
        unless ($ro) {
            $ro = $g->_rollout('checkout');
            push @{$g->{rolls}}, $ro;
        }
        # the balancer variant takes every key
        my $v = $r->pick(@{$ro->{variants}});
        $v->{up} = $bal;
        $_->{weight} = '0%' for @{$ro->{variants}};
        $v->{weight} = '100%';
        $ro->{lines} = [ grep { !/^(source|primary|include)\b/ } @{$ro->{lines}} ];
        $loc->{lines} = [ (grep { !/^(proxy_pass|return)/ } @{$loc->{lines}}),
                          "proxy_pass http://$bal;" ];
        unshift @{$loc->{lines}}, "dynroute $t->{name};"
            unless grep { /^dynroute / } @{$loc->{lines}};
        $t->{default} = $ro->{name};
    } elsif ($f eq 'typo-target') {
        my $t = $r->pick(@tables);
        my $up = $g->{ups}[0]{name};
        $t->{default} = $r->pick("${up}x", 'scv_a', 'svc-a', '127.0.0.1:8080', 'localhost');
    } elsif ($f eq 'unknown-named-location') {
        $r->pick(@tables)->{default} = '@nowhere';
    } elsif ($f eq 'missing-named-location') {
        my $t = $r->pick(@tables);
        $t->{default} = $g->{named}[0];
        # the server that uses it lacks it
        for my $s (@{$g->{servers}}) {
            $s->{locations} = [ grep { $_->{match} ne $g->{named}[0] } @{$s->{locations}} ];
            $s->{error_page} = undef;
            for my $loc (@{$s->{locations}}) {
                $_ =~ s/\Q$g->{named}[0]\E;/$g->{named}[-1];/ for @{$loc->{lines}};
                $loc->{lines} = [ grep { !/^try_files/ && !/^error_page/ } @{$loc->{lines}} ];
                push @{$loc->{lines}}, 'return 200 "x\n";'
                    if $loc->{match} eq '/try/';
            }
        }
        $g->{named_missing} = $g->{named}[0];
    } elsif ($f eq 'named-location-variant') {
        my $ro = $g->{rolls}[0] // do { push @{$g->{rolls}}, $g->_rollout('shop'); $g->{rolls}[0] };
        $ro->{variants}[-1]{up} = $g->{named}[0];
    } elsif ($f eq 'duplicate-host') {
        my $t = $r->pick(@tables);
        my $rule = $t->{rules}[0];
        my $h = $rule->{pat};
        my $dup = $h =~ /^\*\.(.*)/ ? ".$1" : $h =~ /^[a-z]/ && $h !~ /\*$/
            ? $r->pick($h, uc $h, ".$h") : $h;
        push @{$t->{rules}}, { %$rule, pat => $dup };
    } elsif ($f eq 'duplicate-table') {
        push @{$g->{tables}}, { %{ $tables[0] } };
    } elsif ($f eq 'duplicate-rollout') {
        push @{$g->{rolls}}, $g->_rollout('shop'), $g->_rollout('shop');
    } elsif ($f eq 'rollout-named-upstream') {
        push @{$g->{rolls}}, $g->_rollout($g->{ups}[-1]{name});
    } elsif ($f eq 'weights-sum') {
        my $ro = $g->{rolls}[0] // do { push @{$g->{rolls}}, $g->_rollout('site'); $g->{rolls}[0] };
        $ro->{variants}[0]{weight} = $r->pick('101%', '0.125%', '5', '99.99%');
        $ro->{variants}[$_]{weight} = '*' for 1 .. $#{$ro->{variants}};
        $ro->{variants}[1]{weight} = '10%' if $ro->{variants}[0]{weight} eq '99.99%';
    } elsif ($f eq 'override-without-from') {
        my $ro = $g->{rolls}[0] // do { push @{$g->{rolls}}, $g->_rollout('site'); $g->{rolls}[0] };
        $ro->{lines} = [ (grep { !/^(override_from|include)\b/ } @{$ro->{lines}}),
                         'header X-Canary-Typo;' ];
        $ro->{lines} = [ grep { !/^header / || /Typo/ } @{$ro->{lines}} ];
        delete $ro->{header};
    } elsif ($f eq 'bad-regex') {
        push @{$r->pick(@tables)->{rules}},
            { pat => $r->pick('~^(a', '~*[z-a]', '~^(?<host>x)$', '~^(?<1a>x)'),
              target => $g->{ups}[0]{name}, kind => 'bad', host => 'a' };
    } elsif ($f eq 'bad-cidr') {
        my $ro = $g->{rolls}[0] // do { push @{$g->{rolls}}, $g->_rollout('site'); $g->{rolls}[0] };
        push @{$ro->{lines}}, 'source ' . $r->pick('10.0.0.0/33', 'localhost', '1.2.3', '::1/129')
            . " $ro->{variants}[0]{name};";
    } elsif ($f eq 'unknown-key-variable') {
        my $ro = $g->{rolls}[0] // do { push @{$g->{rolls}}, $g->_rollout('site'); $g->{rolls}[0] };
        $ro->{lines} = [ (grep { !/^(key|include)\b/ } @{$ro->{lines}}),
                         'key ' . $r->pick('$no_such_thing', 'uid', '$cookie_uid $') . ';' ];
    } elsif ($f eq 'sticky-without-secret') {
        $g->{secret} = 0;
        my $ro = $g->{rolls}[0] // do { push @{$g->{rolls}}, $g->_rollout('site'); $g->{rolls}[0] };
        $ro->{lines} = [ (grep { !/^sticky_cookie/ } @{$ro->{lines}}), 'sticky_cookie dr;' ];
    } elsif ($f eq 'cors-star-credentials') {
        $g->{servers}[0]{cors} = { origins => ['*'], credentials => 1 };
    } elsif ($f eq 'cors-without-origins') {
        $g->{servers}[0]{cors} = undef;
        push @{$g->{servers}[0]{locations}[0]{lines}}, 'dynroute_cors on;';
    } elsif ($f eq 'balancer-with-server') {
        $g->{bals}[0]{extra} = $r->pick('server 127.0.0.1:$TEST_NGINX_PORT2;',
                                        'keepalive 8;', 'least_conn;', 'zone bz 64k;',
                                        'dynroute_balancer;');
    } elsif ($f eq 'servers-with-method') {
        my $u = $g->{ups}[0];
        my @rest = grep { !/^dynroute_servers/ } @{$u->{lines}};
        my $bad = $r->pick('least_conn;', 'random;', 'hash $arg_k;', 'ip_hash;',
                           "zone $u->{name}_sz 64k;", 'keepalive 8;', 'hash-backup',
                           'dynroute_servers hash=;', 'dynroute_servers hash=${arg_k;');
        $u->{lines} = $bad eq 'keepalive 8;'
                      ? [ $bad, 'dynroute_servers;', grep { !/^keepalive/ } @rest ]
                      : $bad eq 'hash-backup'
                      ? [ 'dynroute_servers hash=$arg_k;',
                          'server 127.0.0.1:' . $g->_backend_port . ' backup;', @rest ]
                      : $bad =~ /^dynroute_servers/
                      ? [ $bad, @rest ]
                      : [ 'dynroute_servers;', @rest, $bad ];
    } elsif ($f eq 'balancer-without-dynroute') {
        my $s = $g->{servers}[0];
        $s->{dynroute} = undef;
        push @{$s->{locations}}, { match => '/nodr/',
            lines => ["proxy_pass http://$g->{bals}[0]{name};"], paths => ['/nodr/'] };
    } elsif ($f eq 'api-without-zone') {
        $g->{zone} = undef;
        $_->{locations} = [ grep { $_->{match} ne '= /ready' } @{$_->{locations}} ]
            for @{$g->{servers}};
    } elsif ($f eq 'unknown-table') {
        my $loc = $g->{servers}[0]{locations}[0];
        $loc->{lines} = [ 'dynroute egde;', grep { !/^dynroute \w+;/ } @{$loc->{lines}} ];
    } elsif ($f eq 'typo-directive') {
        $g->{typo} = $r->pick('dynroute_tabel', 'varient', 'dynroute_zones', 'dynroute_balncer');
    } elsif ($f eq 'missing-brace') {
        $g->{missing_brace} = 1;
    } elsif ($f eq 'dynroute-in-http') {
        $g->{http_dynroute} = 1;
    } elsif ($f eq 'duplicate-zone') {
        $g->{zone} //= { name => 'routes', size => '1m' };
        $g->{zone}{twice} = $r->pick('same', 'other');
    } elsif ($f eq 'short-secret') {
        $g->{secret} = 'short';
    } elsif ($f eq 'api-only-write' || $f eq 'api-bad-origin') {
        $g->{zone} //= { name => 'routes', size => '1m' };
        push @{$g->{servers}[0]{locations}}, { match => '/ops/',
            lines => [$f eq 'api-only-write'
                      ? 'dynroute_api only=' . $r->pick('metrics', 'status') . ' write=on;'
                      : 'dynroute_api ' . $r->pick('origin=*', 'origin=https://a/b',
                                                   'origin=null', 'host=*.example.com',
                                                   'host=', 'only=everything') . ';'],
            paths => ['/ops/'] };
    } elsif ($f eq 'services-misused') {
        my $c = $g->{carrier};
        my $bad = $r->pick('server', 'zone', 'method', 'keepalive-first', 'second', 'target');
        if ($bad eq 'server') {
            push @{$c->{lines}}, 'server 127.0.0.1:' . $g->_backend_port . ';';
        } elsif ($bad eq 'zone') {
            push @{$c->{lines}}, 'zone runtime_svc_z 64k;';
        } elsif ($bad eq 'method') {
            push @{$c->{lines}}, $r->pick('least_conn;', 'random;', 'ip_hash;', 'hash $arg_k;');
        } elsif ($bad eq 'keepalive-first') {
            $c->{lines} = [ 'keepalive 8;', grep { !/^keepalive/ } @{$c->{lines}} ];
        } elsif ($bad eq 'second') {
            $g->{carrier2} = { name => 'runtime_svc2', lines => ['dynroute_services;'] };
        } else {
            $r->pick(@tables)->{default} = 'runtime_svc';
        }
    } elsif ($f eq 'key-misused') {
        my ($t) = grep { $_->{key} } @tables;
        my $bad = $r->pick('unknown', 'dynroute', 'ip', 'twice', 'literal');
        if ($bad eq 'unknown') {
            $t->{key_text} = 'key=' . $r->pick('$no_such_key', '$x_tenant', '$arg',
                                               '$route_kye', '$cookie');
        } elsif ($bad eq 'dynroute') {
            $t->{key_text} = 'key=' . $r->pick('$dynroute_upstream', '$dynroute_rule',
                                               '$dynroute_variant', '${dynroute_upstream}');
        } elsif ($bad eq 'ip') {
            $t->{ip} = $g->_target;
        } elsif ($bad eq 'twice') {
            $t->{key_text} = "key=$t->{key}{var} key=" . $r->pick('$arg_b', $t->{key}{var});
        } else {
            $t->{key_text} = $r->pick('key=tenant', 'key=', 'key=$', 'key=$host$uri', 'key=$1',
                                      '"key=t-$arg_t"', 'tenant=$arg_t', 'key=${arg_t',
                                      'key');
        }
        $g->{family_detail} = $bad;
    } elsif ($f eq 'resend-without-fallback') {
        $g->{bals}[0]{fallback} = 0;
        $g->{bals}[0]{resend} = 1;
    } elsif ($f eq 'readiness-without-zone') {
        $g->{zone} = undef;
        push @{$g->{servers}[0]{locations}}, { match => '= /ready',
            lines => ['dynroute_health readiness;'], paths => ['/ready'] };
        $_->{api} = undef for @{$g->{servers}};
        $_->{locations} = [ grep { !grep { /dynroute_api/ } @{$_->{lines}} } @{$_->{locations}} ]
            for @{$g->{servers}};
    }
}

# ---- rendering --------------------------------------------------------------

sub _render {
    my ($g) = @_;
    my $o = $g->{opt};
    my @out;
    push @out, map { "load_module $_;" } @{$o->{modules} || []};
    push @out, 'daemon off; master_process on; worker_processes 2;',
        'pid $TEST_NGINX_PREFIX/logs/nginx.pid;',
        'error_log $TEST_NGINX_PREFIX/logs/error.log info;',
        ($o->{root} ? ('user root;') : ()),
        'events { worker_connections 512; }',
        '',
        'http {',
        '    client_body_temp_path $TEST_NGINX_PREFIX/tmp/client_body;',
        '    proxy_temp_path $TEST_NGINX_PREFIX/tmp/proxy;',
        '    fastcgi_temp_path $TEST_NGINX_PREFIX/tmp/fastcgi;',
        '    uwsgi_temp_path $TEST_NGINX_PREFIX/tmp/uwsgi;',
        '    scgi_temp_path $TEST_NGINX_PREFIX/tmp/scgi;',
        '    default_type text/plain;';
    if ($g->{logfmt}) {
        my @caps = $g->_captures;
        push @out, "    log_format routes escape=json '{\"client\":\"\$remote_addr\",\"host\":\"\$host\",\"rule\":\"\$dynroute_rule\","
            . "\"up\":\"\$dynroute_upstream\",\"variant\":\"\$dynroute_variant\","
            . "\"reason\":\"\$dynroute_reason\",\"served\":\"\$dynroute_served\","
            . "\"fallback\":\"\$dynroute_fallback\",\"primary\":\"\$dynroute_primary\""
            . join('', map { ",\"$_\":\"\$$_\"" } @caps) . "}';",
            '    access_log $TEST_NGINX_PREFIX/logs/access.log routes;';
    } else {
        push @out, '    access_log $TEST_NGINX_PREFIX/logs/access.log;';
    }
    if ($g->{realip}) {
        push @out, '    set_real_ip_from 127.0.0.1;', '    real_ip_header X-Forwarded-For;';
    }
    push @out, '    dynroute edge;' if $g->{http_dynroute};
    push @out, '    proxy_cache_path $TEST_NGINX_PREFIX/tmp/cache levels=1 keys_zone=dyncache:1m;'
        if $g->{cache};
    if ($g->{map_route_key}) {
        push @out, '    map $http_x_route $route_key { default $http_x_route; '
            . '"~^via-(?<via_key>.*)$" $via_key; }';
    }
    if ($g->{map}) {
        push @out, '    map $dynroute_variant $variant_class { default other; "" none; canary c; }',
            '    add_header X-Variant-Class $variant_class always;';
    }
    if ($g->{secret}) {
        my $file = "$g->{dir}/sticky.secret";
        $g->{files}{$file} = $g->{secret} eq 'short' ? 'tooshort' : '0123456789abcdef0123456789abcdef';
        push @out, "    dynroute_sticky_secret $file;";
    }
    push @out, '', $g->_render_backends;

    my @blocks;
    push @blocks, map { [ $g->_render_upstream($_) ] } @{$g->{ups}};
    push @blocks, map { [ $g->_render_balancer($_) ] } @{$g->{bals}};
    push @blocks, map { [ $g->_render_upstream($_) ] } grep { defined } $g->{carrier}, $g->{carrier2};
    push @blocks, [ $g->_render_zone ] if $g->{zone};
    push @blocks, map { [ $g->_render_rollout($_) ] } @{$g->{rolls}};
    push @blocks, map { [ $g->_render_table($_) ] } @{$g->{tables}};
    push @blocks, map { [ $g->_render_server($_) ] } @{$g->{servers}};
    @blocks = $g->{r}->shuffle(@blocks) if $g->{order} eq 'shuffled';
    push @out, @$_, '' for @blocks;
    push @out, '}';
    push @out, '', $g->_stream_render if $g->{stream};
    my $text = join("\n", @out) . "\n";
    if (my $typo = $g->{typo}) {
        my %from = (dynroute_tabel => 'dynroute_table', varient => 'variant',
                    dynroute_zones => 'dynroute_zone', dynroute_balncer => 'dynroute_balancer');
        my $w = $from{$typo};
        $text =~ s/^(\s*)\Q$w\E /$1$typo /m
            or $text =~ s/^(\s*)default_type /$1default_tpye /m;
    }
    if ($g->{missing_brace}) {
        my @l = split /\n/, $text, -1;
        my @closers = grep { $l[$_] =~ /^\s+}\s*$/ } 0 .. $#l;
        splice @l, $g->{r}->pick(@closers), 1 if @closers;
        $text = join "\n", @l;
    }
    return $text;
}

sub _captures {
    my ($g) = @_;
    my %c;
    for my $t (@{$g->{tables}}) {
        $c{$_->{cap}} = 1 for grep { $_->{cap} } @{$t->{rules}};
    }
    return sort keys %c;
}

sub _render_backends {
    my ($g) = @_;
    return (
        '    server {',
        '        listen 127.0.0.1:$TEST_NGINX_PORT2;',
        '        location / { return 200 "b2 $host $request_uri\n"; }',
        '        location = /auth-ok { return 204; }',
        '        location = /auth-no { return 401; }',
        '        location /err/ { return 503 "b2 failing\n"; }',
        '    }',
        '    server {',
        '        listen 127.0.0.1:$TEST_NGINX_PORT3;',
        '        location / { return 200 "b3 $host $request_uri\n"; }',
        '        location = /auth-ok { return 204; }',
        '    }',
    );
}

sub _render_upstream {
    my ($g, $u) = @_;
    return ("    upstream $u->{name} {", (map { "        $_" } @{$u->{lines}}), '    }');
}

sub _render_balancer {
    my ($g, $b) = @_;
    return ("    upstream $b->{name} {",
            '        dynroute_balancer' . ($b->{fallback} ? ' fallback=primary' : '')
                . ($b->{resend} ? ' resend=on' : '') . ';',
            ($b->{extra} ? ("        $b->{extra}") : ()),
            '    }');
}

sub _render_zone {
    my ($g) = @_;
    my $z = $g->{zone};
    my $l = "    dynroute_zone $z->{name} $z->{size}";
    $l .= " state=$g->{dir}/dynroute.state" if $z->{state};
    $l .= " metrics=$z->{metrics}" if $z->{metrics};
    return ("$l;", ($z->{twice} ? ('    dynroute_zone ' . ($z->{twice} eq 'same' ? $z->{name} : 'other')
                                   . ' 1m;') : ()));
}

sub _render_rollout {
    my ($g, $ro) = @_;
    return ("    dynroute_rollout $ro->{name} {",
            (map { "        variant $_->{name} $_->{up} $_->{weight};" } @{$ro->{variants}}),
            (map { "        $_" } @{$ro->{lines}}),
            '    }');
}

sub _render_table {
    my ($g, $t) = @_;
    my @l = ("    dynroute_table $t->{name}"
             . ($t->{key} ? ' ' . ($t->{key_text} // "key=$t->{key}{var}") : '') . ' {');
    my @rules = map { "        $_->{pat} $_->{target};" } @{$t->{rules}};
    push @rules, "        ip $t->{ip};" if defined $t->{ip};
    push @rules, "        default $t->{default};" if defined $t->{default};
    if (my $inc = $t->{include}) {
        $g->{files}{$inc->{file}} = join '', map { "$_->{pat} $_->{target};\n" } @{$inc->{rules}};
        push @rules, "        include $inc->{file};";
    }
    # the order of regexes matters, the rest does not
    my @re = grep { /^\s+~/ } @rules;
    my @other = $g->{r}->shuffle(grep { !/^\s+~/ } @rules);
    push @l, @other, @re, '    }';
    return @l;
}

sub _render_cors {
    my ($g, $c, $ind) = @_;
    return () unless $c;
    my @l = ("${ind}dynroute_cors on;");
    push @l, "${ind}dynroute_cors_origins " . join(' ', @{$c->{origins}}) . ';' if $c->{origins};
    push @l, "${ind}dynroute_cors_credentials on;" if $c->{credentials};
    push @l, "${ind}dynroute_cors_methods " . join(' ', @{$c->{methods}}) . ';' if $c->{methods};
    push @l, "${ind}dynroute_cors_headers " . join(' ', @{$c->{headers}}) . ';' if $c->{headers};
    push @l, "${ind}dynroute_cors_max_age $c->{max_age};" if defined $c->{max_age};
    return @l;
}

sub _render_location {
    my ($g, $loc, $ind) = @_;
    my @l = ("${ind}location $loc->{match} {");
    push @l, map { "$ind    $_" } @{$loc->{lines}};
    push @l, $g->_render_cors($loc->{cors}, "$ind    ");
    push @l, $g->_render_location($_, "$ind    ") for @{$loc->{children} || []};
    push @l, "$ind}";
    return @l;
}

sub _render_server {
    my ($g, $s) = @_;
    my @l = ('    server {',
             '        listen 127.0.0.1:$TEST_NGINX_SERVER_PORT' . ($s->{main} ? ' default_server' : '') . ';',
             ($s->{main} && $g->{v6} && $g->{opt}{ipv6} ? ('        listen [::1]:$TEST_NGINX_SERVER_PORT;') : ()),
             '        server_name ' . join(' ', @{$s->{names}}) . ';');
    push @l, "        dynroute $s->{dynroute};" if $s->{dynroute};
    push @l, '        set $srv_early $dynroute_upstream$dynroute_rule;' if $s->{server_set};
    push @l, '        if ($http_x_srv) { return 200 "server level: $dynroute_upstream $dynroute_rule $dynroute_variant\n"; }'
        if $s->{server_if};
    push @l, $g->_render_cors($s->{cors}, '        ');
    push @l, "        error_page 404 = $s->{error_page};" if $s->{error_page};
    my @locs = @{$s->{locations}};
    push @l, $g->_render_location($_, '        ') for @locs;
    push @l, '    }';
    return @l;
}

# ---- stream{} -----------------------------------------------------------------

# The near misses of the stream part (docs/ngx_stream_dynroute_module.md),
# drawn for a share of the configurations whose http part is valid.
our %STREAM_FAMILIES = (
    'stream-http-upstream'        => 2,  # a stream table names an http upstream
    'stream-unknown-upstream'     => 1,
    'stream-balancer-with-server' => 2,  # dynroute_balancer with server, a
                                         # method or a zone
    'stream-balancer-target'      => 2,  # a table or a variant names one
    'stream-bad-regex'            => 1,
    'stream-unknown-key'          => 2,  # key= or a rollout's key: unknown,
                                         # $dynroute_*, not a variable
    'stream-ip-rule'              => 1,
    'stream-rollout-http-only'    => 1,  # header, cookie, sticky_cookie...
    'stream-weights'              => 1,
    'stream-unknown-table'        => 1,
    'stream-balancer-without-dynroute' => 1,
);

my @S_UPSTREAMS = qw(st_a st_b st_c st_d);
my @S_ROLLOUTS = qw(app mailr tls_split);
my @S_TABLES = qw(sni edge tls);
my @S_CAPTURES = qw(stenant sregion);
# the stream ports: the backends (two TLS, one plain), then the fronts
my %S_BACKEND = (tls1 => '$TEST_NGINX_SPORT0', tls2 => '$TEST_NGINX_SPORT1',
                 plain => '$TEST_NGINX_SPORT2');
our $STREAM_PORTS = 6;

sub _stream_model {
    my ($g) = @_;
    my $r = $g->{r};
    my $st = { rng => $r, ups => [], bals => [], rolls => [], tables => [], servers => [],
               family => '' };
    $g->{stream} = $st;
    if ($g->{family} eq 'valid' && $r->chance(0.3)) {
        my @f = sort keys %STREAM_FAMILIES;
        my $total = 0;
        $total += $STREAM_FAMILIES{$_} for @f;
        my $n = $r->below($total);
        for my $f (@f) {
            if ($n < $STREAM_FAMILIES{$f}) { $st->{family} = $f; last }
            $n -= $STREAM_FAMILIES{$f};
        }
        $g->{family} = $st->{family};
    }
    my $fam = $st->{family};

    for my $name ($r->some($r->range(2, 4), @S_UPSTREAMS)) {
        my @l;
        my $method = $r->pick((undef) x 5, 'hash $remote_addr;',
                              'hash $ssl_preread_server_name consistent;', 'least_conn;',
                              'random;', 'random two least_conn;');
        push @l, $method if defined $method;
        for my $b ($r->some($r->range(1, 3), 'tls1', 'tls1', 'tls2', 'plain', 'dead')) {
            my $srv = $b eq 'dead' ? 'server 127.0.0.1:1 max_fails=1'
                                   : "server 127.0.0.1:$S_BACKEND{$b}";
            $srv .= ' weight=' . $r->range(1, 5) if $r->chance(0.2);
            $srv .= ' max_fails=2 fail_timeout=5s' if $b ne 'dead' && $r->chance(0.15);
            push @l, "$srv;";
        }
        push @l, "server 127.0.0.1:$S_BACKEND{plain} backup;"
            if $r->chance(0.15) && (!defined $method || $method eq 'least_conn;');
        push @l, "zone ${name}_z 64k;" if $r->chance(0.1);
        push @{$st->{ups}}, { name => $name, lines => \@l };
    }
    my @upn = map { $_->{name} } @{$st->{ups}};
    my $nbal = $r->pick(0, 1, 1, 2);
    $nbal ||= 1 if $fam =~ /balancer/;
    $st->{bals} = [ map { { name => $_ } } ('st_pass', 'st_pass2')[0 .. $nbal - 1] ];

    for my $name ($r->some($r->pick(0, 0, 1, 2), @S_ROLLOUTS)) {
        push @{$st->{rolls}}, $g->_stream_rollout($name);
    }
    push @{$st->{rolls}}, $g->_stream_rollout('app')
        if !@{$st->{rolls}} && $fam =~ /^stream-(rollout|weights)/;

    my $seq = 0;
    for my $name ($r->some($r->range(1, 2), @S_TABLES)) {
        my @rules;
        for (1 .. $r->range(1, 5)) {
            my $k = ++$seq;
            my $kind = $r->pick(qw(exact exact leading dot trailing regex regex_caseless));
            my ($pat, $sni);
            if ($kind eq 'exact') {
                ($pat, $sni) = ("s$k.tls.test", "s$k.tls.test");
            } elsif ($kind eq 'leading') {
                ($pat, $sni) = ("*.s$k.tls.test", "a.b.s$k.tls.test");
            } elsif ($kind eq 'dot') {
                ($pat, $sni) = (".s$k.tls.test", $r->pick("s$k.tls.test", "w.s$k.tls.test"));
            } elsif ($kind eq 'trailing') {
                ($pat, $sni) = ("s$k.tls.*", "s$k.tls.org");
            } elsif ($kind eq 'regex') {
                my $cap = $r->pick(@S_CAPTURES);
                $st->{caps}{$cap} = 1;
                ($pat, $sni) = ("~^(?<$cap>[a-z]+)\\.s$k\\.tls\\.test\$", "acme.s$k.tls.test");
            } else {
                ($pat, $sni) = ("~*^API\\d*\\.s$k\\.", "api3.s$k.tls.test");
            }
            push @rules, { pat => $pat, sni => $sni, target => $g->_stream_target };
        }
        push @rules, { pat => '\\default', sni => 'default', target => $g->_stream_target }
            if $r->chance(0.1);
        my $t = { name => $name, rules => \@rules,
                  default => $r->chance(0.75) ? $g->_stream_target : undef };
        if ($r->chance(0.2)) {
            $t->{key} = '$sni_key';
            $st->{map} = 1;
        }
        if ($r->chance(0.1)) {
            my $k = ++$seq;
            $t->{include} = { file => "$g->{dir}/stream-$name.rules",
                              rules => [ { pat => "inc$k.tls.test", sni => "inc$k.tls.test",
                                           target => $g->_stream_target } ] };
        }
        push @{$st->{tables}}, $t;
    }

    for my $i (0 .. $r->range(0, 2)) {
        my $t = $r->pick(@{$st->{tables}});
        my @pass = (('proxy_pass $dynroute_upstream;') x 3,
                    (map { ("proxy_pass $_->{name};") x 2 } @{$st->{bals}}),
                    'return "$dynroute_upstream|$dynroute_rule|$dynroute_variant\n";',
                    'proxy_pass ' . $r->pick(@upn) . ';');
        push @{$st->{servers}}, {
            port => 3 + $i, table => $t,
            preread => $r->chance(0.9),
            preread_timeout => $r->pick('300ms', '1s'),
            pass => $r->pick(@pass),
            log => $r->chance(0.4),
        };
    }

    # the near miss
    my $t0 = $st->{tables}[0];
    my $ro0 = $st->{rolls}[0];
    if ($fam eq 'stream-http-upstream') {
        my $up = $g->{ups}[0]{name};
        if ($ro0 && $r->chance(0.3)) {
            $ro0->{variants}[-1]{up} = $up;
        } elsif ($r->chance(0.5) || !@{$t0->{rules}}) {
            $t0->{default} = $up;
        } else {
            $r->pick(@{$t0->{rules}})->{target} = $up;
        }
    } elsif ($fam eq 'stream-unknown-upstream') {
        $t0->{default} = $r->pick('st_x', 'st-a', 'sta', 'nosuch');
    } elsif ($fam eq 'stream-balancer-with-server') {
        $st->{bals}[0]{extra} = $r->pick("server 127.0.0.1:$S_BACKEND{tls1};", 'least_conn;',
                                         'zone bz 64k;', 'hash $remote_addr;', 'random;');
    } elsif ($fam eq 'stream-balancer-target') {
        if ($ro0 && $r->chance(0.4)) {
            $ro0->{variants}[0]{up} = $st->{bals}[0]{name};
        } else {
            $t0->{default} = $st->{bals}[0]{name};
        }
    } elsif ($fam eq 'stream-bad-regex') {
        push @{$t0->{rules}}, { pat => $r->pick('~^(a', '~*[z-a]', '~^(?<1a>x)', '~(?<stenant>a)(?<stenant>b)'),
                                target => $upn[0] };
    } elsif ($fam eq 'stream-unknown-key') {
        if ($ro0 && $r->chance(0.4)) {
            $ro0->{lines} = [ (grep { !/^(key|include)\b/ } @{$ro0->{lines}}),
                              'key ' . $r->pick('$nosuch', '$dynroute_variant', '$dynroute_upstream',
                                                'sni', '$http_host') . ';' ];
        } else {
            $t0->{key_text} = 'key=' . $r->pick('$nosuch', '$dynroute_upstream', '$dynroute_rule',
                                                'sni', '', '$ssl_preread_server_name$remote_addr',
                                                '$http_x_tenant', '$1');
        }
    } elsif ($fam eq 'stream-ip-rule') {
        $t0->{ip} = $upn[0];
    } elsif ($fam eq 'stream-rollout-http-only') {
        push @{$ro0->{lines}}, $r->pick('header X-Canary;', 'cookie canary;', 'override_from all;',
                                        'sticky_cookie dr;', "primary $ro0->{variants}[0]{name};",
                                        'guard error_rate<5%;');
    } elsif ($fam eq 'stream-weights') {
        $ro0->{variants}[0]{weight} = $r->pick('101%', '0.125%', '5', '-1%');
        $ro0->{variants}[$_]{weight} = '*' for 1 .. $#{$ro0->{variants}};
    } elsif ($fam eq 'stream-unknown-table') {
        $st->{servers}[0]{table} = { name => $r->pick('nosuch', 'snii', 'sni2') };
    } elsif ($fam eq 'stream-balancer-without-dynroute') {
        $st->{servers}[0]{table} = undef;
        $st->{servers}[0]{pass} = "proxy_pass $st->{bals}[0]{name};";
    }
}

sub _stream_target {
    my ($g) = @_;
    my $st = $g->{stream};
    my @t = ((map { $_->{name} } @{$st->{ups}}) x 2, map { $_->{name} } @{$st->{rolls}});
    return $g->{r}->pick(@t);
}

sub _stream_rollout {
    my ($g, $name) = @_;
    my $r = $g->{r};
    my $st = $g->{stream};
    my $n = $r->pick(2, 2, 3);
    my @vn = $r->some($n, @VARIANT_NAMES);
    my @w = $g->_weights($n);
    my @variants = map { { name => $vn[$_], up => $r->pick(map { $_->{name} } @{$st->{ups}}),
                           weight => $w[$_] } } 0 .. $n - 1;
    my @l;
    if ($r->chance(0.5)) {
        my @k = $r->some($r->range(1, 2), '$ssl_preread_server_name', '$remote_addr',
                         '$sni_key', '$server_port');
        $st->{map} = 1 if grep { $_ eq '$sni_key' } @k;
        push @l, 'key ' . join(' ', @k) . ';';
    }
    for (1 .. $r->pick(0, 0, 1, 2)) {
        push @l, 'source ' . $r->pick('127.0.0.1', '127.0.0.0/8', '10.0.0.0/8', '::1',
                                      '192.0.2.0/24', '::ffff:127.0.0.0/104')
            . ' ' . $r->pick(@vn) . ';';
    }
    if (@l && $r->chance(0.1)) {
        my $file = "$g->{dir}/stream-rollout-$name.conf";
        $g->{files}{$file} = join("\n", @l) . "\n";
        @l = ("include $file;");
    }
    return { name => $name, variants => \@variants, lines => \@l };
}

sub _stream_render {
    my ($g) = @_;
    my $st = $g->{stream};
    my $certs = $g->{opt}{certs} || ['/nonexistent/tls1.test', '/nonexistent/tls2.test'];
    my @caps = sort keys %{$st->{caps} || {}};
    my @o = ('stream {');
    push @o, "    log_format sdr '\$remote_addr \$ssl_preread_server_name "
        . "\$dynroute_upstream|\$dynroute_rule|\$dynroute_variant" . join('', map { "|\$$_" } @caps) . "';"
        if grep { $_->{log} } @{$st->{servers}};
    push @o, '    map $ssl_preread_server_name $sni_key { default $ssl_preread_server_name; '
        . 'alias.tls.test s1.tls.test; "~^via-(?<svia>.+)$" $svia; }' if $st->{map};
    # the backends: TLS with their own certificates, and plain TCP
    for my $i (0, 1) {
        push @o, '    server {',
            '        listen 127.0.0.1:$TEST_NGINX_SPORT' . $i . ' ssl;',
            "        ssl_certificate $certs->[$i].crt;",
            "        ssl_certificate_key $certs->[$i].key;",
            '        ssl_handshake_timeout 2s;',
            '        return "tls' . ($i + 1) . ' $ssl_server_name\n";',
            '    }';
    }
    push @o, '    server { listen 127.0.0.1:$TEST_NGINX_SPORT2; return "plain\n"; }', '';
    my @blocks;
    push @blocks, map { [ "    upstream $_->{name} {", (map { "        $_" } @{$_->{lines}}), '    }' ] }
        @{$st->{ups}};
    push @blocks, map { [ "    upstream $_->{name} {", '        dynroute_balancer;',
                          ($_->{extra} ? ("        $_->{extra}") : ()), '    }' ] } @{$st->{bals}};
    push @blocks, map { my $ro = $_;
                        [ "    dynroute_rollout $ro->{name} {",
                          (map { "        variant $_->{name} $_->{up} $_->{weight};" } @{$ro->{variants}}),
                          (map { "        $_" } @{$ro->{lines}}), '    }' ] } @{$st->{rolls}};
    for my $t (@{$st->{tables}}) {
        my @rules = map { "        $_->{pat} $_->{target};" } @{$t->{rules}};
        push @rules, "        ip $t->{ip};" if defined $t->{ip};
        push @rules, "        default $t->{default};" if defined $t->{default};
        if (my $inc = $t->{include}) {
            $g->{files}{$inc->{file}} = join '', map { "$_->{pat} $_->{target};\n" } @{$inc->{rules}};
            push @rules, "        include $inc->{file};";
        }
        my $key = $t->{key_text} // ($t->{key} ? "key=$t->{key}" : undef);
        push @blocks, [ "    dynroute_table $t->{name}" . (defined $key ? " $key" : '') . ' {',
                        (grep { !/^\s+~/ } @rules), (grep { /^\s+~/ } @rules), '    }' ];
    }
    for my $s (@{$st->{servers}}) {
        push @blocks, [ '    server {',
            "        listen 127.0.0.1:\$TEST_NGINX_SPORT$s->{port};",
            ($s->{preread} ? ('        ssl_preread on;') : ()),
            "        preread_timeout $s->{preread_timeout};",
            '        proxy_timeout 1s;', '        proxy_connect_timeout 1s;',
            ($s->{table} ? ("        dynroute $s->{table}{name};") : ()),
            ($s->{log} ? ('        access_log $TEST_NGINX_PREFIX/logs/stream.log sdr;') : ()),
            "        $s->{pass}",
            '    }' ];
    }
    @blocks = $st->{rng}->shuffle(@blocks) if $st->{rng}->chance(0.2);
    push @o, @$_ for @blocks;
    push @o, '}';
    return @o;
}

# A TLS 1.2 ClientHello (ECDHE with P-256 and ECDSA, which the backends'
# certificates take), with the server name $sni, or none when undef.
sub client_hello {
    my ($sni) = @_;
    my $ext = '';
    if (defined $sni) {
        my $name = pack('Cn', 0, length $sni) . $sni;
        my $list = pack('n', length $name) . $name;
        $ext .= pack('nn', 0, length $list) . $list;
    }
    $ext .= pack('nnnnn', 10, 6, 4, 0x0017, 0x001d);          # supported_groups
    $ext .= pack('nnCC', 11, 2, 1, 0);                        # ec_point_formats
    $ext .= pack('nnnnnn', 13, 8, 6, 0x0403, 0x0804, 0x0401); # signature_algorithms
    my $ciphers = pack('n*', 0xc02b, 0xc02f, 0xc02c, 0xc030, 0x009c, 0x002f);
    my $body = pack('n', 0x0303) . ('R' x 32) . pack('C', 0)
        . pack('n', length $ciphers) . $ciphers . pack('CC', 1, 0)
        . pack('n', length $ext) . $ext;
    my $hs = pack('C', 1) . substr(pack('N', length $body), 1) . $body;
    return pack('Cnn', 0x16, 0x0301, length $hs) . $hs;
}

# The connections to each front: a ClientHello whose name hits each rule,
# none, odd names, garbage, a ClientHello cut short, a connection closed at
# once.  Each: { name, sport (the index of its port), bytes, shut (half-close
# after sending), hold (keep it open: preread_timeout ends it), close }.
sub _stream_connections {
    my ($g) = @_;
    my $r = $g->{r};
    my $st = $g->{stream};
    my @c;
    for my $s (@{$st->{servers}}) {
        my $t = $s->{table};
        my @snis = $t && $t->{rules}
            ? map { $_->{sni} } @{$t->{rules}}, ($t->{include} ? @{$t->{include}{rules}} : ())
            : ();
        my $s0 = $snis[0] // 's1.tls.test';
        push @snis, 'nomatch.tls.test', undef,
            $r->some(3, '', uc $s0, "$s0.", 'k' x 300, "a b.tls.test", "a\x01b.tls.test",
                     "via-$s0", 'alias.tls.test', "$s0..", '*', "\xff\xfe.tls.test",
                     'x' x 70);
        my $port = $s->{port};
        for my $n (@snis) {
            push @c, { name => 'front ' . ($port - 2) . ' ClientHello '
                           . (defined $n ? "SNI \"" . substr($n, 0, 40) . '"' : 'without SNI'),
                       sport => $port, bytes => client_hello($n), shut => $r->chance(0.3) };
        }
        my $hello = client_hello($s0);
        my $cut = $r->range(1, length($hello) - 1);
        push @c, { name => 'front ' . ($port - 2) . " ClientHello cut at $cut bytes",
                   sport => $port, bytes => substr($hello, 0, $cut), shut => 1 };
        my $garbage = join '', map { chr $r->below(256) } 1 .. $r->range(1, 64);
        push @c, { name => 'front ' . ($port - 2) . ' garbage', sport => $port,
                   bytes => $r->pick($garbage, "GET / HTTP/1.0\r\n\r\n", "\x16\x03\x01\xff\xff" . $garbage,
                                     "\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"),
                   shut => 1 };
        push @c, { name => 'front ' . ($port - 2) . ' closed at once', sport => $port,
                   bytes => '', close => 1 };
    }
    # now and then a ClientHello that stops and stays open: preread_timeout,
    # then proxy_timeout or the backend's ssl_handshake_timeout end it
    if ($r->chance(0.15)) {
        my $s = $r->pick(@{$st->{servers}});
        push @c, { name => 'front ' . ($s->{port} - 2) . ' ClientHello cut, kept open',
                   sport => $s->{port}, bytes => substr(client_hello('s1.tls.test'), 0, 11),
                   hold => 1 };
    }
    $g->{connections} = \@c;
}

# ---- the requests -----------------------------------------------------------

# Each request: { name, raw } (bytes to send as they are) or
# { name, method, path, host, headers => [[name, value]...], body }.
sub _req {
    my ($g, %r) = @_;
    push @{$g->{requests}}, \%r;
}

sub _hosts {
    my ($g) = @_;
    my @h;
    for my $t (grep { !$_->{key} } @{$g->{tables}}) {
        push @h, map { $_->{host} } grep { defined $_->{host} } @{$t->{rules}};
        push @h, map { $_->{host} } @{$t->{include}{rules}} if $t->{include};
    }
    my %seen;
    return grep { !$seen{$_}++ } @h;
}

sub _requests {
    my ($g) = @_;
    my $r = $g->{r};
    my $main = $g->{servers}[0];
    my @rule_hosts = $g->_hosts;
    my @ip_hosts = ('127.0.0.1', '10.0.0.1:8080', '[::1]', '[2001:db8::1]:443',
                    '[::ffff:10.0.0.1]', '0.0.0.0');
    my @odd_hosts = ('A.EXAMPLE.COM.', 'nomatch.example.org', '1password.com',
                     '10.0.0.256', '010.0.0.1', 'x' x 250 . '.example.com',
                     join('.', ('abcdefghij') x 25), '%41.example.com', 'a_b.example.com',
                     'default', 'ip', 'xn--bcher-kva.example', '[fe80::1%25eth0]',
                     'R1.EXAMPLE.COM:8080', 'localhost', "b\xc3\xbccher.example.com",
                     '.example.com', '-.example.com', '[::1]:99999', '[::1', '1.2.3.4:', ':80',
                     '1.2.3.4.5', '[::1]x', '255.255.255.255:0');
    my @paths;
    my %extra;      # headers a location's paths need to reach their branches
    for my $loc (@{$main->{locations}}, map { @{$_->{children} || []} } @{$main->{locations}}) {
        push @paths, @{$loc->{paths} || []};
        for my $p (@{$loc->{paths} || []}) {
            $extra{$p} = [['X-If', '1']] if $loc->{if_header} && $r->chance(0.5);
            $extra{$p} = [['X-Real-IP', $r->pick('10.9.8.7', '2001:db8::9', 'bogus')]]
                if $loc->{realip_header};
        }
    }

    # every host on /
    $g->_req(name => "host $_", method => 'GET', path => '/', host => $_)
        for @rule_hosts, $r->some(3, @ip_hosts), $r->some(5, @odd_hosts);
    # every location, with a rule host, an IP host or an unknown host
    for my $p (@paths) {
        my $h = $r->pick(@rule_hosts, $r->pick(@ip_hosts), 'nope.example.org');
        $g->_req(name => "path $p host $h", method => 'GET', path => $p, host => $h,
                 headers => $extra{$p});
    }
    # virtual servers
    for my $s (@{$g->{servers}}[1 .. $#{$g->{servers}}]) {
        $g->_req(name => "vhost $s->{names}[0]", method => 'GET', path => $_,
                 host => $s->{names}[0]) for '/', '/exact', '/n/deep/x';
    }
    # odd requests
    my $h1 = @rule_hosts ? $rule_hosts[0] : 'r.example.com';
    $g->_req(name => 'HTTP/1.0 without Host', raw => "GET / HTTP/1.0\r\n\r\n");
    $g->_req(name => 'absolute URI', raw => "GET http://$h1/abs HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n");
    $g->_req(name => 'empty Host', raw => "GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n");
    $g->_req(name => 'two Hosts', raw => "GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\nConnection: close\r\n\r\n");
    $g->_req(name => 'Host a..b', raw => "GET / HTTP/1.1\r\nHost: a..b\r\nConnection: close\r\n\r\n");
    $g->_req(name => 'Host ..', raw => "GET / HTTP/1.1\r\nHost: ..\r\nConnection: close\r\n\r\n");
    $g->_req(name => 'huge Host', raw => "GET / HTTP/1.1\r\nHost: " . ('h' x 9000) . ".example.com\r\nConnection: close\r\n\r\n");
    $g->_req(name => 'huge header', method => 'GET', path => '/', host => $h1,
             headers => [['X-Big', 'v' x 12000]]);
    $g->_req(name => 'HEAD', method => 'HEAD', path => '/', host => $h1);
    $g->_req(name => "server-level if, host $_", method => 'GET', path => '/', host => $_,
             headers => [['X-Srv', '1']]) for $h1, '10.0.0.9';
    $g->_req(name => 'POST with body', method => 'POST', path => '/', host => $h1,
             headers => [['Content-Type', 'text/plain']], body => 'x' x 3000);
    $g->_req(name => 'keep-alive pipeline',
             raw => "GET / HTTP/1.1\r\nHost: $h1\r\n\r\nGET /n/ HTTP/1.1\r\nHost: 10.0.0.1\r\nConnection: close\r\n\r\n");

    # overrides, realip, stickiness
    for my $ro (@{$g->{rolls}}) {
        my @vals = ((map { $_->{name} } @{$ro->{variants}}), 'always', 'never', 'ALWAYS',
                    'zzz', '', 'x' x 300);
        my $host = $g->_host_for_target($ro->{name}) // $h1;
        for my $v ($r->some(3, @vals)) {
            $g->_req(name => "rollout $ro->{name} header $v", method => 'GET', path => '/',
                     host => $host, headers => [[$ro->{header} // 'X-Canary', $v]]);
        }
        for my $v ($r->some(2, @vals)) {
            $g->_req(name => "rollout $ro->{name} cookie $v", method => 'GET', path => '/',
                     host => $host, headers => [['Cookie', ($ro->{cookie} // 'canary') . "=$v; uid=u1"]]);
        }
        $g->_req(name => "rollout $ro->{name} key $_", method => 'GET', path => '/',
                 host => $host, headers => [['X-User', "user$_"], ['Cookie', "uid=$_"]])
            for 1 .. 2;
        $g->_req(name => "rollout $ro->{name} realip", method => 'GET', path => '/',
                 host => $host, headers => [['X-Forwarded-For', $_]])
            for $r->pick('10.1.2.3', '2001:db8::7', 'garbage');
        if ($ro->{sticky}) {
            $g->_req(name => "rollout $ro->{name} sticky first visit", method => 'GET', path => '/',
                     host => $host, save_cookies => 1);
            $g->_req(name => "rollout $ro->{name} sticky return visit", method => 'GET', path => '/',
                     host => $host, send_saved_cookies => 1);
            $g->_req(name => "rollout $ro->{name} sticky $_", method => 'GET', path => '/',
                     host => $host, headers => [['Cookie', "$ro->{sticky}=$_"]])
                for $r->some(2, 'AAAAAAAAAAAAAAAA', 'zz', '', 'x' x 500);
        }
    }

    # CORS
    for my $p ('/', (grep { $_ ne '/' } @paths) ? $r->pick(grep { $_ ne '/' } @paths) : ()) {
        for my $o ($r->some(2, 'https://app.example.com', 'https://evil.example', 'null')) {
            $g->_req(name => "preflight $p $o", method => 'OPTIONS', path => $p, host => $h1,
                     headers => [['Origin', $o], ['Access-Control-Request-Method', 'PUT'],
                                 ['Access-Control-Request-Headers', 'content-type, x-a']]);
            $g->_req(name => "CORS GET $p $o", method => 'GET', path => $p, host => $h1,
                     headers => [['Origin', $o]]);
        }
    }

    $g->_key_requests($_) for grep { $_->{key} } @{$g->{tables}};

    $g->_api_requests($main->{api}) if $main->{api};

    # a few of them again from ::1, where the server listens there
    if ($g->{v6}) {
        my @pick = grep { !defined $_->{raw} && $_->{name} =~ /^(?:host |rollout |path )/ }
                   @{$g->{requests}};
        $g->_req(%$_, name => "from ::1: $_->{name}", v6 => 1) for $r->some(8, @pick);
    }
}

# The requests of a key= table, to its own location: the value of each rule,
# a value nothing matches (the default), no value at all, and odd values
# (empty, 300 bytes, a space, control bytes, a trailing dot, uppercase).
sub _key_requests {
    my ($g, $t) = @_;
    my $r = $g->{r};
    my $k = $t->{key};
    my @vals = map { [ "rule $_->{pat}", $_->{host} ] } grep { defined $_->{host} }
               @{$t->{rules}}, ($t->{include} ? @{$t->{include}{rules}} : ());
    my $v0 = @vals ? $vals[0][1] : 'r.example.com';
    push @vals, [ 'the default', 'nomatch-k.example.org' ];
    push @vals, map { [ 'odd', $_ ] } $r->some(3, '', 'k' x 300, 'a b', "a\x01b", "t\tx",
                                                "$v0.", uc $v0, "$v0..", '*', '~', 'ip',
                                                "\x7f\xff", '.');
    for my $pv (@vals) {
        my ($what, $v) = @$pv;
        my %q = $g->_key_req($t, "key $t->{name} $k->{how} $what " . substr($v, 0, 40), $v);
        $g->_req(%q);
        # the capture is unset in the other locations of the table
        $g->_req(%q, name => "$q{name}, at /", path => '/' . _esc($v))
            if $k->{how} eq 'capture' && $what eq 'the default';
    }
    $g->_req(name => "key $t->{name} $k->{how} none", method => 'GET',
             path => "/key-$t->{name}/y", host => $r->pick('localhost', $v0));
}

sub _esc {
    (my $s = $_[0]) =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

# A request to the location of key= table $t with the key's value $v.
sub _key_req {
    my ($g, $t, $name, $v) = @_;
    my $k = $t->{key};
    my $base = "/key-$t->{name}/";
    my %q = (name => $name, method => 'GET', path => "${base}x", host => 'localhost');
    if ($k->{how} eq 'header') {
        $q{headers} = [[ $k->{header}, $v ]];
    } elsif ($k->{how} eq 'map') {
        $q{headers} = [[ $k->{header}, ($g->{r}->chance(0.3) ? "via-$v" : $v) ]];
    } elsif ($k->{how} eq 'arg') {
        $q{path} = "${base}x?a=1&t=" . _esc($v);
    } elsif ($k->{how} eq 'cookie') {
        $q{headers} = [[ 'Cookie', "uid=u1; tenant=$v" ]];
    } else {
        $q{path} = $base . _esc($v);
    }
    return %q;
}

# a host that a table rule sends to $target, if there is one
sub _host_for_target {
    my ($g, $target) = @_;
    for my $t (grep { !$_->{key} } @{$g->{tables}}) {
        for my $rule (@{$t->{rules}}) {
            return $rule->{host} if $rule->{target} eq $target && defined $rule->{host};
        }
        return 'nomatch.example.org' if defined $t->{default} && $t->{default} eq $target;
    }
    return undef;
}

sub _api_requests {
    my ($g, $api) = @_;
    my $p = $api->{prefix};
    my $r = $g->{r};
    my @json = (['Content-Type', 'application/json']);
    my $get = sub { $g->_req(name => "API GET $_[0]", method => 'GET', path => $_[0], host => 'localhost') };
    $get->($p);
    $get->("${p}hosts");
    $get->("${p}rollouts/$_->{name}") for @{$g->{rolls}};
    $get->("${p}rollouts/nosuch");
    $get->("${p}$_") for qw(metrics stats ui fleet hosts/nosuch.example.com nosuch);
    $get->(substr($p, 0, -1));      # the prefix without its slash
    $get->("$p$_") for $r->some(4, 'rollouts/', 'hosts/', 'hosts/%41.example.com', 'hosts/a%00b',
                                'hosts/%2e%2e', 'hosts?x=1', '../' . substr($p, 1) . 'hosts',
                                'rollouts/' . ('r' x 300), 'hosts/' . ('h' x 3000),
                                'rollouts/%FF', 'metrics/', 'stats?x');
    # what web pages send (issue 21, finding 4): a cross-site form, a
    # rebound name, a JSON write without a type
    $g->_req(name => 'API cross-site form', method => 'POST', path => "${p}drain",
             host => 'localhost', headers => [['Origin', 'https://evil.example'],
             ['Content-Type', 'application/x-www-form-urlencoded']], body => 'a=1');
    $g->_req(name => 'API rebound Host', method => 'PUT', path => "${p}hosts/rb.example.com",
             host => $r->pick('rebind.attacker.example', 'api.internal', 'edge1.example.com:8080'),
             headers => \@json, body => qq({"target":"$g->{ups}[0]{name}"}));
    $g->_req(name => 'API Origin', method => 'GET', path => $p, host => 'localhost',
             headers => [['Origin', $r->pick('null', 'https://ops.example.com', 'http://localhost',
                                             'https://x.ops.example.com', "\x01")]]);
    $g->_req(name => 'API text/plain write', method => 'POST', path => "${p}ready",
             host => 'localhost', headers => [['Content-Type', 'text/plain']], body => '{}');
    for my $m ($r->some(2, 'HEAD', 'OPTIONS', 'DELETE', 'TRACE')) {
        $g->_req(name => "API $m $p", method => $m, path => $r->pick($p, "${p}metrics", "${p}hosts"),
                 host => 'localhost');
    }
    return unless $api->{write};

    # bodies the JSON parser and the checks must refuse calmly
    my $ro0 = $g->{rolls}[0] ? $g->{rolls}[0]{name} : 'nosuch';
    my @bodies = (
        ['PUT', 'hosts/deep.example.com', '[' x 100000],
        ['PUT', 'hosts/deep2.example.com', '{"target":' x 50000],
        ['PUT', 'hosts/dup.example.com', '{"target":"nosuch","target":"' . $g->{ups}[0]{name} . '"}'],
        ['PUT', 'hosts/nul.example.com', '{"target":"a\u0000b"}'],
        ['PUT', 'hosts/num.example.com', '{"target":1e999}'],
        ['PUT', 'hosts/arr.example.com', '[]'],
        ['PUT', 'hosts/str.example.com', '"x"'],
        ['PUT', 'hosts/utf.example.com', qq({"target":"\xff\xfe"})],
        ['PATCH', "rollouts/$ro0", '{"weights":{}}'],
        ['PATCH', "rollouts/$ro0", '{"weights":{"a":"12.5%","b":"87.5%"}}'],
        ['PATCH', "rollouts/$ro0", '{"weights":{"x":-1}}'],
        ['PATCH', "rollouts/$ro0", '{"weights":{"x":1e308}}'],
        ['PATCH', "rollouts/$ro0", '{"weights":{"x":18446744073709551616}}'],
        ['PATCH', "rollouts/$ro0", '{"weights":null,"upstreams":[],"primary":7}'],
        ['PATCH', 'hosts', '{"a.example.com":null}'],
        ['PATCH', 'hosts', '{"":{"target":"x"}}'],
        ['PUT', 'fleet', '{"revision":18446744073709551615}'],
        ['PUT', 'fleet', '{"revision":-1,"stale":"yes"}'],
        ['PUT', 'fleet', '{"revision":1e30}'],
        ['POST', 'drain', 'x' x 5000],
    );
    for my $b ($r->some(8, @bodies)) {
        my ($m, $path, $body) = @$b;
        $g->_req(name => "API $m $path with " . substr($body, 0, 40), method => $m,
                 path => "$p$path", host => 'localhost', headers => \@json, body => $body);
    }
    $g->_req(name => 'API PUT over the body limit', method => 'PUT', path => "${p}hosts/big.example.com",
             host => 'localhost', headers => \@json, body => '{"target":"' . ('x' x (1024 * 1024)) . '"}')
        if $r->chance(0.3);
    $g->_req(name => 'API PUT chunked', raw => "PUT ${p}hosts/chunk.example.com HTTP/1.1\r\n"
             . "Host: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
             . "Connection: close\r\n\r\n5\r\n{\"tar\r\n"
             . sprintf('%x', length(qq(get":"$g->{ups}[0]{name}"}))) . "\r\n"
             . qq(get":"$g->{ups}[0]{name}"}) . "\r\n0\r\n\r\n");
    $g->_req(name => 'API If-Match garbage', method => 'PUT', path => "${p}hosts/im.example.com",
             host => 'localhost', headers => [@json, ['If-Match', $r->pick('"abc"', '99999999999999999999999', '*', '"-1"')]],
             body => qq({"target":"$g->{ups}[0]{name}"}));

    # a runtime host for a sample of the names, the refused ones included
    my @ups = map { $_->{name} } @{$g->{ups}};
    my @bals = map { $_->{name} } @{$g->{bals}};
    my @targets = ($r->pick(@ups), (map { $_->{name} } $r->some(1, @{$g->{rolls}})),
                   @bals, (grep { defined } $g->{named}[0]), 'nosuch');
    # runtime hosts apply to a key= table too: its key's value is the host
    my ($keyed) = grep { $_->{key} } @{$g->{tables}};
    my $tt = $keyed && $r->chance(0.5) ? $keyed : $g->{tables}[0];
    my $table = $tt->{name};
    my $routed = (grep { $_->{match} eq '/n/' } @{$g->{servers}[0]{locations}}) ? '/n/x' : '/';
    my $i = 0;
    for my $t (@targets) {
        $i++;
        my $host = "rt$i.example.com";
        my $body = qq({"target":"$t","table":"$table"});
        $g->_req(name => "API PUT host $host -> $t", method => 'PUT', path => "${p}hosts/$host",
                 host => 'localhost', headers => \@json, body => $body);
        $g->_req(name => "runtime host $host", method => 'GET', path => $r->pick('/', $routed),
                 host => $host);
        $g->_req($g->_key_req($tt, "runtime host $host, the key of table $table", $host))
            if $tt->{key};
    }
    $g->_req(name => 'API PATCH hosts', method => 'PATCH', path => "${p}hosts",
             host => 'localhost', headers => \@json,
             body => qq({"bulk1.example.com":{"target":"$targets[0]"},"rt1.example.com":null}));
    $g->_req(name => 'API PUT bad host', method => 'PUT', path => "${p}hosts/10.0.0.1",
             host => 'localhost', headers => \@json, body => qq({"target":"$targets[0]"}));
    $g->_req(name => 'API PUT bad json', method => 'PUT', path => "${p}hosts/x.example.com",
             host => 'localhost', headers => \@json, body => '{"target":');
    for my $ro ($r->some(2, @{$g->{rolls}})) {
        my @v = map { $_->{name} } @{$ro->{variants}};
        my $w = join ',', map { qq("$_":) . (100 / @v) } @v;
        $w = join ',', qq("$v[0]":100), map { qq("$_":0) } @v[1 .. $#v] if 100 % @v;
        my $host = $g->_host_for_target($ro->{name}) // 'nomatch.example.org';
        $g->_req(name => "API PATCH weights $ro->{name}", method => 'PATCH',
                 path => "${p}rollouts/$ro->{name}", host => 'localhost', headers => \@json,
                 body => qq({"weights":{$w}}));
        $g->_req(name => "rollout $ro->{name} after weights", method => 'GET', path => '/', host => $host);
        for my $t (grep { defined } $r->pick(@ups), @bals, $g->{named}[0]) {
            $g->_req(name => "API PATCH upstream $ro->{name}.$v[-1] -> $t", method => 'PATCH',
                     path => "${p}rollouts/$ro->{name}", host => 'localhost', headers => \@json,
                     body => qq({"upstreams":{"$v[-1]":"$t"},"weights":{"$v[-1]":100}}));
            $g->_req(name => "rollout $ro->{name} after upstream $t", method => 'GET', path => '/',
                     host => $host, headers => [[$ro->{header} // 'X-Canary', 'always']]);
        }
        $g->_req(name => "API PATCH primary $ro->{name}", method => 'PATCH',
                 path => "${p}rollouts/$ro->{name}", host => 'localhost', headers => \@json,
                 body => qq({"primary":"$v[-1]"}));
        $g->_req(name => "API DELETE rollout $ro->{name}", method => 'DELETE',
                 path => "${p}rollouts/$ro->{name}", host => 'localhost');
    }
    $g->_req(name => 'API POST drain', method => 'POST', path => "${p}drain", host => 'localhost',
             headers => \@json, body => '{}');
    $g->_req(name => 'readiness while draining', method => 'GET', path => '/ready', host => 'localhost');
    $g->_req(name => 'API POST ready', method => 'POST', path => "${p}ready", host => 'localhost',
             headers => \@json, body => '{}');
    $g->_req(name => 'API PUT fleet', method => 'PUT', path => "${p}fleet", host => 'localhost',
             headers => \@json, body => '{"revision": 42}');
    $g->_req(name => 'API GET after writes', method => 'GET', path => $p, host => 'localhost');
    $g->_req(name => "API GET metrics after writes", method => 'GET', path => "${p}metrics", host => 'localhost');
}

sub _summary {
    my ($g) = @_;
    my $st = $g->{stream};
    return sprintf '%s%s: %d upstreams, %d balancers, %d rollouts, %d tables (%d key=), %d servers%s%s',
        $g->{family}, ($g->{family_detail} ? " ($g->{family_detail})" : ''),
        scalar @{$g->{ups}}, scalar @{$g->{bals}}, scalar @{$g->{rolls}},
        scalar @{$g->{tables}}, scalar(grep { $_->{key} } @{$g->{tables}}),
        scalar @{$g->{servers}}, $g->{zone} ? ', a zone' : '',
        $st ? sprintf(', stream{}: %d upstreams, %d balancers, %d rollouts, %d tables, %d servers',
                      scalar @{$st->{ups}}, scalar @{$st->{bals}}, scalar @{$st->{rolls}},
                      scalar @{$st->{tables}}, scalar @{$st->{servers}}) : '';
}

1;
