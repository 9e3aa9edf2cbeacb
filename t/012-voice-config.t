# What a voice handler needs is checked by `nginx -t`, with a clear message.
use lib 't/lib';
use Test::AgentLocator::Nginx 'no_plan';

# Test::Nginx leaves this to the test file (as lua-nginx-module's suites do)
$ENV{TEST_NGINX_HTML_DIR} ||= html_dir();

$ENV{AGENTLOCATOR_UNSET_VARIABLE} = undef;
delete $ENV{AGENTLOCATOR_UNSET_VARIABLE};

run_tests();

__DATA__

=== TEST 1: a voice handler without agentlocator_public_url
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token 12345;
--- config
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
--- must_die
--- error_log eval
["[emerg]",
 qr/"agentlocator_voice" in \S+nginx\.conf:\d+ needs agentlocator_public_url in its server or http block/]



=== TEST 2: a voice handler without a zone
--- http_config
    agentlocator_twilio_auth_token 12345;
    agentlocator_public_url https://voice.example.com;
--- config
    location = /webhook/call_status { agentlocator_voice call_status; }
--- must_die
--- error_log eval
["[emerg]",
 qr/"agentlocator_voice" in \S+nginx\.conf:\d+ needs an agentlocator_zone in the http block/]



=== TEST 3: signatures on (the default) without an auth token
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_public_url https://voice.example.com;
--- config
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
--- must_die
--- error_log
[emerg]
checks Twilio signatures but agentlocator_twilio_auth_token is not set



=== TEST 4: signatures off need no token, and say so at start
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_public_url https://voice.example.com;
--- config
    location = /webhook/incoming_call {
        agentlocator_voice incoming_call;
        agentlocator_signature off;
    }
--- request
GET /webhook/incoming_call
--- error_code: 405
--- error_log eval
qr/\[warn\] .*agentlocator_signature is off for the location in \S+nginx\.conf:\d+: anyone can post to it as if they were Twilio/



=== TEST 5: an unknown voice handler
--- http_config
    agentlocator_zone calls 1m;
--- config
    location = /x { agentlocator_voice incoming; }
--- must_die
--- error_log
[emerg]
invalid agentlocator_voice handler "incoming", expected "incoming_call", "stream_status", "stream_ended", "handle_recording" or "call_status"



=== TEST 6: two handlers in one location
--- http_config
    agentlocator_zone calls 1m;
--- config
    location = /x { agentlocator_health live; agentlocator_status; }
--- must_die
--- error_log
[emerg]
"agentlocator_status" directive conflicts with another content handler in this location



=== TEST 7: agentlocator_status without a zone
--- config
    location = /status { agentlocator_status; }
--- must_die
--- error_log eval
["[emerg]",
 qr/"agentlocator_status" in \S+ needs an agentlocator_zone/]



=== TEST 8: an auth token from an unset environment variable (named, not shown)
--- http_config
    agentlocator_twilio_auth_token env:AGENTLOCATOR_UNSET_VARIABLE;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_twilio_auth_token" names an environment variable that is not set: env:AGENTLOCATOR_UNSET_VARIABLE



=== TEST 9: an auth token file that does not exist
--- http_config
    agentlocator_twilio_auth_token file:/nonexistent/twilio-token;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_twilio_auth_token" names a file that cannot be read



=== TEST 10: an empty token file
--- http_config
    agentlocator_twilio_auth_token file:$TEST_NGINX_HTML_DIR/empty;
--- user_files
>>> empty

--- config
--- must_die
--- error_log
[emerg]
"agentlocator_twilio_auth_token" names an empty file



=== TEST 11: an empty literal token
--- http_config
    agentlocator_twilio_auth_token "";
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_twilio_auth_token" is empty



=== TEST 12: a literal token is never echoed in a configuration error
--- http_config
    agentlocator_twilio_auth_token S3cr3t-T0k3n-zz;
    agentlocator_twilio_auth_token S3cr3t-T0k3n-zz;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_twilio_auth_token" directive is duplicate
--- no_error_log
S3cr3t-T0k3n-zz



=== TEST 13: "env:" with no variable name is refused, never taken as the token
--- http_config
    agentlocator_twilio_auth_token env:;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_twilio_auth_token" has "env:" with no variable name after it



=== TEST 14: "file:" with no path is refused, never taken as the token
--- http_config
    agentlocator_twilio_auth_token file:;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_twilio_auth_token" has "file:" with no path after it



=== TEST 15: the media stream in an exact location never sees the per-call stream URLs
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token 12345;
    agentlocator_public_url https://voice.example.com;
--- config
    location = /ws/twilio-media { agentlocator_media_stream; }
