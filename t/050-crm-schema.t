# The CRM schema (SPEC §7) in a real PostgreSQL started for the test:
# tools/migrate applies sql/ and applying it again changes nothing; the
# constraints that make webhooks and spool replays idempotent hold; text
# is stored verbatim, Hebrew and SQL metacharacters included.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use Test::AgentLocator::Postgres;

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;

sub migrate {
    my @args = @_;
    my $out = `tools/migrate @{[ map { "'$_'" } @args ]} 2>&1`;
    return ($? >> 8, $out);
}

sub fails {
    my ($sql, $re, $what) = @_;
    my $err = eval { $pg->psql($sql); '' } // $@;
    like($err, $re, $what);
}

subtest 'tools/migrate applies sql/ and applying it again changes nothing' => sub {
    my ($rc, $out) = migrate('--check', $pg->conninfo);
    is($rc, 1, '--check on an empty database: older than sql/');
    like($out, qr/database schema version 0, sql\/ has 3/, 'and says so');

    ($rc, $out) = migrate($pg->conninfo);
    is($rc, 0, 'applied') or diag $out;
    like($out, qr/applying 001_crm\.sql.*applying 002_whatsapp\.sql.*applying 003_transcribe\.sql.*schema version 3/s,
         'versions 1 to 3');
    my $tables = $pg->psql(q{SELECT string_agg(tablename, ' ' ORDER BY tablename)
                             FROM pg_tables WHERE schemaname = 'public'});
    is($tables, 'business_numbers businesses call_events calls customers message_statuses '
                . 'messages recordings schema_version threads transcripts', 'every table');
    my $before = $pg->psql(q{SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'});

    ($rc, $out) = migrate($pg->conninfo);
    is($rc, 0, 'applied again') or diag $out;
    unlike($out, qr/NOTICE|ERROR/, 'quietly');
    is($pg->psql('SELECT count(*) FROM schema_version'), 3, 'one row per version');
    is($pg->psql(q{SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'}), $before,
       'no index added twice');
    is($pg->psql('SELECT count(*) FROM businesses WHERE is_default'), 1, 'one default business');
    ($rc) = migrate('--check', $pg->conninfo);
    is($rc, 0, '--check: up to date');
    unlike(join('', map { `cat $_` } glob 'sql/*.sql'), qr/\bDROP\b/i, 'no migration drops anything');
};

subtest 'what makes writes idempotent is enforced by the database' => sub {
    $pg->psql(q{INSERT INTO customers (business_id, phone)
                SELECT id, '+15551230000' FROM businesses WHERE is_default});
    fails(q{INSERT INTO customers (business_id, phone)
            SELECT id, '+15551230000' FROM businesses WHERE is_default},
          qr/customers_business_phone/, 'one customer per business and phone');

    my $key = q{'CA00000000000000000000000000000001:incoming'};
    $pg->psql(qq{INSERT INTO call_events (call_sid, event, at, idempotency_key)
                 VALUES ('CA00000000000000000000000000000001', 'incoming', now(), $key)});
    fails(qq{INSERT INTO call_events (call_sid, event, at, idempotency_key)
             VALUES ('CA00000000000000000000000000000001', 'incoming', now(), $key)},
          qr/call_events_idempotency_key/, 'one event per idempotency key');
    is($pg->psql(qq{INSERT INTO call_events (call_sid, event, at, idempotency_key)
                    VALUES ('CA00000000000000000000000000000001', 'incoming', now(), $key)
                    ON CONFLICT ON CONSTRAINT call_events_idempotency_key DO NOTHING
                    RETURNING id}), '', 'a replay adds nothing');

    $pg->psql(q{INSERT INTO threads (business_id, customer_id)
                SELECT business_id, id FROM customers});
    my $msg = q{INSERT INTO messages (thread_id, provider, provider_msg_id, direction, body)
                SELECT id, 'twilio', 'SM1', 'inbound', 'hi' FROM threads};
    $pg->psql($msg);
    fails($msg, qr/messages_provider_msg/, 'one message per provider and provider id');
    $pg->psql(q{INSERT INTO messages (thread_id, provider, direction, body)
                SELECT id, 'baileys', 'outbound', 'queued 1' FROM threads});
    $pg->psql(q{INSERT INTO messages (thread_id, provider, direction, body)
                SELECT id, 'baileys', 'outbound', 'queued 2' FROM threads});
    is($pg->psql(q{SELECT count(*) FROM messages WHERE provider_msg_id IS NULL}), 2,
       'outbound messages not yet sent have no provider id, and may be many');

    fails(q{INSERT INTO calls (call_sid) VALUES ('CAnot-a-sid')}, qr/calls_call_sid/,
          'a CallSid is CA + 32 hex digits');
    fails(q{INSERT INTO business_numbers (number, business_id)
            SELECT '0501234567', id FROM businesses WHERE is_default},
          qr/business_numbers_e164/, 'a business number is E.164');
    fails(q{INSERT INTO recordings (call_sid) VALUES ('CA00000000000000000000000000000001')},
          qr/recordings_source/, 'a recording is a RecordingSid or a WAV');
};

subtest 'a call status ranks, so an update can refuse to move it backwards' => sub {
    is($pg->psql(q{SELECT string_agg(agentlocator_call_status_rank(s)::text, ' ')
                   FROM unnest(ARRAY['queued','ringing','in-progress','completed',
                                     'busy','failed','no-answer','canceled','bogus']) s}),
       '0 1 2 3 3 3 3 3 0', 'queued < ringing < in-progress < every final status');
};

subtest 'text is stored verbatim: Hebrew, quotes, backslashes, SQL' => sub {
    my $name = q{דנה כהן 'O''Brien'; DROP TABLE calls; -- \\ "x"};
    # the test's own literal is quoted for psql; the module binds parameters
    (my $lit = $name) =~ s/'/''/g;
    utf8::encode(my $bytes = $lit);
    $pg->psql(qq{UPDATE customers SET name = '$bytes'});
    my $got = $pg->psql('SELECT name FROM customers');
    utf8::decode($got);
    is($got, $name, 'read back as written');
    is($pg->psql('SELECT count(*) FROM calls'), 0, 'and calls is still there');
};

ok($pg->stop, 'PostgreSQL stopped');

done_testing();
