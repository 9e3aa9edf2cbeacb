# The media stream over TLS, as Twilio connects (wss://): nginx terminates
# TLS and the module reads and writes through it, before and after the
# HTTP request is freed at the upgrade.  Python's websockets verifies the
# server against a throwaway CA made here with the openssl CLI.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Server;
use Test::AgentLocator::WebSocket;

my $PY = '/usr/bin/python3';

plan skip_all => 'python3-websockets is not installed'
    unless system("$PY -c 'import websockets' 2>/dev/null") == 0;
plan skip_all => 'the openssl command is not installed'
    unless `which openssl` =~ /openssl/;

my $dir = tempdir('tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system('sh', '-c', 'exec "$@" 2>/dev/null', 'openssl', 'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
       'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
       '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
       '-keyout', "$dir/key.pem", '-out', "$dir/cert.pem") == 0
    or BAIL_OUT('openssl could not make a test certificate');
chmod 0644, "$dir/key.pem";

my $s = Test::AgentLocator::Server->new(
    workers => 2,
    tls => { cert => "$dir/cert.pem", key => "$dir/key.pem" },
    http => <<'_EOC_',
    agentlocator_zone calls 1m;
    agentlocator_public_url https://voice.example.com;
_EOC_
    server => <<'_EOC_');
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location /ws/twilio-media/  { agentlocator_media_stream; }
    location /echo/             { agentlocator_media_stream echo; }
    location = /status          { agentlocator_status; }
_EOC_

$ENV{TWILIO_STREAM_CAFILE} = "$dir/cert.pem";
my $url = "wss://localhost:$s->{tls_port}";

# each call's incoming_call first, as Twilio does; the client's start names
# the account "AC" + "b" x 32.  Its stream URL, or the same under $prefix.
sub stream_path {
    my ($n, $prefix) = @_;
    my $path = Test::AgentLocator::WebSocket::register($s->{port}, $n,
                                                       account => 'AC' . 'b' x 32);
    return $prefix ? $prefix . Test::AgentLocator::WebSocket::call_part($path) : $path;
}

my $path = stream_path(61);
my $out = `$PY t/clients/twilio_stream.py $url$path 61 100 2>&1`;
is($?, 0, "wss: Twilio's sequence, no surprise") or diag $out;
like($out, qr/"close_code": 1000/, 'closed with 1000');
my $until = time + 3;
sleep 0.02 until time > $until || (($s->call(61) // {})->{frames} // 0) == 100;
is($s->call(61)->{frames}, 100, 'the registry counted its 100 frames');
is($s->call(61)->{state}, 'stopped', 'and shows it stopped');

$path = stream_path(62, '/echo');
$out = `$PY t/clients/twilio_stream.py $url$path 62 300 echo 2>&1`;
is($?, 0, 'wss echo: every frame came back with the same audio') or diag $out;
like($out, qr/"echoed": 300, "marks": 1/, '300 echoed, the mark answered');

# several at once, across both workers
my @pids;
for my $n (70 .. 79) {
    my $path = stream_path($n, '/echo');
    my $pid = fork // die;
    if (!$pid) {
        my $o = `$PY t/clients/twilio_stream.py $url$path $n 50 echo 2>&1`;
        POSIX::_exit($? == 0 && $o =~ /"echoed": 50/ ? 0 : 1);
    }
    push @pids, $pid;
}
my $ok = 0;
for (@pids) { waitpid($_, 0); $ok++ if $? == 0 }
is($ok, 10, '10 concurrent wss echo streams');

ok($s->stop, 'nginx stopped');
my $log = $s->error_log;
is(scalar(() = $log =~ /WS_CLOSE code=1000 /g), 12, '12 streams closed with 1000');
unlike($log, qr/\[(alert|emerg|crit)\]/, 'no alerts');

done_testing();