--- must_die
--- error_log eval
["[emerg]",
 qr{agentlocator_media_stream in \S+nginx\.conf:\d+ is in "location = /ws/twilio-media", which never sees the per-call stream URLs /ws/twilio-media/\{CallSid\}/\{token\} that the TwiML gives Twilio: use "location /ws/twilio-media/"}]



=== TEST 16: with agentlocator_media_plain_url on, an exact location serves the plain URL, with a warning
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_twilio_auth_token 12345;
    agentlocator_public_url https://voice.example.com;
--- config
    location /ws/twilio-media/ { agentlocator_media_stream; }
    location = /ws/twilio-media { agentlocator_media_stream; agentlocator_media_plain_url on; }
    location = /t { return 204; }
--- request
GET /t
--- error_code: 204
--- error_log eval
qr{\[warn\] .*agentlocator_media_stream in \S+nginx\.conf:\d+ serves only the plain URL /ws/twilio-media: the per-call stream URLs the TwiML gives Twilio need a prefix location}



=== TEST 17: agentlocator_media_plain_url takes on or off
--- http_config
    agentlocator_media_plain_url maybe;
--- config
--- must_die
--- error_log
[emerg]
invalid value "maybe" in "agentlocator_media_plain_url" directive, it must be "on" or "off"



=== TEST 18: agentlocator_webhook_max_body takes a size
--- http_config
    agentlocator_webhook_max_body lots;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_webhook_max_body" directive invalid value



=== TEST 19: agentlocator_postgres: a pool of 1 to 32 connections
--- http_config
    agentlocator_postgres "host=127.0.0.1 dbname=crm" pool=0;
--- config
--- must_die
--- error_log
[emerg]
agentlocator_postgres "pool=0": pool is 1 to 32 connections per worker



=== TEST 20: agentlocator_postgres from an unset variable is refused, the conninfo never shown
--- http_config
    agentlocator_postgres env:AGENTLOCATOR_UNSET_DATABASE_URL;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_postgres" conninfo names an environment variable that is not set



=== TEST 21: agentlocator_postgres looks its host up when the configuration is read, never in a worker
--- http_config
    agentlocator_postgres "host=no-such-host.invalid dbname=crm";
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_postgres" host "no-such-host.invalid" could not be resolved



=== TEST 22: agentlocator_postgres with a conninfo libpq does not understand
--- http_config
    agentlocator_postgres "hots=127.0.0.1 dbname=crm";
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_postgres" conninfo is invalid: invalid connection option "hots"



=== TEST 23: agentlocator_spool needs agentlocator_postgres
--- http_config
    agentlocator_spool spool;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_spool" keeps writes for the CRM database, and there is no "agentlocator_postgres"



=== TEST 24: agentlocator_spool: fsync is always, interval or off
--- http_config
    agentlocator_postgres "host=127.0.0.1 port=1 dbname=crm";
    agentlocator_spool spool fsync=sometimes;
--- config
--- must_die
--- error_log
[emerg]
invalid agentlocator_spool parameter "fsync=sometimes", expected "fsync=always", "fsync=interval", "fsync=off" or "journal_size=SIZE"



=== TEST 25: agentlocator_spool: a journal_size under 16k is refused
--- http_config
    agentlocator_postgres "host=127.0.0.1 port=1 dbname=crm";
    agentlocator_spool spool fsync=off journal_size=4k;
--- config
--- must_die
--- error_log
[emerg]
invalid agentlocator_spool "journal_size=4k", expected a size from 16k to 1g



=== TEST 26: agentlocator_spool: a journal_size that is not a size is refused
--- http_config
    agentlocator_postgres "host=127.0.0.1 port=1 dbname=crm";
    agentlocator_spool spool journal_size=lots;
--- config
--- must_die
--- error_log
[emerg]
invalid agentlocator_spool "journal_size=lots", expected a size from 16k to 1g



=== TEST 27: agentlocator_spool: a journal_size over 1g is refused
--- http_config
    agentlocator_postgres "host=127.0.0.1 port=1 dbname=crm";
    agentlocator_spool spool journal_size=2g;
--- config
--- must_die
--- error_log
[emerg]
invalid agentlocator_spool "journal_size=2g", expected a size from 16k to 1g



=== TEST 28: agentlocator_spool: a journal_size of 1g is taken, as the error says
--- http_config
    agentlocator_postgres "host=127.0.0.1 port=1 dbname=crm";
    # *_temp: what openresty's Test::Nginx removes between blocks
    agentlocator_spool spool_temp journal_size=1g;
--- config
    location = /t { return 200 "ok"; }
--- request
GET /t
--- response_body chomp
ok
--- no_error_log
[emerg]



=== TEST 29: agentlocator_body_timeout takes a time
--- http_config
    agentlocator_body_timeout soon;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_body_timeout" directive invalid value
