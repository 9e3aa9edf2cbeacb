# WhatsApp into the CRM (SPEC §8), against a real PostgreSQL: Twilio's
# inbound webhook (signed), the Baileys bridge's (HMAC-SHA256 of the body),
# both ending in one thread per customer; duplicates that add nothing;
# delivery statuses in any order that never move backwards; bad input
# answered with a 4xx and a reason; Hebrew stored byte for byte.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Encode qw(encode_utf8);
use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP ();
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Server;
use Test::AgentLocator::Calls;
use Test::AgentLocator::Twilio qw(form twilio_signature);

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';

*wait_until = \&Test::AgentLocator::Calls::wait_until;

my $TOKEN = 'secret-token';
my $PUBLIC = 'https://voice.example.com';
my $BRIDGE_SECRET = 'bridge-secret-0123456789';
my $SANDBOX = '+14155238886';
my $BRIDGE_NUMBER = '+972500000001';

# the businesses: the default one, and one that owns the bridge's number
$pg->psql(qq{INSERT INTO businesses (name) VALUES ('bridge business');
             INSERT INTO business_numbers (number, business_id)
             SELECT '$BRIDGE_NUMBER', id FROM businesses WHERE name = 'bridge business'});
my $DEFAULT = $pg->psql('SELECT id FROM businesses WHERE is_default');
my $BRIDGE_BIZ = $pg->psql(q{SELECT id FROM businesses WHERE name = 'bridge business'});

my $s = Test::AgentLocator::Server->new(
    workers => 2,
    http => qq{
    agentlocator_public_url $PUBLIC;
    agentlocator_twilio_account_sid AC@{[ '1' x 32 ]};
    agentlocator_twilio_auth_token $TOKEN;
    agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_baileys http://127.0.0.1:9/ secret=$BRIDGE_SECRET number=$BRIDGE_NUMBER;
    agentlocator_webhook_max_body 16k;},
    server => q{
    location = /webhook/whatsapp/twilio  { agentlocator_whatsapp twilio; }
    location = /webhook/whatsapp/status  { agentlocator_whatsapp twilio_status; }
    location = /webhook/whatsapp/baileys { agentlocator_whatsapp baileys; }});

sub sid { sprintf 'SM%032x', $_[0] }

# a Twilio webhook, signed as Twilio signs it (or with $o{signature})
sub twilio {
    my ($path, @kv) = @_;
    my $sig = twilio_signature($TOKEN, "$PUBLIC$path", @kv);
    return $s->request("POST $path", body => form(@kv),
        headers => ['Content-Type: application/x-www-form-urlencoded',
                    "X-Twilio-Signature: $sig"]);
}

sub inbound {
    my ($n, $from, @kv) = @_;
    return twilio('/webhook/whatsapp/twilio', MessageSid => sid($n),
                  AccountSid => 'AC' . '1' x 32, From => "whatsapp:$from",
                  To => "whatsapp:$SANDBOX", @kv);
}

