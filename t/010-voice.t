# The voice webhooks (SPEC §4): exact TwiML, registry effects, bad input.
use lib 't/lib';
use Test::AgentLocator::Nginx 'no_plan';
use Test::AgentLocator::Twilio qw(form twilio_signature call_sid stream_token);

our $TOKEN  = '12345';
our $PUBLIC = 'https://voice.example.com';
our $ACCOUNT = 'AC' . 'a' x 32;

# POST request text and its signed headers, as Twilio would send them
sub post { my ($uri, @kv) = @_; "POST $uri\n" . form(@kv) }
sub hdrs {
    my ($uri, @kv) = @_;
    "Content-Type: application/x-www-form-urlencoded\n"
    . "X-Twilio-Signature: " . twilio_signature($TOKEN, "$PUBLIC$uri", @kv);
}
# Twilio's incoming_call parameters for call $n; later pairs replace earlier
sub incoming {
    my ($n, %more) = @_;
    my @kv = (CallSid => call_sid($n), AccountSid => $ACCOUNT,
              From => '+15551230000', To => '+15557650000',
              CallStatus => 'ringing', Direction => 'inbound');
    for (my $i = 0; $i < @kv; $i += 2) {
        $kv[$i + 1] = delete $more{$kv[$i]} if exists $more{$kv[$i]};
    }
    return (@kv, map { ($_ => $more{$_}) } sort keys %more);
}

# the watchdog has its own suite (t/030-watchdog.t)
our $HTTP = <<'_EOC_';
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token 12345;
    agentlocator_public_url https://voice.example.com;
    agentlocator_watchdog off;
_EOC_

our $LOCATIONS = <<'_EOC_';
    location = /webhook/incoming_call    { agentlocator_voice incoming_call; }
    location = /webhook/stream_status    { agentlocator_voice stream_status; }
    location = /webhook/stream_ended     { agentlocator_voice stream_ended; }
    location = /webhook/handle_recording { agentlocator_voice handle_recording; }
    location = /webhook/call_status      { agentlocator_voice call_status; }
    location = /status                   { agentlocator_status; }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value(http_config => $HTTP) unless defined $block->http_config;
    $block->set_value(config => $LOCATIONS) unless defined $block->config;
});

our $CONNECT = '<?xml version="1.0" encoding="UTF-8"?>
<Response><Play>https://voice.example.com/static/tts/greeting.mp3</Play><Connect action="https://voice.example.com/webhook/stream_ended"><Stream url="wss://voice.example.com/ws/twilio-media/CA00000000000000000000000000000001/' . stream_token($TOKEN, call_sid(1)) . '" statusCallback="https://voice.example.com/webhook/stream_status"><Parameter name="call_sid" value="CA00000000000000000000000000000001"/></Stream></Connect></Response>
';

our $FALLBACK = '<?xml version="1.0" encoding="UTF-8"?>
<Response><Play>https://voice.example.com/static/tts/fallback.mp3</Play><Record action="https://voice.example.com/webhook/handle_recording" playBeep="false" timeout="4" maxLength="30"/></Response>
';

# A block of several requests checks its error_log after each of them (as
# Test::Nginx does); with this, each check sees the whole block's log so
# far.  Blocks whose lines come from later requests send them pipelined,
# so that every check comes after every answer.
check_accum_error_log();

run_tests();

__DATA__

=== TEST 1: incoming_call answers the greeting and the stream, exactly as SPEC §4
--- http_config eval
$::HTTP . "agentlocator_greeting /static/tts/greeting.mp3;\n"
--- request eval
::post('/webhook/incoming_call', ::incoming(1))
--- more_headers eval
::hdrs('/webhook/incoming_call', ::incoming(1))
--- response_body eval
$::CONNECT
--- response_headers
Content-Type: text/xml
Cache-Control: no-store
--- error_log
CALL_INCOMING call=CA00000000000000000000000000000001 state=armed repeat=0
--- no_error_log
[error]
[warn]



