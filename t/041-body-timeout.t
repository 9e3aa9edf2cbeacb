# A webhook's body must arrive whole within agentlocator_body_timeout
# (SPEC §10): client_body_timeout runs between two reads, so without it a
# client sending a byte every few seconds holds its connection, and an old
# worker after a reload, for ever.  Clients here dribble for real.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Select;
use IO::Socket::INET;
use File::Temp ();
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Server;
use Test::AgentLocator::Twilio qw(form call_sid);

my $FORM = 'application/x-www-form-urlencoded';

sub server {
    my (%o) = @_;
    return Test::AgentLocator::Server->new(workers => 1, http => <<'_EOC_',
    agentlocator_zone calls 1m;
    agentlocator_public_url https://voice.example.com;
    agentlocator_watchdog off;
    agentlocator_postgres "host=127.0.0.1 port=9 dbname=crm";
    agentlocator_baileys http://127.0.0.1:9/ secret=bridge-secret-0123456789;
_EOC_
        server => <<"_EOC_");
    access_log logs/access.log;
    agentlocator_signature off;
    agentlocator_body_timeout $o{timeout};
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/whatsapp/baileys { agentlocator_whatsapp baileys; }
    location = /patient/incoming_call {
        agentlocator_body_timeout 0;
        agentlocator_voice incoming_call;
    }
    location = /slow-reader/incoming_call {
        limit_rate 64;
        agentlocator_voice incoming_call;
    }
_EOC_
}

# Opens a request to $uri and sends its body a byte at a time, $gap
# seconds apart, until it is all sent or the server closes.  $during->()
# runs after the first byte.  Returns (bytes of the body sent, whether
# the server closed before all was sent, what it answered).
sub dribble {
    my ($s, $uri, $type, $body, $gap, $during) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->{port},
                                     Proto => 'tcp', Timeout => 5) or die "connect: $!";
    $SIG{PIPE} = 'IGNORE';
    print $sock "POST $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
              . "Content-Type: $type\r\nContent-Length: " . length($body) . "\r\n\r\n";
    my $sel = IO::Select->new($sock);
    my ($sent, $closed, $answer) = (0, 0, '');
    for my $byte (split //, $body) {
        # the server closed (or answered): read what it said
        if ($sel->can_read(0)) {
            my $n = sysread($sock, my $got, 4096);
            if (!$n) { $closed = 1; last }
            $answer .= $got;
        }
        last unless defined syswrite($sock, $byte);
        $sent++;
        $during->() if $during && $sent == 1;
        sleep $gap;
    }
    if (!$closed) {
        # all sent (or a write failed): what it answers, until it closes
        while ($sel->can_read(5)) {
            my $n = sysread($sock, my $got, 4096);
            last unless $n;
            $answer .= $got;
        }
    }
    close $sock;
    $closed ||= $sent < length $body;
    return ($sent, $closed, $answer);
}

sub count_lines {
    my ($s, $re) = @_;
    return scalar(() = $s->error_log =~ /$re/g);
}

my $CALL = form(CallSid => call_sid(1), From => '+15550001111', To => '+15550002222');

subtest 'a body dribbled past the deadline: closed, one log line, 408 in the access log' => sub {
    my $s = server(timeout => '1s');
    my ($worker) = $s->workers;
    # 0.3 s a byte: under client_body_timeout (60s) between any two reads
    my ($sent, $closed, $answer) = dribble($s, '/webhook/incoming_call', $FORM, $CALL, 0.3);
    ok($closed, "closed after $sent of " . length($CALL) . ' bytes');
    cmp_ok($sent, '<', length($CALL), 'before the body was all sent');
    is($answer, '', 'nothing answered to a client that is not reading');
    is(count_lines($s, qr/\[info\] .*WEBHOOK_BODY_TIMEOUT timeout=1000 length=\d+ rest=\d+: the body did not arrive within agentlocator_body_timeout/),
       1, 'one log line, with the timeout and what was missing');
    ok($s->wait_for(sub { $s->slurp('access.log') =~ m{"POST /webhook/incoming_call HTTP/1.1" 408 } }, 5),
       '408 in the access log');
    # the worker goes on
    my $r = $s->request('POST /webhook/incoming_call', headers => ["Content-Type: $FORM"],
                        body => form(CallSid => call_sid(2), From => '+15550001111'));
    is($r->{status}, 200, 'the next webhook answered');
    is(($s->workers)[0], $worker, 'by the same worker');
    ok($s->stop, 'stopped cleanly');
};

subtest 'the Baileys webhook too' => sub {
    my $s = server(timeout => '1s');
    my $json = '{"from":"+972541112222","text":"hello","provider_msg_id":"B1"}';
    my ($sent, $closed) = dribble($s, '/webhook/whatsapp/baileys', 'application/json', $json, 0.3);
    ok($closed, "closed after $sent of " . length($json) . ' bytes');
    is(count_lines($s, qr/WEBHOOK_BODY_TIMEOUT/), 1, 'logged once');
    ok($s->stop, 'stopped cleanly');
};

