# The watchdog and the registry under the conditions a review found them
# failing: a worker short of connections, a reload with redirects in
# flight, a full zone, a stream that starts again, attempts taken over
# from dead workers, and a call longer than the stale age.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Calls;
use Test::AgentLocator::Twilio qw(call_sid);

*wait_until = \&Test::AgentLocator::Calls::wait_until;


sub status { decode_json($_[0]->server->request('GET /status')->{body}) }

sub crashed { $_[0]->server->error_log =~ /exited on signal/ }


subtest 'a worker short of connections never crashes: it claims only what it can send' => sub {
    my $t = Test::AgentLocator::Calls->new(workers => 1,
        server_opts => { connections => 40 },
        mode => { mode => 'delay', delay_ms => 1500 },
        watchdog => 'start_timeout=1s no_media_timeout=1s');
    my ($worker) = $t->server->workers;
    $t->incoming($_) for 1 .. 50;
    ok($t->wait_redirects(10, 1 .. 50), 'all 50 redirected in the end');
    sleep 0.5;
    $t->once_each('short of connections', 1 .. 50);
    ok(!crashed($t), 'no worker died') or diag($t->server->error_log);
    is(($t->server->workers)[0], $worker, 'the same worker');
    unlike($t->server->error_log, qr/\[alert\]/, 'no alert (worker_connections never ran out)');
    ok($t->server->stop, 'stopped');
};