=== TEST 2: without agentlocator_greeting there is no <Play>
--- request eval
::post('/webhook/incoming_call', ::incoming(1))
--- more_headers eval
::hdrs('/webhook/incoming_call', ::incoming(1))
--- response_body eval
$::CONNECT =~ s{<Play>[^<]*</Play>}{}r
--- no_error_log
[error]



=== TEST 3: XML metacharacters in configured URLs are escaped in TwiML
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token 12345;
    agentlocator_public_url https://voice.example.com;
    agentlocator_greeting "/tts/a.mp3?x=1&y='<2>'";
--- request eval
::post('/webhook/incoming_call', ::incoming(1))
--- more_headers eval
::hdrs('/webhook/incoming_call', ::incoming(1))
--- response_body_like chomp
<Play>https://voice\.example\.com/tts/a\.mp3\?x=1&amp;y=&apos;&lt;2&gt;&apos;</Play>
--- no_error_log
[error]



=== TEST 4: a public_url path prefix is in every URL, wss included
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token 12345;
    agentlocator_public_url https://voice.example.com/line-1/;
--- config
    location = /webhook/incoming_call { agentlocator_voice incoming_call; agentlocator_signature off; }
--- request eval
::post('/webhook/incoming_call', ::incoming(1))
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- response_body_like chomp
<Connect action="https://voice\.example\.com/line-1/webhook/stream_ended"><Stream url="wss://voice\.example\.com/line-1/ws/twilio-media/CA0{31}1/[0-9a-f]{32}" statusCallback="https://voice\.example\.com/line-1/webhook/stream_status">



=== TEST 5: a repeated incoming_call is idempotent: same TwiML, one entry
--- pipelined_requests eval
[::post('/webhook/incoming_call', ::incoming(7)),
 ::post('/webhook/incoming_call', ::incoming(7)),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(7)),
 ::hdrs('/webhook/incoming_call', ::incoming(7)), ""]
--- response_body_like eval
[qr/value="CA00000000000000000000000000000007"/,
 qr/value="CA00000000000000000000000000000007"/,
 qr/"entries":1,.*"calls":\[\{"call_sid":"CA00000000000000000000000000000007","state":"armed"/]
--- error_log
CALL_INCOMING call=CA00000000000000000000000000000007 state=armed repeat=0
CALL_INCOMING call=CA00000000000000000000000000000007 state=armed repeat=1
--- no_error_log
[error]



=== TEST 6: the status endpoint shows the call's fields, JSON-escaped
--- request eval
[::post('/webhook/incoming_call', ::incoming(2, From => "sip:\"a\\b\"<x>\@h\x01")),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(2, From => "sip:\"a\\b\"<x>\@h\x01")), ""]
--- response_body_like eval
[qr/<Response>/,
 qr/^\{"zone":\{"name":"calls","size":1048576,"entries":1,"capacity":\d+,"entry_bytes":\d+,"pages_total":\d+,"pages_free":\d+,"full":0,"evicted":0,"expired":0,"repaired":0,"ended_capacity":16384,"ended_forgotten":0,"replays":0\},"websocket":\{"accepted":0,"open":0,"frames":0,"bytes":0,"bad_messages":0,"protocol_errors":0\},"truncated":false,"calls":\[\{"call_sid":"CA00000000000000000000000000000002","state":"armed","created_at":\d+,"age_ms":\d+,"stream_age_ms":null,"since_media_ms":null,"since_update_ms":\d+,"stream_sid":null,"account_sid":"ACa{32}","from":"sip:\\"a\\\\b\\"<x>\@h\\u0001","to":"\+15557650000","call_status":null,"frames":0,"bytes":0,"stream_live":false,"stream_error":false,"recording":false,"redirect":\{"attempts":0,"reason":"none","outcome":"none","status":0\}\}\]\}\n\z/]
--- response_headers eval
["Content-Type: text/xml", "Content-Type: application/json"]
--- no_error_log
[error]



=== TEST 7: stream_status answers 204 and marks the call streaming
--- request eval
[::post('/webhook/incoming_call', ::incoming(3)),
 ::post('/webhook/stream_status', CallSid => ::call_sid(3), AccountSid => $::ACCOUNT,
        StreamSid => 'MZ' . 'b' x 32, StreamEvent => 'stream-started',
        Timestamp => '2026-01-01T00:00:00.000Z'),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(3)),
 ::hdrs('/webhook/stream_status', CallSid => ::call_sid(3), AccountSid => $::ACCOUNT,
        StreamSid => 'MZ' . 'b' x 32, StreamEvent => 'stream-started',
        Timestamp => '2026-01-01T00:00:00.000Z'), ""]
