# The CRM page (html/app/, SPEC §9) in a real headless Chromium (Debian's
# /usr/bin/chromium driven by playwright-core, t/clients/browser/): nginx
# serves html/ with the /app/ block of nginx.conf.example as it is written
# there, the API reads a real PostgreSQL seeded here, a call made during the
# test (a signed incoming_call) shows up in the live view without a reload,
# the send box reaches the Twilio mock, and every view is in Hebrew, right
# to left.  Screenshots are kept under t/artifacts/070-crm-page/.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use IPC::Open2 qw(open2);
use Time::HiRes qw(time);
use Encode qw(encode_utf8 decode_utf8);
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use JSON::PP ();
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Server;
use Test::AgentLocator::TwilioMock;
use Test::AgentLocator::Calls;
use Test::AgentLocator::Twilio qw(form twilio_signature call_sid);

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $TOP = abs_path('.');
my $CHROMIUM = $ENV{CHROMIUM} || '/usr/bin/chromium';
my $BROWSER = "$TOP/t/clients/browser";
plan skip_all => "no Chromium at $CHROMIUM (Debian: chromium; make test installs it)"
    unless -x $CHROMIUM;
plan skip_all => 'node or t/clients/browser/node_modules missing (make test installs them)'
    unless -d "$BROWSER/node_modules/playwright-core" && `node --version 2>/dev/null`;
plan skip_all => 'playwright-core needs Node.js 20 (this is ' . `node --version` =~ s/\s+//r . ')'
    unless `node --version` =~ /^v(\d+)/ && $1 >= 20;

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';

my $SECRET = 'jwt-secret-0123456789-0123456789-abcdef';
my $AUTH = 'secret-token';
my $PUBLIC = 'https://voice.example.com';
my $JSON = JSON::PP->new->utf8->canonical;
my $CALL = call_sid(0xca11);
my $XSS = '<img src=x onerror="window.__xss=1">';
my $TRANSCRIPT = 'שלום, אני צריך אינסטלטור דחוף';
my $AUDIO_SECONDS = 2;
my @THREAD = ('שלום, אפשר לקבוע תור למחר?', 'בטח! באיזו שעה נוח לך?',
              "בעשר בבוקר\nתודה רבה 🙏");
my $CUSTOMERS = 32;

my $mock = Test::AgentLocator::TwilioMock->new;
my $s = Test::AgentLocator::Server->new(
    workers => 2,
    http => qq{
    agentlocator_zone crm_page 1m;
    agentlocator_public_url $PUBLIC;
    agentlocator_twilio_account_sid AC@{[ '1' x 32 ]};
    agentlocator_twilio_auth_token $AUTH;
    agentlocator_twilio_api_url @{[ $mock->url ]};
    agentlocator_watchdog start_timeout=60s no_media_timeout=60s;
    agentlocator_recordings recordings;
    agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_whatsapp_send providers=twilio from=+14155238886 timeout=3s;
    agentlocator_jwt_secret $SECRET;},
    server => q{
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location /api/ { agentlocator_api; }
    } . example_blocks());

# the page's files: html/ of this checkout, at the prefix as in `make run`
rmdir "$s->{root}/html" or die "html: $!";
symlink "$TOP/html", "$s->{root}/html" or die "html: $!";

# The /app/ block and the root's redirect, exactly as nginx.conf.example
# has them: what the README tells an operator is what is tested.
sub example_blocks {
    open my $fh, '<', 'nginx.conf.example' or die "nginx.conf.example: $!";
    my $conf = do { local $/; <$fh> };
    my ($app) = $conf =~ m{^(([ \t]*)location /app/ \{.*?^\2\}\n)}ms
        or die 'nginx.conf.example has no "location /app/" block';
    my ($root) = $conf =~ m{^([ \t]*location = / \{[^\n]*\}\n)}m
        or die 'nginx.conf.example has no "location = /" block';
    return "$app$root";
}

# --- the CRM as the page finds it ---------------------------------------

my $wav = "$s->{root}/recordings/$CALL.wav";
make_path("$s->{root}/recordings");
# a stream's recording as the module keeps it: 8 kHz mu-law WAV
system('sox', '-n', '-r', '8000', '-c', '1', '-e', 'u-law', $wav, 'synth',
       $AUDIO_SECONDS, 'sine', '440') == 0 or die 'sox';

