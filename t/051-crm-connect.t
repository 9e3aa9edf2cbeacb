# The CRM's connections (SPEC §7) to a real PostgreSQL the test starts:
# nonblocking from the first byte, each worker with its own pool, made
# again after the database went away, a database older than the module
# needs said loudly; a webhook never waits for any of it.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Server;
use Test::AgentLocator::Twilio qw(form call_sid);
use Test::AgentLocator::Calls;
use IO::Socket::INET;

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;

sub server {
    my (%o) = @_;
    return Test::AgentLocator::Server->new(workers => 2, http => <<"_EOC_",
    agentlocator_zone calls 1m;
    agentlocator_public_url https://voice.example.com;
    agentlocator_watchdog off;
    agentlocator_postgres "@{[ $o{conninfo} // $pg->conninfo ]}" pool=2;
_EOC_
        server => <<'_EOC_');
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location = /readyz { agentlocator_health ready; }
_EOC_
}

# /readyz of every worker (each has its own pool): { pid => database }
sub databases {
    my ($s) = @_;
    my %seen;
    for (1 .. 40) {
        my $r = $s->request('GET /readyz');
        my $j = decode_json($r->{body});
        $seen{ $r->{worker} } = $j;
        last if keys %seen == 2;
    }
    return \%seen;
}

sub wait_state {
    my ($s, $state, $secs) = @_;
    my $until = time + $secs;
    while (time < $until) {
        my $d = databases($s);
        return 1 if keys %$d == 2
                    && !grep { $_->{checks}{database} ne $state } values %$d;
        sleep 0.1;
    }
    return 0;
}

sub incoming_ms {
    my ($s, $n) = @_;
    my $t0 = time;
    my $r = $s->request('POST /webhook/incoming_call',
        headers => ['Content-Type: application/x-www-form-urlencoded'],
        body => form(CallSid => call_sid($n)));
    return ($r->{status}, 1000 * (time - $t0));
}

subtest 'a database not migrated yet: said once per worker, and in /readyz' => sub {
    my $s = server();
    ok(wait_state($s, 'old_schema', 10), 'every worker: "old_schema"');
    my ($j) = values %{ databases($s) };
    is_deeply($j->{database}, { schema => 0, needed => 3, connected => 0, pool => 2,
                                queued => 0, in_flight => 0, written => 0, refused => 0,
                                dropped => 0 },
              'schema 0 of 3 needed, the connections let go (tried again after the backoff)');
    is($j->{ready}, JSON::PP::true, 'still ready: calls go on without the CRM');
    my @old = $s->error_log =~ /\[error\] .*CRM_SCHEMA_OLD version=0 needed=3: the database has not been migrated; run tools\/migrate/g;
    is(scalar @old, 2, 'logged once by each worker');
    ok($s->stop, 'stopped');
};

subtest 'migrated: ok' => sub {
    system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';
    my $s = server();
    ok(wait_state($s, 'ok', 10), 'every worker: "ok"');
    # "ok" is one connection up; the other may still be on its way
    my $j;
    Test::AgentLocator::Calls::wait_until(sub {
        my $d = databases($s);
        ($j) = values %$d;
        keys %$d == 2 && !grep { $_->{database}{connected} != 2 } values %$d;
    }, 10);
    is_deeply($j->{database}, { schema => 3, needed => 3, connected => 2, pool => 2,
                                queued => 0, in_flight => 0, written => 0, refused => 0,
                                dropped => 0 },
              'schema 3, both connections up');
    is($pg->psql(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'agentlocator'
                   AND backend_type = 'client backend' AND pid <> pg_backend_pid()}), 4,
       'the database sees 2 workers x 2 connections')
        or diag $pg->psql(q{SELECT pid, backend_type, state, query FROM pg_stat_activity});
    unlike($s->error_log, qr/CRM_SCHEMA_OLD|CRM_DOWN/, 'nothing to report');
    ok($s->stop, 'stopped');
    sleep 0.3;
    is($pg->psql(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'agentlocator'
                   AND backend_type = 'client backend' AND pid <> pg_backend_pid()}), 0,
       'the connections were closed when nginx quit');
};

