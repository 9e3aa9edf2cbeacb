# The demo's call (make call: tools/simulate-call) against nginx with the
# module, a real PostgreSQL and the Twilio mock, signatures on, the public
# URL https as in production (the simulator signs the URLs of our TwiML and
# sends them to nginx's port, as a TLS terminator would): a call whose
# stream carried it ends completed with that stream; a call whose stream
# never came is redirected once by the watchdog, its recording stored and
# served by the mock as Twilio serves it; one whose frames stopped is
# redirected once; one whose connection broke gets the fallback once, from
# stream_ended.  With the demo transcriber
# (tools/transcriber; Debian's pocketsphinx) each call gets its transcript,
# from the stream's WAV and from Twilio's recording, as in `make run`; its
# words are never checked, only that it answers with JSON text.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use File::Path qw(make_path);
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Server;
use Test::AgentLocator::TwilioMock;
use Test::AgentLocator::Calls;

*wait_until = \&Test::AgentLocator::Calls::wait_until;

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';

my $ACCOUNT = 'AC' . 'd' x 32;
my $TOKEN = 'demo-auth-token-0123456789';

my $tmp = tempdir('demo-call-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($spool, $wavs) = ("$tmp/spool", "$tmp/wavs");
mkdir $_ for $spool, $wavs;
chmod 0777, $tmp, $spool, $wavs;

# What the caller says: 1.5 s that sox makes (the demo's espeak-ng phrase
# would take 6 s of real time per call).
my $caller = "$tmp/caller.wav";
system('sox', '-q', '-n', '-r', '8000', '-c', '1', $caller, 'synth', '1.5',
       'sine', '300-900') == 0 or die 'sox';

my $mock = Test::AgentLocator::TwilioMock->new(
    args => ['--account-sid', $ACCOUNT, '--auth-token', $TOKEN]);

# `make demo-deps` installs its packages (`make run` does); without them
# the calls are not transcribed and the transcript checks are skipped.
my $no_stt = -d '/usr/share/pocketsphinx/model/en-us'
    && system('/usr/bin/python3 -c "import pocketsphinx" 2>/dev/null') == 0
    ? undef : 'the demo transcriber needs python3-pocketsphinx and '
              . 'pocketsphinx-en-us (make demo-deps)';
# (its pipe lives as long as the file: closing it would wait for the end)
my ($stt_pid, $stt_port, $stt_out);
if (!$no_stt) {
    $stt_pid = open($stt_out, '-|', 'exec tools/transcriber/transcriber --port 0 2>/dev/null')
        // die "transcriber: $!";
    ($stt_port) = (<$stt_out> // '') =~ /^PORT (\d+)/ or die 'the transcriber did not start';
}
my $transcribe = $no_stt ? '' : "agentlocator_transcribe_url "
    . "http://127.0.0.1:$stt_port/v1/audio/transcriptions model=pocketsphinx-en-us language=en;";

my $s = Test::AgentLocator::Server->new(workers => 2, http => <<"_EOC_", server => <<'_EOC_');
    agentlocator_zone calls 4m;
    agentlocator_twilio_account_sid $ACCOUNT;
    agentlocator_twilio_auth_token $TOKEN;
    agentlocator_twilio_api_url @{[ $mock->url ]};
    agentlocator_watchdog start_timeout=1s no_media_timeout=1s;
    agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_spool $spool;
    agentlocator_recordings $wavs;
    $transcribe
_EOC_
    agentlocator_public_url https://voice.example.com;
    agentlocator_greeting /static/tts/greeting.mp3;
    agentlocator_fallback_prompt /static/tts/fallback.mp3;
    location = /webhook/incoming_call    { agentlocator_voice incoming_call; }
    location = /webhook/stream_status    { agentlocator_voice stream_status; }
    location = /webhook/stream_ended     { agentlocator_voice stream_ended; }
    location = /webhook/handle_recording { agentlocator_voice handle_recording; }
    location = /webhook/call_status      { agentlocator_voice call_status; }
    location /ws/twilio-media/ { agentlocator_media_stream; }
    location /static/tts/ {
        root   html;
        types  { audio/mpeg  mp3; }
    }
_EOC_

# The prompts as nginx.conf.example serves them (make prompts makes the
# real ones with espeak-ng and lame; here an MPEG frame header will do).
make_path("$s->{root}/html/static/tts");
for my $p (qw(greeting fallback)) {
    open my $fh, '>', "$s->{root}/html/static/tts/$p.mp3" or die $!;
    print $fh "\xff\xfb\x90\x00" . "\0" x 413;
    close $fh;
}

# tools/simulate-call's output and its JSON summary (its last line)
sub simulate {
    my (@args) = @_;
    my @cmd = ('tools/simulate-call', '--url', 'https://voice.example.com',
               '--connect', "127.0.0.1:$s->{port}", '--twilio-api', $mock->url,
               '--account-sid', $ACCOUNT, '--auth-token', $TOKEN,
               '--wav', $caller, '--redirect-timeout', '10', '--json', @args);
    my $out = qx{@{[ join ' ', map { quotemeta } @cmd ]} 2>&1};
    my $code = $? >> 8;
    my ($json) = $out =~ /^(\{.*\})\s*\z/m;
    return ($code, $out, $json ? decode_json($json) : {});
}

sub row {
    my ($call, $cols) = @_;
    return $pg->psql("SELECT $cols FROM calls WHERE call_sid = '$call'");
}

sub timeline {
    my ($call) = @_;
    return $pg->psql(qq{SELECT string_agg(event || coalesce('(' || reason || ')', ''), ' '
                                          ORDER BY at, id)
                        FROM call_events WHERE call_sid = '$call'});
}

sub http_get {
    my ($url, $auth) = @_;
    my ($port, $path) = $url =~ m{^http://127\.0\.0\.1:(\d+)(/.*)$} or die $url;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Timeout => 5) or die $!;
    print $sock "GET $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . ($auth ? 'Authorization: Basic ' . encode_base64($auth, '') . "\r\n" : '')
        . "\r\n";
    local $/;
    my $raw = <$sock> // '';
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($status) = $head =~ m{^HTTP/1\.[01] (\d+)};
    my ($type) = $head =~ m{^Content-Type:\s*([^\r\n;]+)}mi;
    return ($status // 0, $type // '', $body // '');
}

my %call;

subtest 'make call: the stream carries the call, which ends completed' => sub {
    my ($code, $out, $sum) = simulate('--scenario', 'normal');
    is($code, 0, 'tools/simulate-call found nothing unexpected') or diag $out;
    my $ca = $call{normal} = $sum->{call_sid} // '';
    like($ca, qr/^CA[0-9a-f]{32}$/, 'a call') or return;
    is($sum->{frames}, 75, '1.5 s of audio in 20 ms frames');
    like($out, qr{greeting\s+<Play> https://voice\.example\.com/static/tts/greeting\.mp3: audio/mpeg},
         'the greeting played, as audio/mpeg');
    ok(wait_until(sub { timeline($ca) =~ /status\(completed\)/ }, 10), 'the call reached the CRM')
        or diag timeline($ca);
    is(row($ca, q{status || ' ' || stream_sid || ' ' || frames || ' ' || fallback_served
                  || ' ' || coalesce(redirect_reason, '-')}),
       "completed $sum->{stream_sid} 75 false -", 'completed, with its stream and every frame');
    like(timeline($ca), qr/^incoming .*stream_start .*stream_stop .*status\(completed\)$/,
         'its timeline');
    is(scalar @{ $mock->by_call->{$ca} // [] }, 0, 'never redirected');
};

subtest 'make call SCENARIO=no_stream: one redirect, then the recording' => sub {
    my ($code, $out, $sum) = simulate('--scenario', 'no_stream');
    is($code, 0, 'tools/simulate-call found nothing unexpected') or diag $out;
    my $ca = $call{no_stream} = $sum->{call_sid} // '';
    like($ca, qr/^CA[0-9a-f]{32}$/, 'a call') or return;
    like($out, qr{redirect\s+the watchdog: POST /2010-04-01/Accounts/$ACCOUNT/Calls/$ca\.json},
         'the simulator saw the redirect at the mock');
    ok(wait_until(sub { timeline($ca) =~ /status\(completed\)/ }, 10), 'the call reached the CRM')
        or diag timeline($ca);
    is(scalar @{ $mock->by_call->{$ca} // [] }, 1, 'exactly one redirect');
    is(row($ca, q{status || ' ' || coalesce(stream_sid, '-') || ' ' || redirect_reason
                  || ' ' || redirect_outcome}),
       'completed - no_stream_start redirected', 'completed, redirected for its missing stream');
    my $rec = $call{no_stream_recording} = $sum->{recording_sid} // '';
    my $url = $mock->url . "/2010-04-01/Accounts/$ACCOUNT/Recordings/$rec";
    is($pg->psql("SELECT count(*) || ' ' || string_agg(recording_sid || ' ' || url, '')
                  FROM recordings WHERE call_sid = '$ca'"),
       "1 $rec $url", 'its one recording, as Twilio gave it');

    # RecordingUrl + ".wav", as the module fetches it to transcribe it
    my ($status, $type, $body) = http_get("$url.wav", "$ACCOUNT:$TOKEN");
    is("$status $type", '200 audio/x-wav', 'the mock serves the recording as a WAV');
    ok(length $body > 44 && substr($body, 0, 4) eq 'RIFF', 'a RIFF file')
        or diag length $body;
    ($status) = http_get("$url.wav");
    is($status, 401, 'not without Basic auth');
    ($status) = http_get("$url.wav", "$ACCOUNT:wrong");
    is($status, 401, 'nor with the wrong token');
};

subtest 'SCENARIO=silence and dropped: one redirect, or the fallback once' => sub {
    my ($code, $out, $sum) = simulate('--scenario', 'silence');
    is($code, 0, 'silence: tools/simulate-call found nothing unexpected') or diag $out;
    my $ca = $sum->{call_sid} // '';
    ok(wait_until(sub { timeline($ca) =~ /status\(completed\)/ }, 10), 'in the CRM')
        or diag timeline($ca);
    is(row($ca, q{status || ' ' || frames || ' ' || redirect_reason || ' ' || redirect_outcome}),
       'completed 75 no_media redirected', 'redirected when its frames stopped');
    is(scalar @{ $mock->by_call->{$ca} // [] }, 1, 'exactly once');

    ($code, $out, $sum) = simulate('--scenario', 'dropped');
    is($code, 0, 'dropped: tools/simulate-call found nothing unexpected') or diag $out;
    $ca = $sum->{call_sid} // '';
    ok(wait_until(sub { timeline($ca) =~ /status\(completed\)/ }, 10), 'in the CRM')
        or diag timeline($ca);
    like(timeline($ca), qr/stream_drop\(close_1006\) .*stream_ended\(fallback\) .*recording\(twilio\)/,
         'its drop, the fallback from stream_ended, the recording');
    is(row($ca, q{status || ' ' || fallback_served || ' ' || coalesce(redirect_reason, '-')}),
       'completed true -', 'the fallback served once, by stream_ended, not the watchdog');
    is(scalar @{ $mock->by_call->{$ca} // [] }, 0, 'never redirected');
};

subtest 'a module answer Twilio would not expect fails the simulator' => sub {
    my ($code, $out) = simulate('--scenario', 'normal', '--auth-token', 'not-the-token');
    is($code, 1, 'exit 1');
    like($out, qr/UNEXPECTED\s+incoming_call: HTTP 403/, 'and says what');
    $s->allow_log(qr/invalid X-Twilio-Signature|SIGNATURE/);
};

sub transcripts {
    my ($call) = @_;
    return $pg->psql("SELECT count(*) || ' ' || string_agg(
                          CASE WHEN r.recording_sid IS NULL THEN 'stream' ELSE 'twilio' END
                          || ':' || t.engine || ':' || t.language, ' ')
                      FROM transcripts t JOIN recordings r ON r.id = t.recording_id
                      WHERE t.call_sid = '$call'");
}

subtest 'each call gets its transcript; the transcriber answers JSON text' => sub {
    plan skip_all => $no_stt if $no_stt;
    ok(wait_until(sub { transcripts($call{normal}) =~ /^1 / }, 20),
       'the normal call: a transcript') or diag $s->error_log;
    is(transcripts($call{normal}), '1 stream:pocketsphinx-en-us:en',
       'of the WAV kept from its stream');
    ok(wait_until(sub { transcripts($call{no_stream}) =~ /^1 / }, 20),
       'the rescued call: a transcript') or diag $s->error_log;
    is(transcripts($call{no_stream}), '1 twilio:pocketsphinx-en-us:en',
       'of Twilio\'s recording (it had no stream)');
    # the module's fetch, and the one with the right credentials above
    my @got = grep { $_->{path} =~ m{/Recordings/$call{no_stream_recording}\.wav$}
                     && $_->{status} == 200 } @{ $mock->requests };
    is(scalar @got, 2, 'the module fetched the recording from the mock once');

    my $url = "http://127.0.0.1:$stt_port/v1/audio/transcriptions";
    my $got = `curl -sS -F model=whisper-1 -F language=en -F file=\@$caller $url`;
    my $json = eval { decode_json($got) } // {};
    ok(defined $json->{text} && !ref $json->{text}, '{"text": ...}') or diag $got;
    my $text = `curl -sS -D - -F model=x -F response_format=text -F file=\@$caller $url`;
    like($text, qr{^HTTP/1\.1 200.*Content-Type: text/plain}s, 'response_format=text: text/plain');
    my $bad = `curl -sS -w ' %{http_code}' -F model=x -F file=\@$0 $url`;
    like($bad, qr/^\{"error": \{"message": .* 400$/s, 'not audio: 400, OpenAI\'s error shape');
};

is(join("\n", grep { !/invalid X-Twilio-Signature|SIGNATURE/ }
                   grep { /\[(error|alert|emerg)\]/ } split /\n/, $s->error_log),
   '', 'no error in the log but the bad signature\'s');
# here, not at global destruction, where its reaping would change the
# exit status
ok($s->stop, 'nginx stopped cleanly');
$mock->stop;
if ($stt_pid) {
    kill 'TERM', $stt_pid;
    waitpid $stt_pid, 0;
}

done_testing();
