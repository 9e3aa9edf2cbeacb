# /healthz, /readyz, /version: status, body, content type, X-Revision.
use lib 't/lib';
use Test::AgentLocator::Nginx 'no_plan';

# What the module under test must report as its revision: the tree it was
# built from (a stale build fails here on purpose).
our $revision = `sh tools/build-info.sh --revision .`;
chomp $revision;

run_tests();

__DATA__

=== TEST 1: /healthz answers 200 ok as text/plain with X-Revision
--- http_config
    agentlocator_zone agentlocator 1m;
--- config
    location = /healthz { agentlocator_health live; }
--- request
GET /healthz
--- response_body
ok
--- response_headers eval
"Content-Type: text/plain
Content-Length: 3
X-Revision: $::revision
Cache-Control: no-store"
--- no_error_log
[error]



=== TEST 2: /healthz answers without a zone (liveness needs nothing)
--- config
    location = /healthz { agentlocator_health live; }
--- request
GET /healthz
--- response_body
ok
--- no_error_log
[error]



=== TEST 3: HEAD /healthz gives the headers and no body
--- config
    location = /healthz { agentlocator_health live; }
--- request
HEAD /healthz
--- response_body
--- response_headers eval
"Content-Length: 3
X-Revision: $::revision"
--- no_error_log
[error]



=== TEST 4: POST /healthz is 405 with Allow, a one-line reason and a log line
--- config
    location = /healthz { agentlocator_health live; }
--- request
POST /healthz
x=1
--- error_code: 405
--- response_headers eval
"Allow: GET, HEAD
Content-Type: text/plain
X-Revision: $::revision"
--- response_body
method not allowed
--- error_log
agentlocator: 405 method not allowed
--- no_error_log
[error]



=== TEST 5: /readyz with a zone is 200 JSON with the zone's usage
--- http_config
    agentlocator_zone calls 1m;
--- config
    agentlocator_public_url https://voice.example.com;
    location = /readyz { agentlocator_health ready; }
--- request
GET /readyz
--- response_body_like chomp
^\{"ready":true,"checks":\{"zone":"ok","worker":"ok","database":"off"\},"public_url":"https://voice\.example\.com","zone":\{"name":"calls","size":1048576,"entries":0,"pages_total":\d+,"pages_free":\d+\},"database":null,"spool":null\}\n$
--- response_headers eval
"Content-Type: application/json
X-Revision: $::revision
Cache-Control: no-store"
--- no_error_log
[error]



=== TEST 6: /readyz without agentlocator_zone (a host for the API and WhatsApp only: no voice without a zone) is ready, its zone "off"
--- config
    location = /readyz { agentlocator_health ready; }
--- request
GET /readyz
--- error_code: 200
--- response_body
{"ready":true,"checks":{"zone":"off","worker":"ok","database":"off"},"public_url":null,"zone":null,"database":null,"spool":null}
--- response_headers eval
"Content-Type: application/json
X-Revision: $::revision"
--- no_error_log
[error]



=== TEST 7: /version is JSON naming module, version, revision, build time, nginx
--- config
    location = /version { agentlocator_health version; }
--- request
GET /version
--- response_body_like eval
qr/^\{"module":"ngx_http_agentlocator_module","version":"\d+\.\d+\.\d+","revision":"\Q$::revision\E","built":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ","nginx":"1\.\d+\.\d+"\}\n\z/
--- response_headers eval
"Content-Type: application/json
X-Revision: $::revision"
--- no_error_log
[error]



=== TEST 8: the handler is not inherited by a nested location
--- config
    location /ops/ {
        agentlocator_health live;
        location /ops/other { return 204; }
    }
--- request eval
["GET /ops/healthz", "GET /ops/other"]
--- error_code eval
[200, 204]
--- no_error_log
[error]