--- error_code eval
[200, 204, 200]
--- response_body_like eval
[qr/<Response>/, qr/^\z/,
 qr/"state":"streaming",.*"stream_age_ms":\d+,.*"stream_sid":"MZb{32}"/]
--- no_error_log
[error]



=== TEST 30: stream_status is logged with its event and whether the call is known
(pipelined, so the check comes after both answers; the 204 is the last, as
Test::Nginx cannot tell where a 204 without Content-Length ends)
--- pipelined_requests eval
[::post('/webhook/incoming_call', ::incoming(3)),
 ::post('/webhook/stream_status', CallSid => ::call_sid(3), AccountSid => $::ACCOUNT,
        StreamSid => 'MZ' . 'b' x 32, StreamEvent => 'stream-started',
        Timestamp => '2026-01-01T00:00:00.000Z')]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(3)),
 ::hdrs('/webhook/stream_status', CallSid => ::call_sid(3), AccountSid => $::ACCOUNT,
        StreamSid => 'MZ' . 'b' x 32, StreamEvent => 'stream-started',
        Timestamp => '2026-01-01T00:00:00.000Z')]
--- error_code eval
[200, 204]
--- response_body_like eval
[qr/<Response>/, qr/^\z/]
--- error_log
STREAM_STATUS call=CA00000000000000000000000000000003 event=stream-started known=1
--- no_error_log
[error]



=== TEST 8: stream-stopped marks the call stopped: the watch ends, <Connect action> follows
--- request eval
[::post('/webhook/incoming_call', ::incoming(3)),
 ::post('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-stopped',
        StreamSid => 'MZ' . 'b' x 32),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(3)),
 ::hdrs('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-stopped',
        StreamSid => 'MZ' . 'b' x 32), ""]
--- error_code eval
[200, 204, 200]
--- response_body_like eval
[qr/<Response>/, qr/^\z/, qr/"state":"stopped",.*"stream_error":false/]
--- no_error_log
[error]



=== TEST 28: stream-error is recorded and the call stays watched (start_timeout still applies)
--- request eval
[::post('/webhook/incoming_call', ::incoming(3)),
 ::post('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-error',
        StreamError => 'Handshake <failed>'),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(3)),
 ::hdrs('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-error',
        StreamError => 'Handshake <failed>'), ""]
--- error_code eval
[200, 204, 200]
--- response_body_like eval
[qr/<Response>/, qr/^\z/, qr/"state":"armed",.*"stream_error":true/]
--- no_error_log
[error]



=== TEST 29: stream-error after stream-started leaves the call dropped: still watched
--- request eval
[::post('/webhook/incoming_call', ::incoming(3)),
 ::post('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-started',
        StreamSid => 'MZ' . 'b' x 32),
 ::post('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-error',
        StreamSid => 'MZ' . 'b' x 32, StreamError => 'Connection reset'),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(3)),
 ::hdrs('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-started',
        StreamSid => 'MZ' . 'b' x 32),
 ::hdrs('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-error',
        StreamSid => 'MZ' . 'b' x 32, StreamError => 'Connection reset'), ""]
--- error_code eval
[200, 204, 204, 200]
--- response_body_like eval
[qr/<Response>/, qr/^\z/, qr/^\z/, qr/"state":"dropped",.*"stream_error":true/]
--- no_error_log
[error]



=== TEST 9: an unknown StreamEvent is logged and answered 204
--- request eval
::post('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-paused')
--- more_headers eval
::hdrs('/webhook/stream_status', CallSid => ::call_sid(3), StreamEvent => 'stream-paused')
--- error_code: 204
--- response_body
--- error_log
STREAM_STATUS call=CA00000000000000000000000000000003 event=stream-paused ignored
--- no_error_log
[error]



