# Media streams across workers, reloads, recordings, and a second client
# implementation (Python's websockets).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Server;
use Test::AgentLocator::WebSocket;

my $WS = 'Test::AgentLocator::WebSocket';
my $PY = '/usr/bin/python3';
my $recordings = tempdir('recordings-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0777, $recordings;

my $HTTP = <<"_EOC_";
    agentlocator_zone calls 1m;
    agentlocator_public_url https://voice.example.com;
    agentlocator_recordings $recordings;
_EOC_

my $SERVER = <<'_EOC_';
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location /ws/twilio-media/  { agentlocator_media_stream; }
    location /echo/             { agentlocator_media_stream echo; }
    location = /status          { agentlocator_status; }
_EOC_

sub wait_for {
    my ($cond, $secs) = @_;
    my $until = time + $secs;
    while (time < $until) { return 1 if $cond->(); sleep 0.02 }
    return 0;
}

subtest "Python's websockets: Twilio's sequence and echo" => sub {
    plan skip_all => 'python3-websockets is not installed'
        unless system("$PY -c 'import websockets' 2>/dev/null") == 0;
    my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                            server => $SERVER);
    my $url = "ws://127.0.0.1:$s->{port}";
    # the client's start names the account "AC" + "b" x 32
    my %reg = (account => 'AC' . 'b' x 32);
    my $path = Test::AgentLocator::WebSocket::register($s->{port}, 11, %reg);
    my $out = `$PY t/clients/twilio_stream.py $url$path 11 50 2>&1`;
    is($?, 0, 'the client saw no surprise') or diag $out;
    like($out, qr/"close_code": 1000/, 'closed with 1000');
    ok(wait_for(sub { my ($c) = $s->call(11); $c && $c->{frames} == 50 }, 3),
       'the registry counted its 50 frames');
    my ($c) = $s->call(11);
    is($c->{state}, 'stopped', 'and shows it stopped');

    $path = '/echo' . Test::AgentLocator::WebSocket::call_part(
        Test::AgentLocator::WebSocket::register($s->{port}, 12, %reg));
    $out = `$PY t/clients/twilio_stream.py $url$path 12 100 echo 2>&1`;
    is($?, 0, 'echo: every frame came back with the same audio') or diag $out;
    like($out, qr/"echoed": 100, "marks": 1/, '100 echoed, the mark answered');
    ok($s->stop, 'stopped');
    unlike($s->error_log, qr/\[(alert|emerg|crit)\]/, 'no alerts');
};

subtest 'a recording is a playable 8 kHz mu-law WAV of the inbound audio' => sub {
    plan skip_all => 'sox is not installed' unless `which sox` =~ /sox/;
    my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                            server => $SERVER);
    my $ws = $WS->connect_call($s->{port}, 21);
    $ws->twilio_start(21);
    $ws->twilio_media(21, $_ + 1) for 1 .. 250;       # 5 s of audio
    $ws->twilio_stop(21, 300);
    $ws->close_ws;
    my $wav = sprintf '%s/CA%032x.wav', $recordings, 21;
    ok(wait_for(sub { -s $wav && `sox --i -D $wav 2>/dev/null` =~ /^5\.0/ }, 5),
       'the header is completed on close');
    my $info = `sox --i $wav 2>&1`;
    like($info, qr/Channels\s*: 1/, 'mono');
    like($info, qr/Sample Rate\s*: 8000/, '8 kHz');
    like($info, qr/u-law/, 'mu-law');
    like($info, qr/Duration\s*: 00:00:05\.00 = 40000 samples/, '250 frames = 5 s');
    is(-s $wav, 58 + 40000, 'header + audio, nothing else');

    # a second stream of the same call appends to the first
    $ws = $WS->connect($s->{port}, $ws->{path});
    $ws->twilio_start(21);
    $ws->twilio_media(21, $_ + 1) for 1 .. 50;
    $ws->close_ws;
    ok(wait_for(sub { `sox --i -D $wav 2>/dev/null` =~ /^6\.0/ }, 5),
       'a second stream of the call appends: 6 s');
    ok($s->stop, 'stopped');
};

subtest 'a stream on one worker is seen by the others' => sub {
    my $s = Test::AgentLocator::Server->new(workers => 2, http => $HTTP,
                                            server => $SERVER);
    my $ws = $WS->connect_call($s->{port}, 31);
    $ws->twilio_start(31);
    $ws->twilio_media(31, $_ + 1) for 1 .. 10;
    $ws->twilio_stop(31, 20);
    my $streamer;
    ok(wait_for(sub { $s->error_log =~ /(\d+)#\d+: \*\d+ WS_STOP call=CA0{30}1f/
                      and $streamer = $1 }, 3), 'a worker took the stream');
    my $other;
    for (1 .. 400) {
        my ($c, $w) = $s->call(31);
        next if $w == $streamer;
        $other = $w;
        is($c->{state}, 'stopped', "worker $w sees the stream's state");
        is($c->{frames}, 10, 'and its frames');
        last;
    }
    ok($other, 'another worker answered');
    $ws->close_ws;
    ok($s->stop, 'stopped');
};

subtest 'reload: a live stream stays on its old worker until it ends' => sub {
    my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                            server => $SERVER);
    my ($old) = $s->workers;
    my $ws = $WS->connect_call($s->{port}, 41, prefix => '/echo');
    $ws->twilio_start(41);
    $ws->twilio_media(41, 2);
    ok($ws->recv_frame(3), 'echo before the reload');

    kill 'HUP', $s->{pid};
    ok(wait_for(sub { grep { $_ != $old } $s->workers }, 10), 'a new worker started');
    ok(kill(0, $old), 'the old worker is still there, serving the call');

    $ws->twilio_media(41, 3);
    my $f = $ws->recv_frame(3);
    ok($f && $f->{opcode} == 1, 'the stream still echoes after the reload');
    is($ws->close_ws(1000), 1000, 'and closes cleanly');
    ok(wait_for(sub { !kill(0, $old) || `ps -o stat= -p $old` =~ /Z/ }, 10),
       'then the old worker exits');
    ok($s->stop, 'stopped');
    unlike($s->error_log, qr/open socket .* left in connection|\[alert\]/,
           'no socket left behind, no alert');
};

done_testing();
