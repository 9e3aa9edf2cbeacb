# A full registry: evict what is finished, else log ZONE_FULL and still
# answer the call (it proceeds unprotected; never a 5xx).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::AgentLocator::Server;
use Test::AgentLocator::Twilio qw(form call_sid);

my $HTTP = <<'_EOC_';
    agentlocator_zone calls 32k;
    agentlocator_public_url https://voice.example.com;
_EOC_

my $SERVER = <<'_EOC_';
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location = /status                { agentlocator_status; }
_EOC_

my $FORM = 'Content-Type: application/x-www-form-urlencoded';

sub incoming {
    my ($s, $n) = @_;
    $s->request('POST /webhook/incoming_call', headers => [$FORM],
                body => form(CallSid => call_sid($n)));
}

sub zone {
    my ($s) = @_;
    my $body = $s->request('GET /status')->{body};
    my %z = $body =~ /"(entries|capacity|full|evicted)":(\d+)/g;
    return \%z;
}

sub fill {
    my ($s, $first, $last) = @_;
    my $ok = 0;
    for my $n ($first .. $last) {
        my $r = incoming($s, $n);
        $ok++ if $r->{status} == 200
                 && $r->{body} =~ /<Parameter name="call_sid" value="${\ call_sid($n)}"\/>/;
    }
    return $ok;
}

subtest 'calls past capacity are answered with TwiML and logged ZONE_FULL' => sub {
    my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                            server => $SERVER);
    my $cap = zone($s)->{capacity};
    cmp_ok($cap, '>=', 16, "a 32k zone holds $cap calls");

    is(fill($s, 1, $cap + 8), $cap + 8, 'every call got its TwiML');
    my $z = zone($s);
    is($z->{entries}, $cap, 'the zone is full');
    is($z->{full}, 8, 'eight calls did not fit');
    is($z->{evicted}, 0, 'nothing live was evicted');

    my $log = $s->error_log;
    my $first = call_sid($cap + 1);
    like($log, qr/\[error\] .*ZONE_FULL call=$first: agentlocator_zone has no room, the call proceeds without the watchdog/,
         'ZONE_FULL names the first call that did not fit');
    my $fits = call_sid($cap);
    unlike($log, qr/ZONE_FULL call=$fits/, 'and not the last that did');
    unlike($log, qr/\[(alert|crit)\]/, 'no slab allocation alerts');
    ok($s->stop, 'stopped');
};

subtest 'a completed call makes room for a new one' => sub {
    my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                            server => $SERVER);
    my $cap = zone($s)->{capacity};
    is(fill($s, 1, $cap), $cap, 'zone filled');

    my $r = $s->request('POST /webhook/call_status', headers => [$FORM],
                        body => form(CallSid => call_sid(5),
                                     CallStatus => 'completed'));
    is($r->{body}, "OK\n", 'call 5 completed');

    is(fill($s, $cap + 1, $cap + 1), 1, 'a new call is answered');
    my $z = zone($s);
    is_deeply([@$z{qw(entries full evicted)}], [$cap, 0, 1],
              'registered by evicting the completed call, no ZONE_FULL');
    ok($s->stop, 'stopped');
};

subtest 'a repeated webhook for a registered call needs no room' => sub {
    my $s = Test::AgentLocator::Server->new(workers => 1, http => $HTTP,
                                            server => $SERVER);
    my $cap = zone($s)->{capacity};
    is(fill($s, 1, $cap), $cap, 'zone filled');
    is(fill($s, 7, 7), 1, 'call 7 again is answered');
    is(zone($s)->{full}, 0, 'without ZONE_FULL');
    ok($s->stop, 'stopped');
};

done_testing();