=== TEST 10: stream_ended answers the fallback: prompt, then a recording
--- http_config eval
$::HTTP . "agentlocator_fallback_prompt /static/tts/fallback.mp3;\n"
--- pipelined_requests eval
[::post('/webhook/incoming_call', ::incoming(4)),
 ::post('/webhook/stream_ended', ::incoming(4, CallStatus => 'in-progress')),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(4)),
 ::hdrs('/webhook/stream_ended', ::incoming(4, CallStatus => 'in-progress')), ""]
--- response_body_like eval
[qr/<Response>/, qr/\A\Q$::FALLBACK\E\z/, qr/"state":"fallback"/]
--- response_headers eval
["Content-Type: text/xml", "Content-Type: text/xml", "Content-Type: application/json"]
--- error_log
STREAM_ENDED call=CA00000000000000000000000000000004 known=1 answer=fallback
--- no_error_log
[error]



=== TEST 11: stream_ended for a call this registry never saw still gets the fallback
--- request eval
::post('/webhook/stream_ended', CallSid => ::call_sid(99))
--- more_headers eval
::hdrs('/webhook/stream_ended', CallSid => ::call_sid(99))
--- response_body
<?xml version="1.0" encoding="UTF-8"?>
<Response><Record action="https://voice.example.com/webhook/handle_recording" playBeep="false" timeout="4" maxLength="30"/></Response>
--- error_log
STREAM_ENDED call=CA00000000000000000000000000000063 known=0 answer=fallback
--- no_error_log
[error]



=== TEST 12: handle_recording answers 204 and marks the call recorded
--- request eval
[::post('/webhook/incoming_call', ::incoming(5)),
 ::post('/webhook/handle_recording', CallSid => ::call_sid(5),
        RecordingUrl => 'https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE' . 'c' x 32,
        RecordingSid => 'RE' . 'c' x 32, RecordingDuration => '7', Digits => 'hangup'),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(5)),
 ::hdrs('/webhook/handle_recording', CallSid => ::call_sid(5),
        RecordingUrl => 'https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE' . 'c' x 32,
        RecordingSid => 'RE' . 'c' x 32, RecordingDuration => '7', Digits => 'hangup'), ""]
--- error_code eval
[200, 204, 200]
--- response_body_like eval
[qr/<Response>/, qr/^\z/, qr/"recording":true/]
--- no_error_log
[error]



=== TEST 31: handle_recording is logged with the recording and its duration
(pipelined, the 204 last: see TEST 30)
--- pipelined_requests eval
[::post('/webhook/incoming_call', ::incoming(5)),
 ::post('/webhook/handle_recording', CallSid => ::call_sid(5),
        RecordingUrl => 'https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE' . 'c' x 32,
        RecordingSid => 'RE' . 'c' x 32, RecordingDuration => '7', Digits => 'hangup')]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(5)),
 ::hdrs('/webhook/handle_recording', CallSid => ::call_sid(5),
        RecordingUrl => 'https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE' . 'c' x 32,
        RecordingSid => 'RE' . 'c' x 32, RecordingDuration => '7', Digits => 'hangup')]
--- error_code eval
[200, 204]
--- response_body_like eval
[qr/<Response>/, qr/^\z/]
--- error_log eval
qr/RECORDING call=CA00000000000000000000000000000005 recording=REc{32} duration=7 known=1/
--- no_error_log
[error]



=== TEST 13: call_status answers OK and completes the call
--- pipelined_requests eval
[::post('/webhook/incoming_call', ::incoming(6)),
 ::post('/webhook/call_status', ::incoming(6, CallStatus => 'completed', CallDuration => '42')),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(6)),
 ::hdrs('/webhook/call_status', ::incoming(6, CallStatus => 'completed', CallDuration => '42')), ""]
