# The watchdog (SPEC §6) against a mock of Twilio's REST API: exactly one
# redirect per silent call across workers, reloads and killed workers;
# retries on 5xx/429/network errors, none after 21220.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Server;
use Test::AgentLocator::TwilioMock;
use Test::AgentLocator::Twilio qw(form call_sid);
use Test::AgentLocator::WebSocket;
use Test::AgentLocator::Calls ();

my $ACCOUNT = 'AC' . '1' x 32;
my $CALLER_ACCOUNT = 'AC' . '2' x 32;
my $FORM = 'Content-Type: application/x-www-form-urlencoded';
my $FALLBACK = qq{<?xml version="1.0" encoding="UTF-8"?>\n}
    . q{<Response><Play>https://voice.example.com/static/tts/fallback.mp3</Play>}
    . q{<Record action="https://voice.example.com/webhook/handle_recording" }
    . qq{playBeep="false" timeout="4" maxLength="30"/></Response>\n};

sub setup {
    my (%o) = @_;
    my $mock = Test::AgentLocator::TwilioMock->new;
    $mock->mode(%{ $o{mode} }) if $o{mode};
    my $api = $o{api} // $mock->url;
    my $wd = $o{watchdog} // 'start_timeout=1s no_media_timeout=1s interval=50ms';
    my $s = Test::AgentLocator::Server->new(workers => $o{workers} // 1,
        http => <<"_EOC_", server => <<'_EOC_');
    agentlocator_zone calls 4m;
    agentlocator_public_url https://voice.example.com;
    agentlocator_twilio_account_sid $ACCOUNT;
    agentlocator_twilio_auth_token secret-token;
    agentlocator_twilio_api_url $api;
    agentlocator_watchdog $wd;
    agentlocator_fallback_prompt /static/tts/fallback.mp3;
_EOC_
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/stream_ended  { agentlocator_voice stream_ended; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location /ws/twilio-media/        { agentlocator_media_stream; }
    location = /status                { agentlocator_status; }
_EOC_
    return ($s, $mock);
}

# the stream URL each call's TwiML named
my %stream_path;

sub incoming {
    my ($s, $n) = @_;
    my $r = $s->request('POST /webhook/incoming_call', headers => [$FORM],
        body => form(CallSid => call_sid($n), AccountSid => $CALLER_ACCOUNT));
    $stream_path{$n} = Test::AgentLocator::WebSocket::stream_path($r->{body});
    return $r->{status};
}

# (true once $cond is, within $secs)
*wait_until = \&Test::AgentLocator::Calls::wait_until;

sub once_each {
    my ($mock, @n) = @_;
    my $by = $mock->by_call;
    my @bad = grep { @{ $by->{call_sid($_)} // [] } != 1 } @n;
    diag('calls not redirected exactly once: '
         . join ' ', map { "$_ x" . scalar @{ $by->{call_sid($_)} // [] } } @bad) if @bad;
    return !@bad;
}

subtest 'no stream: one redirect at start_timeout, with the fallback TwiML' => sub {
    my ($s, $mock) = setup();
    my $t0 = time;
    is(incoming($s, 1), 200, 'incoming_call answered');
    ok(wait_until(sub { @{ $mock->requests } }, 3), 'the mock got a request');
    sleep 2.5;    # nothing more may follow, past the retries' backoff (500 ms, doubled)
    my $reqs = $mock->requests;
    is(scalar @$reqs, 1, 'exactly one');
    my $r = $reqs->[0];
    my $late = $r->{time} - $t0;
    cmp_ok($late, '>=', 0.95, sprintf('not before start_timeout (%.3f s)', $late));
    cmp_ok($late, '<', 1.0 + 0.2 + 0.1, 'within start_timeout + 200 ms (+ the request)');
    is($r->{path}, "/2010-04-01/Accounts/$CALLER_ACCOUNT/Calls/" . call_sid(1) . '.json',
       "POST to the call's own account");
    is($r->{auth}, 'Basic ' . encode_base64("$ACCOUNT:secret-token", ''),
       'HTTP Basic with our account SID and token');
    is($r->{content_type}, 'application/x-www-form-urlencoded', 'a form');
    is_deeply($r->{form}, { Twiml => [$FALLBACK] }, 'Twiml= the fallback, nothing else');

    my $c = $s->call(1);
    is($c->{state}, 'redirected', 'the call is redirected');
    is_deeply($c->{redirect}, { attempts => 1, reason => 'no_stream_start',
                                outcome => 'done', status => 200 }, 'and its record');
    like($s->error_log, qr/WATCHDOG_REDIRECT call=${\ call_sid(1)} reason=no_stream_start attempt=1 status=200 /,
         'WATCHDOG_REDIRECT logged');

    my $res = $s->request('POST /webhook/stream_ended', headers => [$FORM],
                          body => form(CallSid => call_sid(1)));
    is($res->{body}, qq{<?xml version="1.0" encoding="UTF-8"?>\n<Response/>\n},
       'stream_ended after the redirect answers an empty <Response/>');
    unlike($s->error_log, qr/secret-token/, 'the token is never logged');
    ok($s->stop, 'stopped');
};

subtest 'media stops: one no_media redirect; a healthy stream gets none' => sub {
    my ($s, $mock) = setup();
    is(incoming($s, $_), 200, "call $_") for 2, 3;
    my $stalls = Test::AgentLocator::WebSocket->connect($s->{port}, $stream_path{2});
    my $healthy = Test::AgentLocator::WebSocket->connect($s->{port}, $stream_path{3});
    $stalls->twilio_start(2, account => $CALLER_ACCOUNT);
    $healthy->twilio_start(3, account => $CALLER_ACCOUNT);
    my $t0 = time;
    my $seq = 1;
    while (time - $t0 < 2.6) {
        $seq++;
        $stalls->twilio_media(2, $seq) if time - $t0 < 0.3;
        $healthy->twilio_media(3, $seq);
        sleep 0.02;
    }
    my $by = $mock->by_call;
    is(scalar @{ $by->{call_sid(2)} // [] }, 1, 'the stalled stream: one redirect');
    is(scalar @{ $by->{call_sid(3)} // [] }, 0, 'the healthy stream: none');
    like($s->error_log, qr/WATCHDOG_REDIRECT call=${\ call_sid(2)} reason=no_media attempt=1 status=200/,
         'reason=no_media');
    $_->close_ws for $stalls, $healthy;
    ok($s->stop, 'stopped');
};

subtest 'a completed call is never redirected' => sub {
    my ($s, $mock) = setup();
    is(incoming($s, 4), 200, 'incoming_call');
    $s->request('POST /webhook/call_status', headers => [$FORM],
                body => form(CallSid => call_sid(4), CallStatus => 'completed'));
    sleep 1.6;
    is(scalar @{ $mock->requests }, 0, 'no request');
    ok($s->stop, 'stopped');
};

for my $workers (2, 4) {
    subtest "$workers workers: each silent call redirected exactly once" => sub {
        my ($s, $mock) = setup(workers => $workers);
        is(scalar(grep { incoming($s, $_) == 200 } 1 .. 40), 40, '40 calls answered');
        ok(wait_until(sub { keys %{ $mock->by_call } == 40 }, 5), 'all 40 redirected');
        sleep 0.5;
        ok(once_each($mock, 1 .. 40), 'each exactly once');
        my %claimed_by = map { /(\d+)#\d+: WATCHDOG_REDIRECT/ ? ($1 => 1) : () }
                         split /\n/, $s->error_log;
        note('redirects made by workers: ' . join ' ', sort keys %claimed_by);
        ok($s->stop, 'stopped');
    };
}

subtest '500, 500, 200: three attempts, then redirected' => sub {
    my ($s, $mock) = setup(mode => { mode => 'fail', fail_times => 2 });
    is(incoming($s, 5), 200, 'incoming_call');
    ok(wait_until(sub { ($s->call(5) // {})->{state} eq 'redirected' }, 8),
       'redirected in the end');
    my $reqs = $mock->by_call->{call_sid(5)};
    is(scalar @$reqs, 3, 'three attempts');
    my @gaps = map { $reqs->[$_]{time} - $reqs->[$_ - 1]{time} } 1 .. 2;
    cmp_ok($gaps[0], '>=', 0.2, sprintf('backed off before the 2nd (%.2f s)', $gaps[0]));
    cmp_ok($gaps[1], '>=', 0.4, sprintf('longer before the 3rd (%.2f s)', $gaps[1]));
    is_deeply($s->call(5)->{redirect}, { attempts => 3, reason => 'no_stream_start',
                                            outcome => 'done', status => 200 }, 'recorded');
    my $log = $s->error_log;
    like($log, qr/WATCHDOG_REDIRECT call=${\ call_sid(5)} reason=no_stream_start attempt=$_ status=500 .*retrying/,
         "attempt $_: 500, retrying") for 1, 2;
    like($log, qr/WATCHDOG_REDIRECT call=${\ call_sid(5)} reason=no_stream_start attempt=3 status=200 /,
         'attempt 3: 200');
    ok($s->stop, 'stopped');
};

subtest '429 with Retry-After is honoured' => sub {
    my ($s, $mock) = setup(mode => { mode => '429', retry_after => 2 });
    is(incoming($s, 6), 200, 'incoming_call');
    ok(wait_until(sub { @{ $mock->by_call->{call_sid(6)} // [] } == 2 }, 6), 'a second attempt');
    my $reqs = $mock->by_call->{call_sid(6)};
    my $gap = $reqs->[1]{time} - $reqs->[0]{time};
    cmp_ok($gap, '>=', 1.95, sprintf('after Retry-After: 2 (%.2f s)', $gap));
    ok(wait_until(sub { ($s->call(6) // {})->{state} eq 'redirected' }, 2), 'redirected');
    ok($s->stop, 'stopped');
};

subtest '21220: one attempt, recorded as given up, the call is over' => sub {
    my ($s, $mock) = setup(mode => { mode => '21220' });
    is(incoming($s, 7), 200, 'incoming_call');
    ok(wait_until(sub { ($s->call(7) // {})->{state} eq 'completed' }, 4), 'completed');
    sleep 1;
    is(scalar @{ $mock->by_call->{call_sid(7)} // [] }, 1, 'exactly one attempt');
    is_deeply($s->call(7)->{redirect}, { attempts => 1, reason => 'no_stream_start',
                                            outcome => 'gave_up', status => 400 }, 'gave up');
    like($s->error_log, qr/WATCHDOG_REDIRECT call=${\ call_sid(7)} .*status=400 code=21220 .*no longer live/,
         'logged with the code');
    ok($s->stop, 'stopped');
};

subtest 'another 4xx: no retry' => sub {
    my ($s, $mock) = setup(mode => { mode => '400' });
    is(incoming($s, 8), 200, 'incoming_call');
    ok(wait_until(sub { (($s->call(8) // {})->{redirect} // {})->{outcome} eq 'gave_up' }, 4),
       'gave up');
    sleep 1;
    is(scalar @{ $mock->by_call->{call_sid(8)} // [] }, 1, 'one attempt');
    is($s->call(8)->{state}, 'stopped', 'the call is left to its <Connect action>');
    ok($s->stop, 'stopped');
};

subtest 'REST unreachable: bounded retries while webhooks keep answering' => sub {
    my $closed = Test::AgentLocator::Server::free_port();
    my ($s, $mock) = setup(api => "http://127.0.0.1:$closed",
        watchdog => 'start_timeout=1s no_media_timeout=1s interval=50ms attempts=3');
    is(incoming($s, 9), 200, 'incoming_call');
    my $answered = 0;
    my $t0 = time;
    while (time - $t0 < 3.5) {
        $answered++ if incoming($s, 100 + $answered) == 200;
        sleep 0.1;
    }
    cmp_ok($answered, '>=', 20, "webhooks kept answering during the retries ($answered)");
    ok(wait_until(sub { (($s->call(9) // {})->{redirect} // {})->{outcome} eq 'gave_up' }, 5),
       'gave up');
    is($s->call(9)->{redirect}{attempts}, 3, 'after exactly 3 attempts');
    like($s->error_log, qr/WATCHDOG_REDIRECT call=${\ call_sid(9)} .*attempt=3 status=error: .*out of attempts/,
         'the last attempt says so');
    ok($s->stop, 'stopped');
};

subtest 'reload during 100 armed calls: each redirected exactly once' => sub {
    my ($s, $mock) = setup(workers => 2);
    is(scalar(grep { incoming($s, $_) == 200 } 1 .. 100), 100, '100 calls armed');
    $s->reload;
    ok(wait_until(sub { keys %{ $mock->by_call } == 100 }, 6), 'all 100 redirected');
    sleep 0.5;
    ok(once_each($mock, 1 .. 100), 'each exactly once');
    ok($s->stop, 'stopped');
};

subtest 'a worker killed with SIGKILL: its calls are redirected exactly once' => sub {
    my ($s, $mock) = setup(workers => 2);
    is(scalar(grep { incoming($s, $_) == 200 } 1 .. 100), 100, '100 calls armed');
    my ($victim) = $s->workers;
    $s->kill_worker($victim);
    ok(wait_until(sub { keys %{ $mock->by_call } == 100 }, 6), 'all 100 redirected');
    sleep 0.5;
    ok(once_each($mock, 1 .. 100), 'each exactly once');
    ok($s->stop, 'stopped');
};

subtest 'a claimant killed mid-request: another worker takes over after the lease' => sub {
    my ($s, $mock) = setup(workers => 1, mode => { mode => 'delay', delay_ms => 3000 },
        watchdog => 'start_timeout=1s no_media_timeout=1s interval=50ms lease=1500ms timeout=1s');
    is(incoming($s, 10), 200, 'incoming_call');
    ok(wait_until(sub { @{ $mock->requests } == 1 }, 3), 'the first attempt is in flight');
    my ($victim) = $s->workers;
    $mock->mode(mode => 'ok');
    $s->kill_worker($victim);
    ok(wait_until(sub { ($s->call(10) // {})->{state} eq 'redirected' }, 6),
       'redirected by the new worker');
    my $reqs = $mock->by_call->{call_sid(10)};
    is(scalar @$reqs, 2, 'the request in flight when its worker died was sent again: '
       . 'a redirect may double, never get lost');
    like($s->error_log, qr/WATCHDOG_CLAIM call=${\ call_sid(10)} reason=no_stream_start attempt=2 late=\d+ takeover=1/,
         'logged as a takeover');
    ok($s->stop, 'stopped');
};

done_testing();
