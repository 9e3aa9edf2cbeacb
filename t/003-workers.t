# The zone under a real master with several workers.
use lib 't/lib';
use Test::AgentLocator::Nginx 'no_plan';

workers(2);
master_on();

run_tests();

__DATA__

=== TEST 1: every worker of the master maps the same zone
--- http_config
    agentlocator_zone calls 1m;
--- config
    location = /readyz { agentlocator_health ready; }
--- request eval
[("GET /readyz") x 6]
--- response_body_like eval
[(qr/^\{"ready":true,.*"zone":\{"name":"calls","size":1048576,"entries":0,/) x 6]
--- no_error_log
[error]
[alert]

