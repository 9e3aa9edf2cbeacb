# The CRM API (SPEC §8) against a real PostgreSQL: bearer JWTs (HS256 and
# nothing else; expiry, not-before, malformed ones, tokens minted by jose, an
# independent library), every endpoint and its pagination bounds, a business
# that cannot see another's rows, Hebrew byte for byte, the database away.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Encode qw(encode_utf8 decode_utf8);
use Digest::SHA qw(hmac_sha256 hmac_sha384);
use MIME::Base64 qw(encode_base64url);
use JSON::PP ();
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Server;
use Test::AgentLocator::Calls;
use Test::AgentLocator::Twilio ();

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';

my $SECRET = 'jwt-secret-0123456789-0123456789-abcdef';
my $JSON = JSON::PP->new->utf8->canonical;

# two businesses: A (the default) with most rows, B with one of each
$pg->psql(<<'SQL');
INSERT INTO businesses (name) VALUES ('B');
INSERT INTO customers (business_id, phone, name) VALUES
    (1, '+972541000001', 'דנה כהן'), (1, '+972541000002', 'Yossi 100%_off'),
    (1, '+972541000003', NULL), (2, '+15550000001', 'Bob');
INSERT INTO threads (business_id, customer_id, last_message_at)
    SELECT business_id, id, now() - (id || ' minutes')::interval FROM customers;
INSERT INTO messages (thread_id, provider, provider_msg_id, direction, body, media, status, created_at)
    SELECT t.id, 'twilio', 'SM' || lpad(to_hex(t.id * 100 + g), 32, '0'), 'inbound',
           'הודעה ' || g, '[]', 'received', now() - ((10 - g) || ' seconds')::interval
    FROM threads t, generate_series(1, 5) g;
UPDATE messages SET media = '[{"url": "https://x.example/a\"b", "content_type": "image/png"}]'
    WHERE provider_msg_id = 'SM' || lpad(to_hex(105), 32, '0');
INSERT INTO calls (call_sid, business_id, customer_id, from_number, to_number, status,
                   created_at, duration_s, frames, fallback_served)
    SELECT 'CA' || lpad(to_hex(g), 32, '0'), CASE WHEN g = 9 THEN 2 ELSE 1 END,
           CASE WHEN g = 9 THEN 4 ELSE 1 END, '+972541000001', '+97230000000',
           CASE WHEN g % 2 = 0 THEN 'completed' ELSE 'in-progress' END,
           now() - (g || ' minutes')::interval, g, g * 50, g = 3
    FROM generate_series(1, 9) g;
INSERT INTO call_events (call_sid, event, reason, detail, at, idempotency_key) VALUES
    ('CA' || lpad('1', 32, '0'), 'incoming', NULL, '{}', now() - interval '60 s', 'k1'),
    ('CA' || lpad('1', 32, '0'), 'stream_start', NULL, '{"stream_sid": "MZ1"}', now() - interval '59 s', 'k2'),
    ('CA' || lpad('1', 32, '0'), 'status', 'completed', '{}', now() - interval '1 s', 'k3');
INSERT INTO recordings (call_sid, recording_sid, url, duration_s)
    VALUES ('CA' || lpad('1', 32, '0'), 'RE' || lpad('1', 32, '0'), 'https://api.twilio.com/r/RE1', 4);
INSERT INTO transcripts (recording_id, call_sid, text, language, engine)
    SELECT id, call_sid, 'שלום, I need a plumber "now"', 'he', 'whisper' FROM recordings;
SQL

my $mock = Test::AgentLocator::TwilioMock->new;
my $BRIDGE_SECRET = 'bridge-secret-0123456789';
my $bridge = Test::AgentLocator::TwilioMock->new(script => 'baileys_bridge.py',
                                                 args => ['--secret', $BRIDGE_SECRET]);

