# The media stream where a review found it wanting: the close frame at
# worker_shutdown_timeout, the memory a non-reading client can pin, two
# live streams of one call, the idle timeout against slow and paused
# clients, and the close frame of a failed stream lost to an RST.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Errno qw(EAGAIN EWOULDBLOCK);
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Server;
use Test::AgentLocator::WebSocket;

my $WS = 'Test::AgentLocator::WebSocket';

my $HTTP = <<'_EOC_';
    agentlocator_zone calls 1m;
    agentlocator_public_url https://voice.example.com;
    agentlocator_recordings rec;
_EOC_

my $SERVER = <<'_EOC_';
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location /ws/twilio-media/ { agentlocator_media_stream; }
    location /idle/ {
        agentlocator_media_stream;
        agentlocator_media_idle_timeout 1s;
    }
    location /echo-bp/ {
        agentlocator_media_stream echo;
        agentlocator_media_send_buffer 128k;
        agentlocator_media_idle_timeout 1s;
    }
    location = /status { agentlocator_status; }
_EOC_

sub server { Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                              server => $SERVER, @_) }

sub wait_log {
    my ($s, $re, $secs) = @_;
    my $until = time + ($secs // 3);
    while (time < $until) { return 1 if $s->error_log =~ $re; sleep 0.02 }
    return 0;
}

sub rss_kb {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

# writes $chunk over and over without blocking until the peer stops
# reading for $stall s; returns the bytes written
sub flood {
    my ($sock, $chunk, $stall) = @_;
    $sock->blocking(0);
    my ($written, $since) = (0, undef);
    my $until = time + 30;
    local $SIG{PIPE} = 'IGNORE';
    while (time < $until) {
        my $off = $written % length $chunk;
        my $n = syswrite($sock, $chunk, length($chunk) - $off, $off);
        if (defined $n && $n > 0) { $written += $n; undef $since; next }
        die "write: $!" unless $! == EAGAIN || $! == EWOULDBLOCK;
        $since //= time;
        last if time - $since > $stall;
        sleep 0.01;
    }
    return $written;
}


subtest 'worker_shutdown_timeout: the client gets 1001, not a bare EOF' => sub {
    my $s = server(main => 'worker_shutdown_timeout 1s;');
    my $ws = $WS->connect_call($s->{port}, 1);
    $ws->twilio_start(1);
    $ws->twilio_media(1, 2);
    ok(wait_log($s, qr/WS_START call=CA0{31}1/), 'streaming');
    my $t0 = time;
    $s->reload(keep_old => 1);
    my ($code, $reason) = $ws->recv_close(5);
    is($code, 1001, 'close 1001');
    is($reason, 'server shutting down', 'reason');
    cmp_ok(time - $t0, '<', 3, 'at the shutdown timeout');
    ok(wait_log($s, qr/WS_CLOSE code=1001 call=CA0{31}1/), 'WS_CLOSE code=1001');
    ok($s->stop, 'stopped');
};

subtest 'a client that pings and never reads pins about the send bound, not megabytes' => sub {
    my $s = server(listen => 'sndbuf=16k');
    my ($worker) = $s->workers;
    # warm up: the worker's shared buffers exist before the measurement
    my $warm = $WS->connect_call($s->{port}, 2);
    $warm->twilio_start(2);
    $warm->close_ws;
    my $before = rss_kb($worker);
    my $ws = $WS->connect_call($s->{port}, 20, rcvbuf => 4096);
    my $ping = Test::AgentLocator::WebSocket::frame(opcode => 9, payload => '');
    my $written = flood($ws->{sock}, $ping x 4096, 1.5);
    my $pings = int($written / length $ping);
    cmp_ok($pings, '>', 131072 / 2, "the server read pings until its bound ($pings sent)");
    my $grown = rss_kb($worker) - $before;
    cmp_ok($grown, '<', 1536, "the worker grew by $grown KB (256k bound; was 6.3 MB)");
    $ws->close_socket;
    ok($s->stop, 'stopped');
};

subtest 'a second live stream of a call is refused with 1008; the first goes on alone' => sub {
    my $s = server(workers => 2);
    my $first = $WS->connect_call($s->{port}, 3);
    $first->twilio_start(3);
    ok(wait_log($s, qr/WS_START call=CA0{31}3/), 'the first stream started');
    my $second = $WS->connect($s->{port}, $first->{path});
    $second->twilio_start(3);
    my ($code, $reason) = $second->recv_close(3);
    is($code, 1008, 'the second: close 1008');
    is($reason, 'another stream of this call is live', 'reason');
    like($s->error_log, qr/WS_REFUSED call=CA0{31}3 .*reason=stream_live .*another stream of this call is live/,
         'logged');
    for my $seq (2 .. 51) {
        $first->twilio_media(3, $seq, chr(0x11) x 160);
        $second->twilio_media(3, $seq, chr(0x22) x 160);
    }
    $first->twilio_stop(3, 52);
    $first->close_ws;
    $second->close_socket;
    ok(wait_log($s, qr/WS_CLOSE code=1000 call=CA0{31}3 frames=50/), 'the first stream: 50 frames');
    my $wav = do { local $/; open my $fh, '<', "$s->{root}/rec/CA" . '0' x 31 . '3.wav' or die $!; <$fh> };
    is(length $wav, 58 + 50 * 160, 'the recording holds the first stream\'s 50 frames');
    unlike(substr($wav, 58), qr/\x22/, 'and nothing of the second');
    # once the first has ended, another stream may take the call
    my $third = $WS->connect($s->{port}, $first->{path});
    $third->twilio_start(3);
    $third->twilio_media(3, 2);
    ok(!defined $third->recv_frame(0.5), 'a later stream is accepted');
    is(decode_json($s->request('GET /status')->{body})->{calls}[0]{stream_live}, JSON::PP::true,
       'and holds the call');
    $third->close_ws;
    ok($s->stop, 'stopped');
};

subtest 'a message that never ends does not hold the connection (idle from the last message)' => sub {
    my $s = server();
    my $ws = $WS->connect_call($s->{port}, 4, prefix => '/idle');
    $ws->twilio_start(4);
    my $t0 = time;
    # a text frame of 126+ bytes, its header, then one byte at a time
    $ws->send_raw("\x81\xfe\x01\x00" . "\x01\x02\x03\x04");
    my $closed;
    while (time - $t0 < 4) {
        $ws->send_raw('x');
        my $f = $ws->recv_frame(0.6);
        if ($f && $f->{opcode} == 8) { $closed = time - $t0; last }
    }
    ok(defined $closed, 'closed');
    cmp_ok($closed // 99, '<', 2.5, sprintf('within the idle timeout of the last message (%.1f s)', $closed // 99));
    ok(wait_log($s, qr/WS_IDLE call=CA0{31}4: no message in \d+ ms/), 'WS_IDLE logged');
    ok($s->stop, 'stopped');
};

subtest 'a stream paused by our own backpressure is not idle while its client reads' => sub {
    # 53k replies against a 64k bound: each pause lasts until a whole reply
    # is read, at 32k/s about 1.7 s, longer than the 1 s idle timeout,
    # while the client reads all along
    my $s = server(listen => 'sndbuf=16k');
    my $ws = $WS->connect_call($s->{port}, 5, prefix => '/echo-bp', rcvbuf => 16384);
    $ws->twilio_start(5);
    my $frame = Test::AgentLocator::WebSocket::frame(opcode => 1,
        payload => Test::AgentLocator::WebSocket::media_json(5, 2, chr(0x7f) x 40000));
    my $sent = 12;
    my $out = $frame x $sent;
    $ws->{sock}->blocking(0);
    local $SIG{PIPE} = 'IGNORE';
    my $got = '';
    my $until = time + 4;
    while (time < $until) {
        if (length $out) {
            my $n = syswrite($ws->{sock}, $out);
            substr($out, 0, $n, '') if $n;
        }
        my $n = sysread($ws->{sock}, my $buf, 8192);
        $got .= $buf if $n;
        sleep 0.25;
    }
    is(length $out, 0, 'all 12 messages written');
    unlike($s->error_log, qr/WS_IDLE/, 'not closed as idle meanwhile');
    $ws->{sock}->blocking(1);
    $ws->{frames}->append($got);
    my $echoes = 0;
    while (my $f = $ws->recv_frame(3)) {
        $echoes++ if $f->{opcode} == 1;
        last if $echoes == $sent;
    }
    is($echoes, $sent, "every one of $sent messages echoed");
    is($ws->close_ws, 1000, 'clean close');
    ok($s->stop, 'stopped');
};

subtest 'a protocol error with more data behind it: the close frame arrives, no RST' => sub {
    # the client's window is nearly shut, so our close frame waits in the
    # server's socket buffer while unread bytes sit in its receive buffer:
    # closing then sends an RST, which throws that frame away
    my $s = server(listen => 'sndbuf=16k');
    my $ws = $WS->connect_call($s->{port}, 6, rcvbuf => 4096);
    $ws->twilio_start(6);
    my $ping = Test::AgentLocator::WebSocket::frame(opcode => 9, payload => '');
    my $data = ($ping x 20000) . "\x81\x05hello";
    my $junk = "\0" x 65536;
    $ws->{sock}->blocking(0);
    local $SIG{PIPE} = 'IGNORE';
    # the client goes on sending while it reads, as a broken client would
    my ($pongs, $code) = (0, undef);
    my $until = time + 5;
    while (time < $until && !defined $code) {
        my $n = syswrite($ws->{sock}, length $data ? $data : $junk);
        substr($data, 0, $n, '') if $n && length $data;
        $n = sysread($ws->{sock}, my $buf, 65536);
        last if defined $n && $n == 0;
        last if !defined $n && $! != EAGAIN && $! != EWOULDBLOCK;
        $ws->{frames}->append($buf) if $n;
        while (defined(my $p = $ws->{frames}->next_bytes)) {
            my $op = $ws->{frames}->opcode;
            $pongs++ if $op == 10;
            if ($op == 8) { $code = unpack 'n', $p; last }
        }
        sleep 0.001 unless $n;
    }
    is($pongs, 20000, 'every ping answered');
    is($code, 1002, 'then the close frame 1002');
    $ws->close_socket;
    ok(wait_log($s, qr/WS_CLOSE code=1002/), 'WS_CLOSE code=1002');
    ok($s->stop, 'stopped');
};

done_testing();
