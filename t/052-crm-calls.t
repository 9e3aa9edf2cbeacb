# What a whole call leaves in the CRM (SPEC §7), against a real PostgreSQL:
# the call's row and its timeline, for each way a call ends (its stream
# completed, the fallback served by stream_ended, a watchdog redirect, a
# redirect after retries, a call that ended first: 21220); Twilio's
# recording; the WAV kept from a stream; duplicates that add nothing; what
# callers and Twilio send stored as sent.  Two workers, each its own pool.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Encode qw(encode_utf8);
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Calls;
use Test::AgentLocator::Twilio qw(call_sid);

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';

*wait_until = \&Test::AgentLocator::Calls::wait_until;

my $spool = tempdir('spool-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $wavs = tempdir('wav-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0777, $spool, $wavs;

my $t = Test::AgentLocator::Calls->new(
    watchdog => 'start_timeout=1s no_media_timeout=1s',
    http => qq{agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_spool $spool;
    agentlocator_recordings $wavs;},
    server => 'location = /webhook/handle_recording { agentlocator_voice handle_recording; }
               location = /readyz { agentlocator_health ready; }');

sub timeline {
    my ($n) = @_;
    return $pg->psql(qq{SELECT string_agg(event || coalesce('(' || reason || ')', ''), ' '
                                          ORDER BY at, id)
                        FROM call_events WHERE call_sid = '@{[ call_sid($n) ]}'});
}

sub row {
    my ($n, $cols) = @_;
    return $pg->psql(qq{SELECT $cols FROM calls WHERE call_sid = '@{[ call_sid($n) ]}'});
}

sub events_of {
    my ($n) = @_;
    return $pg->psql(qq{SELECT count(*) FROM call_events
                        WHERE call_sid = '@{[ call_sid($n) ]}'});
}

sub wait_events {
    my ($n, $count) = @_;
    return wait_until(sub { events_of($n) >= $count }, 10);
}

subtest 'a call whose stream completed' => sub {
    # in the order Twilio sends them: answered, the stream, its end, the end
    $t->incoming(1);
    $t->webhook('call_status', 1, CallStatus => 'in-progress');
    my $ws = $t->stream(1);
    $t->media($ws) for 1 .. 5;
    $t->stop($ws);
    $ws->close_ws(1000);
    ok(wait_events(1, 5), 'the stream\'s events') or diag timeline(1);
    $t->webhook('call_status', 1, CallStatus => 'completed', CallDuration => '7');
    ok(wait_events(1, 6), 'six events') or diag timeline(1);
    is(timeline(1), 'incoming status(in-progress) stream_start recording(stream) stream_stop status(completed)',
       'the timeline, in order');
    is(row(1, q{status || ' ' || stream_sid || ' ' || frames || ' ' || duration_s
               || ' ' || (stream_started_at <= stream_ended_at) || ' ' || fallback_served
               || ' ' || coalesce(redirect_reason, '-') || ' ' || (answered_at IS NOT NULL)
               || ' ' || (ended_at IS NOT NULL)}),
       sprintf('completed MZ%032x 5 7 true false - true true', 1), 'the call row');
    is($pg->psql(qq{SELECT wav_path FROM recordings WHERE call_sid = '@{[ call_sid(1) ]}'}),
       "$wavs/" . call_sid(1) . '.wav', 'the WAV kept from its stream is a recording of it');
    is($pg->psql(qq{SELECT detail->>'frames' FROM call_events
                    WHERE call_sid = '@{[ call_sid(1) ]}' AND event = 'stream_stop'}),
       5, 'the stop event has its frames');
};

subtest 'the fallback served by stream_ended, then Twilio\'s recording' => sub {
    $t->incoming(2);
    my $r = $t->webhook('stream_ended', 2);
    like($r->{body}, qr/<Record /, 'stream_ended answered with the fallback');
    my $rec = sprintf('RE%032x', 2);
    $r = $t->webhook('handle_recording', 2, RecordingSid => $rec,
                     RecordingUrl => "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/$rec",
                     RecordingDuration => '4');
    is($r->{status}, 204, 'handle_recording answered');
    $t->webhook('call_status', 2, CallStatus => 'completed', CallDuration => '12');
    ok(wait_events(2, 4), 'four events') or diag timeline(2);
    is(timeline(2), 'incoming stream_ended(fallback) recording(twilio) status(completed)',
       'the timeline');
    is(row(2, q{status || ' ' || fallback_served || ' ' || coalesce(stream_sid, '-')}),
       'completed true -', 'the call got the fallback and never had a stream');
    is($pg->psql(qq{SELECT recording_sid || ' ' || duration_s || ' ' || url FROM recordings
                    WHERE call_sid = '@{[ call_sid(2) ]}'}),
       "$rec 4 https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/$rec",
       'the recording as Twilio gave it');
    # nothing for the watchdog to do: it had its answer
    sleep 1.3;
    is(scalar $t->redirects(2), 0, 'no redirect');
};

sub rescued {
    my ($n, $mode, $want_events, $want_timeline, $want_row) = @_;
    $t->mock->mode(%$mode);
    $t->incoming($n);
    ok(wait_events($n, $want_events), "$want_events events") or diag timeline($n);
    sleep 0.2;
    is(timeline($n), $want_timeline, 'the timeline');
    is(row($n, q{coalesce(redirect_reason, '-') || ' ' || coalesce(redirect_outcome, '-')
                 || ' ' || (redirected_at IS NOT NULL) || ' ' || fallback_served}),
       $want_row, 'the call row');
}

subtest 'a call with no stream, redirected by the watchdog' => sub {
    rescued(3, { mode => 'ok' }, 3,
            'incoming watchdog_attempt(no_stream_start) watchdog_outcome(redirected)',
            'no_stream_start redirected true true');
    is($pg->psql(qq{SELECT detail->>'attempt' || ' ' || (detail->>'http_status')
                    FROM call_events WHERE call_sid = '@{[ call_sid(3) ]}'
                    AND event = 'watchdog_outcome'}), '1 200', 'attempt 1, HTTP 200');
};

subtest 'redirected after two failed attempts' => sub {
    rescued(4, { mode => 'fail', fail_times => 2 }, 7,
            'incoming watchdog_attempt(no_stream_start) watchdog_outcome(retrying) '
            . 'watchdog_attempt(no_stream_start) watchdog_outcome(retrying) '
            . 'watchdog_attempt(no_stream_start) watchdog_outcome(redirected)',
            'no_stream_start redirected true true');
};

subtest 'the call ended before the redirect: 21220' => sub {
    rescued(5, { mode => '21220' }, 3,
            'incoming watchdog_attempt(no_stream_start) watchdog_outcome(call_ended)',
            'no_stream_start call_ended false false');
    is($pg->psql(qq{SELECT detail->>'code' FROM call_events WHERE call_sid = '@{[ call_sid(5) ]}'
                    AND event = 'watchdog_outcome'}), 21220, "Twilio's error code kept");
};

subtest 'a stream that went silent, then dropped: its error and its drop' => sub {
    $t->mock->mode(mode => 'ok');
    $t->incoming(6);
    my $ws = $t->stream(6);
    $t->media($ws) for 1 .. 3;
    ok($t->wait_redirects(5, 6), 'redirected after the silence');
    $ws->close_socket;
    ok(wait_events(6, 7), 'seven events') or diag timeline(6);
    # the stream's worker sees the silence as the watchdog (maybe in the
    # other worker) acts on it: those two may come in either order
    my @events = split ' ', timeline(6);
    is_deeply([sort @events],
              [sort qw(incoming stream_start recording(stream) stream_error(silent)
                       watchdog_attempt(no_media) watchdog_outcome(redirected)
                       stream_drop(close_1006))], 'the events');
    is("@events[0 .. 2]", 'incoming stream_start recording(stream)', 'first the call and its stream');
    is($events[-1], 'stream_drop(close_1006)', 'last its drop');
    my %at = map { $events[$_] => $_ } 0 .. $#events;
    cmp_ok($at{'watchdog_attempt(no_media)'}, '<', $at{'watchdog_outcome(redirected)'},
           'the attempt before its outcome');
};

subtest 'duplicate webhooks add nothing' => sub {
    my $before = $pg->psql('SELECT (SELECT count(*) FROM call_events) || \' \' ||
                                   (SELECT count(*) FROM recordings) || \' \' ||
                                   (SELECT count(*) FROM calls)');
    my $rec = sprintf('RE%032x', 2);
    for (1 .. 3) {
        $t->webhook('call_status', 2, CallStatus => 'completed', CallDuration => '12');
        $t->webhook('stream_ended', 2);
        $t->webhook('handle_recording', 2, RecordingSid => $rec, RecordingDuration => '4');
        $t->webhook('call_status', 1, CallStatus => 'in-progress');
    }
    sleep 1;
    is($pg->psql('SELECT (SELECT count(*) FROM call_events) || \' \' ||
                         (SELECT count(*) FROM recordings) || \' \' ||
                         (SELECT count(*) FROM calls)'), $before,
       'the same events, recordings and calls');
    is(row(1, 'status'), 'completed', 'a late in-progress does not move a call back');
};

subtest 'what Twilio sends is stored as sent: SQL metacharacters, Hebrew' => sub {
    my $odd = q{'); DROP TABLE calls; -- "\\ שלום עולם};
    my $rec = sprintf('RE%032x', 7);
    $t->webhook('incoming_call', 7, From => $odd, To => "+972-$odd");
    $t->webhook('stream_ended', 7);
    $t->webhook('handle_recording', 7, RecordingSid => $rec, RecordingUrl => "https://x/$odd",
                RecordingDuration => '3');
    ok(wait_events(7, 3), 'three events') or diag timeline(7);
    is($pg->psql(qq{SELECT from_number FROM calls WHERE call_sid = '@{[ call_sid(7) ]}'}),
       encode_utf8($odd), 'From');
    is($pg->psql(qq{SELECT to_number FROM calls WHERE call_sid = '@{[ call_sid(7) ]}'}),
       encode_utf8("+972-$odd"), 'To');
    is($pg->psql(qq{SELECT url FROM recordings WHERE recording_sid = '$rec'}),
       encode_utf8("https://x/$odd"), 'RecordingUrl');
    is($pg->psql(q{SELECT count(*) FROM calls}), 7, 'the calls table is still there');
};

subtest 'everything written, nothing refused, the spool empty' => sub {
    my $s = $t->server;
    ok(wait_until(sub {
        my @w = map { $s->request('GET /readyz')->{body} } 1 .. 6;
        !grep { !/"queued":0,"in_flight":0/ || !/"spool":\{"files":0,"bytes":0,/ } @w;
    }, 5), 'every worker: nothing queued, nothing in its spool')
        or diag $s->request('GET /readyz')->{body};
    unlike($s->error_log, qr/CRM_WRITE_FAILED|CRM_QUEUE_FULL|CRM_LOST|SPOOL_/,
           'no write refused, dropped or lost');
    ok($s->stop, 'nginx stopped cleanly');
    my @left = glob("$spool/*");
    is("@left", '', 'no journal left behind');
};

done_testing();
