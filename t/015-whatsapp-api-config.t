# The WhatsApp and API directives (SPEC §3, §8): what each needs is said at
# `nginx -t`, naming the directive and where it is; secrets are never
# echoed.  And the first answers a misconfigured client gets, before any
# database is involved: 401 without a token, 403 for an unsigned body.
use lib 't/lib';
use Test::AgentLocator::Nginx 'no_plan';

our $PG = 'agentlocator_postgres "host=127.0.0.1 port=1 dbname=crm";';
our $JWT = 'agentlocator_jwt_secret jwt-secret-0123456789-0123456789-abcdef;';

# a token for business 1, role agent, valid for a day from now
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
our $TOKEN = do {
    my $h = encode_base64url('{"alg":"HS256","typ":"JWT"}');
    my $p = encode_base64url('{"business_id":1,"role":"agent","exp":' . (time + 86400) . '}');
    "$h.$p." . encode_base64url(hmac_sha256("$h.$p", 'jwt-secret-0123456789-0123456789-abcdef'));
};

run_tests();

__DATA__

=== TEST 1: agentlocator_whatsapp needs agentlocator_postgres
--- config
    location = /wa { agentlocator_whatsapp baileys; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_whatsapp" in \S+:\d+ stores messages in the CRM: it needs agentlocator_postgres/



=== TEST 2: agentlocator_whatsapp baileys needs agentlocator_baileys
--- http_config eval
$::PG
--- config
    location = /wa { agentlocator_whatsapp baileys; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_whatsapp baileys" in \S+:\d+ checks the bridge's signature: it needs agentlocator_baileys URL secret=\.\.\./



=== TEST 3: agentlocator_whatsapp twilio needs the auth token and the public URL
--- http_config eval
$::PG
--- config
    location = /wa { agentlocator_whatsapp twilio; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_whatsapp" in \S+:\d+ checks Twilio signatures: it needs agentlocator_public_url .* and agentlocator_twilio_auth_token/



=== TEST 4: an unknown agentlocator_whatsapp handler
--- http_config eval
$::PG
--- config
    location = /wa { agentlocator_whatsapp telegram; }
--- must_die
--- error_log
invalid agentlocator_whatsapp handler "telegram", expected "twilio", "twilio_status" or "baileys"



=== TEST 5: agentlocator_baileys: a short secret, and the secret is not echoed
--- http_config
    agentlocator_baileys http://127.0.0.1:3100 secret=short-secret;
--- config
--- must_die
--- error_log
agentlocator_baileys secret must be at least 16 bytes
--- no_error_log
short-secret



=== TEST 6: agentlocator_baileys: no secret
--- http_config
    agentlocator_baileys http://127.0.0.1:3100 number=+972500000001;
--- config
--- must_die
--- error_log
agentlocator_baileys needs secret= (literal, env:NAME or file:/path)



=== TEST 7: agentlocator_baileys: a number that is not E.164, a URL that is not http(s)
--- http_config
    agentlocator_baileys http://127.0.0.1:3100 secret=0123456789abcdef number=0500000001;
--- config
--- must_die
--- error_log
agentlocator_baileys "number=0500000001": the number must be +E164



=== TEST 8: agentlocator_baileys: not an http(s) URL
--- http_config
    agentlocator_baileys ftp://bridge secret=0123456789abcdef;
--- config
--- must_die
--- error_log
invalid agentlocator_baileys URL "ftp://bridge"



=== TEST 9: agentlocator_baileys: the secret from an environment variable that is not set
--- http_config
    agentlocator_baileys http://127.0.0.1:3100 secret=env:AGENTLOCATOR_TEST_UNSET_SECRET;
--- config
--- must_die
--- error_log
agentlocator_baileys secret



=== TEST 10: agentlocator_api needs a prefix location
--- http_config eval
$::PG . $::JWT
--- config
    location = /api/threads { agentlocator_api; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_api" in \S+:\d+ needs a prefix location such as "location \/api\/"/



=== TEST 11: agentlocator_api needs agentlocator_jwt_secret
--- http_config eval
$::PG
--- config
    location /api/ { agentlocator_api; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_api" in \S+:\d+ checks bearer tokens: it needs agentlocator_jwt_secret/



=== TEST 12: agentlocator_api needs agentlocator_postgres
--- http_config eval
$::JWT
--- config
    location /api/ { agentlocator_api; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_api" in \S+:\d+ reads the CRM: it needs agentlocator_postgres/



=== TEST 13: agentlocator_jwt_secret shorter than 32 bytes, not echoed
--- http_config
    agentlocator_jwt_secret too-short-jwt-secret;
--- config
--- must_die
--- error_log
agentlocator_jwt_secret must be at least 32 bytes
--- no_error_log
too-short-jwt-secret



=== TEST 14: agentlocator_whatsapp_send: Twilio needs a sender
--- http_config
    agentlocator_twilio_account_sid AC11111111111111111111111111111111;
    agentlocator_twilio_auth_token secret-token;
    agentlocator_whatsapp_send providers=twilio;
--- config
--- must_die
--- error_log
agentlocator_whatsapp_send providers= names twilio: it needs from=+E164



=== TEST 15: agentlocator_whatsapp_send: the bridge needs agentlocator_baileys
--- http_config
    agentlocator_whatsapp_send providers=baileys;
--- config
--- must_die
--- error_log
agentlocator_whatsapp_send providers= names baileys, and there is no agentlocator_baileys



=== TEST 16: agentlocator_whatsapp_send: unknown providers, twice the same, a timeout out of range
--- http_config
    agentlocator_whatsapp_send providers=twilio,sms;
--- config
--- must_die
--- error_log
agentlocator_whatsapp_send "providers=twilio,sms": providers= is "twilio", "baileys" or both



=== TEST 17: agentlocator_whatsapp_send: the same provider twice
--- http_config
    agentlocator_whatsapp_send providers=baileys,baileys;
--- config
--- must_die
--- error_log
providers= is "twilio", "baileys" or both



=== TEST 18: agentlocator_whatsapp_send: a timeout out of range
--- http_config
    agentlocator_whatsapp_send timeout=1h;
--- config
--- must_die
--- error_log
agentlocator_whatsapp_send "timeout=1h": the timeout is 100ms to 30s



=== TEST 19: the API without a token: 401, JSON, a challenge, before any database
--- http_config eval
$::PG . $::JWT
--- config
    location /api/ { agentlocator_api; }
--- request
GET /api/threads
--- error_code: 401
--- response_body
{"error":"a bearer token is required"}
--- response_headers
Content-Type: application/json
WWW-Authenticate: Bearer realm="agentlocator"
--- error_log
API_ERROR status=401 a bearer token is required
--- no_error_log
[crit]



=== TEST 20: the API with a token that is not a JWT
--- http_config eval
$::PG . $::JWT
--- config
    location /api/ { agentlocator_api; }
--- request
GET /api/calls
--- more_headers
Authorization: Bearer not-a-token
--- error_code: 401
--- response_body
{"error":"token is not header.payload.signature"}
--- error_log
API_ERROR status=401 token is not header.payload.signature
--- no_error_log
[crit]



=== TEST 21: the bridge's webhook without a signature: 403
--- http_config eval
$::PG . "agentlocator_baileys http://127.0.0.1:3100 secret=0123456789abcdef;"
--- config
    location = /webhook/whatsapp/baileys { agentlocator_whatsapp baileys; }
--- request
POST /webhook/whatsapp/baileys
{"from":"+972541112222","text":"hi","provider_msg_id":"X1"}
--- more_headers
Content-Type: application/json
--- error_code: 403
--- response_body
invalid X-BAILEYS-SIGNATURE
--- error_log
SIGNATURE_INVALID provider=baileys reason=missing



=== TEST 22: sending with no WhatsApp provider configured: 503, the server's doing
--- http_config eval
$::PG . $::JWT
--- config
    location /api/ { agentlocator_api; }
--- request
POST /api/whatsapp/send
{"to":"+972541112222","text":"hi"}
--- more_headers eval
"Content-Type: application/json\nAuthorization: Bearer $::TOKEN"
--- error_code: 503
--- response_body
{"error":"no WhatsApp provider is configured"}



=== TEST 23: agentlocator_transcribe_url needs agentlocator_postgres
--- http_config
    agentlocator_transcribe_url http://127.0.0.1:9000/v1/audio/transcriptions;
--- config
    location = /t { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_transcribe_url" stores transcripts in the CRM, and there is no "agentlocator_postgres"/



=== TEST 24: agentlocator_transcribe_url with a parameter it does not know
--- http_config eval
$::PG . "agentlocator_transcribe_url http://127.0.0.1:9000/v1/audio/transcriptions modle=whisper-1;"
--- config
    location = /t { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid agentlocator_transcribe_url parameter "modle=whisper-1", expected model=, language=, key=, timeout=, max_size= or sweep=/



=== TEST 25: agentlocator_transcribe_url that is not an http(s) URL
--- http_config eval
$::PG . "agentlocator_transcribe_url ftp://stt.example.com/v1;"
--- config
    location = /t { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid agentlocator_transcribe_url "ftp:\/\/stt\.example\.com\/v1"/



=== TEST 26: agentlocator_transcribe_url key= from an unset variable, not echoed
--- http_config eval
$::PG . "agentlocator_transcribe_url https://api.openai.com/v1/audio/transcriptions key=env:AGENTLOCATOR_TEST_UNSET_KEY;"
--- config
    location = /t { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*agentlocator_transcribe_url key names an environment variable that is not set/



=== TEST 27: agentlocator_transcribe_url timeout= out of range
--- http_config eval
$::PG . "agentlocator_transcribe_url http://127.0.0.1:9000/v1/audio/transcriptions timeout=5ms;"
--- config
    location = /t { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*agentlocator_transcribe_url "timeout=5ms": timeout= must be from 1s to 1h/



=== TEST 28: agentlocator_transcribe_url sweep= out of range
--- http_config eval
$::PG . "agentlocator_transcribe_url http://127.0.0.1:9000/v1/audio/transcriptions sweep=500ms;"
--- config
    location = /t { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*agentlocator_transcribe_url "sweep=500ms": sweep= must be from 1s to 1h, or off/



=== TEST 29: agentlocator_transcribe_url sweep= that is not a time
--- http_config eval
$::PG . "agentlocator_transcribe_url http://127.0.0.1:9000/v1/audio/transcriptions sweep=soon;"
--- config
    location = /t { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*agentlocator_transcribe_url "sweep=soon": sweep= must be from 1s to 1h, or off/



=== TEST 30: agentlocator_transcribe_url sweep=off is taken
--- http_config eval
$::PG . "agentlocator_transcribe_url http://127.0.0.1:9000/v1/audio/transcriptions sweep=off;"
--- config
    location = /t { return 200 "ok"; }
--- request
GET /t
--- response_body chomp
ok
--- no_error_log
[emerg]



=== TEST 31: agentlocator_transcribe_url max_size= out of range
--- http_config eval
$::PG . "agentlocator_transcribe_url http://127.0.0.1:9000/v1/audio/transcriptions max_size=2g;"
--- config
    location = /t { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*agentlocator_transcribe_url "max_size=2g": max_size= must be from 1k to 1g/



=== TEST 32: agentlocator_transcribe_url timeout= that is not a time
--- http_config eval
$::PG . "agentlocator_transcribe_url http://127.0.0.1:9000/v1/audio/transcriptions timeout=soon;"
--- config
    location = /t { return 200; }
--- must_die
--- error_log eval
qr/\[emerg\] .*agentlocator_transcribe_url "timeout=soon": timeout= must be from 1s to 1h/



=== TEST 33: agentlocator_transcribe_url at its bounds is taken
--- http_config eval
$::PG . "agentlocator_transcribe_url http://127.0.0.1:9000/v1/audio/transcriptions timeout=1h max_size=1g sweep=1s;"
--- config
    location = /t { return 200 "ok"; }
--- request
GET /t
--- response_body chomp
ok
--- no_error_log
[emerg]
