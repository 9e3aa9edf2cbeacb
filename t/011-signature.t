# X-Twilio-Signature (SPEC §10, ../shared/twilio-facts.md §1).
#
# Vectors marked "twilio-node" / "twilio-python" are the expected signatures
# from Twilio's official libraries' tests (twilio-node
# spec/validation.spec.js, twilio-python tests/unit/test_request_validator.py,
# AuthToken 12345); "docs" is the worked example of Twilio's webhook
# security page; "computed" ones were computed with Python's hmac.  Their
# parameters carry no valid CallSid, so an accepted signature shows as the
# 400 that follows it, and a refused one as 403.  Requests with a real
# CallSid are signed at run time by t/lib/Test/AgentLocator/Twilio.pm
# (Perl's Digest::SHA, independent of the module's C code).
use lib 't/lib';
use Test::AgentLocator::Nginx 'no_plan';

# Test::Nginx leaves this to the test file (as lua-nginx-module's suites do)
$ENV{TEST_NGINX_HTML_DIR} ||= html_dir();
use Test::AgentLocator::Twilio qw(form twilio_signature call_sid);

our @P = (CallSid => 'CA1234567890ABCDE', Caller => '+14158675309',
          Digits => '1234', From => '+14158675309', To => '+18005551212');

sub post { my ($uri, @kv) = @_; "POST $uri\n" . form(@kv) }
sub hdr  { "Content-Type: application/x-www-form-urlencoded\nX-Twilio-Signature: $_[0]" }
sub sign { my ($url, @kv) = @_; hdr(twilio_signature('12345', $url, @kv)) }

