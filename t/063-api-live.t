# The CRM page's two reads of this host (SPEC §9) against a real PostgreSQL
# and two workers: GET /api/live, the registry's calls that are the caller's
# business's, moving as the call does (armed, streaming with its frames,
# ended); and GET /api/calls/{CallSid}/recordings/{id}/audio, a recording's
# WAV kept here, served as a file (ranges, HEAD), never another business's
# and never a file outside the recordings directory.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use JSON::PP ();
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Calls;
use Test::AgentLocator::Twilio qw(call_sid);

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';
$pg->psql(q{INSERT INTO businesses (name) VALUES ('B')});

*wait_until = \&Test::AgentLocator::Calls::wait_until;

my $SECRET = 'jwt-secret-0123456789-0123456789-abcdef';
my $wavs = tempdir('wav-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0777, $wavs;

my $t = Test::AgentLocator::Calls->new(
    watchdog => 'start_timeout=30s no_media_timeout=30s',
    http => qq{agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_recordings $wavs;
    agentlocator_jwt_secret $SECRET;},
    server => 'location /api/ { agentlocator_api; }');
my $s = $t->server;

sub token {
    my ($business, $role) = @_;
    my $h = encode_base64url('{"alg":"HS256","typ":"JWT"}');
    my $p = encode_base64url(JSON::PP->new->canonical->encode(
        { business_id => $business // 1, role => $role // 'viewer', exp => time + 600 }));
    return "$h.$p." . encode_base64url(hmac_sha256("$h.$p", $SECRET));
}

sub api {
    my ($path, %o) = @_;
    my $r = $s->request(($o{method} // 'GET') . " $path",
        headers => [exists $o{token} && !defined $o{token} ? ()
                    : ('Authorization: Bearer ' . ($o{token} // token())),
                    @{ $o{headers} // [] }]);
    $r->{json} = eval { JSON::PP::decode_json($r->{body}) };
    return $r;
}

sub live { @{ (api('/api/live', @_)->{json} // {})->{results} // [] } }

sub live_call {
    my ($n, @o) = @_;
    my ($c) = grep { $_->{call_sid} eq call_sid($n) } live(@o);
    return $c;
}

sub in_crm {
    my ($n) = @_;
    return wait_until(sub {
        $pg->psql(qq{SELECT count(*) FROM calls WHERE call_sid = '@{[ call_sid($n) ]}'}) == 1
    }, 10);
}

subtest 'no live calls: an empty list, without a token 401' => sub {
    my $r = api('/api/live');
    is($r->{status}, 200, 'answered');
    is($r->{headers}{'content-type'}, 'application/json', 'JSON');
    is_deeply($r->{json}, { results => [], total => 0, truncated => JSON::PP::false },
              'no calls');
    is(api('/api/live', token => undef)->{status}, 401, 'no token: 401');
    is(api('/api/live', method => 'POST')->{status}, 405, 'POST: 405');
    is(api('/api/live/x')->{status}, 404, 'a path below it: 404');
};

subtest 'a call appears as it arrives, only to its business' => sub {
    $t->incoming(1);
    $t->incoming(2);
    ok(in_crm(1) && in_crm(2), 'both calls in the CRM');
    $pg->psql(qq{UPDATE calls SET business_id = 2 WHERE call_sid = '@{[ call_sid(2) ]}'});

    # every worker reads the shared registry: ask until both have answered
    my %workers;
    for (1 .. 20) {
        my $r = api('/api/live');
        $workers{ $r->{worker} } = [ map { $_->{call_sid} } @{ $r->{json}{results} } ];
        last if keys %workers == 2;
    }
    is(scalar keys %workers, 2, 'both workers answered');
    is_deeply($_, [ call_sid(1) ], 'business 1 sees its call, not the other')
        for values %workers;

    my $c = live_call(1);
    is($c->{state}, 'armed', 'armed');
    is($c->{from}, '+15551230000', 'from');
    is($c->{to}, '+15557650000', 'to');
    like($c->{started_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'started_at, ISO 8601 UTC');
    ok($c->{age_ms} >= 0 && $c->{age_ms} < 60000, "age_ms $c->{age_ms}");
    ok(!$c->{stream_live} && !$c->{ended}, 'no stream, not ended');
    ok(!defined $c->{since_media_ms} && !defined $c->{redirect}, 'no media, no redirect: null');
    is($c->{frames}, 0, 'no frames');

    my @b = live(token => token(2));
    is_deeply([ map { $_->{call_sid} } @b ], [ call_sid(2) ], 'business 2 sees only its own');
    is(api('/api/live', token => token(3))->{json}{total}, 0, 'a business with none: total 0');
};

subtest 'its stream, its frames, its end' => sub {
    my $ws = $t->stream(1);
    # paced as Twilio does: the zone hears of frames at most 200 ms late
    for (1 .. 15) { $t->media($ws); sleep 0.03 }
    ok(wait_until(sub { my $c = live_call(1); $c && $c->{frames} > 0 }, 5), 'its frames');
    ok(live_call(1)->{frames} <= 15, 'no more than were sent');
    my $c = live_call(1);
    is($c->{state}, 'streaming', 'streaming');
    ok($c->{stream_live}, 'its stream is live');
    ok(defined $c->{since_media_ms} && $c->{since_media_ms} >= 0, "since_media_ms $c->{since_media_ms}");
    $t->stop($ws);
    $ws->close_ws(1000);
    $t->webhook('call_status', 1, CallStatus => 'completed', CallDuration => '3');
    ok(wait_until(sub { (live_call(1) // {})->{ended} }, 5), 'ended');
    is(live_call(1)->{call_status}, 'completed', 'its call status');
    ok(!live_call(1)->{stream_live}, 'its stream is gone');
};

my $rec_id;

subtest 'the stream\'s WAV, as a file' => sub {
    ok(wait_until(sub {
        $rec_id = $pg->psql(qq{SELECT id FROM recordings WHERE call_sid = '@{[ call_sid(1) ]}'});
        $rec_id }, 10), 'the recording row') or return;
    my $path = "/api/calls/@{[ call_sid(1) ]}/recordings/$rec_id/audio";
    my $file = "$wavs/" . call_sid(1) . '.wav';
    my $r = api($path);
    is($r->{status}, 200, 'answered');
    is($r->{headers}{'content-type'}, 'audio/wav', 'audio/wav');
    is(length $r->{body}, -s $file, 'the whole file');
    is(substr($r->{body}, 0, 4), 'RIFF', 'a WAV');
    is($r->{headers}{'accept-ranges'}, 'bytes', 'ranges');

    $r = api($path, headers => ['Range: bytes=8-11']);
    is($r->{status}, 206, 'a range: 206');
    is($r->{body}, 'WAVE', 'its bytes');

    $r = api($path, method => 'HEAD');
    is($r->{status}, 200, 'HEAD: 200');
    is($r->{headers}{'content-length'}, -s $file, 'its length');
    is($r->{body}, '', 'no body');

    $r = api($path, token => token(2));
    is($r->{status}, 404, 'another business: 404');
    is($r->{json}{error}, 'no such recording', 'the reason');
    is(api("/api/calls/@{[ call_sid(1) ]}/recordings/999999/audio")->{status}, 404,
       'no such recording: 404');
    is(api("/api/calls/@{[ call_sid(2) ]}/recordings/$rec_id/audio", token => token(2))->{status},
       404, 'the recording under another call: 404');
};

subtest 'what is not served' => sub {
    my $sid = call_sid(1);
    my $twilio = $pg->psql(qq{INSERT INTO recordings (call_sid, recording_sid, url)
        VALUES ('$sid', 'RE' || lpad('7', 32, '0'), 'https://api.twilio.com/r/RE7') RETURNING id});
    my $r = api("/api/calls/$sid/recordings/$twilio/audio");
    is($r->{status}, 404, 'Twilio\'s recording, not kept here: 404');
    like($r->{json}{error}, qr/Twilio's/, 'says so');

    for my $bad ('/etc/passwd.wav', "$wavs/../x.wav", "$wavs/sub/x.wav", "$wavs/.x.wav",
                 "${wavs}x/a.wav", "$wavs/a.mp3") {
        my $id = $pg->psql(qq{INSERT INTO recordings (call_sid, wav_path)
                              VALUES ('$sid', '$bad') RETURNING id});
        $r = api("/api/calls/$sid/recordings/$id/audio");
        is($r->{status}, 404, "$bad: 404");
        like($r->{json}{error}, qr/not in this host's recordings directory/, 'says why');
    }

    my $gone = $pg->psql(qq{INSERT INTO recordings (call_sid, wav_path)
                            VALUES ('$sid', '$wavs/CA-gone.wav') RETURNING id});
    $r = api("/api/calls/$sid/recordings/$gone/audio");
    is($r->{status}, 404, 'a file that is gone: 404');
    like($r->{json}{error}, qr/gone/, 'says so');

    for my $p ("/api/calls/$sid/recordings//audio", "/api/calls/$sid/recordings/1x/audio",
               "/api/calls/$sid/recordings/1/audio/", "/api/calls/$sid/recordings/1",
               "/api/calls/$sid/x/1/audio", "/api/calls/${sid}0/recordings/1/audio",
               "/api/calls/$sid/recordings/" . ('1' x 19) . "/audio") {
        is(api($p)->{status}, 404, "$p: 404");
    }
    is(api("/api/calls/$sid/recordings/$rec_id/audio", method => 'POST')->{status}, 405,
       'POST: 405');
};

subtest 'nothing logged at error level' => sub {
    is_deeply([ $s->log_problems ], [], 'no alerts, errors or crashes');
};

done_testing;

# nginx stops before the mock and the database it uses go (global
# destruction would take them in any order)
undef $s;
undef $t;
