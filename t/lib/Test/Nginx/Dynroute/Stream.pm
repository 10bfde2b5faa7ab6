package Test::Nginx::Dynroute::Stream;

# What the stream tests share: whether the nginx under test can run them,
# the backends' certificates, a TLS backend and a TLS client.
#
#   use Test::Nginx::Dynroute::Stream qw(stream_missing make_cert
#                                        tls_backend tls_line);
#   plan skip_all => $why if my $why = stream_missing();
#   make_cert($dir, 'a.test');          # $dir/a.test.crt and .key
#   $conf .= tls_backend($port, "$dir/a.test", 'a $ssl_server_name');
#   tls_line($port, 'a.test');          # "a a.test\n", or "closed: ..."
#
# stream_missing() returns why the stream tests cannot run here (nginx
# without stream, ssl and ssl_preread; stream a dynamic module that neither
# TEST_NGINX_STREAM_MODULE names nor TEST_NGINX_INCLUDE_MODULES's load files
# load; no IO::Socket::SSL; no openssl),
# or undef.  make_cert() makes a self-signed certificate for CN $cn with
# openssl (P-256: quick handshakes) and BAIL_OUTs when it cannot.
use strict;
use warnings;
use Exporter 'import';
use Test::More ();

our @EXPORT_OK = qw(stream_missing make_cert tls_backend tls_line);

sub stream_missing {
    my $bin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $v = `$bin -V 2>&1`;
    return 'nginx is built without stream, stream_ssl and stream_ssl_preread'
        unless $v =~ /--with-stream\b/
            && $v =~ /--with-stream_ssl_preread_module/
            && $v =~ /--with-stream_ssl_module/;
    return 'stream is a dynamic module here: set TEST_NGINX_STREAM_MODULE'
        if $v =~ /--with-stream=dynamic/
            && !length($ENV{TEST_NGINX_STREAM_MODULE} // '')
            && !length($ENV{TEST_NGINX_INCLUDE_MODULES} // '');
    return 'IO::Socket::SSL is not installed (libio-socket-ssl-perl)'
        unless eval { require IO::Socket::SSL; 1 };
    return 'openssl is not installed'
        unless `command -v openssl 2>/dev/null`;
    return undef;
}

sub make_cert {
    my ($dir, $cn) = @_;
    system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
           . "-nodes -days 1 -subj /CN=$cn -keyout $dir/$cn.key "
           . "-out $dir/$cn.crt >/dev/null 2>&1") == 0
        or Test::More::BAIL_OUT("openssl could not make a certificate for $cn");
    return "$dir/$cn";
}

# A stream server{} of TLS on 127.0.0.1:$port with the certificate $cert
# (.crt and .key) that answers one line, $answer (nginx variables allowed),
# and closes.
sub tls_backend {
    my ($port, $cert, $answer) = @_;
    return <<"CONF";
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $cert.crt;
        ssl_certificate_key $cert.key;
        return "$answer\\n";
    }
CONF
}

# The first line a TLS server answers through 127.0.0.1:$port, with SNI
# $name (none if undef), or "closed: WHY" when the handshake or the read
# fails; the certificate is not checked.
sub tls_line {
    my ($port, $name, $timeout) = @_;
    require IO::Socket::SSL;
    my $s = IO::Socket::SSL->new(
        PeerHost => '127.0.0.1', PeerPort => $port,
        SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
        SSL_hostname => $name // '',
        Timeout => $timeout // 5);
    return 'closed: ' . (IO::Socket::SSL::errstr() || $@ || $!) unless $s;
    my $line = $s->getline;
    $s->close(SSL_no_shutdown => 1);
    return defined $line ? $line : 'closed: no answer';
}

1;