subtest 'a socket libcurl cannot watch fails that request alone, which is retried' => sub {
    my $t = Test::AgentLocator::Calls->new(workers => 1,
        server_opts => { main => 'env AGENTLOCATOR_TEST_NO_CONNECTION=1;' },
        watchdog => 'start_timeout=1s no_media_timeout=1s');
    my ($worker) = $t->server->workers;
    $t->incoming(5);
    ok(wait_until(sub { ($t->call(5) // {})->{state} eq 'redirected' }, 5), 'redirected');
    is(scalar $t->redirects(5), 1, 'by the second attempt, the only one Twilio saw');
    is($t->call(5)->{redirect}{attempts}, 2, 'two attempts');
    like($t->server->error_log,
         qr/WATCHDOG_REDIRECT call=${\ call_sid(5)} reason=no_stream_start attempt=1 status=error: no free connection: worker_connections are not enough; retrying/,
         'the first failed with a reason');
    ok(!crashed($t), 'no worker died');
    is(($t->server->workers)[0], $worker, 'the same worker');
    ok($t->server->stop, 'stopped');
};

subtest 'a reload with 40 redirects in flight sends none of them twice' => sub {
    my $t = Test::AgentLocator::Calls->new(
        mode => { mode => 'delay', delay_ms => 1500 },
        watchdog => 'start_timeout=1s no_media_timeout=1s');
    $t->incoming($_) for 1 .. 40;
    ok(wait_until(sub { @{ $t->mock->requests } == 40 }, 4), '40 in flight');
    $t->server->reload;    # returns once the old workers are gone
    sleep 1;
    $t->once_each('reload in flight', 1 .. 40);
    is(scalar(grep { ($t->call($_) // {})->{state} eq 'redirected' } 1 .. 40), 40,
       'all 40 recorded as redirected: their answers were read');
    unlike($t->server->error_log, qr/abandoned/, 'none abandoned');
    ok($t->server->stop, 'stopped');
};

subtest 'a full zone evicts completed calls, never live ones' => sub {
    my $t = Test::AgentLocator::Calls->new(workers => 1, zone => '128k',
        watchdog => 'start_timeout=60s no_media_timeout=60s');
    my $cap = status($t)->{zone}{capacity};
    my $live = 70;
    cmp_ok($cap, '>', 2 * $live, "room for $live live calls twice ($cap)");
    $t->incoming($_) for 1 .. $live;
    my $n = 1000;
    my $completed = 0;
    while (status($t)->{zone}{entries} < $cap && $completed < 2 * $cap) {
        $t->incoming(++$n);
        $t->webhook('call_status', $n, CallStatus => 'completed');
        $completed++;
    }
    my $z = status($t)->{zone};
    is($z->{entries}, $cap, "full: $live live, the rest completed");
    # new calls take the completed ones' room
    $t->incoming($_) for 2001 .. 2000 + $live;
    $z = status($t)->{zone};
    is($z->{full}, 0, 'no ZONE_FULL while completed calls can go');
    cmp_ok($z->{evicted}, '>=', $live, "completed calls evicted ($z->{evicted})");
    my %there = map { $_->{call_sid} => $_->{state} } @{ status($t)->{calls} };
    is(scalar(grep { ($there{ call_sid($_) } // '') eq 'armed' } 1 .. $live, 2001 .. 2000 + $live),
       2 * $live, 'every live call is still there');
    # only live calls left to take room from: ZONE_FULL, nothing live lost
    $t->incoming($_) for 3001 .. 3000 + $cap;
    $z = status($t)->{zone};
    cmp_ok($z->{full}, '>', 0, 'ZONE_FULL once only live calls are left');
    %there = map { $_->{call_sid} => $_->{state} } @{ status($t)->{calls} };
    is(scalar(grep { ($there{ call_sid($_) } // '') eq 'armed' } 1 .. $live), $live,
       'the first live calls were never evicted');
    like($t->server->error_log, qr/ZONE_FULL call=/, 'logged');
    ok($t->server->stop, 'stopped');
};

subtest 'with every request slot in flight, completed calls are still reaped' => sub {
    my $t = Test::AgentLocator::Calls->new(workers => 1,
        mode => { mode => 'delay', delay_ms => 4000 },
        watchdog => 'start_timeout=1s no_media_timeout=1s timeout=5s completed_grace=1s');
    $t->incoming($_) for 1 .. 70;
    for my $n (101 .. 110) {
        $t->incoming($n);
        $t->webhook('call_status', $n, CallStatus => 'completed');
    }
    ok(wait_until(sub { @{ $t->mock->requests } >= 64 }, 3), '64 requests in flight');
    ok(wait_until(sub { status($t)->{zone}{expired} >= 10 }, 2),
       'the 10 completed calls were reaped meanwhile');
    ok($t->server->stop, 'stopped');
};

subtest 'a stream that starts again gets a fresh no_media_timeout' => sub {
    my $t = Test::AgentLocator::Calls->new(watchdog => 'start_timeout=1s no_media_timeout=1s');
    $t->incoming(7);
    my $ws = $t->stream(7);
    for (1 .. 10) { $t->media($ws); sleep 0.02 }
    $t->stop($ws);
    $ws->close_ws;
    ok(wait_until(sub { ($t->call(7) // {})->{state} eq 'stopped' }, 2), 'stopped');
    sleep 1.5;    # longer than no_media_timeout
    # a second <Connect><Stream> of the same call
    my $again = $t->stream(7);
    my $started = time;
    ok(wait_until(sub { ($t->call(7) // {})->{state} eq 'streaming' }, 1), 'streaming again');
    ok($t->wait_redirects(3, 7), 'redirected when the new stream stays silent');
    my $late = $t->lateness(7, $started + 1);
    cmp_ok($late, '>=', -2, sprintf('not before the new stream\'s own timeout (%+.0f ms)', $late));
    $again->close_ws;

    # the same through stream_status: stream-started of a new stream
    $t->incoming(8);
    $t->webhook('stream_status', 8, StreamEvent => 'stream-started', StreamSid => 'MZ' . 'a' x 32);
    $t->webhook('stream_status', 8, StreamEvent => 'stream-stopped', StreamSid => 'MZ' . 'a' x 32);
    sleep 1.2;
    my $r = $t->webhook('stream_status', 8, StreamEvent => 'stream-started',
                        StreamSid => 'MZ' . 'b' x 32);
    ok($t->wait_redirects(3, 8), 'redirected');
    $late = $t->lateness(8, $r->{sent} + 1);
    cmp_ok($late, '>=', -2, sprintf('not before stream-started + timeout (%+.0f ms)', $late));
    ok($t->server->stop, 'stopped');
};

subtest 'attempts are bounded when claims are taken over from dead workers' => sub {
    my $t = Test::AgentLocator::Calls->new(workers => 1,
        mode => { mode => 'delay', delay_ms => 5000 },
        watchdog => 'start_timeout=1s no_media_timeout=1s attempts=2 lease=1500ms timeout=1s');
    $t->incoming(9);
    for my $k (1, 2) {
        ok(wait_until(sub { scalar($t->redirects(9)) == $k }, 4), "attempt $k in flight");
        $t->server->kill_worker(($t->server->workers)[0]);
    }
    ok(wait_until(sub { (($t->call(9) // {})->{redirect} // {})->{outcome} eq 'gave_up' }, 4),
       'given up after the second takeover');
    sleep 1;
    is(scalar $t->redirects(9), 2, 'no third attempt');
    is($t->call(9)->{redirect}{attempts}, 2, 'attempts=2');
    like($t->server->error_log,
         qr/WATCHDOG_REDIRECT call=${\ call_sid(9)} reason=no_stream_start attempt=2 status=gave_up: out of attempts/,
         'logged');
    ok($t->server->stop, 'stopped');
};

subtest 'a streaming call outlives stale_after; finished calls do not' => sub {
    my $t = Test::AgentLocator::Calls->new(workers => 1,
        watchdog => 'start_timeout=1s no_media_timeout=1s stale_after=2s completed_grace=2s');
    $t->incoming(11);
    my $ws = $t->stream(11);
    $t->incoming(12);
    $t->webhook('stream_status', 12, StreamEvent => 'stream-stopped', StreamSid => 'MZ' . 'c' x 32);
    my $until = time + 4;
    while (time < $until) { $t->media($ws); sleep 0.02 }
    my $c = $t->call(11);
    is($c && $c->{state}, 'streaming', 'the live call is there, streaming, after 2x stale_after');
    ok(!$t->call(12), 'the stopped one idle past stale_after was reaped');
    is(scalar $t->redirects(11), 0, 'and the live one was never redirected');
    $ws->close_ws;
    ok($t->server->stop, 'stopped');
};

done_testing();