--- response_body_like eval
[qr/<Response>/, qr/\AOK\n\z/, qr/"state":"completed",.*"call_status":"completed"/]
--- response_headers eval
["Content-Type: text/xml", "Content-Type: text/plain", "Content-Type: application/json"]
--- error_log
CALL_STATUS call=CA00000000000000000000000000000006 status=completed final=1 known=1
--- no_error_log
[error]



=== TEST 14: a non-final call_status keeps the call live
--- request eval
[::post('/webhook/incoming_call', ::incoming(6)),
 ::post('/webhook/call_status', ::incoming(6, CallStatus => 'in-progress')),
 "GET /status"]
--- more_headers eval
[::hdrs('/webhook/incoming_call', ::incoming(6)),
 ::hdrs('/webhook/call_status', ::incoming(6, CallStatus => 'in-progress')), ""]
--- response_body_like eval
[qr/<Response>/, qr/\AOK\n\z/, qr/"state":"armed",.*"call_status":"in-progress"/]
--- no_error_log
[error]



=== TEST 15: missing CallSid is 400 with a reason and a log line
--- request eval
::post('/webhook/incoming_call', From => '+1555')
--- more_headers eval
::hdrs('/webhook/incoming_call', From => '+1555')
--- error_code: 400
--- response_body
missing CallSid
--- response_headers
Content-Type: text/plain
--- error_log
agentlocator: 400 missing CallSid
--- no_error_log
[error]



=== TEST 16: malformed CallSids are 400 on every handler
--- request eval
[map { ::post("/webhook/$_->[0]", CallSid => $_->[1]) }
 ['incoming_call', 'CA' . '0' x 31], ['stream_status', 'CA' . 'g' x 32],
 ['stream_ended', 'ca' . '0' x 32], ['handle_recording', 'CA' . '0' x 33],
 ['call_status', '<script>']]
--- more_headers eval
[map { ::hdrs("/webhook/$_->[0]", CallSid => $_->[1]) }
 ['incoming_call', 'CA' . '0' x 31], ['stream_status', 'CA' . 'g' x 32],
 ['stream_ended', 'ca' . '0' x 32], ['handle_recording', 'CA' . '0' x 33],
 ['call_status', '<script>']]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body eval
[("malformed CallSid\n") x 5]
--- no_error_log
[error]



=== TEST 17: a CallSid repeated with two values is refused; repeated alike is fine
--- request eval
[::post('/webhook/incoming_call', CallSid => ::call_sid(1), CallSid => ::call_sid(2)),
 ::post('/webhook/incoming_call', CallSid => ::call_sid(1), CallSid => ::call_sid(1))]
--- more_headers eval
[::hdrs('/webhook/incoming_call', CallSid => ::call_sid(1), CallSid => ::call_sid(2)),
 ::hdrs('/webhook/incoming_call', CallSid => ::call_sid(1), CallSid => ::call_sid(1))]
--- error_code eval
[400, 200]
--- response_body_like eval
[qr/\Aconflicting CallSid values\n\z/, qr/value="CA00000000000000000000000000000001"/]
--- no_error_log
[error]



=== TEST 18: GET is 405 with Allow: POST
--- request
GET /webhook/incoming_call
--- error_code: 405
--- response_headers
Allow: POST
--- response_body
method not allowed
--- no_error_log
[error]



=== TEST 19: another content type is 415
--- request eval
"POST /webhook/incoming_call\n{\"CallSid\":\"" . ::call_sid(1) . "\"}"
--- more_headers
Content-Type: application/json
--- error_code: 415
--- response_body
Content-Type must be application/x-www-form-urlencoded
--- error_log
agentlocator: 415 Content-Type must be application/x-www-form-urlencoded
--- no_error_log
[error]



=== TEST 20: a form content type with a charset is accepted
--- request eval
::post('/webhook/incoming_call', ::incoming(1))
--- more_headers eval
my $h = ::hdrs('/webhook/incoming_call', ::incoming(1));
$h =~ s/urlencoded/urlencoded; charset=UTF-8/;
$h
--- response_body_like chomp
<Response>
--- no_error_log
[error]