my $q = sub { my $v = shift; $v =~ s/'/''/g; "'$v'" };
$pg->psql(encode_utf8(<<"SQL"));
INSERT INTO customers (business_id, phone, name) VALUES
    (1, '+972541000001', 'דנה כהן'), (1, '+972541000002', 'יוסי לוי'),
    (1, '+972541000003', @{[ $q->($XSS) ]});
INSERT INTO customers (business_id, phone, name, created_at)
    SELECT 1, '+97254200' || lpad(g::text, 4, '0'), 'לקוח ' || g, now() - (g || ' hours')::interval
    FROM generate_series(1, @{[ $CUSTOMERS - 3 ]}) g;
INSERT INTO threads (business_id, customer_id, last_message_at)
    SELECT business_id, id, now() - (id || ' minutes')::interval FROM customers WHERE id <= 3;
INSERT INTO messages (thread_id, provider, provider_msg_id, direction, body, media, status, created_at)
VALUES
    (1, 'twilio', 'SM' || lpad('a1', 32, '0'), 'inbound', @{[ $q->($THREAD[0]) ]}, '[]',
     'received', now() - interval '30 minutes'),
    (1, 'twilio', 'SM' || lpad('a2', 32, '0'), 'outbound', @{[ $q->($THREAD[1]) ]}, '[]',
     'read', now() - interval '29 minutes'),
    (1, 'twilio', 'SM' || lpad('a3', 32, '0'), 'inbound', @{[ $q->($THREAD[2]) ]}, '[]',
     'received', now() - interval '28 minutes'),
    (2, 'baileys', 'B1', 'inbound', 'מה שלומך?', '[]', 'received', now() - interval '5 hours');
INSERT INTO calls (call_sid, business_id, customer_id, from_number, to_number, status,
                   created_at, answered_at, ended_at, duration_s, stream_sid, frames)
VALUES ('$CALL', 1, 1, '+972541000001', '+97230000000', 'completed',
        now() - interval '1 hour', now() - interval '1 hour', now() - interval '58 minutes',
        95, 'MZ' || lpad('1', 32, '0'), 4750),
       (@{[ $q->(call_sid(0xca12)) ]}, 1, 2, '+972541000002', '+97230000000', 'no-answer',
        now() - interval '2 hours', NULL, NULL, NULL, NULL, 0);
INSERT INTO call_events (call_sid, event, reason, detail, at, idempotency_key) VALUES
    ('$CALL', 'incoming', NULL, '{}', now() - interval '3600 s', 'k1'),
    ('$CALL', 'stream_start', NULL, '{"stream_sid": "MZ1"}', now() - interval '3599 s', 'k2'),
    ('$CALL', 'stream_stop', NULL, '{"frames": 4750}', now() - interval '3505 s', 'k3'),
    ('$CALL', 'status', 'completed', '{}', now() - interval '3504 s', 'k4');
INSERT INTO recordings (call_sid, wav_path, duration_s) VALUES ('$CALL', '$wav', $AUDIO_SECONDS);
INSERT INTO recordings (call_sid, recording_sid, url, duration_s)
    VALUES ('$CALL', 'RE' || lpad('1', 32, '0'), 'https://api.twilio.com/r/RE1', 12);
INSERT INTO transcripts (recording_id, call_sid, text, language, engine)
    SELECT id, call_sid, @{[ $q->($TRANSCRIPT) ]}, 'he', 'whisper' FROM recordings
    WHERE wav_path IS NOT NULL;
SQL
my ($stored, $remote) = split /\n/, $pg->psql('SELECT id FROM recordings ORDER BY id');

sub jwt {
    my ($claims, $key) = @_;
    my $head = encode_base64url($JSON->encode({ alg => 'HS256', typ => 'JWT' }));
    my $body = encode_base64url($JSON->encode($claims));
    return "$head.$body." . encode_base64url(hmac_sha256("$head.$body", $key // $SECRET));
}
sub token { jwt({ business_id => 1, role => $_[0], exp => int(time) + 900 }, $_[1]) }

# --- the browser --------------------------------------------------------

my $artifacts = "$TOP/t/artifacts/070-crm-page";
remove_tree($artifacts);
my $send_text = "שלום מהדף <b>בדיקה</b> & " . int(time);
my %env = (
    BASE_URL => "http://127.0.0.1:$s->{port}", CHROMIUM => $CHROMIUM, ARTIFACTS => $artifacts,
    TOKEN => token('agent'), VIEWER_TOKEN => token('viewer'),
    BAD_TOKEN => token('agent', 'not-the-secret-0123456789-0123456789'),
    CALL_SID => $CALL, THREAD_ID => 1, THREAD_TEXTS => JSON::PP->new->encode(\@THREAD),
    TRANSCRIPT => $TRANSCRIPT, XSS_NAME => $XSS, CUSTOMERS => $CUSTOMERS,
    SEND_TEXT => $send_text, STORED_RECORDING => $stored, REMOTE_RECORDING => $remote,
    AUDIO_SECONDS => $AUDIO_SECONDS,
);
local @ENV{keys %env} = map { encode_utf8($_) } values %env;

my $FORM = 'Content-Type: application/x-www-form-urlencoded';
my $LIVE_CALL = call_sid(0x11fe);
# a known customer's number: the call adds no customer, so the customers'
# pages stay as seeded
my $LIVE_FROM = '+972541000002';

sub webhook {
    my ($name, @kv) = @_;
    my $sig = twilio_signature($AUTH, "$PUBLIC/webhook/$name", @kv);
    return $s->request("POST /webhook/$name", body => form(@kv),
                       headers => [$FORM, "X-Twilio-Signature: $sig"]);
}

# the page's side of the conversation: crm-page.mjs says what it saw, and
# waits at each "sync" for the test to act
my %sync = (
    live => sub {
        my $r = webhook('incoming_call', CallSid => $LIVE_CALL, AccountSid => 'AC' . '1' x 32,
                        From => $LIVE_FROM, To => '+97230000000', CallStatus => 'ringing');
        is($r->{status}, 200, 'the live call: incoming_call answered 200 (signed)');
        return $JSON->encode({ call_sid => $LIVE_CALL, from => $LIVE_FROM });
    },
    status => sub {
        my $r = webhook('call_status', CallSid => $LIVE_CALL, AccountSid => 'AC' . '1' x 32,
                        CallStatus => 'in-progress');
        is($r->{status}, 200, 'the live call: call_status in-progress answered 200');
        return 'ok';
    },
    end => sub {
        my $r = webhook('call_status', CallSid => $LIVE_CALL, AccountSid => 'AC' . '1' x 32,
                        CallStatus => 'completed', CallDuration => 3);
        is($r->{status}, 200, 'the live call: call_status completed answered 200');
        return 'ok';
    },
    sent => sub {
        my ($m) = grep { $_->{path} =~ /Messages\.json$/ } @{ $mock->requests };
        is_deeply([map { $m->{form}{$_}[0] } qw(To From Body)],
                  ['whatsapp:+972541000001', 'whatsapp:+14155238886', $send_text],
                  'the send box\'s message reached Twilio (the mock), Hebrew and markup intact');
        return undef;
    },
);

my $t0 = time;
my $pid = open2(my $from, my $to, 'node', "$BROWSER/crm-page.mjs");
# a browser that hangs fails the test instead of holding the suite
local $SIG{ALRM} = sub { kill 'KILL', $pid; die "the browser scenario took over 240 s\n" };
alarm 240;
my ($checks, @shots) = (0);
while (my $line = <$from>) {
    my $m = eval { JSON::PP->new->decode(decode_utf8($line)) };
    if (!$m) {
        diag("crm-page.mjs: $line");
    } elsif (exists $m->{ok}) {
        $checks++;
        ok($m->{ok}, "page: $m->{name}") or diag($m->{diag});
    } elsif ($m->{artifact}) {
        push @shots, $m->{artifact};
    } elsif ($m->{sync}) {
        my $answer = ($sync{ $m->{sync} } // die "unknown sync $m->{sync}")->();
        print {$to} "$answer\n" if defined $answer;
        $to->flush;
    }
}
alarm 0;
close $to;
waitpid $pid, 0;
is($? >> 8, 0, 'the browser exited cleanly');
ok($checks >= 40, "the page's checks ran ($checks in " . sprintf('%.1f', time - $t0) . ' s)');
diag('screenshots: ' . join ' ', map { s{^\Q$TOP\E/}{}r } @shots) if @shots;
is(scalar @shots, 8, 'eight screenshots kept');

is($pg->psql(encode_utf8(qq{SELECT status || ' ' || direction FROM messages
                            WHERE body = @{[ $q->($send_text) ]}})), 'sent outbound',
   'the CRM has the sent message');
unlike($s->error_log, qr/\[error\]|\[alert\]|\[crit\]/, 'no error in nginx\'s log');
ok($s->stop, 'nginx stopped cleanly');
done_testing;
