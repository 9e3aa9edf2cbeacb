# The registry across workers, reloads and killed workers (real master,
# real workers; scenarios the block format cannot express).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::AgentLocator::Server;
use Test::AgentLocator::Twilio qw(form call_sid);

my $HTTP = <<'_EOC_';
    agentlocator_zone calls 1m;
    agentlocator_public_url https://voice.example.com;
_EOC_

my $SERVER = <<'_EOC_';
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location = /status                { agentlocator_status; }
_EOC_

sub incoming {
    my ($s, $n) = @_;
    return $s->request('POST /webhook/incoming_call',
        headers => ['Content-Type: application/x-www-form-urlencoded'],
        body => form(CallSid => call_sid($n), From => '+15551230000'));
}

sub status_calls {
    my ($res) = @_;
    return [ $res->{body} =~ /"call_sid":"(CA[0-9a-f]{32})"/g ];
}

subtest 'a call registered by one worker is seen by the other' => sub {
    my $s = Test::AgentLocator::Server->new(workers => 2, http => $HTTP,
                                            server => $SERVER);
    my $r = incoming($s, 1);
    is($r->{status}, 200, 'incoming_call answered');
    my ($writer, $reader) = ($r->{worker});
    ok($writer, "worker $writer registered the call");

    for (1 .. 400) {
        $r = $s->request('GET /status');
        next if $r->{worker} == $writer;
        $reader = $r->{worker};
        is_deeply(status_calls($r), [call_sid(1)],
                  "worker $reader (not the writer) sees the call");
        last;
    }
    ok($reader, 'a second worker answered within 400 requests')
        or diag('workers: ' . join ' ', $s->workers);
    ok($s->stop, 'stopped');
};

subtest 'reload keeps the zone and every call in it' => sub {
    my $s = Test::AgentLocator::Server->new(workers => 2, http => $HTTP,
                                            server => $SERVER);
    is(incoming($s, $_)->{status}, 200, "call $_ registered") for 1 .. 3;
    my $r = $s->request('POST /webhook/call_status',
        headers => ['Content-Type: application/x-www-form-urlencoded'],
        body => form(CallSid => call_sid(2), CallStatus => 'completed'));
    is($r->{status}, 200, 'call 2 completed');

    my %before = map { $_ => 1 } $s->workers;
    $s->reload;
    ok(!grep({ $before{$_} } $s->workers), 'all workers replaced');

    $r = $s->request('GET /status');
    like($r->{body}, qr/"entries":3,/, 'three entries after reload');
    is_deeply([sort @{ status_calls($r) }], [map { call_sid($_) } 1 .. 3],
              'the same calls');
    like($r->{body}, qr/"call_sid":"${\ call_sid(2)}","state":"completed"/,
         'with their states');
    ok($s->stop, 'stopped');
};

subtest 'a new zone size is a new, empty zone' => sub {
    my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                            server => $SERVER);
    is(incoming($s, 1)->{status}, 200, 'call registered');
    (my $bigger = $HTTP) =~ s/calls 1m/calls 2m/;
    $s->reload(http => $bigger);
    like($s->request('GET /status')->{body}, qr/"size":2097152,"entries":0,/,
         'empty registry of the new size');
    ok($s->stop, 'stopped');
};

subtest 'a killed worker loses nothing: its replacement reads the zone' => sub {
    my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                            server => $SERVER);
    is(incoming($s, $_)->{status}, 200, "call $_ registered") for 1 .. 5;
    my ($victim) = $s->workers;
    $s->kill_worker($victim);
    my $r = $s->request('GET /status');
    isnt($r->{worker}, $victim, 'a new worker answers');
    like($r->{body}, qr/"entries":5,.*"repaired":0/, 'all five calls, no repair needed');
    is(incoming($s, 6)->{status}, 200, 'and it registers new calls');
    ok($s->stop, 'stopped');
    unlike($s->error_log, qr/REGISTRY_REPAIRED|\[emerg\]/, 'no repair, no emerg');
};

subtest 'a worker killed inside a registry change: the next one repairs' => sub {
    # Debian's nginx is built --with-debug, which compiles the crash point in
    plan skip_all => 'nginx without --with-debug has no crash point'
        unless `${\ ($ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx')} -V 2>&1`
               =~ /--with-debug/;

    local $ENV{AGENTLOCATOR_TEST_CRASH_IN_CHANGE} = 3;
    my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
        server => $SERVER, main => 'env AGENTLOCATOR_TEST_CRASH_IN_CHANGE;');
    # the crash we asked for, with the zone's lock held
    $s->allow_log(qr/exited on signal 9\b|shared memory zone "calls" was locked by/);

    # the 3rd registration dies between two tree insertions, lock held
    my ($victim) = $s->workers;
    is(incoming($s, $_)->{status}, 200, "call $_ registered") for 1 .. 2;
    my $r = eval { incoming($s, 3) };
    ok(!$r || !$r->{status}, 'the worker died in the middle of call 3');
    $s->wait_for(sub { my ($w) = $s->workers; $w && $w != $victim }, 10);

    $r = $s->request('GET /status');
    like($r->{body}, qr/"entries":3,.*"repaired":1/,
         'the replacement repaired the registry: three whole calls');
    is_deeply([sort @{ status_calls($r) }], [map { call_sid($_) } 1 .. 3],
              'call 3 was whole before it was linked, so it is kept');
    is(incoming($s, 4)->{status}, 200, 'registering goes on');
    like($s->request('GET /status')->{body}, qr/"entries":4,/, 'four calls');
    like($s->error_log, qr/\[warn\] .*REGISTRY_REPAIRED zone="calls" entries=3 dropped=0/,
         'REGISTRY_REPAIRED logged');
    like($s->error_log, qr/exited on signal 9/, 'the master saw the kill');
    ok($s->stop, 'stopped');
};

done_testing();