=== TEST 21: a body over agentlocator_webhook_max_body is 413 before it is read
--- config eval
$::LOCATIONS . "agentlocator_webhook_max_body 1k;"
--- request eval
::post('/webhook/incoming_call', ::incoming(1, Pad => 'x' x 2000))
--- more_headers eval
::hdrs('/webhook/incoming_call', ::incoming(1, Pad => 'x' x 2000))
--- error_code: 413
--- response_body
request body too large
--- no_error_log
[error]



=== TEST 22: a chunked body over the limit is 413 too
--- config eval
$::LOCATIONS . "agentlocator_webhook_max_body 1k;"
--- raw_request eval
my $body = ::form(::incoming(1, Pad => 'x' x 2000));
"POST /webhook/incoming_call HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
. sprintf("%x\r\n%s\r\n0\r\n\r\n", length $body, $body)
--- error_code: 413
--- response_body
request body too large
--- no_error_log
[error]



=== TEST 23: a body nginx buffered to a temp file is read back
--- config eval
$::LOCATIONS . "client_body_buffer_size 1k; client_body_in_file_only on;"
--- request eval
::post('/webhook/incoming_call', ::incoming(1, Pad => 'x' x 3000))
--- more_headers eval
::hdrs('/webhook/incoming_call', ::incoming(1, Pad => 'x' x 3000))
--- response_body eval
my $c = $::CONNECT; $c =~ s{<Play>[^<]*</Play>}{}; $c
--- no_error_log
[error]



=== TEST 24: percent-decoding and "+" apply before signing and parsing
--- request eval
::post('/webhook/incoming_call', ::incoming(1, From => 'client:Ann Smith', Note => "a&b=c%d+e\x{e9}"))
--- more_headers eval
::hdrs('/webhook/incoming_call', ::incoming(1, From => 'client:Ann Smith', Note => "a&b=c%d+e\x{e9}"))
--- response_body_like chomp
<Response>
--- no_error_log
[error]



=== TEST 25: malformed percent-encoding is 400
--- request eval
"POST /webhook/incoming_call\nCallSid=" . ::call_sid(1) . "&From=%2"
--- more_headers
Content-Type: application/x-www-form-urlencoded
X-Twilio-Signature: AAAAAAAAAAAAAAAAAAAAAAAAAAA=
--- error_code: 400
--- response_body
malformed percent-encoding in form body
--- no_error_log
[error]



=== TEST 26: more than 128 parameters is 400
--- request eval
"POST /webhook/incoming_call\n" . CORE::join('&', map { "p$_=1" } 1 .. 129)
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 400
--- response_body
too many form parameters
--- no_error_log
[error]



=== TEST 27: an empty body is a missing CallSid
--- request eval
"POST /webhook/call_status\n"
--- more_headers eval
::hdrs('/webhook/call_status')
--- error_code: 400
--- response_body
missing CallSid
--- no_error_log
[error]



=== TEST 32: bytes that are not UTF-8 reach /status as U+FFFD, never raw
--- config
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /status                { agentlocator_status; }
--- request eval
["POST /webhook/incoming_call
CallSid=CA00000000000000000000000000000008&From=a%FF%C3b%E2%82&To=%2B1%C3%A9",
 "GET /status"]
--- more_headers eval
["Content-Type: application/x-www-form-urlencoded", ""]
--- response_body_like eval
[qr/<Response>/,
 qr/"from":"a\\ufffd\\ufffdb\\ufffd\\ufffd","to":"\+1\x{c3}\x{a9}"/]
--- no_error_log
[error]



=== TEST 33: a CallSid's 32 digits are hex: each neighbour of 0-9, A-F, a-f is 400
--- request eval
[map { ::post('/webhook/incoming_call', ::incoming(1, CallSid => 'CA' . '0' x 31 . $_)) }
 '/', ':', '@', 'G', '`', 'g', '.']
--- more_headers eval
[map { ::hdrs('/webhook/incoming_call', ::incoming(1, CallSid => 'CA' . '0' x 31 . $_)) }
 '/', ':', '@', 'G', '`', 'g', '.']
--- error_code eval
[(400) x 7]
--- response_body eval
[("malformed CallSid\n") x 7]
--- no_error_log
[error]
