# A full registry: evict what is finished, else log ZONE_FULL and still
# answer the call (it proceeds unprotected; never a 5xx).
use lib 't/lib';
use Test::AgentLocator::Nginx 'no_plan';
use Test::AgentLocator::Twilio qw(form call_sid);

our $FORM = "Content-Type: application/x-www-form-urlencoded";
sub incoming { "POST /webhook/incoming_call\n" . form(CallSid => call_sid($_[0])) }
sub completed {
    "POST /webhook/call_status\n" . form(CallSid => call_sid($_[0]),
                                         CallStatus => 'completed')
}

add_block_preprocessor(sub {
    my $block = shift;
    # 32k holds 32 calls (7 pages, 512 bytes each, after the zone's own)
    $block->set_value(http_config => <<'_EOC_');
    agentlocator_zone calls 32k;
    agentlocator_public_url https://voice.example.com;
_EOC_
    $block->set_value(config => <<'_EOC_');
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location = /status                { agentlocator_status; }
_EOC_
});

run_tests();

__DATA__

=== TEST 1: calls past capacity are answered with TwiML and logged ZONE_FULL
--- request eval
[(map { ::incoming($_) } 1 .. 40), "GET /status"]
--- more_headers eval
[($::FORM) x 40, ""]
--- error_code eval
[(200) x 41]
--- response_body_like eval
[(map { qr/<Parameter name="call_sid" value="${\ ::call_sid($_)}"\/>/ } 1 .. 40),
 qr/"entries":32,"capacity":32,.*"full":8,"evicted":0,/]
--- error_log eval
[qr/\[error\] .*ZONE_FULL call=${\ ::call_sid(33)}: agentlocator_zone has no room, the call proceeds without the watchdog/,
 qr/ZONE_FULL call=${\ ::call_sid(40)}/]
--- no_error_log eval
[qr/ZONE_FULL call=${\ ::call_sid(32)}/, qr/\[alert\]/, qr/\[crit\]/]



=== TEST 2: a completed call makes room for a new one (evicted, not ZONE_FULL)
--- request eval
[(map { ::incoming($_) } 1 .. 32), ::completed(5), ::incoming(33), "GET /status"]
--- more_headers eval
[($::FORM) x 34, ""]
--- error_code eval
[(200) x 35]
--- response_body_like eval
[(qr/<Response>/) x 32, qr/^OK$/m, qr/<Response>/,
 qr/"entries":32,.*"full":0,"evicted":1,/]
--- no_error_log
ZONE_FULL
[error]



=== TEST 3: a repeated webhook for a registered call needs no room
--- request eval
[(map { ::incoming($_) } 1 .. 32), ::incoming(7), "GET /status"]
--- more_headers eval
[($::FORM) x 33, ""]
--- response_body_like eval
[(qr/<Response>/) x 33, qr/"entries":32,.*"full":0,/]
--- no_error_log
ZONE_FULL