# incoming_call as Twilio posts it, with any From
sub incoming_from {
    my ($s, $n, $from, $to) = @_;
    return $s->request('POST /webhook/incoming_call',
        headers => ['Content-Type: application/x-www-form-urlencoded'],
        body => form(CallSid => call_sid($n), AccountSid => 'AC' . 'a' x 32,
                     From => $from, To => $to // '+15557650000'));
}

sub wait_rows {
    my ($sql, $want, $secs) = @_;
    my $until = time + $secs;
    my $got;
    while (time < $until) {
        $got = $pg->psql($sql);
        return 1 if $got eq $want;
        sleep 0.05;
    }
    diag("$sql: got '$got', want '$want'");
    return 0;
}

subtest 'incoming_call writes the call, its customer and the first event, once' => sub {
    my $s = server();
    ok(wait_state($s, 'ok', 10), 'up');
    my $from = q{+972 דנה 'x'); DROP TABLE calls; --};
    is(incoming_from($s, 21, $from)->{status}, 200, 'answered');
    is(incoming_from($s, 21, $from)->{status}, 200, 'a repeat, answered the same');
    ok(wait_rows(q{SELECT count(*) FROM call_events WHERE call_sid = 'CA00000000000000000000000000000015'},
                 1, 5), 'one event for the call');
    my $row = $pg->psql(q{SELECT c.from_number || '|' || c.to_number || '|' || c.status || '|'
                          || c.account_sid || '|' || b.name || '|' || cu.phone
                          FROM calls c JOIN businesses b ON b.id = c.business_id
                          JOIN customers cu ON cu.id = c.customer_id
                          WHERE c.call_sid = 'CA00000000000000000000000000000015'});
    utf8::decode($row);
    is($row, "$from|+15557650000|ringing|AC${\ ('a' x 32)}|default|$from",
       'the call, its number, the default business and the customer, verbatim');
    is($pg->psql(q{SELECT event || ' ' || idempotency_key FROM call_events
                   WHERE call_sid = 'CA00000000000000000000000000000015'}),
       'incoming CA00000000000000000000000000000015:incoming', 'the timeline starts');

    # a number a business owns
    $pg->psql(q{INSERT INTO businesses (name) VALUES ('Clinic')});
    $pg->psql(q{INSERT INTO business_numbers (number, business_id)
                SELECT '+15550001111', id FROM businesses WHERE name = 'Clinic'});
    incoming_from($s, 22, '+15551230000', '+15550001111');
    ok(wait_rows(q{SELECT b.name FROM calls c JOIN businesses b ON b.id = c.business_id
                   WHERE call_sid = 'CA00000000000000000000000000000016'}, 'Clinic', 5),
       'a call to a business number is that business\'s');
    unlike($s->error_log, qr/CRM_WRITE_FAILED|CRM_QUEUE_FULL/, 'no write refused or dropped');
    my $written = 0;
    $written += $_->{database}{written} for values %{ databases($s) };
    is($written, 2, '/readyz: two writes done (the repeat wrote nothing)');
    ok($s->stop, 'stopped');
};

subtest 'call_status: the status only moves forward, the duration, one event each' => sub {
    my $s = server();
    ok(wait_state($s, 'ok', 10), 'up');
    my $status = sub {
        my ($st, @more) = @_;
        $s->request('POST /webhook/call_status',
            headers => ['Content-Type: application/x-www-form-urlencoded'],
            body => form(CallSid => call_sid(31), CallStatus => $st, @more))->{status};
    };
    incoming_from($s, 31, '+15551230000');
    is($status->('in-progress'), 200, 'in-progress');
    # (two workers: the writes may land in any order; the row must not care)
    is($status->('completed', CallDuration => '42'), 200, 'completed, 42 s');
    is($status->('completed', CallDuration => '42'), 200, 'completed again (a retry)');
    my $sid = call_sid(31);
    # "completed" is in before the late one is sent, so that it lands after
    ok(wait_rows(qq{SELECT status FROM calls WHERE call_sid = '$sid'}, 'completed', 5),
       'completed is in');
    is($status->('ringing'), 200, 'a late ringing');
    ok(wait_rows(qq{SELECT count(*) FROM call_events WHERE call_sid = '$sid'}, 4, 5),
       'four events: incoming, in-progress, completed, ringing');
    is($pg->psql(qq{SELECT status || ' ' || duration_s || ' ' || (answered_at IS NOT NULL)
                    || ' ' || (ended_at IS NOT NULL) FROM calls WHERE call_sid = '$sid'}),
       'completed 42 true true', 'completed, 42 s, answered and ended: the late ringing did not undo it');
    is($pg->psql(qq{SELECT string_agg(coalesce(reason, event), ' ' ORDER BY at, id)
                    FROM call_events WHERE call_sid = '$sid'}),
       'incoming in-progress completed ringing', 'the timeline keeps every status once, in time order');
    is($pg->psql(qq{SELECT from_number FROM calls WHERE call_sid = '$sid'}), '+15551230000',
       'whichever write landed first, the call has its caller');
    ok($s->stop, 'stopped');
};

subtest 'a host name is looked up when nginx reads its configuration' => sub {
    my $s = server(conninfo => 'host=localhost port=' . $pg->port
                               . ' user=agentlocator dbname=agentlocator');
    ok(wait_state($s, 'ok', 10), 'host=localhost: every worker "ok"');
    ok($s->stop, 'stopped');
};

subtest 'the database goes away and comes back: webhooks never wait' => sub {
    my $s = server();
    ok(wait_state($s, 'ok', 10), 'up');
    ok($pg->stop, 'PostgreSQL stopped');
    ok(wait_state($s, 'down', 10), 'every worker: "down"');
    my @ms = map { (incoming_ms($s, $_))[1] } 1 .. 20;
    my @bad = grep { $_ > 500 } @ms;
    is(scalar @bad, 0, sprintf 'incoming_call answered while it is down (slowest %.1f ms)',
       (sort { $b <=> $a } @ms)[0]);
    like($s->error_log, qr/\[error\] .*CRM_DOWN connection=\d+ retry_ms=\d+: the connection broke/,
         'CRM_DOWN logged');
    ok($pg->start, 'PostgreSQL started again');
    ok(wait_state($s, 'ok', 40), 'every worker reconnected by itself (backoff)');
    ok(wait_rows(q{SELECT count(*) FROM calls WHERE call_sid BETWEEN 'CA00000000000000000000000000000001'
                                                       AND 'CA00000000000000000000000000000014'},
                 20, 10), 'the 20 calls answered while it was down were written once it was back');
    like($s->error_log, qr/CRM_CONNECTED connection=\d+ after \d+ failure/, 'CRM_CONNECTED logged');
    ok($s->stop, 'stopped');
};

subtest 'nothing listening at all: quit and reload do not wait for the backoff' => sub {
    my $port = Test::AgentLocator::Postgres::free_port();
    my $s = server(conninfo => "host=127.0.0.1 port=$port user=x dbname=x connect_timeout=2");
    ok(wait_state($s, 'down', 5), 'every worker: "down"');
    like($s->error_log, qr/CRM_DOWN connection=0 retry_ms=100: cannot connect: .*(refused|connect)/,
         'the first failure says why');
    my ($status, $ms) = incoming_ms($s, 99);
    is($status, 200, 'a call is answered');
    $s->reload;
    ok(wait_state($s, 'down', 5), 'after a reload, still "down", new workers');
    my $t0 = time;
    ok($s->stop, 'stopped');
    cmp_ok(time - $t0, '<', 3, 'quit did not wait for a reconnect');
    unlike($s->error_log, qr/\Q$port user=x\E/, 'the conninfo is never logged');
};

subtest 'a server that never answers: connect_timeout, then the backoff' => sub {
    # the kernel completes the handshake, nobody ever reads or writes
    my $mute = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                     Listen => 16, Proto => 'tcp') or die $!;
    my $s = server(conninfo => 'host=127.0.0.1 port=' . $mute->sockport
                               . ' user=x dbname=x connect_timeout=1 sslmode=disable');
    my $t0 = time;
    ok(Test::AgentLocator::Calls::wait_until(sub {
           $s->error_log =~ /CRM_DOWN connection=\d+ retry_ms=\d+: timed out connecting/ }, 5),
       'CRM_DOWN: timed out connecting');
    cmp_ok(time - $t0, '<', 3.5, 'after about connect_timeout=1');
    is((incoming_ms($s, 98))[0], 200, 'calls are answered meanwhile');
    ok($s->stop, 'stopped');
};

ok($pg->stop, 'PostgreSQL stopped');

done_testing();
