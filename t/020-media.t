# The Media Streams WebSocket (SPEC §5) with a Perl client built on CPAN's
# Protocol::WebSocket: handshake, Twilio's message sequence, RFC 6455 rules
# and what each violation closes with.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Server;
use Test::AgentLocator::Twilio qw(twilio_signature);
use Test::AgentLocator::WebSocket;

my $WS = 'Test::AgentLocator::WebSocket';

my $HTTP = <<'_EOC_';
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token 12345;
    agentlocator_public_url https://voice.example.com;
_EOC_

my $SERVER = <<'_EOC_';
    # the codec's own tests need no call: a stream at the plain URL
    # (t/024-media-edge.t covers the per-call URLs and who may stream)
    agentlocator_media_plain_url on;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; agentlocator_signature off; }
    location /ws/twilio-media   { agentlocator_media_stream; agentlocator_signature off; }
    location /echo              { agentlocator_media_stream echo; agentlocator_signature off; }
    location /signed            { agentlocator_media_stream; }
    location /small {
        agentlocator_media_stream;
        agentlocator_signature off;
        agentlocator_media_max_message 1k;
    }
    location /idle {
        agentlocator_media_stream;
        agentlocator_signature off;
        agentlocator_media_idle_timeout 300ms;
    }
    location /proto {
        agentlocator_media_stream;
        agentlocator_signature off;
        agentlocator_media_subprotocol audio.v1 audio.v2;
    }
    location /logged {
        agentlocator_media_stream;
        agentlocator_signature off;
        access_log logs/media-access.log;
    }
    location /echo-small {
        agentlocator_media_stream echo;
        agentlocator_signature off;
        agentlocator_media_send_buffer 4k;
    }
    location = /status { agentlocator_status; }
_EOC_

my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                        server => $SERVER);
my $port = $s->{port};