my $s = Test::AgentLocator::Server->new(
    workers => 2,
    http => qq{
    agentlocator_public_url https://voice.example.com;
    agentlocator_twilio_account_sid AC@{[ '1' x 32 ]};
    agentlocator_twilio_auth_token secret-token;
    agentlocator_twilio_api_url @{[ $mock->url ]};
    agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_baileys @{[ $bridge->url ]} secret=$BRIDGE_SECRET;
    agentlocator_whatsapp_send providers=twilio,baileys from=+14155238886
        status_callback=https://voice.example.com/webhook/whatsapp/status timeout=3s;
    agentlocator_jwt_secret $SECRET;
    agentlocator_webhook_max_body 16k;},
    server => q{
    location /api/ { agentlocator_api; }
    location = /webhook/whatsapp/status { agentlocator_whatsapp twilio_status; }});

sub b64 { encode_base64url($_[0]) }

# a token as HS256 signs it, or as told: alg, key, header, raw payload
sub jwt {
    my ($claims, %o) = @_;
    my $header = b64($o{header} // $JSON->encode({ alg => $o{alg} // 'HS256', typ => 'JWT' }));
    my $payload = b64($o{payload} // $JSON->encode($claims));
    my $mac = ($o{alg} // '') eq 'HS384' ? \&hmac_sha384 : \&hmac_sha256;
    my $sig = b64($mac->("$header.$payload", $o{key} // $SECRET));
    return "$header.$payload.$sig";
}

sub token { jwt({ business_id => $_[0] // 1, role => $_[1] // 'agent', exp => time + 600 }) }

sub api {
    my ($path, %o) = @_;
    my $tok = exists $o{token} ? $o{token} : token();
    my $r = $s->request(($o{method} // 'GET') . " $path", body => $o{body},
        headers => [defined $tok ? ("Authorization: Bearer $tok") : (),
                    @{ $o{headers} // [] }]);
    $r->{json} = eval { $JSON->decode($r->{body}) };
    return $r;
}

subtest 'no token, a bad token: 401 with the reason' => sub {
    my $r = api('/api/threads', token => undef);
    is($r->{status}, 401, 'no token: 401');
    is($r->{json}{error}, 'a bearer token is required', 'the reason, as JSON');
    like($r->{headers}{'www-authenticate'}, qr/^Bearer realm="agentlocator"/, 'the challenge');
    $r = $s->request('GET /api/threads', headers => ['Authorization: Basic YTpi']);
    is($r->{status}, 401, 'Basic: 401');

    my $now = time;
    my @bad = (
        ['alg none, signed nothing', jwt(undef, header => '{"alg":"none"}', payload =>
            $JSON->encode({ business_id => 1, role => 'admin', exp => $now + 60 })) =~ s/[^.]+$//r,
         qr/alg is not HS256|signature/],
        ['HS384', jwt({ business_id => 1, role => 'admin', exp => $now + 60 }, alg => 'HS384'),
         qr/alg is not HS256/],
        ['RS256 in the header', jwt({ business_id => 1, role => 'admin', exp => $now + 60 },
                                   header => '{"alg":"RS256"}'), qr/alg is not HS256/],
        ['alg twice', jwt({ business_id => 1, role => 'admin', exp => $now + 60 },
                         header => '{"alg":"HS256","alg":"none"}'), qr/header/],
        ['the wrong secret', jwt({ business_id => 1, role => 'admin', exp => $now + 60 },
                                key => 'another-secret-0123456789-0123456789'), qr/bad token signature/],
        ['expired', jwt({ business_id => 1, role => 'admin', exp => $now - 100 }), qr/expired/],
        ['not yet valid', jwt({ business_id => 1, role => 'admin', exp => $now + 600,
                                nbf => $now + 120 }), qr/not valid yet/],
        ['no exp', jwt({ business_id => 1, role => 'admin' }), qr/no exp/],
        ['no business', jwt({ role => 'admin', exp => $now + 60 }), qr/business_id/],
        ['business 0', jwt({ business_id => 0, role => 'admin', exp => $now + 60 }), qr/business_id/],
        ['no role', jwt({ business_id => 1, exp => $now + 60 }), qr/no role/],
        ['claims not JSON', jwt(undef, payload => '{"business_id":1,'), qr/malformed/],
        ['malformed base64', 'eyJhbGciOiJIUzI1NiJ9.e*J9.AAAA', qr/base64url|signature/],
        ['padded base64', token() . '=', qr/base64url/],
        ['two parts', 'eyJhbGciOiJIUzI1NiJ9.eyJ9', qr/header\.payload\.signature/],
        ['four parts', token() . '.x', qr/header\.payload\.signature/],
        ['too long', 'a' x 5000, qr/too long/],
    );
    for my $b (@bad) {
        $r = api('/api/threads', token => $b->[1]);
        is($r->{status}, 401, "$b->[0]: 401");
        like($r->{json}{error} // '', $b->[2], "$b->[0]: the reason");
        like($r->{headers}{'www-authenticate'} // '', qr/error="invalid_token"/,
             "$b->[0]: invalid_token");
    }

    is(api('/api/threads', token => jwt({ business_id => 1, role => 'agent',
                                          exp => $now - 10 }))->{status}, 200,
       'expired 10 s ago: within the leeway');
    is(api('/api/threads', token => jwt({ business_id => '1', role => 'viewer',
                                          exp => $now + 60.5, nbf => $now - 1 }))->{status}, 200,
       'a business_id in a string, a fractional exp');
    is(api('/api/threads', token => jwt({ business_id => 1, role => 'guest',
                                          exp => $now + 60 }))->{status}, 403,
       'a role the API does not know: 403');
};

subtest 'tokens minted by jose (Node), and by tools/token' => sub {
    my $mint = 't/clients/node/mint-jwt.mjs';
    SKIP: {
        skip 'node or t/clients/node/node_modules missing (make test installs them)', 5
            unless -d 't/clients/node/node_modules/jose' && `node --version 2>/dev/null`;
        my $claims = $JSON->encode({ business_id => 1, role => 'agent', exp => time + 600 });
        chomp(my $good = `node $mint '$SECRET' HS256 '$claims'`);
        is(api('/api/threads', token => $good)->{status}, 200, 'jose HS256: 200');
        chomp(my $none = `node $mint '$SECRET' none '$claims'`);
        like($none, qr/^eyJhbGciOiJub25lIn0\./, 'jose\'s unsecured JWT is alg none');
        is(api('/api/threads', token => $none)->{status}, 401, 'jose alg none: 401');
        chomp(my $hs512 = `node $mint '$SECRET' HS512 '$claims'`);
        is(api('/api/threads', token => $hs512)->{status}, 401, 'jose HS512: 401');
        my $old = $JSON->encode({ business_id => 1, role => 'agent', exp => time - 3600 });
        chomp(my $expired = `node $mint '$SECRET' HS256 '$old'`);
        is(api('/api/threads', token => $expired)->{status}, 401, 'jose, expired: 401');
    }
    local $ENV{AGENTLOCATOR_JWT_SECRET} = $SECRET;
    chomp(my $t = `tools/token --business 2 --role viewer --ttl 5m`);
    my $r = api('/api/threads', token => $t);
    is($r->{status}, 200, 'tools/token: 200');
    is($r->{json}{total}, 1, 'and it is business 2\'s');
};

subtest 'threads, newest first, with the customer and the last message' => sub {
    my $r = api('/api/threads');
    is($r->{status}, 200, 'answered 200');
    like($r->{headers}{'content-type'}, qr{^application/json}, 'JSON');
    is_deeply([@{ $r->{json} }{qw(page limit total pages)}], [1, 25, 3, 1], 'the envelope');
    my @t = @{ $r->{json}{results} };
    is(scalar @t, 3, 'business 1\'s three threads');
    is($t[0]{customer}{name}, 'דנה כהן', 'Hebrew names come back as sent');
    is($t[0]{last_message}{body}, 'הודעה 5', 'the last message');
    like($t[0]{last_message_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO 8601, UTC');
    is($t[2]{customer}{name}, undef, 'a customer without a name: null');
    is(api('/api/threads?type=whatsapp')->{json}{total}, 3, 'type=whatsapp');
    is(api('/api/threads?type=sms')->{json}{total}, 0, 'type=sms: none');
    is(api('/api/threads?type=SMS;drop')->{status}, 400, 'a malformed type: 400');
};

subtest 'a thread\'s messages; pagination and its bounds' => sub {
    my $id = $pg->psql(q{SELECT t.id FROM threads t JOIN customers c ON c.id = t.customer_id
                         WHERE c.phone = '+972541000001'});
    my $r = api("/api/threads/$id/messages?page=2&limit=2");
    is($r->{status}, 200, 'answered 200');
    is_deeply([@{ $r->{json} }{qw(page limit total pages)}], [2, 2, 5, 3], 'page 2 of 3');
    is_deeply([map { $_->{text} } @{ $r->{json}{results} }], ['הודעה 3', 'הודעה 2'],
              'newest first, the second pair');
    is($r->{json}{results}[0]{direction}, 'inbound', 'with its direction');
    $r = api("/api/threads/$id/messages?page=9&limit=2");
    is_deeply([$r->{status}, scalar @{ $r->{json}{results} }, $r->{json}{total}], [200, 0, 5],
              'past the last page: empty, with the total');
    my $with = $pg->psql(q{SELECT thread_id FROM messages WHERE media::text <> '[]'});
    $r = api("/api/threads/$with/messages?limit=1");
    is_deeply($r->{json}{results}[0]{media},
              [{ url => 'https://x.example/a"b', content_type => 'image/png' }],
              'media as JSON, quotes intact');

    for my $q ('page=0', 'page=-1', 'page=abc', 'page=1.5', 'page=', 'page=10000000',
               'limit=0', 'limit=101', 'limit=x', 'page=1&page=2', 'limit=%zz') {
        my $b = api("/api/threads?$q");
        is($b->{status}, 400, "?$q: 400");
        ok(length($b->{json}{error} // ''), "?$q: with a reason ($b->{json}{error})");
    }
    is(api('/api/threads?limit=100')->{status}, 200, 'limit=100: 200');
    is(api('/api/threads?limit=1&page=3')->{json}{results}[0]{customer}{phone}, '+972541000003',
       'limit=1, page 3');
    is(api('/api/threads/99999/messages')->{status}, 404, 'no such thread: 404');
    is(api('/api/threads/abc/messages')->{status}, 404, 'a malformed thread id: 404');
    for my $tail ('messagesX', 'messages/', 'messages/1') {
        is(api("/api/threads/$id/$tail")->{status}, 404, "threads/{id}/$tail: 404");
    }
};

subtest 'calls, a call with its timeline, recording and transcript' => sub {
    my $r = api('/api/calls?limit=3');
    is_deeply([@{ $r->{json} }{qw(total pages)}], [8, 3], 'business 1\'s eight calls');
    is($r->{json}{results}[0]{call_sid}, sprintf('CA%032x', 1), 'newest first');
    is($r->{json}{results}[0]{customer}{name}, 'דנה כהן', 'with its customer');
    is(api('/api/calls?status=completed')->{json}{total}, 4, 'status=completed');
    is(api('/api/calls?status=x%27y')->{status}, 400, 'a malformed status: 400');

    $r = api('/api/calls/' . sprintf('CA%032x', 1));
    is($r->{status}, 200, 'one call');
    my $c = $r->{json};
    is_deeply([@$c{qw(call_sid status duration_s frames fallback_served)}],
              [sprintf('CA%032x', 1), 'in-progress', 1, 50, JSON::PP::false], 'its row');
    is_deeply([map { $_->{event} } @{ $c->{timeline} }], [qw(incoming stream_start status)],
              'its timeline, in order');
    is($c->{timeline}[1]{detail}{stream_sid}, 'MZ1', 'events with their detail');
    is($c->{recordings}[0]{recording_sid}, sprintf('RE%032x', 1), 'its recording');
    is($c->{recordings}[0]{transcript}{text}, 'שלום, I need a plumber "now"',
       'its transcript, Hebrew and quotes intact');
    is(api('/api/calls/' . sprintf('CA%032x', 3))->{json}{recordings}[0], undef,
       'a call without recordings: an empty list');
    is(api('/api/calls/CA123')->{status}, 404, 'a malformed CallSid: 404');
    is(api('/api/calls/' . sprintf('CA%032x', 77))->{status}, 404, 'no such call: 404');
};

subtest 'customers, searched' => sub {
    my $r = api('/api/crm/customers?page=1&limit=25');
    is($r->{json}{total}, 3, 'three');
    is(api('/api/crm/customers?q=' . join('', map { sprintf '%%%02X', ord } split //,
                                         encode_utf8('דנה')))->{json}{results}[0]{phone},
       '+972541000001', 'by a Hebrew name');
    is(api('/api/crm/customers?q=541000002')->{json}{total}, 1, 'by a part of the phone');
    is(api('/api/crm/customers?q=%25')->{json}{total}, 1, '"%" is a character, not a wildcard');
    is(api('/api/crm/customers?q=_')->{json}{total}, 1, '"_" too');
    # unescaped, "\o" would be LIKE's "o" and find 'Yossi 100%_off'
    is(api('/api/crm/customers?q=%5Co')->{json}{total}, 0, '"\\" too: no name has "\\o"');
    is(api('/api/crm/customers?q=%FF')->{status}, 400, 'q not UTF-8: 400');
    is(api('/api/crm/customers?q=' . 'x' x 101)->{status}, 400, 'q over 100 bytes: 400');
};

subtest 'a business sees only its own rows' => sub {
    my $b = token(2, 'admin');
    is(api('/api/threads', token => $b)->{json}{total}, 1, 'one thread');
    is(api('/api/calls', token => $b)->{json}{total}, 1, 'one call');
    is(api('/api/crm/customers', token => $b)->{json}{results}[0]{name}, 'Bob', 'its customer');
    my $a_thread = $pg->psql(q{SELECT min(id) FROM threads WHERE business_id = 1});
    is(api("/api/threads/$a_thread/messages", token => $b)->{status}, 404,
       'another business\'s thread: 404');
    is(api('/api/calls/' . sprintf('CA%032x', 1), token => $b)->{status}, 404,
       'another business\'s call: 404');
    is(api('/api/calls/' . sprintf('CA%032x', 9), token => $b)->{status}, 200, 'its own: 200');
    is(api('/api/threads', token => token(3))->{json}{total}, 0,
       'a business with nothing: empty');
};

subtest 'endpoints and methods' => sub {
    is(api('/api/nothing')->{status}, 404, 'an unknown endpoint: 404');
    is(api('/api/nothing', token => undef)->{status}, 401,
       'without a token, 401 whatever the path: strangers learn nothing');
    is(api('/api/')->{status}, 404, 'the root: 404');
    my $r = api('/api/threads', method => 'POST', body => '{}');
    is($r->{status}, 405, 'POST threads: 405');
    is($r->{headers}{allow}, 'GET, HEAD', 'Allow');
    is(api('/api/whatsapp/send')->{status}, 405, 'GET send: 405');
};

my %FORM = (headers => ['Content-Type: application/json']);

sub send_msg {
    my ($body, %o) = @_;
    return api('/api/whatsapp/send', method => 'POST',
               body => ref $body ? $JSON->encode($body) : $body, %FORM, %o);
}

sub row {
    my ($ref, $cols) = @_;
    my $v;
    Test::AgentLocator::Calls::wait_until(sub {
        $v = $pg->psql(qq{SELECT $cols FROM messages WHERE local_id = '$ref'});
        length $v && $v !~ /^queued/;
    }, 10);
    return $v;
}

subtest 'send through Twilio' => sub {
    $mock->reset;
    my $r = send_msg({ to => '+972541000001', text => 'שלום & <b>', provider => 'twilio' });
    is($r->{status}, 200, 'answered 200') or diag $r->{body};
    is_deeply([@{ $r->{json} }{qw(status provider)}], ['sent', 'twilio'], 'sent by Twilio');
    like($r->{json}{provider_msg_id}, qr/^SM[0-9a-f]{32}$/, 'with Twilio\'s sid');
    my ($req) = grep { $_->{path} =~ /Messages\.json$/ } @{ $mock->requests };
    is($req->{path}, '/2010-04-01/Accounts/AC' . '1' x 32 . '/Messages.json', 'the Messages API');
    is_deeply([map { $req->{form}{$_}[0] } qw(To From Body StatusCallback)],
              ['whatsapp:+972541000001', 'whatsapp:+14155238886', 'שלום & <b>',
               'https://voice.example.com/webhook/whatsapp/status'], 'the form');
    like($req->{auth}, qr/^Basic /, 'Basic auth');
    is(row($r->{json}{ref}, q{status || ' ' || provider || ' ' || provider_msg_id || ' ' || body
                              || ' ' || direction}),
       encode_utf8("sent twilio $r->{json}{provider_msg_id} שלום & <b> outbound"), 'the CRM row');
};

subtest 'a message sent through Twilio, then its delivery statuses' => sub {
    my $r = send_msg({ to => '+972541000001', text => 'status please', provider => 'twilio' });
    is($r->{status}, 200, 'sent') or diag $r->{body};
    my $sid = $r->{json}{provider_msg_id};
    # Twilio's callbacks, the last one first
    for my $st (qw(read delivered sent)) {
        my @kv = (MessageSid => $sid, MessageStatus => $st, AccountSid => 'AC' . '1' x 32);
        my $sig = Test::AgentLocator::Twilio::twilio_signature('secret-token',
            'https://voice.example.com/webhook/whatsapp/status', @kv);
        is($s->request('POST /webhook/whatsapp/status', body => Test::AgentLocator::Twilio::form(@kv),
                       headers => ['Content-Type: application/x-www-form-urlencoded',
                                   "X-Twilio-Signature: $sig"])->{status}, 204, "$st: 204");
    }
    ok(Test::AgentLocator::Calls::wait_until(sub {
        $pg->psql(qq{SELECT status FROM messages WHERE provider_msg_id = '$sid'}) eq 'read' }, 10),
       'the row: read');
    my $thread = $pg->psql(qq{SELECT thread_id FROM messages WHERE provider_msg_id = '$sid'});
    my ($m) = grep { ($_->{provider_msg_id} // '') eq $sid }
              @{ api("/api/threads/$thread/messages")->{json}{results} };
    is_deeply([@$m{qw(direction status text ref)}],
              ['outbound', 'read', 'status please', $r->{json}{ref}], 'and the API says so');
};

subtest 'send through the bridge' => sub {
    my $r = send_msg({ to => '+972541000002', text => 'מה נשמע?',
                       media_url => 'https://x.example/p.jpg', provider => 'baileys' });
    is($r->{status}, 200, 'answered 200') or diag $r->{body};
    is($r->{json}{provider}, 'baileys', 'by the bridge');
    my $req = $bridge->requests->[-1];
    ok($req->{signature_ok}, 'signed with the shared secret');
    like($req->{content_type}, qr{^application/json}, 'JSON');
    is_deeply($req->{json}, { to => '+972541000002', text => 'מה נשמע?',
                              media_url => 'https://x.example/p.jpg' }, 'the body');
    is(row($r->{json}{ref}, q{status || ' ' || provider || ' ' || (media->0->>'url')}),
       'sent baileys https://x.example/p.jpg', 'the CRM row, with its media');
};

subtest 'auto: Twilio fails, the bridge takes it' => sub {
    $mock->mode(messages => '500');
    my $r = send_msg({ to => '+972541000003', text => 'fallback' });
    is($r->{status}, 200, 'answered 200') or diag $r->{body};
    is($r->{json}{provider}, 'baileys', 'sent by the bridge');
    is_deeply([map { "$_->{provider} $_->{status}" } @{ $r->{json}{attempts} }],
              ['twilio failed', 'baileys sent'], 'Twilio was tried first');
    like($r->{json}{attempts}[0]{error}, qr/500/, 'with Twilio\'s error');
    is(row($r->{json}{ref}, q{status || ' ' || provider}), 'sent baileys', 'the row');
};

subtest 'auto: both fail' => sub {
    $mock->mode(messages => '63016');
    $bridge->http('POST', '/__mode', '{"mode":"503"}');
    my $r = send_msg({ to => '+972541000003', text => 'nobody' });
    is($r->{status}, 502, 'answered 502') or diag $r->{body};
    is($r->{json}{status}, 'failed', 'failed');
    like($r->{json}{error}, qr/not connected to WhatsApp/, 'the last provider\'s reason');
    my $row = row($r->{json}{ref}, q{status || '|' || coalesce(error_code, '-') || '|'
                                     || error_message});
    like($row, qr/^failed\|63016\|twilio: 63016: Failed to send.*; baileys: 503: not connected/,
         'the row: failed, Twilio\'s code, both reasons');
    $bridge->http('POST', '/__mode', '{"mode":"garbage"}');
    $mock->mode(messages => 'nosid');
    $r = send_msg({ to => '+972541000003', text => 'x' });
    is($r->{status}, 502, 'answers without a message id: 502');
    like($r->{json}{attempts}[0]{error}, qr/without a message id/, 'said so');
    $bridge->http('POST', '/__mode', '{"mode":"ok"}');
    $mock->mode(messages => 'ok');
};

subtest 'a provider\'s message id longer than any it gives: not taken' => sub {
    # 128 bytes at most are kept for it: a longer one is refused, never copied
    $bridge->http('POST', '/__mode', '{"mode":"longid"}');
    my $r = send_msg({ to => '+972541000004', text => 'long id', provider => 'baileys' });
    is($r->{status}, 502, 'answered 502') or diag $r->{body};
    like($r->{json}{attempts}[0]{error} // '', qr/without a message id/, 'as an answer without one');
    is(row($r->{json}{ref}, q{status || ' ' || coalesce(provider_msg_id, '-') || ' ' || body}),
       'failed - long id', 'the row: failed, no id, the text intact');
    $bridge->http('POST', '/__mode', '{"mode":"ok"}');
};

subtest 'send: what is refused' => sub {
    is(send_msg({ to => '+972541000001', text => 'x' }, token => token(1, 'viewer'))->{status},
       403, 'a viewer may not send: 403');
    my @bad = (
        ['{"to":', 400], ['[]', 400], [{ to => '0541000001', text => 'x' }, 400],
        [{ to => '+972541000001' }, 400], [{ to => '+972541000001', text => '' }, 400],
        [{ to => '+972541000001', text => 'x', provider => 'sms' }, 400],
        [{ to => '+972541000001', text => 'x', media_url => 'ftp://x' }, 400],
        [{ to => '+0541000001', text => 'x' }, 400], [{ to => '+9725410000011234', text => 'x' }, 400],
        [{ to => '+972541000001', text => 'x' x 4097 }, 400],
        [{ to => '+972541000001', text => 'x' x 17000 }, 413],
    );
    for my $b (@bad) {
        my $r = send_msg($b->[0]);
        is($r->{status}, $b->[1], substr(ref $b->[0] ? $JSON->encode($b->[0]) : $b->[0], 0, 50)
                                  . ": $b->[1]");
    }
    is(send_msg({ to => '+972541000001', text => 'x' }, headers => ['Content-Type: text/plain'])
       ->{status}, 415, 'not JSON: 415');
};

subtest 'a database that does not answer: 504 after 5 s, and its late answer thrown away' => sub {
    # a session holds the customers table: the read waits behind its lock
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        exec 'psql', '-X', '-q', $pg->conninfo, '-c',
             'BEGIN; LOCK TABLE customers IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(7); COMMIT;';
    }
    sleep 0.5;
    my $t0 = time;
    my $r = api('/api/crm/customers');
    my $took = time - $t0;
    is($r->{status}, 504, 'answered 504');
    is($r->{json}{error}, 'the database did not answer in time', 'says why');
    ok($took >= 4.5 && $took < 7, "after the request's 5 s (took $took s)");
    waitpid $pid, 0;
    # the late answer reached a read nobody waits for: the worker goes on
    is(api('/api/crm/customers')->{status}, 200, 'the next read is answered');
    my @api = $s->error_log =~ /API_ERROR status=504/g;
    is(scalar @api, 1, 'one API_ERROR line for it');
};

subtest 'the database away: reads answer 503 at once' => sub {
    $pg->stop('fast');
    sleep 0.5;
    my $t0 = time;
    my $r = api('/api/threads');
    is($r->{status}, 503, 'answered 503');
    like($r->{json}{error}, qr/database/, 'says why');
    ok(time - $t0 <= 2, 'without waiting');
    $pg->start;
    ok(Test::AgentLocator::Calls::wait_until(sub { api('/api/threads')->{status} == 200 }, 15),
       'and 200 when it is back');
};

$s->allow_log(qr/CRM_DOWN|CRM_CONNECTED/);
ok($s->stop, 'nginx stopped cleanly');
unlike($s->error_log, qr/\Q$SECRET\E|\Q$BRIDGE_SECRET\E|secret-token/, 'no secret in the log');
unlike($s->error_log, qr/eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'no token in the log');
done_testing;
