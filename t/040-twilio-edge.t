# The Twilio-facing edge (SPEC §10) against someone who has seen one signed
# request: per-call stream URLs, streams that may only take a call this
# host answered, the AccountSid never taken from a stream, an http://
# public URL, and replays of a call that has ended.  Signatures are on, as
# in production; Twilio's REST API is the mock.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Server;
use Test::AgentLocator::TwilioMock;
use Test::AgentLocator::Twilio qw(form twilio_signature call_sid stream_token);
use Test::AgentLocator::WebSocket;

my $WS = 'Test::AgentLocator::WebSocket';
my $TOKEN = 'secret-token';
my $ACCOUNT = 'AC' . '1' x 32;          # ours, in the configuration
my $CALLER = 'AC' . 'a' x 32;           # the call's, from incoming_call
my $OTHER = 'AC' . 'e' x 32;            # someone else's
my $FORM = 'Content-Type: application/x-www-form-urlencoded';

sub setup {
    my (%o) = @_;
    my $mock = Test::AgentLocator::TwilioMock->new;
    my $public = $o{public} // 'https://voice.example.com';
    my $wd = $o{watchdog} // 'start_timeout=1s no_media_timeout=1s';
    my $s = Test::AgentLocator::Server->new(workers => $o{workers} // 2,
        http => <<"_EOC_", server => <<"_EOC_");
    agentlocator_zone calls @{[ $o{zone} // '1m' ]};
    agentlocator_public_url $public;
    agentlocator_twilio_account_sid $ACCOUNT;
    agentlocator_twilio_auth_token $TOKEN;
    agentlocator_twilio_api_url @{[ $mock->url ]};
    agentlocator_watchdog $wd;
_EOC_
    @{[ $o{server} // '' ]}
    access_log logs/access.log;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location /ws/twilio-media/        { agentlocator_media_stream; }
    location = /status                { agentlocator_status; agentlocator_signature off; }
_EOC_
    return ($s, $mock, $public);
}

# a signed webhook, as Twilio sends it
sub webhook {
    my ($s, $public, $name, @kv) = @_;
    my $uri = "/webhook/$name";
    my ($extra) = grep { ref } @kv;
    @kv = grep { !ref } @kv;
    return $s->request("POST $uri", headers => [$FORM,
        'X-Twilio-Signature: ' . twilio_signature($TOKEN, "$public$uri", @kv),
        @{ $extra // [] }], body => form(@kv));
}

sub incoming {
    my ($s, $public, $n, @h) = @_;
    return webhook($s, $public, 'incoming_call', CallSid => call_sid($n),
                   AccountSid => $CALLER, From => '+15551230000',
                   To => '+15557650000', @h);
}

sub stream_path { Test::AgentLocator::WebSocket::stream_path($_[0]{body}) }

# the upgrade Twilio makes to $path, signed over the wss:// URL
sub upgrade {
    my ($s, $path, $signed_path) = @_;
    my $sig = twilio_signature($TOKEN, 'wss://voice.example.com' . ($signed_path // $path));
    return $WS->connect($s->{port}, $path, headers => ["X-Twilio-Signature: $sig"]);
}

sub zone { decode_json($_[0]->request('GET /status')->{body})->{zone} }

sub wait_log {
    my ($s, $re, $secs) = @_;
    my $until = time + ($secs // 3);
    while (time < $until) { return 1 if $s->error_log =~ $re; sleep 0.02 }
    return 0;
}

subtest 'each call gets its own stream URL, signed by a MAC of its CallSid' => sub {
    my ($s, $mock, $public) = setup();
    my $r = incoming($s, $public, 1);
    is($r->{status}, 200, 'incoming_call answered');
    like($r->{body}, qr{<Stream url="wss://voice\.example\.com/}, 'on the public host, wss://');
    is(stream_path($r), '/ws/twilio-media/' . call_sid(1) . '/' . stream_token($TOKEN, call_sid(1)),
       'the TwiML names /ws/twilio-media/{CallSid}/{token}');
    isnt(stream_token($TOKEN, call_sid(1)), stream_token($TOKEN, call_sid(2)), 'tokens differ per call');
    my $ws = upgrade($s, stream_path($r));
    is($ws->status, 101, "Twilio's signed upgrade to that URL: 101");
    $ws->twilio_start(1);
    ok(wait_log($s, qr/WS_START call=CA0{31}1 stream=MZ0{31}1 url=per-call/), 'the stream took its call');
    is($s->call(1)->{state}, 'streaming', 'streaming');
    unlike($s->error_log, qr/${\ stream_token($TOKEN, call_sid(1))}/, 'the error log never shows the token');
    like($s->error_log, qr{request: "GET /ws/twilio-media/CA0{31}1/\.\.\. HTTP/1\.1"}, 'the request line is shown without it');
    $ws->close_ws;
    ok($s->stop, 'stopped');
    my $access = $s->slurp('access.log');
    like($access, qr{"GET /ws/twilio-media/CA0{31}1/\.\.\. HTTP/1\.1" 101 }, 'the access log shows the upgrade');
    unlike($access, qr/${\ stream_token($TOKEN, call_sid(1))}/, 'without the token');
};

subtest 'the token stays out of the logs when nginx decoded the URI into a copy' => sub {
    my ($s, $mock, $public) = setup();
    my $token = stream_token($TOKEN, call_sid(1));
    (my $path = stream_path(incoming($s, $public, 1))) =~ s{^/ws/}{/ws/./};
    my $ws = upgrade($s, $path);
    is($ws->status, 101, '/ws/./twilio-media/...: the same URL, 101');
    $ws->twilio_start(1);
    ok(wait_log($s, qr/WS_START call=CA0{31}1/), 'the stream took its call');
    $ws->close_ws;
    (my $escaped = stream_path(incoming($s, $public, 2))) =~ s{/CA}{/%43A};
    $ws = upgrade($s, $escaped);
    ok($ws->status, "an escaped CallSid: answered ${\ $ws->status }");
    $ws->close_socket;
    ok($s->stop, 'stopped');
    my $logs = $s->error_log . $s->slurp('access.log');
    unlike($logs, qr/$token/, 'the logs never show the token of a dot segment\'s URI');
    my $token2 = stream_token($TOKEN, call_sid(2));
    unlike($logs, qr/$token2/, 'nor of an escaped one');
    like($logs, qr{"GET /ws/\./twilio-media/CA0{31}1/\.\.\. HTTP/1\.1" 101 }, 'the line as sent, "..." for the token');
};

subtest 'a captured upgrade opens a stream for its own call at most' => sub {
    my ($s, $mock, $public) = setup();
    my $one = stream_path(incoming($s, $public, 1));
    my $two = stream_path(incoming($s, $public, 2));

    # call 1's signature on call 2's URL: Twilio signed another URL
    my $ws = upgrade($s, $two, $one);
    is($ws->status, 403, "call 1's signature on call 2's URL: 403");
    like($ws->{body}, qr/invalid X-Twilio-Signature/, 'reason');
    ok(wait_log($s, qr/SIGNATURE_INVALID call=CA0{31}2 reason=mismatch url="wss:\/\/voice\.example\.com\/ws\/twilio-media\/CA0{31}2\/\.\.\."/),
       'logged without the token');

    # a URL whose token is not its call's, even signed by someone with the key
    (my $forged = $two) =~ s{/[0-9a-f]{32}\z}{'/' . stream_token($TOKEN, call_sid(1))}e;
    $ws = upgrade($s, $forged);
    is($ws->status, 403, "call 1's token on call 2's URL: 403");
    like($ws->{body}, qr/invalid stream URL token/, 'reason');
    ok(wait_log($s, qr/WS_URL_INVALID call=CA0{31}2 reason=token/), 'logged');

    # a CallSid that is not one, even with its MAC as token and a signature
    for my $sid ('CA' . 'g' x 32, 'CA' . '0' x 31 . '.', 'MZ' . '0' x 32, 'ca' . '0' x 32) {
        $ws = upgrade($s, "/ws/twilio-media/$sid/" . stream_token($TOKEN, $sid));
        is($ws->status, 403, "$sid: 403");
        like($ws->{body}, qr{must end in /\{CallSid\}/\{token\}}, "$sid: not a call's URL");
    }

    # the plain URL names no call
    $ws = upgrade($s, '/ws/twilio-media/');
    is($ws->status, 403, 'the plain URL: 403 (agentlocator_media_plain_url is off)');
    like($ws->{body}, qr{must end in /\{CallSid\}/\{token\}}, 'reason');

    # call 1's own upgrade, replayed with a start for call 2
    $ws = upgrade($s, $one);
    is($ws->status, 101, "call 1's URL: 101");
    $ws->twilio_start(2, account => $CALLER);
    my ($code, $reason) = $ws->recv_close(3);
    is($code, 1008, 'a start for another call: 1008');
    is($reason, 'start names another call than the stream URL', 'reason');
    ok(wait_log($s, qr/WS_REFUSED call=CA0{31}2 stream=MZ0{31}2 reason=url_mismatch/), 'logged');
    $ws->close_socket;
    is($s->call(2)->{state}, 'armed', 'call 2 is untouched');
    is($s->call(1)->{state}, 'armed', 'and so is call 1');
    ok($s->stop, 'stopped');
};

subtest 'streams for calls nobody registered fill nothing and cost no REST request' => sub {
    # the worst case: the plain URL allowed, and one signed upgrade of it seen
    my ($s, $mock, $public) = setup(zone => '32k', workers => 1,
        server => 'agentlocator_media_plain_url on;');
    my $cap = zone($s)->{capacity};
    my $refused = 0;
    for my $n (1000 .. 1000 + 3 * $cap) {
        my $ws = upgrade($s, '/ws/twilio-media/');
        next unless $ws->status == 101;
        $ws->twilio_start($n, account => $OTHER);
        my ($code) = $ws->recv_close(3);
        $refused++ if ($code // 0) == 1008;
        $ws->close_socket;
    }
    is($refused, 3 * $cap + 1, "all @{[3 * $cap + 1]} forged streams refused with 1008 ($cap fit the zone)");
    like($s->error_log, qr/WS_REFUSED call=CA0{29}3e8 stream=MZ0{29}3e8 reason=unknown_call worker=0: no incoming_call registered this call here; closing with 1008/,
         'each logged');
    is(zone($s)->{entries}, 0, 'the zone holds none of them');
    my $r = incoming($s, $public, 1);
    like($r->{body}, qr/<Stream url=/, 'a real call still gets its TwiML');
    is(zone($s)->{entries}, 1, 'and its entry: no ZONE_FULL');
    unlike($s->error_log, qr/ZONE_FULL/, 'no ZONE_FULL logged');
    sleep 1.5;    # past start_timeout
    my @forged = grep { $_->{path} !~ /${\ call_sid(1)}/ } @{ $mock->requests };
    is(scalar @forged, 0, 'no REST request for any forged call');
    ok($s->stop, 'stopped');
};

subtest 'a live call cannot be silenced, nor spoken for under another account' => sub {
    my ($s, $mock, $public) = setup();
    my $path = stream_path(incoming($s, $public, 1));
    my $twilio = upgrade($s, $path);
    $twilio->twilio_start(1, account => $CALLER);
    ok(wait_log($s, qr/WS_START call=CA0{31}1/), "Twilio's stream took the call");

    # the same signed upgrade, replayed while Twilio's stream is live
    my $ws = upgrade($s, $path);
    is($ws->status, 101, 'the replayed upgrade: 101');
    $ws->twilio_start(1, account => $CALLER);
    my ($code, $reason) = $ws->recv_close(3);
    is($code, 1008, 'its start: 1008');
    is($reason, 'another stream of this call is live', 'reason');
    $ws->twilio_stop(1, 5);
    $ws->close_socket;
    sleep 0.3;
    is($s->call(1)->{state}, 'streaming', 'its stop and close did not mark the call stopped');
    ok($s->call(1)->{stream_live}, "Twilio's stream still holds it");

    # Twilio's stream goes silent: the call is still protected
    $twilio->twilio_media(1, $_) for 2 .. 5;
    ok(wait_log($s, qr/WATCHDOG_REDIRECT call=CA0{31}1 reason=no_media/, 4),
       'silence is still rescued');
    my ($req) = @{ $mock->by_call->{ call_sid(1) } // [] };
    like($req->{path}, qr{/Accounts/$CALLER/Calls/}, "the redirect is made for incoming_call's AccountSid");
    $twilio->close_socket;

    # a stream naming another account than the call's
    $path = stream_path(incoming($s, $public, 2));
    $ws = upgrade($s, $path);
    $ws->twilio_start(2, account => $OTHER);
    ($code, $reason) = $ws->recv_close(3);
    is($code, 1008, "a start with another AccountSid: 1008");
    is($reason, "accountSid is not the call's", 'reason');
    ok(wait_log($s, qr/WS_REFUSED call=CA0{31}2 .*reason=account_mismatch/), 'logged');
    $ws->close_socket;
    ok(wait_log($s, qr/WATCHDOG_REDIRECT call=CA0{31}2 reason=no_stream_start/, 3),
       'the call is still watched, as a call whose stream never came');
    ($req) = @{ $mock->by_call->{ call_sid(2) } // [] };
    like($req->{path}, qr{/Accounts/$CALLER/Calls/}, 'and redirected for its own account');
    ok(!grep({ $_->{path} =~ /$OTHER/ } @{ $mock->requests }), "never for the stream's");
    ok($s->stop, 'stopped');
};

subtest 'an http:// public URL: the upgrade is checked as the wss:// URL Twilio signs' => sub {
    my ($s, $mock, $public) = setup(public => 'http://voice.example.com');
    my $r = incoming($s, $public, 1);
    my $path = stream_path($r);
    like($r->{body}, qr{<Stream url="wss://voice\.example\.com/ws/twilio-media/}, 'the TwiML says wss://');
    my $ws = upgrade($s, $path);
    is($ws->status, 101, 'signed over wss://: 101');
    $ws->twilio_start(1, account => $CALLER);
    ok(wait_log($s, qr/WS_START call=CA0{31}1/), 'streaming');
    $ws->close_ws;
    my $sig = twilio_signature($TOKEN, "ws://voice.example.com$path");
    is($WS->connect($s->{port}, $path, headers => ["X-Twilio-Signature: $sig"])->status, 403,
       'signed over ws://: 403');
    ok($s->stop, 'stopped');
};

subtest 'incoming_call replayed after the call ended arms nothing' => sub {
    my ($s, $mock, $public) = setup(
        watchdog => 'start_timeout=1s no_media_timeout=1s completed_grace=1s');
    my $r = incoming($s, $public, 1);
    is($r->{status}, 200, 'the call');
    my $r2 = webhook($s, $public, 'call_status', CallSid => call_sid(1), AccountSid => $CALLER,
                     CallStatus => 'completed', CallDuration => '3');
    is($r2->{status}, 200, 'completed');

    my $hangup = qq{<?xml version="1.0" encoding="UTF-8"?>\n<Response><Hangup/></Response>\n};
    $r = incoming($s, $public, 1, ['I-Twilio-Idempotency-Token: replay-1']);
    is($r->{status}, 200, 'replayed while the entry is kept: 200');
    is($r->{body}, $hangup, 'answered <Hangup/>, no stream URL');
    ok(wait_log($s, qr/\[warn\] .*CALL_REPLAY call=CA0{31}1 idempotency=replay-1: incoming_call for a call that has ended; answered <Hangup\/>, nothing armed/),
       'logged with the idempotency token');

    # the entry is reaped after completed_grace; the call is remembered
    my $until = time + 10;
    sleep 0.2 while time < $until && $s->call(1);
    ok(!$s->call(1), 'the entry was reaped');
    $r = incoming($s, $public, 1, ['I-Twilio-Idempotency-Token: replay-2']);
    is($r->{body}, $hangup, 'replayed after reaping: <Hangup/>');
    ok(wait_log($s, qr/CALL_REPLAY call=CA0{31}1 idempotency=replay-2/), 'logged');
    ok(!$s->call(1), 'nothing armed');
    sleep 1.5;    # past start_timeout
    is(scalar @{ $mock->requests }, 0, 'and no REST request spent on it');
    my $z = zone($s);
    is($z->{replays}, 2, 'two replays counted in /status');
    cmp_ok($z->{ended_capacity}, '>=', 1000, "the zone remembers $z->{ended_capacity} ended calls");
    is($z->{ended_forgotten}, 0, 'none forgotten early');

    # a Twilio retry of a live call's webhook is still answered as before
    $r = incoming($s, $public, 2);
    my $again = incoming($s, $public, 2, ['I-Twilio-Idempotency-Token: retry-2']);
    is($again->{body}, $r->{body}, 'a repeat for a live call: the same TwiML');
    ok(wait_log($s, qr/CALL_INCOMING call=CA0{31}2 state=armed repeat=1 idempotency=retry-2/),
       'logged as a repeat');
    ok($s->stop, 'stopped');
};

done_testing();