sub wait_log {
    my ($re, $secs) = @_;
    my $until = time + ($secs // 3);
    while (time < $until) {
        return 1 if $s->error_log =~ $re;
        sleep 0.02;
    }
    return 0;
}

sub stream { $WS->connect($port, $_[0] // '/ws/twilio-media', @_[1 .. $#_]) }

# the stream of call $n, registered by its incoming_call, at the per-call
# URL under $prefix
sub call_stream {
    my ($n, $prefix, @o) = @_;
    return $WS->connect_call($port, $n, prefix => $prefix // '/ws/twilio-media', @o);
}

subtest 'handshake: 101 with a correct Sec-WebSocket-Accept' => sub {
    for my $path ('/ws/twilio-media', '/ws/twilio-media/') {
        my $ws = stream($path);
        is($ws->status, 101, "$path: 101");
        ok($ws->{accept_ok}, "$path: Sec-WebSocket-Accept verified by Protocol::WebSocket");
        is(lc $ws->header('upgrade'), 'websocket', 'Upgrade: websocket');
        is(lc $ws->header('connection'), 'upgrade', 'Connection: upgrade');
        ok($ws->header('x-revision'), 'X-Revision');
        ok(!defined $ws->header('sec-websocket-protocol'), 'no subprotocol offered, none echoed');
        is($ws->close_ws(1000), 1000, 'clean close');
    }
    ok(wait_log(qr/WS_CONNECT protocol=-/), 'WS_CONNECT logged');
};

subtest 'handshake rejections' => sub {
    my $key = 'dGhlIHNhbXBsZSBub25jZQ==';
    my %cases = (
        'POST' => ["POST /ws/twilio-media HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                   405, qr/method not allowed/],
        'HTTP/1.0' => ["GET /ws/twilio-media HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n"
                       . "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                       . "Sec-WebSocket-Key: $key\r\n\r\n", 400, qr/needs HTTP\/1\.1/],
        'no Upgrade' => ["GET /ws/twilio-media HTTP/1.1\r\nHost: x\r\n\r\n",
                         426, qr/WebSocket only/, upgrade => 'websocket'],
        'Connection without upgrade' => [
            "GET /ws/twilio-media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            . "Connection: keep-alive\r\nSec-WebSocket-Version: 13\r\n"
            . "Sec-WebSocket-Key: $key\r\n\r\n", 400, qr/Connection header/],
        'version 8' => ["GET /ws/twilio-media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        . "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                        . "Sec-WebSocket-Key: $key\r\n\r\n", 426,
                        qr/unsupported Sec-WebSocket-Version/, 'sec-websocket-version' => '13'],
        'no key' => ["GET /ws/twilio-media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     . "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     400, qr/invalid Sec-WebSocket-Key/],
        'a body' => ["GET /ws/twilio-media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     . "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     . "Sec-WebSocket-Key: $key\r\nContent-Length: 5\r\n\r\nhello",
                     400, qr/has no body/],
        'a key of 15 bytes' => ["GET /ws/twilio-media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     . "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     . "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n\r\n",
                     400, qr/invalid Sec-WebSocket-Key/],
    );
    for my $name (sort keys %cases) {
        my ($req, $code, $body, %hdr) = @{ $cases{$name} };
        my $ws = $WS->connect($port, '/ws/twilio-media', request => $req);
        is($ws->status, $code, "$name: $code");
        like($ws->{body}, $body, "$name: reason");
        is($ws->header($_), $hdr{$_}, "$name: $_: $hdr{$_}") for keys %hdr;
    }
};

subtest 'Upgrade and Connection are token lists, as clients send them' => sub {
    my $key = 'dGhlIHNhbXBsZSBub25jZQ==';
    my $req = sub {
        "GET /ws/twilio-media HTTP/1.1\r\nHost: x\r\nUpgrade: $_[0]\r\nConnection: $_[1]\r\n"
        . "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: $key\r\n\r\n";
    };
    # Firefox's "keep-alive, Upgrade"; tokens in any case, with spaces and tabs
    for my $ok (['websocket', 'keep-alive, Upgrade'], ['WebSocket', "keep-alive ,\tupgrade\t"],
                ['h2c, websocket', 'close,upgrade'], ['websocket', ',, UPGRADE,']) {
        my $ws = $WS->connect($port, '/ws/twilio-media', request => $req->(@$ok));
        is($ws->status, 101, "Upgrade: $ok->[0], Connection: $ok->[1]: 101");
        $ws->close_socket;
    }
    # a token is the whole item, not its beginning
    for my $bad (['websocketx', 'Upgrade', 426], ['websocket/2', 'Upgrade', 426],
                 ['websocket', 'upgraded', 400], ['websocket', 'keep-alive, upgrade-insecure', 400]) {
        my $ws = $WS->connect($port, '/ws/twilio-media', request => $req->(@$bad[0, 1]));
        is($ws->status, $bad->[2], "Upgrade: $bad->[0], Connection: $bad->[1]: $bad->[2]");
    }
};

subtest 'a subprotocol is echoed only if offered and configured' => sub {
    my $ws = stream('/ws/twilio-media', headers => ['Sec-WebSocket-Protocol: audio.v1']);
    is($ws->status, 101, 'offered, not configured: 101');
    ok(!defined $ws->header('sec-websocket-protocol'), 'not echoed');
    $ws->close_ws;
    $ws = stream('/proto', headers => ['Sec-WebSocket-Protocol: chat, audio.v2, audio.v1']);
    is($ws->header('sec-websocket-protocol'), 'audio.v2', 'the first offered that we speak');
    $ws->close_ws;
    $ws = stream('/proto');
    ok(!defined $ws->header('sec-websocket-protocol'), 'none offered: none echoed');
    $ws->close_ws;
};

subtest 'the upgrade is signed: wss:// URL, no parameters, trailing slash accepted' => sub {
    my $good = twilio_signature('12345', 'wss://voice.example.com/signed');
    my $slash = twilio_signature('12345', 'wss://voice.example.com/signed/');
    my $https = twilio_signature('12345', 'https://voice.example.com/signed');
    is(stream('/signed', headers => ["X-Twilio-Signature: $good"])->status, 101, 'wss URL: 101');
    is(stream('/signed', headers => ["X-Twilio-Signature: $slash"])->status, 101, 'with a slash: 101');
    my $ws = stream('/signed', headers => ["X-Twilio-Signature: $https"]);
    is($ws->status, 403, 'signed as https: 403 before any upgrade');
    like($ws->{body}, qr/invalid X-Twilio-Signature/, 'reason');
    is(stream('/signed')->status, 403, 'unsigned: 403');
    ok(wait_log(qr/SIGNATURE_INVALID call=- reason=mismatch url="wss:\/\/voice\.example\.com\/signed"/),
       'logged with the URL checked');
};

subtest "Twilio's sequence: start, media, mark, dtmf, stop" => sub {
    my $ws = call_stream(1);
    $ws->twilio_start(1);
    $ws->twilio_media(1, $_ + 1) for 1 .. 10;
    $ws->send_json({ event => 'mark', streamSid => sprintf('MZ%032x', 1),
                     sequenceNumber => '12', mark => { name => 'greeting' } });
    $ws->send_json({ event => 'dtmf', streamSid => sprintf('MZ%032x', 1),
                     sequenceNumber => '13', dtmf => { track => 'inbound_track', digit => '5' } });
    ok(wait_log(qr/WS_DTMF call=CA0{31}1 digit=5/), 'dtmf logged');
    my $c = $s->call(1);
    is($c->{state}, 'streaming', 'the registry shows the stream');
    is($c->{stream_sid}, sprintf('MZ%032x', 1), 'with its streamSid');
    is($c->{account_sid}, 'AC' . 'a' x 32, 'and account');
    $ws->twilio_stop(1, 14);
    ok(wait_log(qr/WS_STOP call=CA0{31}1 frames=10 bytes=1600/), 'WS_STOP with counters');
    $c = $s->call(1);
    is($c->{state}, 'stopped', 'stop: stopped');
    is($c->{frames}, 10, 'frames flushed at stop');
    is($c->{bytes}, 1600, 'bytes flushed at stop');
    is($ws->close_ws(1000), 1000, 'close answered with 1000');
    ok(wait_log(qr/WS_START call=CA0{31}1 stream=MZ0{31}1 url=per-call/), 'WS_START');
    ok(wait_log(qr/WS_CLOSE code=1000 call=CA0{31}1 frames=10 bytes=1600 bad=0/), 'WS_CLOSE code=1000');
};

subtest 'the zone sees counters while the stream runs (flushed every 200 ms)' => sub {
    my $ws = call_stream(2);
    $ws->twilio_start(2);
    my $t0 = time;
    my $seq = 1;
    while (time - $t0 < 1.0) { $ws->twilio_media(2, ++$seq); sleep 0.02 }
    my $sent = $seq - 1;
    my $c = $s->call(2);
    cmp_ok($c->{frames}, '>', 0, "mid-stream: $c->{frames} of $sent frames already in the zone");
    cmp_ok($c->{frames}, '<=', $sent, 'never more than sent');
    ok(defined $c->{since_media_ms}, "last media time set ($c->{since_media_ms} ms ago)");
    $ws->close_ws;
    ok(wait_log(qr/WS_CLOSE code=1000 call=CA0{31}2 frames=$sent/), 'close');
    is($s->call(2)->{frames}, $sent, 'all frames in the zone after the close');
};

subtest 'fragmented messages, many frames per write, a frame byte by byte' => sub {
    my $ws = call_stream(3);
    $ws->send_json({ event => 'connected', protocol => 'Call', version => '1.0.0' });
    # the start message in three fragments, a ping in between
    my ($call, $stream) = Test::AgentLocator::WebSocket::sids(3);
    my $start = encode_json({ event => 'start', streamSid => $stream,
        start => { callSid => $call, streamSid => $stream, accountSid => 'AC' . 'a' x 32 } });
    my @part = (substr($start, 0, 10), substr($start, 10, 20), substr($start, 30));
    $ws->send_raw(Test::AgentLocator::WebSocket::frame(opcode => 1, fin => 0, payload => $part[0])
        . Test::AgentLocator::WebSocket::frame(opcode => 0, fin => 0, payload => $part[1])
        . Test::AgentLocator::WebSocket::frame(opcode => 9, payload => 'in-between')
        . Test::AgentLocator::WebSocket::frame(opcode => 0, fin => 1, payload => $part[2]));
    my $pong = $ws->recv_frame(3);
    is($pong->{opcode}, 10, 'a ping inside a fragmented message is answered');
    is($pong->{payload}, 'in-between', 'with its payload');
    ok(wait_log(qr/WS_START call=CA0{31}3/), 'the reassembled start message was understood');

    # 20 media frames in one write
    $ws->send_raw(join '', map {
        Test::AgentLocator::WebSocket::frame(opcode => 1,
            payload => Test::AgentLocator::WebSocket::media_json(3, $_)) } 1 .. 20);
    # one more, byte by byte
    my $f = Test::AgentLocator::WebSocket::frame(opcode => 1,
        payload => Test::AgentLocator::WebSocket::media_json(3, 21));
    for my $byte (split //, $f) { $ws->send_raw($byte); sleep 0.001 }
    $ws->twilio_stop(3, 22);
    ok(wait_log(qr/WS_STOP call=CA0{31}3 frames=21 bytes=3360/), 'all 21 frames counted');
    $ws->close_ws;
};

subtest 'ping gets pong; close is answered with its code' => sub {
    my $ws = stream();
    $ws->send_frame(opcode => 9, payload => 'hello');
    my $f = $ws->recv_frame(3);
    is_deeply([$f->{opcode}, $f->{payload}], [10, 'hello'], 'pong with the payload');
    $ws->send_frame(opcode => 8, payload => pack('n', 1001) . 'bye');
    is(scalar $ws->recv_close(3), 1001, 'close 1001 answered with 1001');
    ok($ws->eof_within(3), 'then the server closes TCP');
    ok(wait_log(qr/WS_CLOSE code=1001 call=-/), 'WS_CLOSE code=1001');
};

my %violations = (
    'unmasked frame'  => [frame_args => { opcode => 1, payload => '{}', masked => 0 },
                          1002, 'unmasked client frame'],
    'RSV bits'        => [frame_args => { opcode => 1, payload => '{}', rsv => 4 },
                          1002, 'reserved bits set'],
    'unknown opcode'  => [frame_args => { opcode => 3, payload => 'x' },
                          1002, 'unknown opcode'],
    'fragmented ping' => [frame_args => { opcode => 9, payload => 'x', fin => 0 },
                          1002, 'fragmented control frame'],
    'stray continuation' => [frame_args => { opcode => 0, payload => 'x' },
                          1002, 'continuation without a message'],
    'invalid UTF-8'   => [frame_args => { opcode => 1, payload => "{\"event\":\"\xc3\x28\"}" },
                          1007, 'text message is not UTF-8'],
    'bad close code'  => [frame_args => { opcode => 8, payload => pack('n', 1005) },
                          1002, 'invalid close code'],
);

for my $name (sort keys %violations) {
    my (undef, $args, $code, $reason) = @{ $violations{$name} };
    subtest "$name closes with $code" => sub {
        my $ws = stream();
        $ws->send_frame(%$args);
        is(scalar $ws->recv_close(3), $code, "close $code");
        ok($ws->eof_within(3), 'connection closed');
        ok(wait_log(qr/WS_PROTOCOL_ERROR reason="\Q$reason\E" close=$code/),
           "WS_PROTOCOL_ERROR reason=\"$reason\"");
    };
}

subtest 'a message over agentlocator_media_max_message closes with 1009' => sub {
    my $ws = stream('/small');
    $ws->send_text('{"event":"' . ('x' x 2000) . '"}');
    is(scalar $ws->recv_close(3), 1009, 'one frame: 1009');
    $ws = stream('/small');
    $ws->send_frame(opcode => 1, fin => 0, payload => 'x' x 600);
    $ws->send_frame(opcode => 0, fin => 1, payload => 'x' x 600);
    is(scalar $ws->recv_close(3), 1009, 'over the limit in fragments: 1009');
    ok(wait_log(qr/WS_PROTOCOL_ERROR reason="message too big" close=1009/), 'logged');
};

subtest 'bad JSON, unknown events and bad payloads are logged and counted, not fatal' => sub {
    my $ws = call_stream(4);
    $ws->twilio_start(4);
    $ws->send_text('{"event":');
    $ws->send_text('{"event":"surprise"}');
    $ws->send_text('{"no":"event"}');
    $ws->send_text(Test::AgentLocator::WebSocket::media_json(4, 2) =~ s/"payload":"/"payload":"!!/r);
    $ws->send_frame(opcode => 2, payload => "\x00\x01");
    $ws->twilio_media(4, 3);
    $ws->twilio_stop(4, 4);
    ok(wait_log(qr/WS_STOP call=CA0{31}4 frames=1 /), 'the good frame after them counted');
    my $log = $s->error_log;
    like($log, qr/WS_BAD_MESSAGE reason="invalid JSON" count=1/, 'invalid JSON');
    like($log, qr/WS_BAD_MESSAGE reason="unknown event" count=2/, 'unknown event');
    like($log, qr/WS_BAD_MESSAGE reason="message without an event" count=3/, 'no event');
    like($log, qr/WS_BAD_MESSAGE reason="invalid base64 media payload" count=4/, 'bad payload');
    like($log, qr/WS_BAD_MESSAGE reason="binary message" count=5/, 'binary');
    is($ws->close_ws, 1000, 'the stream still closes cleanly');
    ok(wait_log(qr/WS_CLOSE code=1000 call=CA0{31}4 frames=1 bytes=160 bad=5/), 'bad=5');
};

subtest 'a truncated frame, then the client vanishes: dropped (still watched), code 1006' => sub {
    my $ws = call_stream(5);
    $ws->twilio_start(5);
    $ws->twilio_media(5, 2);
    my $f = Test::AgentLocator::WebSocket::frame(opcode => 1,
        payload => Test::AgentLocator::WebSocket::media_json(5, 3));
    $ws->send_raw(substr($f, 0, 40));
    ok(wait_log(qr/WS_START call=CA0{31}5/), 'started');
    $ws->close_socket;
    ok(wait_log(qr/WS_CLOSE code=1006 call=CA0{31}5 frames=1/), 'WS_CLOSE code=1006');
    is($s->call(5)->{state}, 'dropped', 'the registry shows it dropped: no "stop" came');
    is($s->call(5)->{frames}, 1, 'with the frame that arrived whole');
};

subtest 'idle past agentlocator_media_idle_timeout: close 1000' => sub {
    my $ws = stream('/idle');
    my ($code, $reason) = $ws->recv_close(3);
    is($code, 1000, 'close 1000');
    is($reason, 'idle timeout', 'reason');
    $ws->send_frame(opcode => 8, payload => pack('n', 1000));
    ok($ws->eof_within(3), 'closed after the answer');
};

subtest 'echo: media comes back with the streamSid from start; marks are answered' => sub {
    my $ws = call_stream(6, '/echo');
    $ws->twilio_start(6);
    my $audio = join '', map { chr } 0 .. 159;
    $ws->twilio_media(6, 2, $audio);
    my $f = $ws->recv_frame(3);
    my $m = decode_json($f->{payload});
    is($m->{event}, 'media', 'a media message');
    is($m->{streamSid}, sprintf('MZ%032x', 6), 'with our streamSid');
    is(MIME::Base64::decode_base64($m->{media}{payload}), $audio, 'the same audio');
    $ws->send_json({ event => 'mark', streamSid => sprintf('MZ%032x', 6),
                     mark => { name => "end \"of\" <greeting>" } });
    $m = decode_json($ws->recv_frame(3)->{payload});
    is_deeply($m, { event => 'mark', streamSid => sprintf('MZ%032x', 6),
                    mark => { name => "end \"of\" <greeting>" } }, 'mark answered, JSON-escaped');
    $ws->close_ws;
};

subtest 'data pipelined with the handshake is not lost' => sub {
    my $ws = $WS->connect($port, '/ws/twilio-media',
        pipelined => Test::AgentLocator::WebSocket::frame(opcode => 9, payload => 'early'));
    is($ws->status, 101, 'upgraded: 101');
    my $f = $ws->recv_frame(3);
    is_deeply([$f->{opcode}, $f->{payload}], [10, 'early'], 'the ping sent with the handshake is answered');
    $ws->close_ws;
};

subtest 'the request is freed at the upgrade: access log then, the stream goes on' => sub {
    my $ws = call_stream(40, '/logged');
    is($ws->status, 101, 'upgraded: 101');
    my $log = '';
    my $until = time + 3;
    while (time < $until) {
        $log = $s->slurp('media-access.log');
        last if $log =~ m{"GET /logged/CA0{30}28/\.\.\. HTTP/1\.1" 101 };
        sleep 0.02;
    }
    like($log, qr{"GET /logged/CA0{30}28/\.\.\. HTTP/1\.1" 101 },
         'access log line with 101, written while the stream is open');
    $ws->twilio_start(40);
    $ws->twilio_media(40, $_ + 1) for 1 .. 5;
    $ws->send_frame(opcode => 9, payload => 'after');
    my $f = $ws->recv_frame(3);
    is_deeply([$f->{opcode}, $f->{payload}], [10, 'after'], 'the stream answers after the request is gone');
    is($ws->close_ws(1000), 1000, 'clean close');
    ok(wait_log(qr/WS_CLOSE code=1000 call=CA0{30}28 frames=5 bytes=800 bad=0 ms=\d+/),
       'WS_CLOSE with the session length');
    my @lines = grep { /101/ } split /\n/, $s->slurp('media-access.log');
    is(scalar @lines, 1, 'one access log line for the stream');
};

subtest 'many streams opened and ended every way leave nothing open' => sub {
    my @ws = map { call_stream(100 + $_) } 0 .. 59;
    is(scalar(grep { $_->status == 101 } @ws), 60, '60 upgrades');
    $ws[$_]->twilio_start(100 + $_) for 0 .. 59;
    for my $i (0 .. 59) {
        if ($i % 3 == 0) { $ws[$i]->close_ws(1000) }
        elsif ($i % 3 == 1) { $ws[$i]->close_socket }
        else { $ws[$i]->send_raw("\x81\x05hello") }   # unmasked: 1002
    }
    # the failed ones get their close frame, then the server lingers until
    # the client closes, as a client does on reading it
    for my $i (grep { $_ % 3 == 2 } 0 .. 59) {
        is($ws[$i]->recv_close(3), 1002, "stream $i: close 1002") or last;
        $ws[$i]->close_socket;
    }
    my $until = time + 5;
    my $st;
    while (time < $until) {
        $st = decode_json($s->request('GET /status')->{body});
        last if $st->{websocket}{open} == 0;
        sleep 0.05;
    }
    is($st->{websocket}{open}, 0, 'no stream left open');
    is(scalar(grep { $_->{state} eq 'streaming' } @{ $st->{calls} }), 0, 'none left streaming in the zone');
};

subtest 'backpressure: a client that does not read stops being read, then resumes' => sub {
    use Errno qw(EAGAIN EWOULDBLOCK);
    my $ws = call_stream(50, '/echo-small');
    is($ws->status, 101, 'upgraded: 101');
    $ws->twilio_start(50);
    ok(!defined $ws->recv_frame(0.3), 'start taken: nothing back, no close');
    my $sock = $ws->{sock};
    $sock->blocking(0);

    # the same masked media frame, over and over, never reading the echoes
    my $frame = Test::AgentLocator::WebSocket::frame(
        opcode => 1, payload => Test::AgentLocator::WebSocket::media_json(50, 2));
    my $chunk = $frame x 64;
    my ($written, $stalled_since) = (0, undef);
    my $until = time + 20;
    while (time < $until) {
        my $n = syswrite($sock, $chunk, length($chunk) - ($written % length $chunk),
                         $written % length $chunk);
        if (defined $n && $n > 0) { $written += $n; undef $stalled_since; next }
        die "write: $!" unless $! == EAGAIN || $! == EWOULDBLOCK;
        $stalled_since //= time;
        last if time - $stalled_since > 1.5;
        sleep 0.01;
    }
    ok(defined $stalled_since && time - $stalled_since > 1.5,
       "the server stopped reading after @{[int($written / 1024)]} KB");
    # finish the frame in progress so the stream stays well-formed
    my $tail = length($frame) - ($written % length $frame);
    $tail = 0 if $tail == length $frame;
    my $frames = int(($written + $tail) / length $frame);
    my $rest = substr($frame, length($frame) - $tail);

    my $st = decode_json($s->request('GET /status')->{body});
    my ($c) = grep { $_->{call_sid} eq sprintf('CA%032x', 50) } @{ $st->{calls} };
    cmp_ok($c->{frames}, '<', $frames, "paused: $c->{frames} of $frames frames read");

    # now read: every frame sent is processed and echoed
    my ($echoes, $buf) = (0, '');
    my $deadline = time + 30;
    while ($echoes < $frames && time < $deadline) {
        if (length $rest) {
            my $n = syswrite($sock, $rest);
            substr($rest, 0, $n, '') if defined $n && $n > 0;
        }
        next unless $ws->{sel}->can_read(0.5);
        my $n = sysread($sock, $buf, 16384);
        last if defined $n && $n == 0;
        next unless $n;
        $ws->{frames}->append($buf);
        while (defined(my $p = $ws->{frames}->next_bytes)) {
            $echoes++ if $ws->{frames}->opcode == 1 && $p =~ /"event":"media"/;
        }
    }
    is($echoes, $frames, "all $frames frames echoed once the client reads") or diag("echoes: $echoes");
    $sock->blocking(1);
    is($ws->close_ws(1000), 1000, 'clean close');
    ok(wait_log(qr/WS_CLOSE code=1000 call=CA0{30}32 frames=$frames /), 'WS_CLOSE counts them all');
};

ok($s->stop, 'nginx stopped');
unlike($s->error_log, qr/\[(alert|emerg|crit)\]|Sanitizer/, 'no alerts in the log');

done_testing();