sub baileys {
    my ($body, %o) = @_;
    $body = JSON::PP->new->utf8->canonical->encode($body) if ref $body;
    my $sig = $o{signature} // hmac_sha256_hex($body, $BRIDGE_SECRET);
    return $s->request('POST /webhook/whatsapp/baileys', body => $body,
        headers => [($o{type} // 'Content-Type: application/json'),
                    defined $sig && $sig ne '' ? ("X-BAILEYS-SIGNATURE: $sig") : ()]);
}

sub count { $pg->psql("SELECT count(*) FROM messages WHERE $_[0]") }

sub wait_rows {
    my ($where, $n) = @_;
    return wait_until(sub { count($where) >= $n }, 10);
}

my $HELLO = 'שלום, מה שלומך? 👋 & <ok>';

subtest 'Twilio: an inbound text, signed' => sub {
    my $r = inbound(1, '+972541112222', Body => $HELLO, ProfileName => 'דנה');
    is($r->{status}, 200, 'answered 200');
    like($r->{headers}{'content-type'}, qr{^text/xml}, 'TwiML');
    like($r->{body}, qr{<Response/>}, 'an empty Response: nothing said back');
    ok(wait_rows(q{provider = 'twilio'}, 1), 'the message is stored');
    is($pg->psql(q{SELECT body FROM messages WHERE provider_msg_id = '} . sid(1) . q{'}),
       encode_utf8($HELLO), 'Hebrew, emoji and markup byte for byte');
    is($pg->psql(q{SELECT direction || ' ' || status || ' ' || media::text FROM messages
                   WHERE provider_msg_id = '} . sid(1) . q{'}),
       'inbound received []', 'inbound, received, no media');
    is($pg->psql(q{SELECT c.phone || ' ' || c.name || ' ' || t.business_id || ' ' || t.channel
                   FROM threads t JOIN customers c ON c.id = t.customer_id
                   WHERE c.phone = '+972541112222'}),
       encode_utf8("+972541112222 דנה $DEFAULT whatsapp"),
       'the sender is a customer of the default business, with a whatsapp thread');
};

subtest 'Twilio: the same message again adds nothing' => sub {
    for (1 .. 3) {
        is(inbound(1, '+972541112222', Body => $HELLO)->{status}, 200, 'answered');
    }
    sleep 0.5;
    is(count(q{provider_msg_id = '} . sid(1) . q{'}), 1, 'one row');
};

subtest 'Twilio: media, and a second message in the same thread' => sub {
    my $r = inbound(2, '+972541112222', Body => '', NumMedia => 2,
        MediaUrl0 => 'https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1',
        MediaContentType0 => 'image/jpeg',
        MediaUrl1 => 'https://api.twilio.com/m?a="b"&c=\\d',
        MediaContentType1 => 'audio/ogg');
    is($r->{status}, 200, 'answered 200');
    ok(wait_rows(q{provider_msg_id = '} . sid(2) . q{'}, 1), 'stored');
    my $media = JSON::PP::decode_json($pg->psql(
        q{SELECT media::text FROM messages WHERE provider_msg_id = '} . sid(2) . q{'}));
    is_deeply($media, [
        { url => 'https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1',
          content_type => 'image/jpeg' },
        { url => 'https://api.twilio.com/m?a="b"&c=\\d', content_type => 'audio/ogg' }],
        'both media, in order, quotes and backslashes intact');
    is($pg->psql(q{SELECT count(DISTINCT thread_id) FROM messages m
                   JOIN threads t ON t.id = m.thread_id JOIN customers c ON c.id = t.customer_id
                   WHERE c.phone = '+972541112222'}), 1, 'one thread for the customer');
};

subtest 'Baileys: the same customer through the bridge joins their thread' => sub {
    # the bridge's number belongs to another business: a thread of its own
    my $r = baileys({ from => '+972541112222', text => $HELLO, media_url => undef,
                      provider_msg_id => '3EB0C767D26A1D8A', name => 'Dana' });
    is($r->{status}, 200, 'answered 200') or diag $r->{body};
    is($r->{body}, qq{{"ok":true}\n}, 'ok');
    ok(wait_rows(q{provider = 'baileys'}, 1), 'stored');
    is($pg->psql(q{SELECT t.business_id FROM messages m JOIN threads t ON t.id = m.thread_id
                   WHERE m.provider_msg_id = '3EB0C767D26A1D8A'}), $BRIDGE_BIZ,
       'the business that owns the bridge\'s number');
    is($pg->psql(q{SELECT body FROM messages WHERE provider_msg_id = '3EB0C767D26A1D8A'}),
       encode_utf8($HELLO), 'byte for byte');
    # and again, with the signature's hex in capitals: one row
    my $body = JSON::PP->new->utf8->canonical->encode({ from => '+972541112222', text => $HELLO,
                                                  provider_msg_id => '3EB0C767D26A1D8A' });
    is(baileys($body, signature => uc hmac_sha256_hex($body, $BRIDGE_SECRET))->{status},
       200, 'the same message again, signature in capitals');
    sleep 0.5;
    is(count(q{provider_msg_id = '3EB0C767D26A1D8A'}), 1, 'one row');
};

subtest 'Twilio and Baileys end in one thread per customer of a business' => sub {
    # with the sandbox number owned by the bridge's business too
    $pg->psql(qq{INSERT INTO business_numbers (number, business_id)
                 VALUES ('$SANDBOX', $BRIDGE_BIZ)});
    is(inbound(4, '+972549990000', Body => 'via twilio')->{status}, 200, 'Twilio');
    is(baileys({ from => '+972549990000', text => 'via baileys', provider_msg_id => 'B4',
                 media_url => 'http://127.0.0.1:3100/media/abc.jpg',
                 media_type => 'image/jpeg' })->{status}, 200, 'Baileys');
    ok(wait_rows(q{provider_msg_id IN ('} . sid(4) . q{', 'B4')}, 2), 'both stored');
    is($pg->psql(q{SELECT count(DISTINCT m.thread_id) || ' ' || count(*)
                   FROM messages m JOIN threads t ON t.id = m.thread_id
                   JOIN customers c ON c.id = t.customer_id WHERE c.phone = '+972549990000'}),
       '1 2', 'one thread, two messages');
    is($pg->psql(q{SELECT media->0->>'url' || ' ' || (media->0->>'content_type')
                   FROM messages WHERE provider_msg_id = 'B4'}),
       'http://127.0.0.1:3100/media/abc.jpg image/jpeg', 'the bridge\'s media');
};

subtest 'Baileys: what is refused, and why' => sub {
    my $good = { from => '+972541112222', text => 'x', provider_msg_id => 'R1' };
    my $r = baileys($good, signature => 'ab' x 32);
    is($r->{status}, 403, 'a wrong signature: 403');
    like($r->{body}, qr/invalid X-BAILEYS-SIGNATURE/, 'with the reason');
    is(baileys($good, signature => '')->{status}, 403, 'no signature: 403');
    is(baileys($good, signature => 'abc')->{status}, 403, 'a short one: 403');
    my $body = JSON::PP->new->utf8->canonical->encode($good);
    is(baileys($body, signature => hmac_sha256_hex("$body ", $BRIDGE_SECRET))->{status}, 403,
       'the signature of another body: 403');
    # every one of the 64 digits counts, the last as much as the first
    my $sig = hmac_sha256_hex($body, $BRIDGE_SECRET);
    for my $at (0, 31, 32, 63) {
        my $bad = $sig;
        substr($bad, $at, 1) = substr($sig, $at, 1) eq '0' ? '1' : '0';
        is(baileys($body, signature => $bad)->{status}, 403, "digit $at changed: 403");
    }
    is(baileys($good, type => 'Content-Type: text/plain')->{status}, 415, 'not JSON: 415');
    my @bad = (
        ['{"from":', 'malformed JSON'],
        ['[1,2]', 'not a JSON object'],
        ['{"from":"+972541112222","from":"+15550001111","text":"x","provider_msg_id":"R2"}',
         'a field appears twice'],
        ['{"from":"0541112222","text":"x","provider_msg_id":"R3"}', 'from must be'],
        ['{"from":"+972541112222","text":"x"}', 'provider_msg_id'],
        ['{"from":"+972541112222","text":"x","provider_msg_id":"has space"}', 'provider_msg_id'],
        ['{"from":"+972541112222","text":"x","provider_msg_id":"R\\u007f9"}', 'provider_msg_id'],
        ['{"from":"+972541112222","text":"x","provider_msg_id":"R\\u00e99"}', 'provider_msg_id'],
        ['{"from":"+0541112222","text":"x","provider_msg_id":"R10"}', 'from must be'],
        ['{"from":"+972541112222","provider_msg_id":"R4"}', 'needs text or a media_url'],
        ['{"from":"+972541112222","text":5,"provider_msg_id":"R5"}', 'wrong type'],
        ['{"from":"+972541112222","text":"x","media_url":"file:///etc/passwd","provider_msg_id":"R6"}',
         'http\(s\) URL'],
        ['{"from":"+972541112222","text":"a\u0000b","provider_msg_id":"R7"}', 'NUL'],
        ['{"from":"+972541112222","text":"' . ('x' x 40000) . '","provider_msg_id":"R8"}',
         'too long'],
    );
    for my $b (@bad) {
        $r = baileys($b->[0]);
        my $what = substr($b->[0], 0, 60);
        is($r->{status}, $b->[0] =~ /x{40000}/ ? 413 : 400, "$what: refused");
        like($r->{body}, qr/$b->[1]/, 'with its reason') unless $b->[0] =~ /x{40000}/;
    }
    is($s->request('GET /webhook/whatsapp/baileys')->{status}, 405, 'GET: 405');
    sleep 0.3;
    is(count(q{provider_msg_id LIKE 'R%'}), 0, 'nothing stored');
};

subtest "Twilio: the whatsapp: prefix in any case" => sub {
    is(twilio('/webhook/whatsapp/twilio', MessageSid => sid(6), AccountSid => 'AC' . '1' x 32,
              From => 'WhatsApp:+972541113333', To => "WHATSAPP:$SANDBOX", Body => 'caps')
       ->{status}, 200, 'answered 200');
    ok(wait_rows(q{provider_msg_id = '} . sid(6) . q{'}, 1), 'stored');
    is($pg->psql(q{SELECT c.phone FROM messages m JOIN threads t ON t.id = m.thread_id
                   JOIN customers c ON c.id = t.customer_id
                   WHERE m.provider_msg_id = '} . sid(6) . q{'}),
       '+972541113333', 'the customer is the number after the prefix');
};

subtest 'Twilio: what is refused, and why' => sub {
    my $r = $s->request('POST /webhook/whatsapp/twilio',
        body => form(MessageSid => sid(9), From => 'whatsapp:+972541112222'),
        headers => ['Content-Type: application/x-www-form-urlencoded',
                    'X-Twilio-Signature: AAAAAAAAAAAAAAAAAAAAAAAAAAA=']);
    is($r->{status}, 403, 'a bad signature: 403');
    $r = $s->request('POST /webhook/whatsapp/twilio',
        body => form(MessageSid => sid(9), MessageSid => sid(8)),
        headers => ['Content-Type: application/x-www-form-urlencoded',
                    'X-Twilio-Signature: AAAAAAAAAAAAAAAAAAAAAAAAAAA=']);
    is($r->{status}, 403, 'two MessageSids and a bad signature: 403, the form not judged first');
    $r = twilio('/webhook/whatsapp/twilio', MessageSid => sid(9), MessageSid => sid(8),
                From => 'whatsapp:+972541112222');
    is("$r->{status} $r->{body}", "400 conflicting MessageSid values\n", 'signed: 400, with its reason');
    is(inbound(9, '0541112222')->{status}, 400, 'From not E.164: 400');
    is(twilio('/webhook/whatsapp/twilio', MessageSid => 'SM123', From => 'whatsapp:+1555')
       ->{status}, 400, 'a malformed MessageSid: 400');
    is(twilio('/webhook/whatsapp/twilio', From => 'whatsapp:+15550001111')->{status}, 400,
       'no MessageSid: 400');
    # with ten media and an eleventh under the key '0' + 10 makes: refused
    # for NumMedia itself, never looked up past the ten slots
    $r = inbound(9, '+972541112222', NumMedia => 11,
                 (map { ("MediaUrl$_" => "https://x.example/$_", "MediaContentType$_" => 'image/png') } 0 .. 9),
                 'MediaUrl:' => 'https://x.example/10');
    is("$r->{status} $r->{body}", "400 NumMedia must be 0 to 10\n", 'NumMedia over 10: 400, for NumMedia');
    is(inbound(9, '+972541112222', NumMedia => 1)->{status}, 400, 'a missing MediaUrl0: 400');
    $r = inbound(9, '+972541112222', NumMedia => 1, MediaUrl0 => '', MediaContentType0 => 'image/png');
    is("$r->{status} $r->{body}", "400 a MediaUrlN below NumMedia is missing or too long\n",
       'an empty MediaUrl0: 400');
    is(inbound(9, '+972541112222', NumMedia => 0, NumMedia => 1)->{status}, 400,
       'two NumMedia: 400');
    is($s->request('POST /webhook/whatsapp/twilio', body => '{}',
                   headers => ['Content-Type: application/json'])->{status}, 415, 'JSON: 415');
    is(inbound(9, '+972541112222', Body => 'x' x 17000)->{status}, 413, 'over 16k: 413');
    # signed over the raw bytes, as a sender of raw bytes would sign them
    my $raw = "$PUBLIC/webhook/whatsapp/twilio" . "Body\xff\xfe" . "Fromwhatsapp:+972541112222"
              . 'MessageSid' . sid(9) . "Towhatsapp:$SANDBOX";
    my $sig = Digest::SHA::hmac_sha1_base64($raw, $TOKEN) . '=';
    my $r2 = $s->request('POST /webhook/whatsapp/twilio',
        body => form(MessageSid => sid(9), From => 'whatsapp:+972541112222',
                     To => "whatsapp:$SANDBOX") . '&Body=%FF%FE',
        headers => ['Content-Type: application/x-www-form-urlencoded',
                    "X-Twilio-Signature: $sig"]);
    is($r2->{status}, 400, 'a Body that is not UTF-8: 400 (the database would refuse it)');
    like($r2->{body}, qr/not UTF-8/, 'with its reason');
    sleep 0.3;
    is(count(q{provider_msg_id = '} . sid(9) . q{'}), 0, 'nothing stored');
};

subtest 'delivery statuses, in any order, never backwards' => sub {
    # an outbound message the API sent (its row as the module writes it)
    $pg->psql(qq{SELECT agentlocator_message_outbound('L1', $DEFAULT, '+972541112222',
                 'hi', NULL, 'twilio', 'sent', '@{[ sid(20) ]}', NULL, NULL, now())});
    my @order = qw(read delivered sent queued sending);
    for my $st (@order) {
        my $r = twilio('/webhook/whatsapp/status', MessageSid => sid(20), MessageStatus => $st,
                       SmsStatus => $st, AccountSid => 'AC' . '1' x 32);
        is($r->{status}, 204, "$st: 204");
    }
    ok(wait_until(sub { $pg->psql(q{SELECT count(*) FROM message_statuses WHERE provider_msg_id = '}
                                  . sid(20) . q{'}) == 5 }, 10), 'every callback logged');
    is($pg->psql(q{SELECT status FROM messages WHERE provider_msg_id = '} . sid(20) . q{'}),
       'read', 'read stays read');

    # callbacks that come before the message's own row has landed
    for my $st (qw(delivered failed)) {
        twilio('/webhook/whatsapp/status', MessageSid => sid(21), MessageStatus => $st,
               $st eq 'failed' ? (ErrorCode => 63016) : ());
    }
    ok(wait_until(sub { $pg->psql(q{SELECT count(*) FROM message_statuses WHERE provider_msg_id = '}
                                  . sid(21) . q{'}) == 2 }, 10), 'logged');
    $pg->psql(qq{SELECT agentlocator_message_outbound('L2', $DEFAULT, '+972541112222',
                 'hi', NULL, 'twilio', 'sent', '@{[ sid(21) ]}', NULL, NULL, now())});
    is($pg->psql(q{SELECT status FROM messages WHERE provider_msg_id = '} . sid(21) . q{'}),
       'delivered', 'the row takes the highest status logged (the first of a rank)');

    # failed with its error code
    $pg->psql(qq{SELECT agentlocator_message_outbound('L3', $DEFAULT, '+972541112222',
                 'hi', NULL, 'twilio', 'sent', '@{[ sid(22) ]}', NULL, NULL, now())});
    twilio('/webhook/whatsapp/status', MessageSid => sid(22), MessageStatus => 'undelivered',
           ErrorCode => '63016', ErrorMessage => 'Outside messaging window');
    ok(wait_until(sub { $pg->psql(q{SELECT status FROM messages WHERE provider_msg_id = '}
                                  . sid(22) . q{'}) eq 'undelivered' }, 10), 'undelivered');
    is($pg->psql(q{SELECT error_code FROM messages WHERE provider_msg_id = '} . sid(22) . q{'}),
       '63016', 'with its ErrorCode');

    is(twilio('/webhook/whatsapp/status', MessageSid => sid(23))->{status}, 400,
       'no MessageStatus: 400');
    is(twilio('/webhook/whatsapp/status', MessageSid => sid(23), MessageStatus => 'x;drop')
       ->{status}, 400, 'a malformed MessageStatus: 400');
    is(twilio('/webhook/whatsapp/status', MessageSid => sid(23), MessageStatus => 'failed',
              ErrorCode => '12ab')->{status}, 400, 'a malformed ErrorCode: 400');
};

subtest 'the database away: webhooks still answered, nothing lost' => sub {
    $pg->stop('fast');
    my $r = inbound(30, '+972541112222', Body => 'while the database was away');
    is($r->{status}, 200, 'Twilio answered at once');
    is(baileys({ from => '+972541112222', text => 'also away', provider_msg_id => 'AWAY1' })
       ->{status}, 200, 'the bridge answered at once');
    $pg->start;
    ok(wait_rows(q{provider_msg_id IN ('} . sid(30) . q{', 'AWAY1')}, 2), 'both stored when it came back');
};

$s->allow_log(qr/CRM_DOWN|CRM_CONNECTED/);
ok($s->stop, 'nginx stopped cleanly');
unlike($s->error_log, qr/\Q$BRIDGE_SECRET\E|\Q$TOKEN\E/, 'no secret in the log');
done_testing;