add_block_preprocessor(sub {
    my $block = shift;
    my $public = $block->public_url // 'https://voice.example.com';
    chomp $public;
    $block->set_value(http_config => "agentlocator_zone calls 1m;\n"
        . "agentlocator_twilio_auth_token 12345;\n"
        . "agentlocator_watchdog off;\n"
        . "agentlocator_public_url $public;\n" . ($block->http_config // ''))
        unless defined $block->keep_http_config;
    $block->set_value(config => <<'_EOC_') unless defined $block->config;
    location /myapp.php                  { agentlocator_voice incoming_call; }
    location = /webhook/incoming_call    { agentlocator_voice incoming_call; }
_EOC_
});

# several requests in a block: each error_log check sees the block's whole
# log so far (see t/010-voice.t)
check_accum_error_log();

run_tests();

__DATA__

=== TEST 1: twilio-node/python vector: https URL with a query string
--- public_url: https://mycompany.com
--- request eval
::post('/myapp.php?foo=1&bar=2', @::P)
--- more_headers eval
::hdr('RSOYDt4T1cUTdK1PDd93/VVr8B8=')
--- error_code: 400
--- response_body
malformed CallSid
--- no_error_log
SIGNATURE_INVALID



=== TEST 2: the same request with one parameter changed is refused
--- public_url: https://mycompany.com
--- request eval
::post('/myapp.php?foo=1&bar=2', @::P[0..7], To => '+18005551213')
--- more_headers eval
::hdr('RSOYDt4T1cUTdK1PDd93/VVr8B8=')
--- error_code: 403
--- response_body
invalid X-Twilio-Signature
--- error_log
SIGNATURE_INVALID call=CA1234567890ABCDE reason=mismatch url="https://mycompany.com/myapp.php?foo=1&bar=2"



=== TEST 3: twilio-node/python vector: signed with :443 added, URL has no port
--- public_url: https://mycompany.com
--- request eval
::post('/myapp.php?foo=1&bar=2', @::P)
--- more_headers eval
::hdr('kvajT1Ptam85bY51eRf/AJRuM3w=')
--- error_code: 400



=== TEST 4: twilio-node/python vector: http with a non-default port, as is
--- public_url: http://mycompany.com:1234
--- request eval
::post('/myapp.php?foo=1&bar=2', @::P)
--- more_headers eval
::hdr('Zmvh+3yNM1Phv2jhDCwEM3q5ebU=')
--- error_code: 400



=== TEST 5: twilio-node/python vector: http signed with :80 added
--- public_url: http://mycompany.com
--- request eval
::post('/myapp.php?foo=1&bar=2', @::P)
--- more_headers eval
::hdr('0ZXoZLH/DfblKGATFgpif+LLRf4=')
--- error_code: 400



=== TEST 6: twilio-python vector: an https port is stripped (voice drops it)
--- public_url: https://mycompany.com:1234
--- request eval
::post('/myapp.php?foo=1&bar=2', @::P)
--- more_headers eval
::hdr('RSOYDt4T1cUTdK1PDd93/VVr8B8=')
--- error_code: 400



=== TEST 7: twilio-node/python vector: repeated keys, values sorted (either order)
--- public_url: https://mycompany.com
--- request eval
[::post('/myapp.php?foo=1&bar=2', 'MessagingBinding.Address' => '+1325xxxxxxx',
        'MessagingBinding.Address' => '+1415xxxxxxx'),
 ::post('/myapp.php?foo=1&bar=2', 'MessagingBinding.Address' => '+1415xxxxxxx',
        'MessagingBinding.Address' => '+1325xxxxxxx')]
--- more_headers eval
[::hdr('83O6e2vORAoJHUNzJjDWN1jz+BA='), ::hdr('83O6e2vORAoJHUNzJjDWN1jz+BA=')]
--- error_code eval
[400, 400]
--- response_body eval
["missing CallSid\n", "missing CallSid\n"]



=== TEST 8: twilio-node/python vector: repeated key with a duplicate value counted once
--- public_url: https://mycompany.com
--- request eval
::post('/myapp.php?foo=1&bar=2', Sid => 'CA123', SidAccount => 'AC123',
       Digits => '5678', Digits => '1234', Digits => '1234')
--- more_headers eval
::hdr('IK+Dwps556ElfBT0I3Rgjkr1wJU=')
--- error_code: 400
--- response_body
missing CallSid



=== TEST 9: docs vectors: Twilio's security page examples
--- public_url: https://mycompany.com
--- request eval
[::post('/myapp.php?foo=1&bar=2', @::P[0..1], Caller => '+12349013030', @::P[4..5],
        From => '+12349013030', @::P[8..9]),
 ::post('/myapp.php?foo=1&bar=2', @::P[0..1], Caller => '+14158675310', @::P[4..5],
        From => '+14158675310', @::P[8..9])]
--- more_headers eval
[::hdr('0/KCTR6DLpKmkAf8muzZqo1nDgQ='), ::hdr('RSOYDt4T1cUTdK1PDd93/VVr8B8=')]
--- error_code eval
[400, 403]



=== TEST 10: docs vector on example.com (L/OH5Y...), From +14158675310
--- public_url: https://example.com
--- config
    location /myapp.php { agentlocator_voice incoming_call; }
--- request eval
::post('/myapp.php?foo=1&bar=2', CallSid => 'CA1234567890ABCDE', Caller => '+14158675310',
       Digits => '1234', From => '+14158675310', To => '+18005551212')
--- more_headers eval
::hdr('L/OH5YylLD5NRKLltdqwSvS0BnU=')
--- error_code: 400



=== TEST 11: computed vector: case-sensitive key order (B, _, a, b)
--- public_url: https://example.com
--- config
    location = /a { agentlocator_voice incoming_call; }
--- request eval
::post('/a', b => '1', B => '2', a => '3', _ => '4')
--- more_headers eval
::hdr('7+gqodnfMwraE0SzDr6Z79ewCe0=')
--- error_code: 400
--- response_body
missing CallSid



=== TEST 12: computed vector: decoded UTF-8 values with "&" and spaces
--- public_url: https://example.com
--- config
    location = /sms { agentlocator_voice incoming_call; }
--- request eval
::post('/sms', Body => 'Hello world & more', From => 'whatsapp:+15551234567',
       To => 'whatsapp:+14155238886', ProfileName => "Zo\x{eb}")
--- more_headers eval
::hdr('duoagi56pZNTdhVP7Ba/XvwEDJs=')
--- error_code: 400
--- response_body
missing CallSid



=== TEST 13: computed vector: a full voice webhook is accepted and answered
--- public_url: https://example.com
--- config
    location = /voice { agentlocator_voice incoming_call; }
--- request eval
::post('/voice', AccountSid => 'AC' . '0' x 32, CallSid => 'CA' . '0' x 32,
       From => '+15551234567', To => '+15557654321', CallStatus => 'ringing',
       Direction => 'inbound', ApiVersion => '2010-04-01')
--- more_headers eval
::hdr('K5JZUErlfYhv0Fg66pH0HbVLmXE=')
--- response_body_like chomp
<Parameter name="call_sid" value="CA00000000000000000000000000000000"/>
--- no_error_log
[warn]
[error]



=== TEST 14: a missing signature is 403 and logged as missing
--- request eval
::post('/webhook/incoming_call', CallSid => ::call_sid(1))
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 403
--- response_body
invalid X-Twilio-Signature
--- error_log
SIGNATURE_INVALID call=CA00000000000000000000000000000001 reason=missing url="https://voice.example.com/webhook/incoming_call"



=== TEST 15: a signature of the wrong length or alphabet is refused
--- request eval
[::post('/webhook/incoming_call', CallSid => ::call_sid(1)),
 ::post('/webhook/incoming_call', CallSid => ::call_sid(1))]
--- more_headers eval
[::hdr('RSOYDt4T1cUTdK1PDd93/VVr8B8'), ::hdr('RSOYDt4T1cUTdK1PDd93/VVr8B8=RSOY')]
--- error_code eval
[403, 403]



=== TEST 16: the query string is part of the signed URL
--- request eval
[::post('/webhook/incoming_call?line=2', CallSid => ::call_sid(1)),
 ::post('/webhook/incoming_call?line=2', CallSid => ::call_sid(1))]
--- more_headers eval
[::sign('https://voice.example.com/webhook/incoming_call?line=2', CallSid => ::call_sid(1)),
 ::sign('https://voice.example.com/webhook/incoming_call', CallSid => ::call_sid(1))]
--- error_code eval
[200, 403]



=== TEST 17: the URL is the public one, never the Host nginx was reached by
--- request eval
::post('/webhook/incoming_call', CallSid => ::call_sid(1))
--- more_headers eval
::sign("http://localhost:$ENV{TEST_NGINX_SERVER_PORT}/webhook/incoming_call", CallSid => ::call_sid(1))
--- error_code: 403



=== TEST 18: a public_url with a port: Twilio's voice signature without it, and with it
--- public_url: https://voice.example.com:8443
--- request eval
[::post('/webhook/incoming_call', CallSid => ::call_sid(1)),
 ::post('/webhook/incoming_call', CallSid => ::call_sid(1))]
--- more_headers eval
[::sign('https://voice.example.com/webhook/incoming_call', CallSid => ::call_sid(1)),
 ::sign('https://voice.example.com:8443/webhook/incoming_call', CallSid => ::call_sid(1))]
--- error_code eval
[200, 200]
--- no_error_log
SIGNATURE_INVALID



=== TEST 19: a path prefix stripped by a front proxy is put back for the signature
--- public_url: https://voice.example.com/line-1
--- request eval
[::post('/webhook/incoming_call', CallSid => ::call_sid(1)),
 ::post('/webhook/incoming_call', CallSid => ::call_sid(1))]
--- more_headers eval
[::sign('https://voice.example.com/line-1/webhook/incoming_call', CallSid => ::call_sid(1)),
 ::sign('https://voice.example.com/webhook/incoming_call', CallSid => ::call_sid(1))]
--- error_code eval
[200, 403]



=== TEST 20: agentlocator_signature off accepts unsigned requests and warns at start
--- config
    location = /webhook/incoming_call {
        agentlocator_voice incoming_call;
        agentlocator_signature off;
    }
--- request eval
::post('/webhook/incoming_call', CallSid => ::call_sid(1))
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 200
--- error_log
agentlocator_signature is off for the location in
--- no_error_log
SIGNATURE_INVALID



=== TEST 21: the token may come from a file (trailing newline ignored)
--- keep_http_config
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token file:$TEST_NGINX_HTML_DIR/token;
    agentlocator_public_url https://voice.example.com;
--- user_files
>>> token
12345
--- request eval
::post('/webhook/incoming_call', CallSid => ::call_sid(1))
--- more_headers eval
::sign('https://voice.example.com/webhook/incoming_call', CallSid => ::call_sid(1))
--- error_code: 200



=== TEST 22: the token may come from the environment
--- keep_http_config
--- main_config
    env AGENTLOCATOR_TEST_TOKEN;
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token env:AGENTLOCATOR_TEST_TOKEN;
    agentlocator_public_url https://voice.example.com;
--- request eval
$ENV{AGENTLOCATOR_TEST_TOKEN} = '12345';
::post('/webhook/incoming_call', CallSid => ::call_sid(1))
--- more_headers eval
::sign('https://voice.example.com/webhook/incoming_call', CallSid => ::call_sid(1))
--- error_code: 200



=== TEST 23: neither the token nor the signature ever reaches the log
(nginx's own debug log prints every request header, so this runs at info)
--- log_level: info
--- keep_http_config
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token S3cr3t-T0k3n-zz;
    agentlocator_public_url https://voice.example.com;
--- pipelined_requests eval
[::post('/webhook/incoming_call', CallSid => ::call_sid(1)),
 ::post('/webhook/incoming_call', CallSid => ::call_sid(1))]
--- more_headers eval
["Content-Type: application/x-www-form-urlencoded\nX-Twilio-Signature: "
 . Test::AgentLocator::Twilio::twilio_signature('S3cr3t-T0k3n-zz',
       'https://voice.example.com/webhook/incoming_call', CallSid => ::call_sid(1)),
 ::hdr('QUFBQUFBQUFBQUFBQUFBQUFBQUE=')]
--- error_code eval
[200, 403]
--- error_log
SIGNATURE_INVALID call=CA00000000000000000000000000000001 reason=mismatch
--- no_error_log
S3cr3t-T0k3n-zz
QUFBQUFBQUFBQUFBQUFBQUFBQUE=



=== TEST 24: one character changed anywhere in a good signature is refused
(every character is compared: a change past the first 20 too)
--- public_url: https://mycompany.com
--- request eval
[map { ::post('/myapp.php?foo=1&bar=2', @::P) } 0 .. 4]
--- more_headers eval
[map { my $s = 'RSOYDt4T1cUTdK1PDd93/VVr8B8=';
       substr($s, $_, 1) = substr($s, $_, 1) eq 'A' ? 'B' : 'A'; ::hdr($s) }
     0, 13, 21, 25, 26]
--- error_code eval
[403, 403, 403, 403, 403]



=== TEST 25: what the form says is judged only after the signature
(two CallSids, or none, from a stranger are a 403 like any unsigned request;
signed, they are the 400 that names them)
--- request eval
[::post('/webhook/incoming_call', CallSid => ::call_sid(1), CallSid => ::call_sid(2)),
 ::post('/webhook/incoming_call', From => '+14158675309'),
 ::post('/webhook/incoming_call', CallSid => ::call_sid(1), CallSid => ::call_sid(2))]
--- more_headers eval
[::hdr('QUFBQUFBQUFBQUFBQUFBQUFBQUE='), ::hdr('QUFBQUFBQUFBQUFBQUFBQUFBQUE='),
 ::sign('https://voice.example.com/webhook/incoming_call',
        CallSid => ::call_sid(1), CallSid => ::call_sid(2))]
--- error_code eval
[403, 403, 400]
--- response_body eval
["invalid X-Twilio-Signature\n", "invalid X-Twilio-Signature\n",
 "conflicting CallSid values\n"]
