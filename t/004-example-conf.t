# nginx.conf.example is what we tell operators to start from: it must pass
# `nginx -t` with the module loaded, exactly as `make run` uses it.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);

my $top = abs_path('.');
my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $so = exists $ENV{TEST_NGINX_LOAD_MODULE}
    ? $ENV{TEST_NGINX_LOAD_MODULE}
    : "$top/build/ngx_http_agentlocator_module.so";

my $prefix = tempdir('example-conf-XXXXXX', TMPDIR => 1, CLEANUP => 1);
mkdir "$prefix/$_" for qw(conf logs tmp);
symlink "$top/html", "$prefix/html";

open my $in, '<', "$top/nginx.conf.example" or die "nginx.conf.example: $!";
my $conf = do { local $/; <$in> };
close $in;

my $n = ($conf =~ s{^load_module\s+\S*agentlocator\S*;}
                   {$so eq '' ? '' : "load_module $so;"}me);
is $n, 1, 'the example loads the module with one load_module line';

# `nginx -t` binds no sockets, so port 8080 of the example is left alone.
open my $out, '>', "$prefix/conf/nginx.conf" or die $!;
print $out $conf;
close $out;

# what the example reads from the environment (nginx -t connects to no
# database, so port 1 is never tried)
local $ENV{TWILIO_AUTH_TOKEN} = 'example-token';
local $ENV{TWILIO_ACCOUNT_SID} = 'AC' . '0' x 32;
local $ENV{DATABASE_URL} = 'host=127.0.0.1 port=1 dbname=agentlocator';
local $ENV{WA_SHARED_SECRET} = 'example-bridge-secret';
local $ENV{AGENTLOCATOR_JWT_SECRET} = 'example-jwt-secret-0123456789-0123456789';

my $output = `$nginx -t -p $prefix/ -c conf/nginx.conf 2>&1`;
is $?, 0, 'nginx -t accepts nginx.conf.example' or diag $output;
like $output, qr/syntax is ok/, 'nginx reports the syntax ok';
unlike $output, qr/\[(warn|emerg|alert)\]/, 'and warns of nothing';

done_testing();
