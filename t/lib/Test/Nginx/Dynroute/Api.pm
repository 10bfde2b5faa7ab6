=head1 NAME

Test::Nginx::Dynroute::Api - one request to the runtime API

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Nginx::Dynroute;
    use Test::Nginx::Dynroute::Api;

    my ($st, $doc) = api_call($srv, 'GET', '/api/stats');
    ($st, $doc) = api_call($srv, 'PATCH', '/api/rollouts/shop',
                           '{"weights": {"stable": 90, "canary": 10}}');
    ($st) = api_call($srv, 'POST', '/api/rollouts/shop/ramp', '{"action": "pause"}',
                     { 'If-Match' => '"7"' });
    my (undef, undef, $res) = api_call($srv, 'DELETE', '/api/rollouts/shop');

=head1 DESCRIPTION

=over

=item api_call($srv, $method, $path, $body, \%headers)

Sends one request to $srv (as C<http_raw> of L<Test::Nginx::Dynroute>
does, waiting at most 30 s) and returns its status (0 when none came), the
body decoded as JSON (undef when it is not JSON) and the response as
C<http_raw> returns it.

The request is C<$method $path HTTP/1.1> with C<Host: localhost> and
C<Connection: close>, then the headers of \%headers (optional) sorted by
name, then C<Content-Type: application/json> and, when $body is defined,
C<Content-Length> and $body.  The Content-Type goes with every body and
with every POST, PUT and PATCH, as the API asks of writes, unless
\%headers names a Content-Type of its own (then only that one is sent).

=back

=cut

package Test::Nginx::Dynroute::Api;

use strict;
use warnings;

use Exporter ();
use JSON::PP ();
use Test::Nginx::Dynroute ();

our @ISA = ('Exporter');
our @EXPORT = qw(api_call);

my $Json = JSON::PP->new->canonical;

sub api_call {
    my ($srv, $method, $path, $body, $headers) = @_;
    $headers ||= {};
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $req .= "$_: $headers->{$_}\r\n" for sort keys %$headers;
    $req .= "Content-Type: application/json\r\n"
        if !grep({ lc $_ eq 'content-type' } keys %$headers)
           && (defined $body || $method =~ /^(?:POST|PUT|PATCH)$/);
    $req .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . ($body // '');
    my $res = Test::Nginx::Dynroute::http_raw($srv, $req, 30);
    my $doc = eval { $Json->decode($res->{body} // '') };
    return ($res->{status} // 0, $doc, $res);
}

1;
