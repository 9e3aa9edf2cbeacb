# The transcription sweep (agentlocator_transcribe_url sweep=): a recording
# whose transcript was not written is taken again later, by any worker, and
# transcribed once.  Real PostgreSQL, two nginx "hosts" of two workers each
# on one CRM, and the mock service of t/064 (Twilio's recordings and the
# transcriber), which counts every request: a job cut by a reload, a
# service away past the retries, many recordings due at once for four
# workers, a stream's WAV, and what is given up for good; each counted in
# agentlocator_transcriptions_total.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Digest::SHA qw(sha256_hex);
use Encode qw(decode_utf8);
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Calls;
use Test::AgentLocator::Transcriber qw(re_sid wav transcriptions transcriptions_are);
use Test::AgentLocator::Twilio qw(call_sid);

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';

*wait_until = \&Test::AgentLocator::Calls::wait_until;

my $wavs = tempdir('wav-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0777, $wavs;

my $svc = Test::AgentLocator::Transcriber->new;

# sweep=1s: a claim is 3 s, so a job's claim that nobody keeps runs out fast
sub host { $svc->host($pg, $wavs, 'model=whisper-large-v3 timeout=5s sweep=1s') }

my $t = host();
my $s = $t->server;

sub recording_url { $svc->recording_url(@_) }

sub put_recording { $svc->put_recording(@_) }

sub transcript {
    my ($n) = @_;
    return decode_utf8($pg->psql(qq{SELECT string_agg(text, '|') FROM transcripts
                                    WHERE call_sid = '@{[ call_sid($n) ]}'}));
}

sub count_sql { $pg->psql($_[0]) + 0 }

sub recording_done {
    my ($n) = @_;
    return $t->webhook('handle_recording', $n, RecordingSid => re_sid($n),
                       RecordingUrl => recording_url($n), RecordingDuration => 3,
                       RecordingStatus => 'completed');
}

# what the service was asked to transcribe: posts of one file name
sub posts_of {
    my ($name) = @_;
    return scalar grep { $_->{method} eq 'POST' && ($_->{file}{name} // '') eq $name }
                  @{ $svc->requests };
}

sub logged { my ($re, $secs) = @_; wait_until(sub { $s->error_log =~ $re }, $secs // 15) }

sub lines { my ($log, $re) = @_; scalar(() = $log =~ /$re/g) }

subtest 'every result counted from the start, at 0' => sub {
    transcriptions_are($s, {}, 'before any recording');
};

subtest 'a job cut by a reload: transcribed after it, by a new worker, once' => sub {
    my $audio = wav(4000);
    put_recording(1, $audio);
    $svc->mode(mode => 'slow', delay_ms => 4500);
    $t->incoming(1);
    is(recording_done(1)->{status}, 204, 'Twilio is answered');
    ok(wait_until(sub { posts_of(re_sid(1) . '.wav') == 1 }, 10), 'the service holds the request');
    is(count_sql(qq{SELECT count(*) FROM recordings WHERE recording_sid = '@{[ re_sid(1) ]}'
                    AND transcript_due_at > now() AND transcript_attempts = 1}), 1,
       'the recording is claimed by its job, one attempt');
    $s->reload;
    ok(logged(qr/TRANSCRIBE_FAILED call=\Q@{[ call_sid(1) ]}\E stage=transcribe status=0 reason=worker exiting/),
       'the old worker gave the job up');
    $svc->mode(mode => 'ok');
    ok(wait_until(sub { transcript(1) ne '' }, 20), 'transcribed after the reload') or diag $s->error_log;
    is(transcript(1), 'sha256=' . sha256_hex($audio) . ' bytes=' . length($audio) . ' שלום',
       'of Twilio\'s bytes');
    like($s->error_log, qr/TRANSCRIBE_RESUMED call=\Q@{[ call_sid(1) ]}\E recording=\d+ source=twilio attempt=2/,
         'resumed by the sweep, the second attempt');
    sleep 5;    # claims of a few sweeps more
    is(posts_of(re_sid(1) . '.wav'), 2, 'posted twice: the job cut, and the one resumed');
    is(count_sql(qq{SELECT count(*) FROM transcripts WHERE call_sid = '@{[ call_sid(1) ]}'}), 1,
       'one transcript');
    is(count_sql(qq{SELECT count(*) FROM call_events WHERE call_sid = '@{[ call_sid(1) ]}'
                    AND event = 'transcript'}), 1, 'one transcript event');
    is(lines($s->error_log, qr/TRANSCRIBE_RESUMED call=\Q@{[ call_sid(1) ]}\E/), 1, 'resumed once');
    transcriptions_are($s, { failed => 1, resumed => 1, transcribed => 1 },
                       'the job cut, resumed, transcribed');
};

subtest 'a worker killed with its job: another transcribes it, once' => sub {
    my $audio = wav(2000);
    put_recording(9, $audio);
    $svc->mode(mode => 'slow', delay_ms => 4500);
    $t->incoming(9);
    my $r = recording_done(9);
    ok($r->{worker}, 'the job is in worker ' . $r->{worker});
    ok(wait_until(sub { posts_of(re_sid(9) . '.wav') == 1 }, 10), 'the service holds the request');
    $s->kill_worker($r->{worker});
    $svc->mode(mode => 'ok');
    ok(wait_until(sub { transcript(9) ne '' }, 20), 'transcribed') or diag $s->error_log;
    like(transcript(9), qr/^sha256=\Q@{[ sha256_hex($audio) ]}\E /, 'of Twilio\'s bytes');
    sleep 5;
    is(posts_of(re_sid(9) . '.wav'), 2, 'posted twice: the job killed, and the one resumed');
    is(lines($s->error_log, qr/TRANSCRIBE_RESUMED call=\Q@{[ call_sid(9) ]}\E/), 1, 'resumed once');
    is(count_sql(qq{SELECT count(*) FROM transcripts WHERE call_sid = '@{[ call_sid(9) ]}'}), 1,
       'one transcript');
    transcriptions_are($s, { failed => 1, resumed => 2, transcribed => 2 },
                       'a killed job says nothing; resumed, transcribed');
};

subtest 'the service away past every retry, then back: the sweep transcribes it' => sub {
    put_recording(2, wav(1200));
    $svc->mode(mode => '500');
    $t->incoming(2);
    recording_done(2);
    ok(logged(qr/TRANSCRIBE_FAILED call=\Q@{[ call_sid(2) ]}\E stage=transcribe status=500/, 40),
       'the job gave up after its retries') or diag $s->error_log;
    $svc->mode(mode => 'ok');
    is(posts_of(re_sid(2) . '.wav'), 3, 'three posts: the first and two retries');
    unlike($s->error_log, qr/TRANSCRIBE_RESUMED call=\Q@{[ call_sid(2) ]}\E/,
           'not taken by the sweep while its job ran (~25 s, claims of 3 s kept ahead)');
    ok(wait_until(sub { transcript(2) ne '' }, 20), 'then transcribed by the sweep') or diag $s->error_log;
    like($s->error_log, qr/TRANSCRIBE_RESUMED call=\Q@{[ call_sid(2) ]}\E recording=\d+ source=twilio attempt=2/,
         'TRANSCRIBE_RESUMED');
    is(count_sql(qq{SELECT count(*) FROM transcripts WHERE call_sid = '@{[ call_sid(2) ]}'}), 1,
       'one transcript');
    transcriptions_are($s, { retried => 2, failed => 2, resumed => 3, transcribed => 3 },
                       'two retries, failed, resumed, transcribed');
};

subtest 'many recordings due at once, two hosts of two workers: each transcribed once' => sub {
    my $before = transcriptions($s);
    my $t2 = host();
    my @n = (101 .. 124);
    put_recording($_, wav(800)) for @n;
    # as a lost job leaves them: written, due, no transcript
    for my $n (@n) {
        $pg->psql(qq{INSERT INTO recordings (call_sid, recording_sid, url, transcript_due_at,
                                             transcript_attempts)
                     VALUES ('@{[ call_sid($n) ]}', '@{[ re_sid($n) ]}', '@{[ recording_url($n) ]}',
                             now(), 1)});
    }
    ok(wait_until(sub {
        count_sql(q{SELECT count(*) FROM transcripts WHERE call_sid IN ('}
                  . join("','", map { call_sid($_) } @n) . q{')}) == @n }, 40),
       'all transcribed') or diag $s->error_log;
    sleep 4;
    my @twice = grep { posts_of(re_sid($_) . '.wav') != 1 } @n;
    is_deeply(\@twice, [], 'each posted once, whichever worker took it');
    my $ours = join '|', map { call_sid($_) } @n;
    my $log = $s->error_log . $t2->server->error_log;
    is(lines($log, qr/TRANSCRIBE_RESUMED call=(?:$ours) /), scalar @n,
       'one TRANSCRIBE_RESUMED per recording');
    ok(lines($t2->server->error_log, qr/TRANSCRIBE_RESUMED call=(?:$ours) /) > 0
       && lines($s->error_log, qr/TRANSCRIBE_RESUMED call=(?:$ours) /) > 0,
       'both hosts took some');
    is_deeply([ $t2->server->log_problems ], [], 'the other host: no alerts or crashes');
    # each host counts its own; together, one of each per recording
    my ($one, $two) = (transcriptions($s), transcriptions($t2->server));
    transcriptions_are($s, { resumed => $one->{resumed} - $before->{resumed},
                             transcribed => $one->{transcribed} - $before->{transcribed} },
                       'this host: resumed and transcribed, nothing else', $before);
    transcriptions_are($t2->server, { resumed => $two->{resumed},
                                      transcribed => $two->{transcribed} },
                       'the other host: resumed and transcribed, nothing else');
    is($one->{resumed} - $before->{resumed} + $two->{resumed}, scalar @n,
       'resumed: one per recording, both hosts together');
    is($one->{transcribed} - $before->{transcribed} + $two->{transcribed}, scalar @n,
       'transcribed: one per recording, both hosts together');
    undef $t2;
};

subtest 'a stream\'s WAV is resumed from disk, only this host\'s own' => sub {
    my $before = transcriptions($s);
    $t->incoming(3);
    my $ws = $t->stream(3);
    $t->media($ws) for 1 .. 20;
    $t->stop($ws);
    $ws->close_ws(1000);
    ok(wait_until(sub { transcript(3) ne '' }, 10), 'transcribed when the stream ended');
    my $file = "$wavs/" . call_sid(3) . '.wav';
    # its transcript lost, as if the job had been
    $pg->psql(qq{DELETE FROM call_events WHERE call_sid = '@{[ call_sid(3) ]}' AND event = 'transcript'});
    $pg->psql(qq{DELETE FROM transcripts WHERE call_sid = '@{[ call_sid(3) ]}'});
    $pg->psql(qq{UPDATE recordings SET transcript_due_at = now() WHERE wav_path = '$file'});
    ok(wait_until(sub { transcript(3) ne '' }, 10), 'transcribed again by the sweep');
    like($s->error_log, qr/TRANSCRIBE_RESUMED call=\Q@{[ call_sid(3) ]}\E recording=\d+ source=stream attempt=2/,
         'from the WAV');
    open my $fh, '<:raw', $file or die "$file: $!";
    my $bytes = do { local $/; <$fh> };
    like(transcript(3), qr/^sha256=\Q@{[ sha256_hex($bytes) ]}\E /, 'of the WAV on disk');

    my $before_requests = @{ $svc->requests };
    $pg->psql(qq{INSERT INTO recordings (call_sid, wav_path, transcript_due_at)
                 VALUES ('@{[ call_sid(4) ]}', '$wavs/@{[ call_sid(4) ]}.wav', now()),
                        ('@{[ call_sid(12) ]}', '/etc/passwd', now()),
                        ('@{[ call_sid(13) ]}', '$wavs/@{[ call_sid(3) ]}.wav', now())});
    for my $n (4, 12, 13) {
        ok(logged(qr/TRANSCRIBE_SKIPPED call=\Q@{[ call_sid($n) ]}\E recording=\d+ source=stream reason=wav_path/),
           "skipped: " . ($n == 4 ? 'a WAV another host keeps'
                         : $n == 12 ? 'a file the module did not write'
                         : 'another call\'s WAV'));
    }
    $pg->psql(q{UPDATE recordings SET transcript_due_at = NULL WHERE call_sid IN ('}
              . join("','", map { call_sid($_) } 4, 12, 13) . q{')});
    is(scalar @{ $svc->requests }, $before_requests, 'nothing posted');
    # a claim runs out after 3 s: one may have been skipped twice
    sleep 2;
    my $skipped = lines($s->error_log, qr/TRANSCRIBE_SKIPPED /);
    cmp_ok($skipped, '>=', 3, 'three skipped at least');
    transcriptions_are($s, { transcribed => 2, resumed => 1, skipped => $skipped },
                       'transcribed, resumed, transcribed; each skip', $before);
};

subtest 'given up for good: out of attempts, too old, or would fail the same way' => sub {
    my $counted = transcriptions($s);
    my $before = @{ $svc->requests };
    $pg->psql(qq{INSERT INTO recordings (call_sid, recording_sid, url, transcript_due_at,
                                         transcript_attempts, created_at)
                 VALUES ('@{[ call_sid(5) ]}', '@{[ re_sid(5) ]}', '@{[ recording_url(5) ]}', now(), 5, now()),
                        ('@{[ call_sid(6) ]}', '@{[ re_sid(6) ]}', '@{[ recording_url(6) ]}', now(), 1,
                         now() - interval '25 hours')});
    ok(logged(qr/TRANSCRIBE_ABANDONED call=\Q@{[ call_sid(5) ]}\E recording=\d+ attempts=5 reason=attempts/),
       'five attempts: TRANSCRIBE_ABANDONED');
    ok(logged(qr/TRANSCRIBE_ABANDONED call=\Q@{[ call_sid(6) ]}\E recording=\d+ attempts=1 reason=age/),
       'a day old: TRANSCRIBE_ABANDONED');
    is($pg->psql(q{SELECT string_agg(reason, ' ' ORDER BY call_sid) FROM call_events
                   WHERE event = 'transcript_failed' AND call_sid IN ('}
                 . call_sid(5) . q{','} . call_sid(6) . q{')}), 'attempts age',
       'on each call\'s timeline, for the CRM page');
    is(count_sql(q{SELECT count(*) FROM recordings WHERE transcript_due_at IS NOT NULL
                   AND call_sid IN ('} . call_sid(5) . q{','} . call_sid(6) . q{')}), 0,
       'no longer due');
    is(scalar @{ $svc->requests }, $before, 'nothing fetched or posted');

    put_recording(7, wav(800));
    $svc->mode(mode => 'garbage');
    $t->incoming(7);
    recording_done(7);
    ok(logged(qr/TRANSCRIBE_FAILED call=\Q@{[ call_sid(7) ]}\E stage=answer/), 'garbage: the answer');
    $svc->mode(mode => 'ok');
    ok(wait_until(sub {
        count_sql(qq{SELECT count(*) FROM call_events WHERE call_sid = '@{[ call_sid(7) ]}'
                     AND event = 'transcript_failed' AND reason = 'answer'}) == 1 }, 5),
       'given up on the timeline');
    sleep 5;
    unlike($s->error_log, qr/TRANSCRIBE_RESUMED call=\Q@{[ call_sid(7) ]}\E/, 'not tried again');
    is(transcript(7), '', 'no transcript');
    transcriptions_are($s, { abandoned => 2, given_up => 1 }, 'two abandoned, one given up',
                       $counted);
};

subtest 'sweep=off: nothing is due' => sub {
    my $before = count_sql(q{SELECT count(*) FROM recordings});
    my $off = Test::AgentLocator::Calls->new(
        api => $svc->url,
        watchdog => 'start_timeout=30s no_media_timeout=30s',
        http => qq{agentlocator_postgres "@{[ $pg->conninfo ]}";
        agentlocator_transcribe_url @{[ $svc->url ]}/v1/audio/transcriptions sweep=off;},
        server => 'location = /webhook/handle_recording { agentlocator_voice handle_recording; }');
    put_recording(8, wav(800));
    $off->incoming(8);
    $off->webhook('handle_recording', 8, RecordingSid => re_sid(8), RecordingUrl => recording_url(8));
    ok(wait_until(sub { transcript(8) ne '' }, 10), 'transcribed as before');
    is(count_sql(qq{SELECT count(*) FROM recordings WHERE recording_sid = '@{[ re_sid(8) ]}'
                    AND transcript_due_at IS NULL}), 1, 'never due');
    is_deeply([ $off->server->log_problems ], [], 'no alerts or crashes');
    undef $off;
};

subtest 'no alerts, no crashes' => sub {
    is_deeply([ $s->log_problems ], [], 'none');
};

done_testing;

# nginx stops before the mocks and the database it uses go
undef $s;
undef $t;
