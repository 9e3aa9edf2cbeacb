# The Baileys bridge and the module for real (SPEC §8): the bridge
# (tools/baileys-bridge, on a Baileys-like socket: no WhatsApp connection)
# forwards what WhatsApp delivers to the module's webhook, signed; the
# module's API sends through the bridge's POST /send.  The bridge's own
# logic has its own tests (npm test in tools/baileys-bridge), run here too.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use IPC::Open2 qw(open2);
use Encode qw(encode_utf8 decode_utf8);
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use JSON::PP ();
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Server;
use Test::AgentLocator::Calls;

my $node = `node --version 2>/dev/null` // '';
my ($major) = $node =~ /^v(\d+)\./;
plan skip_all => "the bridge needs Node.js 20 or later (found: "
                 . ($node =~ s/\s+//r || 'none') . ')'
    unless $major && $major >= 20;
plan skip_all => 'tools/baileys-bridge/node_modules is missing (make test runs npm ci)'
    unless -d 'tools/baileys-bridge/node_modules/baileys';

subtest 'the bridge\'s own tests (npm test)' => sub {
    my $out = `cd tools/baileys-bridge && npm test 2>&1`;
    is($?, 0, 'npm test passes') or diag $out;
    like($out, qr/# fail 0/, 'no failures');
};

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';

my $SECRET = 'bridge-e2e-secret-0123456789';
my $JWT = 'jwt-secret-0123456789-0123456789-abcdef';
my $JSON = JSON::PP->new->utf8->canonical;
my $bridge_port = Test::AgentLocator::Server::free_port();

my $s = Test::AgentLocator::Server->new(
    workers => 2,
    http => qq{
    agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_baileys http://127.0.0.1:$bridge_port secret=$SECRET number=+972500000001;
    agentlocator_jwt_secret $JWT;},
    server => q{
    location = /webhook/whatsapp/baileys { agentlocator_whatsapp baileys; }
    location /api/ { agentlocator_api; }});

my $pid = open2(my $from, my $to, 'node', 't/clients/bridge-e2e.mjs', $bridge_port, $SECRET,
                "http://127.0.0.1:$s->{port}/webhook/whatsapp/baileys");
binmode $to, ':raw';
is(scalar <$from>, "READY\n", 'the bridge listens');

sub bridge {
    my ($line) = @_;
    print $to "$line\n";
    $to->flush;
    my $answer = <$from>;
    chomp $answer;
    return $answer;
}

sub token {
    my $h = encode_base64url('{"alg":"HS256","typ":"JWT"}');
    my $p = encode_base64url($JSON->encode({ business_id => 1, role => 'agent',
                                             exp => time + 600 }));
    return "$h.$p." . encode_base64url(hmac_sha256("$h.$p", $JWT));
}

my $HELLO = 'שלום מהוואטסאפ 👋';

subtest 'WhatsApp -> the bridge -> the module -> the CRM' => sub {
    my $event = { type => 'notify', messages => [
        { key => { remoteJid => '972541234567@s.whatsapp.net', fromMe => JSON::PP::false,
                   id => '3EB0AAAA0001' },
          message => { conversation => $HELLO }, messageTimestamp => time, pushName => 'דנה' },
        { key => { remoteJid => '972541234567@s.whatsapp.net', fromMe => JSON::PP::true,
                   id => '3EB0AAAA0002' },
          message => { conversation => 'sent from the phone' }, messageTimestamp => time },
    ] };
    is(bridge('upsert ' . $JSON->encode($event)), 'ok', 'a messages.upsert');
    is(bridge('idle'), 'ok', 'forwarded');
    ok(Test::AgentLocator::Calls::wait_until(sub {
        $pg->psql(q{SELECT count(*) FROM messages WHERE provider = 'baileys'}) >= 1 }, 10),
       'stored');
    sleep 0.3;
    is($pg->psql(q{SELECT count(*) FROM messages WHERE provider = 'baileys'}), 1,
       'only the inbound one (fromMe is not forwarded)');
    is(decode_utf8($pg->psql(q{SELECT c.phone || ' ' || c.name || ' ' || m.body FROM messages m
                               JOIN threads t ON t.id = m.thread_id
                               JOIN customers c ON c.id = t.customer_id
                               WHERE m.provider_msg_id = '3EB0AAAA0001'})),
       "+972541234567 דנה $HELLO", 'the sender, their name and the text, byte for byte');

    # WhatsApp delivers it again (the bridge was offline): still one row
    bridge('upsert ' . $JSON->encode($event));
    bridge('idle');
    sleep 0.3;
    is($pg->psql(q{SELECT count(*) FROM messages WHERE provider_msg_id = '3EB0AAAA0001'}), 1,
       'a duplicate adds nothing');
};

subtest 'the API -> the module -> the bridge -> WhatsApp' => sub {
    my $body = $JSON->encode({ to => '+972541234567', text => 'תודה, נחזור אליך',
                               provider => 'baileys' });
    my $r = $s->request('POST /api/whatsapp/send', body => $body,
        headers => ['Content-Type: application/json', 'Authorization: Bearer ' . token()]);
    is($r->{status}, 200, 'answered 200') or diag $r->{body};
    my $j = JSON::PP::decode_json($r->{body});
    is($j->{provider_msg_id}, '3EB0E2E1', 'the id WhatsApp gave the message');
    my $calls = JSON::PP::decode_json(bridge('calls'));
    is_deeply($calls, [{ jid => '972541234567@s.whatsapp.net',
                         content => { text => 'תודה, נחזור אליך' } }],
              'the bridge checked the signature and sent it to the right chat');
    ok(Test::AgentLocator::Calls::wait_until(sub {
        $pg->psql(qq{SELECT status FROM messages WHERE local_id = '$j->{ref}'}) eq 'sent' }, 10),
       'the row: sent');
    is($pg->psql(q{SELECT count(DISTINCT thread_id) FROM messages m
                   JOIN threads t ON t.id = m.thread_id JOIN customers c ON c.id = t.customer_id
                   WHERE c.phone = '+972541234567'}), 1, 'in the same thread as the inbound one');

    bridge('connected 0');
    $r = $s->request('POST /api/whatsapp/send', body => $body,
        headers => ['Content-Type: application/json', 'Authorization: Bearer ' . token()]);
    is($r->{status}, 502, 'the bridge not connected to WhatsApp: 502');
    like($r->{body}, qr/not connected to WhatsApp/, 'with its reason');
    bridge('connected 1');
};

close $to;
waitpid $pid, 0;
ok($s->stop, 'nginx stopped cleanly');
unlike($s->error_log, qr/\Q$SECRET\E|\Q$JWT\E/, 'no secret in the log');
done_testing;
