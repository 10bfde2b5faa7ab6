=head1 NAME

Test::Nginx::Dynroute::Fixtures - configuration that several test files share

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Nginx::Dynroute;
    use Test::Nginx::Dynroute::Fixtures qw($STABLE_CANARY);

    # blocks that declare no upstream of their own get stable and canary
    add_block_preprocessor(sub {
        my ($block) = @_;
        my $http = $block->http_config // '';
        $block->set_value(http_config => $http . $STABLE_CANARY)
            unless $http =~ /^\s*upstream\s/m;
    });

    my $srv = start_nginx(http_config => $STABLE_CANARY . <<'CONF', ...);

=head1 DESCRIPTION

Text that more than one test file would otherwise write again, each with a
name that says what it is.  A file uses it in a block preprocessor (see
L<Test::Nginx::Dynroute/"Block preprocessors">) or joins it to the
configuration it gives C<start_nginx>.  Nothing is exported unless asked
for.

=over

=item $STABLE_CANARY (http context)

The upstreams C<stable> (port 2) and C<canary> (port 3), and their servers,
which answer C<stable\n> and C<canary\n>:

    upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream canary { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "stable\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "canary\n"; }

=item $RULE_LOCATION (server context)

C<location /> routed by the table C<edge>, answering the rule that matched
(C<$dynroute_rule>), for the tests of what a table matches:

    location / {
        dynroute edge;
        return 200 "$dynroute_rule\n";
    }

=back

=cut

package Test::Nginx::Dynroute::Fixtures;

use strict;
use warnings;

use Exporter ();

our @ISA = ('Exporter');
our @EXPORT_OK = qw($STABLE_CANARY $RULE_LOCATION);

our $STABLE_CANARY = <<'CONF';
    upstream stable { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream canary { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "stable\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "canary\n"; }
CONF

our $RULE_LOCATION = <<'CONF';
    location / {
        dynroute edge;
        return 200 "$dynroute_rule\n";
    }
CONF

1;