subtest 'a body in time: answered, its deadline gone with it' => sub {
    my $s = server(timeout => '1s');
    my ($worker) = $s->workers;
    my $short = form(CallSid => call_sid(3));
    my ($sent, $closed, $answer) = dribble($s, '/webhook/incoming_call', $FORM, $short,
                                           0.5 / length $short);
    ok(!$closed, 'not closed');
    like($answer, qr{^HTTP/1\.1 200 }, 'answered 200');
    # past the deadline the request is long gone: a timer left behind
    # would fire on freed memory (a crash, or a report under ASan)
    sleep 1.5;
    is(count_lines($s, qr/WEBHOOK_BODY_TIMEOUT/), 0, 'no timeout logged');
    is($s->request('GET /nothing')->{status}, 404, 'the worker answers');
    is(($s->workers)[0], $worker, 'the same worker');
    ok($s->stop, 'stopped cleanly');
};

subtest 'an answer still being sent at the deadline: sent whole' => sub {
    # the deadline is the body's: once the body is whole it goes, though
    # the request lives on while its answer is sent (here at 64 bytes a
    # second, as to a client reading slowly)
    my $s = server(timeout => '1s');
    my $short = form(CallSid => call_sid(6));
    my $t0 = time;
    my ($sent, $closed, $answer) = dribble($s, '/slow-reader/incoming_call', $FORM, $short, 0);
    my $took = time - $t0;
    ok(!$closed, "all $sent bytes taken");
    cmp_ok($took, '>', 1.5, sprintf('the answer took %.1f s, past the deadline', $took));
    like($answer, qr{^HTTP/1\.1 200 .*</Response>\s*\z}s, 'answered 200, all of it')
        or diag $answer;
    is(count_lines($s, qr/WEBHOOK_BODY_TIMEOUT/), 0, 'no timeout logged');
    ok($s->stop, 'stopped cleanly');
};

subtest 'agentlocator_body_timeout 0: only client_body_timeout applies' => sub {
    my $s = server(timeout => '1s');
    my $short = form(CallSid => call_sid(4));
    my ($sent, $closed, $answer) = dribble($s, '/patient/incoming_call', $FORM, $short,
                                           2 / length $short);
    ok(!$closed, "all $sent bytes taken over 2 s");
    like($answer, qr{^HTTP/1\.1 200 }, 'answered 200');
    is(count_lines($s, qr/WEBHOOK_BODY_TIMEOUT/), 0, 'no timeout');
    ok($s->stop, 'stopped cleanly');
};

subtest 'over HTTP/2: the stream reset, the worker goes on' => sub {
    plan skip_all => 'curl without HTTP/2' unless `curl -V` =~ /\bHTTP2\b/;
    my $s = Test::AgentLocator::Server->new(workers => 1, listen => 'http2', http => q{
    agentlocator_zone calls 1m;
    agentlocator_public_url https://voice.example.com;
    agentlocator_watchdog off;}, server => q{
    agentlocator_signature off;
    agentlocator_body_timeout 1s;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }});
    my ($worker) = $s->workers;
    # curl streams what it reads from the pipe as DATA frames
    my $url = "http://127.0.0.1:$s->{port}/webhook/incoming_call";
    my $out = File::Temp->new;
    open my $curl, '|-', "curl -sS -o /dev/null -w '%{http_code}' --http2-prior-knowledge "
        . "-X POST -T - -H 'Content-Type: $FORM' -H 'Content-Length: " . length($CALL)
        . "' $url >$out 2>&1" or die "curl: $!";
    $curl->autoflush(1);
    local $SIG{PIPE} = 'IGNORE';
    my $sent = 0;
    for my $byte (split //, $CALL) {
        last unless print $curl $byte;
        $sent++;
        sleep 0.3;
    }
    close $curl;
    my $said = do { local $/; open my $fh, '<', $out->filename or die; <$fh> } // '';
    $said =~ s/\s+/ /g;
    cmp_ok($sent, '<', length($CALL), "curl stopped after $sent bytes: $said");
    like($said, qr/HTTP\/2 stream \d+ was not closed cleanly/, 'its stream reset');
    is(count_lines($s, qr/WEBHOOK_BODY_TIMEOUT timeout=1000 .*HTTP\/2\.0/), 1, 'logged once');
    my $code = `curl -sS --http2-prior-knowledge -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: $FORM' --data 'CallSid=@{[ call_sid(5) ]}' $url`;
    is($code, '200', 'the next webhook answered');
    is(($s->workers)[0], $worker, 'by the same worker');
    ok($s->stop, 'stopped cleanly');
};

subtest 'a reload while a client dribbles: the old worker leaves at the deadline' => sub {
    my $s = server(timeout => '2s');
    my ($old) = $s->workers;
    my $long = $CALL x 4;
    my ($sent, $closed) = dribble($s, '/webhook/incoming_call', $FORM, $long, 0.3,
                                  sub { $s->reload(keep_old => 1) });
    ok($closed, "closed after $sent of " . length($long) . ' bytes');
    ok($s->wait_for(sub { !kill 0, $old }, 10), "the old worker $old exited");
    unlike(join("\n", grep { !/\[notice\]|\[info\]/ } split /\n/, $s->error_log),
           qr/open socket|\[alert\]/, 'and left nothing open');
    is(count_lines($s, qr/WEBHOOK_BODY_TIMEOUT/), 1, 'the timeout logged');
    ok($s->stop, 'stopped cleanly');
};

done_testing();
