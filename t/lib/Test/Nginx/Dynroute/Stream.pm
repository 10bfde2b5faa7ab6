package Test::Nginx::Dynroute::Stream;

# What the stream tests share: whether the nginx under test can run them,
# and the backends' certificates.
#
#   use Test::Nginx::Dynroute::Stream qw(stream_missing make_cert);
#   plan skip_all => $why if my $why = stream_missing();
#   make_cert($dir, 'a.test');          # $dir/a.test.crt and .key
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

our @EXPORT_OK = qw(stream_missing make_cert);

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

1;
