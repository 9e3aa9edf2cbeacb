# Configuration errors fail `nginx -t`/start with a message naming the
# directive and the bad value; good values are normalised.
use lib 't/lib';
use Test::AgentLocator::Nginx 'no_plan';

run_tests();

__DATA__

=== TEST 1: a zone size that is not a size
--- http_config
    agentlocator_zone calls abc;
--- config
--- must_die
--- error_log
[emerg]
invalid agentlocator_zone size "abc"



=== TEST 2: a zone smaller than 8 pages
--- http_config
    agentlocator_zone calls 4k;
--- config
--- must_die
--- error_log eval
["[emerg]",
 qr/agentlocator_zone "calls" is too small: "4k", the minimum is \d+k/]



=== TEST 3: a second agentlocator_zone
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_zone other 1m;
--- config
--- must_die
--- error_log
[emerg]
"agentlocator_zone" directive is duplicate: only one agentlocator_zone may be declared



=== TEST 4: a zone name another module already uses
--- http_config
    limit_req_zone $binary_remote_addr zone=calls:1m rate=1r/s;
    agentlocator_zone calls 1m;
--- config
--- must_die
--- error_log
[emerg]
shared memory zone "calls" is already declared for a different use



=== TEST 5: agentlocator_zone is not allowed in a server
--- config
    agentlocator_zone calls 1m;
--- must_die
--- error_log
[emerg]
"agentlocator_zone" directive is not allowed here



=== TEST 6: a relative public_url
--- config
    agentlocator_public_url /voice;
--- must_die
--- error_log
[emerg]
invalid agentlocator_public_url "/voice": must be an absolute URL starting with http:// or https://



=== TEST 7: a public_url that is not http or https
--- config
    agentlocator_public_url ftp://voice.example.com;
--- must_die
--- error_log
[emerg]
invalid agentlocator_public_url "ftp://voice.example.com": must be an absolute URL starting with http:// or https://



=== TEST 8: a public_url without a host
--- config
    agentlocator_public_url https:///webhook;
--- must_die
--- error_log
[emerg]
invalid agentlocator_public_url "https:///webhook": has no host



=== TEST 9: a public_url with a query string
--- config
    agentlocator_public_url https://voice.example.com/?a=1;
--- must_die
--- error_log
[emerg]
invalid agentlocator_public_url "https://voice.example.com/?a=1": must not have a query string or fragment



=== TEST 10: a public_url with credentials
--- config
    agentlocator_public_url https://user:secret@voice.example.com;
--- must_die
--- error_log
[emerg]
must not contain user:password@



=== TEST 11: a public_url with a bad port
--- config
    agentlocator_public_url https://voice.example.com:99999;
--- must_die
--- error_log
[emerg]
invalid agentlocator_public_url "https://voice.example.com:99999": has an invalid port



=== TEST 12: a public_url with a space or quote in its path
--- config
    agentlocator_public_url 'https://voice.example.com/a"b';
--- must_die
--- error_log
[emerg]
has an invalid character in the path



=== TEST 13: public_url given twice in one server
--- config
    agentlocator_public_url https://a.example.com;
    agentlocator_public_url https://b.example.com;
--- must_die
--- error_log
[emerg]
"agentlocator_public_url" directive is duplicate



=== TEST 14: an unknown health mode
--- config
    location = /healthz { agentlocator_health dead; }
--- must_die
--- error_log
[emerg]
invalid agentlocator_health mode "dead", expected "live", "ready" or "version"



=== TEST 15: agentlocator_health outside a location
--- config
    agentlocator_health live;
--- must_die
--- error_log
[emerg]
"agentlocator_health" directive is not allowed here



=== TEST 16: agentlocator_health twice in one location
--- config
    location = /healthz { agentlocator_health live; agentlocator_health ready; }
--- must_die
--- error_log
[emerg]
"agentlocator_health" directive is duplicate



=== TEST 17: public_url is normalised: scheme and host lower-cased, default port and trailing slashes dropped
--- http_config
    agentlocator_zone calls 1m;
--- config
    agentlocator_public_url HTTPS://Voice.Example.COM:443//;
    location = /readyz { agentlocator_health ready; }
--- request
GET /readyz
--- response_body_like chomp
"public_url":"https://voice\.example\.com",
--- no_error_log
[error]



=== TEST 18: public_url keeps a non-default port and a path prefix
--- http_config
    agentlocator_zone calls 1m;
--- config
    agentlocator_public_url http://127.0.0.1:8080/Voice/;
    location = /readyz { agentlocator_health ready; }
--- request
GET /readyz
--- response_body_like chomp
"public_url":"http://127\.0\.0\.1:8080/Voice",
--- no_error_log
[error]



=== TEST 19: public_url set at http level is inherited by servers
--- http_config
    agentlocator_zone calls 1m;
    agentlocator_public_url https://[2001:DB8::1]:8443;
--- config
    location = /readyz { agentlocator_health ready; }
--- request
GET /readyz
--- response_body_like chomp
"public_url":"https://\[2001:db8::1\]:8443",
--- no_error_log
[error]
