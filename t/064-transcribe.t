# Transcription (SPEC §9, agentlocator_transcribe_url) against a real
# PostgreSQL and two workers: Twilio's recording fetched from RecordingUrl +
# ".wav" with the account's Basic auth, a stream's WAV read from disk, each
# posted as multipart/form-data to a mock OpenAI-compatible service that
# answers with the SHA-256 of the audio it got, so the transcript stored
# proves which bytes travelled.  And what is refused or fails: a
# RecordingUrl outside agentlocator_twilio_api_url (the credentials go only
# there), a recording Twilio does not have, the service failing or
# answering garbage: one log line each, nothing stored, Twilio still 204.
# Each counted in agentlocator_transcriptions_total, exactly.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Encode qw(decode_utf8);
use Digest::SHA qw(sha256_hex);
use MIME::Base64 qw(encode_base64);
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Calls;
use Test::AgentLocator::TwilioMock;
use Test::AgentLocator::Transcriber qw(re_sid wav transcriptions_are);
use Test::AgentLocator::Twilio qw(call_sid);

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';

*wait_until = \&Test::AgentLocator::Calls::wait_until;

my $ACCOUNT = $Test::AgentLocator::Calls::ACCOUNT;
my $KEY = 'sk-test-0123456789abcdef';
my $wavs = tempdir('wav-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0777, $wavs;

# one mock plays Twilio's recordings and the transcription service
my $svc = Test::AgentLocator::Transcriber->new;

my $t = $svc->host($pg, $wavs,
    "model=whisper-large-v3 language=he key=$KEY timeout=5s max_size=1m");
my $s = $t->server;
my $retries;    # TRANSCRIBE_RETRY lines, each counted once

sub recording_url { $svc->recording_url(@_) }

sub put_recording { $svc->put_recording(@_) }

sub transcript {
    my ($n) = @_;
    return decode_utf8($pg->psql(qq{SELECT t.text || '|' || coalesce(t.language, '') || '|' || t.engine
                                    FROM transcripts t WHERE t.call_sid = '@{[ call_sid($n) ]}'}));
}

sub recording_done {
    my ($n, %kv) = @_;
    return $t->webhook('handle_recording', $n,
                       $kv{no_sid} ? () : (RecordingSid => re_sid($n)),
                       RecordingUrl => $kv{url} // recording_url($n),
                       RecordingDuration => 3, RecordingStatus => 'completed');
}

sub logged { my ($re) = @_; wait_until(sub { $s->error_log =~ $re }, 15) }

sub posts { $svc->posts }

subtest 'every result counted from the start, at 0' => sub {
    transcriptions_are($s, {}, 'before any recording');
};

subtest 'Twilio\'s recording: fetched with Basic auth, the same bytes transcribed' => sub {
    my $audio = wav(16000);
    put_recording(1, $audio);
    $t->incoming(1);
    is(recording_done(1)->{status}, 204, 'Twilio is answered at once');
    ok(wait_until(sub { transcript(1) ne '' }, 10), 'a transcript') or diag $s->error_log;
    is(transcript(1), 'sha256=' . sha256_hex($audio) . ' bytes=' . length($audio)
                      . ' שלום|he|whisper-large-v3', 'of the bytes Twilio had, Hebrew intact');

    my ($get) = grep { $_->{method} eq 'GET' } @{ $svc->requests };
    is($get->{path}, '/2010-04-01/Accounts/' . $ACCOUNT . '/Recordings/' . re_sid(1) . '.wav',
       'RecordingUrl + .wav');
    is($get->{auth}, 'Basic ' . encode_base64("$ACCOUNT:secret-token", ''), 'the account\'s Basic auth');
    my ($post) = posts();
    is($post->{auth}, "Bearer $KEY", 'the service\'s key');
    like($post->{content_type}, qr{^multipart/form-data; boundary=}, 'multipart');
    is_deeply($post->{fields}, { model => 'whisper-large-v3', language => 'he',
                                 response_format => 'json' }, 'model, language, format');
    is($post->{file}{field}, 'file', 'the file field');
    is($post->{file}{name}, re_sid(1) . '.wav', 'named after the recording');
    is($post->{file}{type}, 'audio/wav', 'audio/wav');

    is($pg->psql(qq{SELECT count(*) FROM call_events WHERE call_sid = '@{[ call_sid(1) ]}'
                    AND event = 'transcript' AND reason = 'whisper-large-v3'}), 1,
       'a transcript event on the timeline');
    is($pg->psql(qq{SELECT count(*) FROM recordings WHERE call_sid = '@{[ call_sid(1) ]}'}), 1,
       'one recording');

    # kept beside the streams' WAVs, for the CRM page's player
    my $copy = "$wavs/" . re_sid(1) . '.wav';
    ok(wait_until(sub {
        $pg->psql(qq{SELECT wav_path || ' ' || url || ' ' || duration_s FROM recordings
                     WHERE recording_sid = '@{[ re_sid(1) ]}'})
        eq "$copy " . recording_url(1) . ' 3' }, 5), 'its row: the copy, Twilio\'s URL, its duration');
    open my $fh, '<:raw', $copy or die "$copy: $!";
    is(do { local $/; <$fh> }, $audio, 'the copy is Twilio\'s bytes');
    transcriptions_are($s, { transcribed => 1 }, 'one transcribed');
};

subtest 'no RecordingSid in the callback: taken from RecordingUrl' => sub {
    my $audio = wav(4000);
    put_recording(11, $audio);
    $t->incoming(11);
    is(recording_done(11, no_sid => 1)->{status}, 204, 'Twilio is answered');
    ok(wait_until(sub { transcript(11) ne '' }, 10), 'transcribed');
    like(transcript(11), qr/^sha256=\Q@{[ sha256_hex($audio) ]}\E /, 'the same bytes');
    is($pg->psql(qq{SELECT count(*) FROM recordings WHERE recording_sid = '@{[ re_sid(11) ]}'
                    AND call_sid = '@{[ call_sid(11) ]}'}), 1, 'the recording row, with its SID');
    transcriptions_are($s, { transcribed => 2 }, 'two');
};

subtest 'the same recording again: one transcript, one event' => sub {
    my $before = posts();
    recording_done(1);
    ok(wait_until(sub { posts() == $before + 1 }, 10), 'transcribed again');
    sleep 0.5;
    is($pg->psql(qq{SELECT count(*) FROM transcripts WHERE call_sid = '@{[ call_sid(1) ]}'}), 1,
       'one transcript');
    is($pg->psql(qq{SELECT count(*) FROM call_events WHERE call_sid = '@{[ call_sid(1) ]}'
                    AND event = 'transcript'}), 1, 'one event');
    transcriptions_are($s, { transcribed => 3 }, 'transcribed twice, counted twice');
};

subtest 'a stream\'s WAV, read from disk once the stream is over' => sub {
    $t->incoming(2);
    my $ws = $t->stream(2);
    $t->media($ws) for 1 .. 20;
    $t->stop($ws);
    $ws->close_ws(1000);
    ok(wait_until(sub { transcript(2) ne '' }, 10), 'a transcript') or diag $s->error_log;
    my $file = "$wavs/" . call_sid(2) . '.wav';
    open my $fh, '<:raw', $file or die "$file: $!";
    my $bytes = do { local $/; <$fh> };
    like(transcript(2), qr/^sha256=\Q@{[ sha256_hex($bytes) ]}\E bytes=@{[ length $bytes ]} /,
         'of the WAV as it is on disk, header completed');
    ok(length($bytes) > 58, 'with its audio');
    my ($post) = grep { ($_->{file}{name} // '') eq call_sid(2) . '.wav' } posts();
    ok($post, 'named after the call');
    is($pg->psql(qq{SELECT count(*) FROM transcripts t JOIN recordings r ON r.id = t.recording_id
                    WHERE r.wav_path = '$file'}), 1, 'the transcript of that recording');
    transcriptions_are($s, { transcribed => 4 }, 'a stream\'s too');
};

subtest 'a stream without audio is not transcribed' => sub {
    my $before = posts();
    $t->incoming(3);
    my $ws = $t->stream(3);
    $t->stop($ws);
    $ws->close_ws(1000);
    sleep 1;
    is(scalar posts(), $before, 'nothing posted');
    transcriptions_are($s, { transcribed => 4 }, 'nothing counted');
};

subtest 'a RecordingUrl outside the Twilio API URL: the credentials stay home' => sub {
    # another host that would gladly take the account's Basic auth
    my $evil = Test::AgentLocator::TwilioMock->new(script => 'transcriber.py');
    my $before = @{ $svc->requests };
    $t->incoming(4);
    my $path = "/2010-04-01/Accounts/$ACCOUNT/Recordings/" . re_sid(4);
    my $r = recording_done(4, url => $evil->url . $path);
    is($r->{status}, 204, 'another host: Twilio still 204');
    $r = recording_done(4, url => $svc->url . '0' . $path);
    is($r->{status}, 204, 'a look-alike prefix (another port): 204');
    $r = recording_done(4, url => recording_url(4) . '?x=1');
    is($r->{status}, 204, 'a query string: 204');
    sleep 0.5;
    is_deeply($evil->requests, [], 'the other host got nothing');
    is(scalar @{ $svc->requests }, $before, 'nothing fetched here either');
    my $skipped = () = $s->error_log =~ /TRANSCRIBE_SKIPPED call=\Q@{[ call_sid(4) ]}\E reason=recording_url/g;
    is($skipped, 3, 'each said so');
    transcriptions_are($s, { transcribed => 4, skipped => 3 }, 'each skipped');
};

subtest 'tried again: a recording Twilio is still writing, a busy or slow service' => sub {
    # not there yet when <Record action> calls back (twilio-facts)
    $t->incoming(5);
    recording_done(5);
    ok(logged(qr/TRANSCRIBE_RETRY call=\Q@{[ call_sid(5) ]}\E stage=fetch status=404 try=2 in=1000ms/),
       'the fetch: 404, tried again in 1 s');
    my $audio = wav(1200);
    put_recording(5, $audio);
    ok(wait_until(sub { transcript(5) ne '' }, 10), 'then fetched and transcribed');
    like(transcript(5), qr/^sha256=\Q@{[ sha256_hex($audio) ]}\E /, 'those bytes');

    put_recording(6, wav(800));
    $svc->mode(mode => '500');
    $t->incoming(6);
    recording_done(6);
    ok(logged(qr/TRANSCRIBE_RETRY call=\Q@{[ call_sid(6) ]}\E stage=transcribe status=500 try=2 in=5000ms/),
       'the service: 500, tried again in 5 s');
    $svc->mode(mode => 'ok');
    ok(wait_until(sub { transcript(6) ne '' }, 10), 'then transcribed');

    put_recording(8, wav(800));
    $svc->mode(mode => 'slow', delay_ms => 6000);
    $t->incoming(8);
    recording_done(8);
    ok(logged(qr/TRANSCRIBE_RETRY call=\Q@{[ call_sid(8) ]}\E stage=transcribe status=0 try=2 in=5000ms reason=.*(?i:timeout|timed out)/),
       'the service too slow for timeout=: tried again');
    $svc->mode(mode => 'ok');
    ok(wait_until(sub { transcript(8) ne '' }, 15), 'then transcribed');
    # one a line: a loaded machine may let the 404's 1 s pass before the put
    $retries = () = $s->error_log =~ /TRANSCRIBE_RETRY /g;
    cmp_ok($retries, '>=', 3, 'at least one retry each');
    transcriptions_are($s, { transcribed => 7, retried => $retries, skipped => 3 },
                       'one count a retry, then transcribed');
};

subtest 'failures that would fail again: one line each, nothing stored' => sub {
    put_recording(7, wav(800));
    $svc->mode(mode => 'garbage');
    $t->incoming(7);
    recording_done(7);
    ok(logged(qr/TRANSCRIBE_FAILED call=\Q@{[ call_sid(7) ]}\E stage=answer/), 'garbage: the answer');

    put_recording(9, wav(2 * 1024 * 1024));
    $svc->mode(mode => 'ok');
    $t->incoming(9);
    recording_done(9);
    ok(logged(qr/TRANSCRIBE_FAILED call=\Q@{[ call_sid(9) ]}\E stage=fetch .*larger than allowed/),
       'a recording over max_size');

    unlike($s->error_log, qr/TRANSCRIBE_RETRY call=(\Q@{[ call_sid(7) ]}\E|\Q@{[ call_sid(9) ]}\E)/,
           'neither tried again');
    is($pg->psql(q{SELECT count(*) FROM transcripts WHERE call_sid IN ('}
                 . join("','", map { call_sid($_) } 7, 9) . q{')}), 0, 'no transcript stored');
    transcriptions_are($s, { transcribed => 7, retried => $retries, skipped => 3, given_up => 2 },
                       'both given up');
};

subtest 'a reload does not wait for a transcription' => sub {
    put_recording(10, wav(800));
    $svc->mode(mode => 'slow', delay_ms => 4500);
    $t->incoming(10);
    my $before = posts();
    recording_done(10);
    ok(wait_until(sub { posts() > $before }, 5), 'the service has it');
    my $t0 = time;
    $s->reload;
    my $took = time - $t0;
    ok($took < 3, sprintf 'the old workers were gone in %.1f s, not after the 4.5 s answer', $took);
    like($s->error_log, qr/TRANSCRIBE_FAILED call=\Q@{[ call_sid(10) ]}\E stage=transcribe status=0 reason=worker exiting/,
         'the job given up, said so');
    $svc->mode(mode => 'ok');
    transcriptions_are($s, { transcribed => 7, retried => $retries, skipped => 3, given_up => 2,
                             failed => 1 }, 'the job cut: failed, and the counts kept by the reload');
};

subtest 'no secret in the log' => sub {
    my $log = $s->error_log;
    unlike($log, qr/\Q$KEY\E/, 'not the service\'s key');
    unlike($log, qr/secret-token/, 'not the auth token');
    is_deeply([ $s->log_problems ], [], 'no alerts, errors or crashes');
};

done_testing;

# nginx stops before the mocks and the database it uses go
undef $s;
undef $t;
