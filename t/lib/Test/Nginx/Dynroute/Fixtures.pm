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

=item tools_node(%options)

The node that C<dynroutectl> and C<dynroute-agent> drive in
F<t/dynroutectl.t>, F<t/fleet/agent.t> and F<t/fleet/tls.t>, as the
arguments of C<start_nginx> (C<< http_config => ..., config => ... >>):
service_a (port 2) and service_b (port 3) with servers that answer their
names; C<dynroute_zone ZONE>; the rollout checkout (stable service_a C<*>,
canary service_b C<0%>, key C<$http_x_user>); the table main
(shop.example.com to checkout, every other host to service_a); then HTTP.
In the server: C<location /> routed by main, with an X-Variant header; API;
C<location = /ready> (readiness); then CONFIG.  The text is in the code
below, with those four words where the options go.

Options: C<zone> (ZONE: the zone's name, size and state file; default
C<routes 4m>), C<http> (HTTP: more of the http context, such as another
service; default none), C<api> (API: the API's location; default
C<location /dynroute/ { allow 127.0.0.1; deny all; dynroute_api write=on; }>),
C<config> (CONFIG: more locations; default none).

=back

=cut

package Test::Nginx::Dynroute::Fixtures;

use strict;
use warnings;

use Exporter ();

our @ISA = ('Exporter');
our @EXPORT_OK = qw($STABLE_CANARY $RULE_LOCATION tools_node);

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

sub tools_node {
    my (%o) = @_;
    my %word = (
        ZONE   => $o{zone} // 'routes 4m',
        HTTP   => $o{http} // '',
        API    => $o{api} // "    location /dynroute/ { allow 127.0.0.1; deny all; "
                           . "dynroute_api write=on; }\n",
        CONFIG => $o{config} // '',
    );
    my ($http, $config) = (<<'CONF', <<'CONF');
    upstream service_a { server 127.0.0.1:$TEST_NGINX_PORT2; }
    upstream service_b { server 127.0.0.1:$TEST_NGINX_PORT3; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT2; return 200 "service_a\n"; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT3; return 200 "service_b\n"; }

    dynroute_zone ZONE;

    dynroute_rollout checkout {
        variant  stable  service_a  *;
        variant  canary  service_b  0%;
        key      $http_x_user;
    }

    dynroute_table main {
        shop.example.com  checkout;
        default           service_a;
    }
HTTP
CONF
    location / {
        dynroute    main;
        proxy_pass  http://$dynroute_upstream;
        add_header  X-Variant $dynroute_variant always;
    }
API
    location = /ready { dynroute_health readiness; }
CONFIG
CONF
    for ($http, $config) {
        s/ ZONE;/ $word{ZONE};/;
        s/^(HTTP|API|CONFIG)\n/$word{$1}/mg;
    }
    return (http_config => $http, config => $config);
}

1;
