# agentlocator_metrics (SPEC §9): Prometheus's text format that passes
# `promtool check metrics`, the same sums whichever of two workers answers,
# values that move as calls, streams, bad frames, redirects and CRM writes
# happen, and counters that outlive a reload and a killed worker (the
# transcriptions' counts move in t/064 and t/065; here, their family).  First
# what `nginx -t` says of a misplaced directive and the simplest answers
# (blocks, as in t/015), then scenarios on a real master with two workers
# (t/lib/Test/AgentLocator/Server.pm, as in t/030 and t/052).
use lib 't/lib';
use Test::AgentLocator::Nginx 'no_plan';
use strict;
use warnings;
use Test::More ();
use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Calls;
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Server;
use Test::AgentLocator::Twilio qw(form call_sid);
use Test::AgentLocator::WebSocket;

our $TYPE = 'text/plain; version=0.0.4; charset=utf-8';
our $PROMTOOL = '/usr/bin/promtool';

run_tests();

*wait_until = \&Test::AgentLocator::Calls::wait_until;

# ---------------------------------------------------------------------------
# Scraping

# One answer: { worker, body, type, v => { 'name{labels}' => value } }
sub scrape {
    my ($s) = @_;
    my $r = $s->request('GET /metrics');
    die "GET /metrics: $r->{status} $r->{body}" unless $r->{status} == 200;
    my %v = map { /^(\S+) (\S+)$/ ? ($1 => $2) : () }
            grep { !/^#/ } split /\n/, $r->{body};
    return { worker => $r->{worker}, body => $r->{body},
             type => $r->{headers}{'content-type'}, v => \%v };
}

# promtool check metrics on an answer; fails with what promtool said
sub promtool_ok {
    my ($body, $what) = @_;
    if (!-x $PROMTOOL) {
        fail("$what: promtool check metrics");
        diag("$PROMTOOL not found (Debian: prometheus; `make deps` installs it)");
        return;
    }
    my $dir = tempdir('metrics-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    open my $fh, '>', "$dir/body" or die $!;
    print $fh $body;
    close $fh;
    my $out = `$PROMTOOL check metrics < $dir/body 2>&1`;
    ok($? == 0, "$what: promtool check metrics") or diag("promtool:\n$out");
}

# Answers until each of the two workers gave two; every one must carry the
# same values, and pass promtool.  Returns the values.
sub agreed {
    my ($s, $what) = @_;
    my (%by, @answers);
    for (1 .. 200) {
        my $a = scrape($s);
        push @answers, $a;
        $by{ $a->{worker} }++;
        last if keys %by >= 2 && !grep { $_ < 2 } values %by;
    }
    is(scalar keys %by, 2, "$what: both workers answered");
    my $first = $answers[0]{v};
    my @differ;
    for my $a (@answers[1 .. $#answers]) {
        for my $k (sort keys %{ { %$first, %{ $a->{v} } } }) {
            my ($x, $y) = ($first->{$k} // '-', $a->{v}{$k} // '-');
            push @differ, "$k: $x (worker $answers[0]{worker}) vs $y "
                          . "(worker $a->{worker})" if $x ne $y;
        }
    }
    ok(!@differ, "$what: every answer has the same sums")
        or diag(join "\n", @differ[0 .. ($#differ > 20 ? 20 : $#differ)]);
    is($answers[0]{type}, $::TYPE, "$what: Content-Type");
    promtool_ok($answers[0]{body}, $what);
    return $first;
}

# until $cond->(values) holds for an answer (within $secs), then agreed();
# with moving => 1 (gauges that change from one answer to the next) that
# answer is checked by promtool and returned
sub wait_metrics {
    my ($s, $what, $cond, $secs, %o) = @_;
    my $last;
    my $ok = wait_until(sub { $last = scrape($s); $cond->($last->{v}) }, $secs // 10);
    ok($ok, "$what: reached") or diag(join "\n",
        map { "$_ $last->{v}{$_}" } grep { $last->{v}{$_} } sort keys %{ $last->{v} });
    if ($o{moving}) {
        promtool_ok($last->{body}, $what);
        return $last->{v};
    }
    return agreed($s, $what);
}

# the samples of one family whose value is not 0, as "labels=value ..."
sub nonzero {
    my ($v, $family) = @_;
    return join ' ', map { my $k = $_; $k =~ s/^\Q$family\E//; "$k=$v->{$_}" }
                     grep { /^\Q$family\E(\{|$)/ && $v->{$_} != 0 } sort keys %$v;
}

sub pid_of_stream {
    my ($s, $n) = @_;
    my $sid = call_sid($n);
    my ($pid) = $s->error_log =~ /(\d+)#\d+: [^\n]*WS_START call=$sid/;
    return $pid;
}

# ---------------------------------------------------------------------------
# The protocol errors' labels are the codec's reasons, looked up by their
# words: a reason reworded or added in the codec must be added there too,
# or it is counted as "other"

Test::More::subtest('every reason the frame codec gives has its own label' => sub {
    my $slurp = sub { open my $fh, '<', $_[0] or die "$_[0]: $!"; local $/; <$fh> };
    my $codec = $slurp->('src/ngx_agentlocator_ws_codec.c');
    my $metrics = $slurp->('src/ngx_agentlocator_metrics.c');
    my %reasons;
    while ($codec =~ /ngx_agentlocator_ws_fail\(p,\s*\w+,((?:\s*"[^"]*")+)\s*\)/g) {
        (my $words = $1) =~ s/"\s*"//g;
        $words =~ s/^\s*"|"$//g;
        $reasons{$words} = 1;
    }
    cmp_ok(scalar keys %reasons, '>=', 10, 'the codec\'s reasons found');
    my @missing = grep { $metrics !~ /\{ "\Q$_\E", "[a-z_0-9]+" \}/ } sort keys %reasons;
    is("@missing", '', 'each one is in the table of labels');
});

# ---------------------------------------------------------------------------
# Calls, streams, bad frames and redirects

Test::More::subtest('calls, streams, protocol errors and redirects, summed over two workers' => sub {
    my $t = Test::AgentLocator::Calls->new(workers => 2,
        watchdog => 'start_timeout=2s no_media_timeout=5s',
        server => 'location = /metrics { agentlocator_metrics; }',
        server_opts => { listen => 'reuseport' },
        # the first attempt of each call fails with a 500, the next one lands
        mode => { mode => 'fail', fail_times => 1 });
    my $s = $t->server;

    # (each worker publishes from its init_process on)
    my $v = wait_metrics($s, 'at start', sub { $_[0]{agentlocator_workers} == 2 });
    is(nonzero($v, 'agentlocator_calls'), '', 'no calls');
    is($v->{agentlocator_zone_size_bytes}, 4 * 1024 * 1024, 'the zone\'s size');
    is($v->{agentlocator_zone_entries}, 0, 'no entries');
    cmp_ok($v->{agentlocator_zone_used_bytes}, '>', 0, 'the zone\'s tables use pages');
    is(nonzero($v, 'agentlocator_watchdog_redirects_total'), '', 'no redirects');
    ok(!exists $v->{'agentlocator_db_connections{state="ready"}'},
       'no database families without agentlocator_postgres');

    # a call that never streams: at start_timeout a 500, then a redirect
    $t->incoming(2);
    $v = wait_metrics($s, 'the watchdog',
        sub { $_[0]{'agentlocator_watchdog_redirects_total{reason="no_stream_start",outcome="redirected"}'} == 1 });
    is(nonzero($v, 'agentlocator_watchdog_redirects_total'),
       '{reason="no_stream_start",outcome="redirected"}=1 '
       . '{reason="no_stream_start",outcome="retrying"}=1', 'a retry, then the redirect');
    is(nonzero($v, 'agentlocator_watchdog_rest_requests_total'),
       '{result="server_error"}=1 {result="success"}=1', 'REST attempts by result');
    is($v->{agentlocator_watchdog_rest_duration_seconds_count}, 2, 'both in the histogram');
    is($v->{'agentlocator_watchdog_rest_duration_seconds_bucket{le="+Inf"}'}, 2, '+Inf is the count');
    is($v->{'agentlocator_watchdog_rest_duration_seconds_bucket{le="10"}'}, 2,
       'both answered within 10 s');
    cmp_ok($v->{agentlocator_watchdog_rest_duration_seconds_sum}, '<', 10, 'their sum, in seconds');
    is(scalar $t->redirects(2), 2, 'the mock saw the same two');
    is(nonzero($v, 'agentlocator_calls'), '{state="redirected"}=1', 'the call is redirected');

    $t->incoming(1);
    $v = agreed($s, 'a new call');
    is(nonzero($v, 'agentlocator_calls'), '{state="armed"}=1 {state="redirected"}=1',
       'one armed call, one redirected');
    is($v->{agentlocator_zone_entries}, 2, 'two entries');

    my $ws = $t->stream(1);
    $t->media($ws) for 1 .. 10;
    $v = wait_metrics($s, 'a stream',
        sub { $_[0]{'agentlocator_calls{state="streaming"}'} == 1 });
    is(nonzero($v, 'agentlocator_calls'),
       '{state="redirected"}=1 {state="streaming"}=1', 'one streaming, one redirected');
    is($v->{agentlocator_media_streams_open}, 1, 'one stream open');
    is($v->{agentlocator_media_streams_total}, 1, 'one stream accepted');

    $t->stop($ws);
    $ws->close_ws(1000);
    $v = wait_metrics($s, 'the stream ended',
        sub { $_[0]{agentlocator_media_frames_total} == 10
              && $_[0]{agentlocator_media_streams_open} == 0 });
    is($v->{agentlocator_media_bytes_total}, 10 * 160, '160 audio bytes a frame');
    is($v->{'agentlocator_calls{state="stopped"}'}, 1, 'the call stopped');

    # bad frames on the stream URL of call 1: each closes its stream
    my $path = $t->{stream_path}{1};
    my @bad = (
        [reserved_bits   => [rsv => 4, payload => 'x'], 1002],
        [unmasked_frame  => [masked => 0, payload => '{}'], 1002],
        [message_too_big => [payload => 'x' x 70000], 1009],
    );
    for my $b (@bad) {
        my ($reason, $frame, $code) = @$b;
        my $c = Test::AgentLocator::WebSocket->connect($s->{port}, $path);
        is($c->status, 101, "$reason: upgraded");
        $c->send_frame(opcode => 1, @$frame);
        is(scalar $c->recv_close(3), $code, "$reason: closed with $code");
        $c->close_socket;
    }
    $v = wait_metrics($s, 'three protocol errors',
        sub { $_[0]{agentlocator_media_streams_open} == 0
              && $_[0]{agentlocator_media_streams_total} == 4 });
    is(nonzero($v, 'agentlocator_media_protocol_errors_total'),
       '{reason="message_too_big"}=1 {reason="reserved_bits"}=1 {reason="unmasked_frame"}=1',
       'counted by reason, none as "other"');

    is(nonzero($v, 'agentlocator_calls'),
       '{state="redirected"}=1 {state="stopped"}=1', 'the calls\' states');

    # counters are the zone's: a reload and a killed worker keep them
    my %before = map { $_ => $v->{$_} } grep { /_total|_count|_bucket|_sum|^agentlocator_calls/ } keys %$v;
    $s->reload;
    $v = agreed($s, 'after a reload');
    is_deeply({ map { $_ => $v->{$_} } keys %before }, \%before, 'a reload keeps every counter');
    is($v->{agentlocator_workers}, 2, 'the new workers publish, the old ones are gone');

    $s->kill_worker(($s->workers)[0]);
    $v = agreed($s, 'after a killed worker');
    is_deeply({ map { $_ => $v->{$_} } keys %before }, \%before, 'so does a killed worker');
    is($v->{agentlocator_workers}, 2, 'its successor took its slot');

    # an old worker that drains a stream after a reload keeps its slot
    $t->incoming(3);
    $ws = $t->stream(3);
    $t->media($ws) for 1 .. 3;
    $s->reload(keep_old => 1);
    # until the old worker without a stream has gone: before it has seen
    # the master's QUIT it may still take a connection, and answer as a
    # fourth worker (seen under load)
    ok(wait_until(sub { scalar($s->workers) == 3 }, 15), 'the old worker without a stream has exited');
    $v = wait_metrics($s, 'a reload with a stream open',
        sub { $_[0]{agentlocator_workers} == 3 });
    is($v->{agentlocator_media_streams_open}, 1, 'its stream is counted');
    $t->media($ws) for 1 .. 3;
    $t->stop($ws);
    $ws->close_ws(1000);
    $v = wait_metrics($s, 'the old worker gone',
        sub { $_[0]{agentlocator_workers} == 2 && $_[0]{agentlocator_media_streams_open} == 0 }, 15);
    is($v->{agentlocator_media_frames_total}, 16, 'its frames are in the total');

    # a worker killed with a stream open: its count leaves with it
    $t->incoming(4);
    $ws = $t->stream(4);
    $t->media($ws) for 1 .. 3;
    # (open from the upgrade on; "streaming" only once its start is read)
    $v = wait_metrics($s, 'another stream',
        sub { $_[0]{agentlocator_media_streams_open} == 1
              && $_[0]{'agentlocator_calls{state="streaming"}'} == 1 });
    my $holder;
    ok(wait_until(sub { $holder = pid_of_stream($s, 4) }, 5),
       "the stream's worker: WS_START logged by " . ($holder // 'none'));
    my $open = sub { decode_json($s->request('GET /status')->{body})->{websocket}{open} };
    is($open->(), 1, '/status counts it too');
    $s->kill_worker($holder);
    $v = wait_metrics($s, 'its worker killed',
        sub { $_[0]{agentlocator_workers} == 2 });
    is($v->{agentlocator_media_streams_open}, 0, 'a dead worker\'s stream is not counted');
    is(join(' ', map { $open->() } 1 .. 6), '0 0 0 0 0 0', 'nor by /status, whichever worker answers');
    $ws->close_socket;
    ok($s->stop, 'stopped');
});

Test::More::subtest('a killed worker\'s counter taken over by the next: from zero' => sub {
    # one worker: the one that replaces it takes the dead one's slot, the
    # only one that is free, and must not inherit the stream it counted
    my $t = Test::AgentLocator::Calls->new(workers => 1, watchdog => 'off');
    my $s = $t->server;
    my $open = sub { decode_json($s->request('GET /status')->{body})->{websocket}{open} };
    $t->incoming(1);
    my $ws = $t->stream(1);
    $t->media($ws);
    ok(wait_until(sub { $open->() == 1 }, 5), 'a stream open');
    my ($worker) = $s->workers;
    $s->kill_worker($worker);
    is($open->(), 0, 'its worker killed: none');
    $ws->close_socket;
    $t->incoming(2);
    my $ws2 = $t->stream(2);
    $t->media($ws2);
    ok(wait_until(sub { $open->() >= 1 }, 5), 'a stream in the new worker');
    is(join(' ', map { $open->() } 1 .. 3), '1 1 1', 'counted once, not with the dead one\'s');
    $t->stop($ws2);
    $ws2->close_ws(1000);
    ok(wait_until(sub { $open->() == 0 }, 5), 'and none when it ends');
    ok($s->stop, 'stopped');
});

# ---------------------------------------------------------------------------
# The database, the CRM's writes and the spool

Test::More::subtest('the database pool, CRM writes and the spool' => sub {
    my $pg = Test::AgentLocator::Postgres->new
        or return Test::More::plan(skip_all => Test::AgentLocator::Postgres->why_not);
    system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';
    my $spool = tempdir('spool-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0777, $spool;
    my $s = Test::AgentLocator::Server->new(workers => 2, listen => 'reuseport',
        http => <<"_EOC_", server => <<'_EOC_');
    agentlocator_zone calls 4m;
    agentlocator_public_url https://voice.example.com;
    agentlocator_watchdog off;
    agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_spool $spool;
    agentlocator_transcribe_url http://127.0.0.1:9/v1/audio/transcriptions sweep=off;
_EOC_
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location = /readyz { agentlocator_health ready; }
    location = /metrics { agentlocator_metrics; }
_EOC_
    my $ready = 'agentlocator_db_connections{state="ready"}';
    my $done = 'agentlocator_crm_writes_total{result="done"}';

    my $v = wait_metrics($s, 'the pools connected', sub { $_[0]{$ready} == 4 });
    is(nonzero($v, 'agentlocator_db_connections'), '{state="ready"}=4',
       'two connections in each worker, all ready');
    is($v->{agentlocator_db_writes_queued}, 0, 'nothing queued');
    is($v->{agentlocator_spool_bytes}, 0, 'nothing spooled');
    is(join(' ', grep { /^agentlocator_transcriptions_total/ } sort keys %$v),
       join(' ', map { qq{agentlocator_transcriptions_total{result="$_"}} }
                 sort qw(transcribed retried failed given_up resumed abandoned skipped)),
       'with agentlocator_transcribe_url: every transcription result');
    is(nonzero($v, 'agentlocator_transcriptions_total'), '', 'each at 0 from the start');

    my $calls = sub {
        for my $n (@_) {
            for my $w (['incoming_call', From => '+15550001111', To => '+15550002222'],
                       ['call_status', CallStatus => 'completed', CallDuration => 9]) {
                my ($hook, @kv) = @$w;
                my $r = $s->request("POST /webhook/$hook",
                    headers => ['Content-Type: application/x-www-form-urlencoded'],
                    body => form(CallSid => call_sid($n), @kv));
                die "$hook $n: $r->{status}" unless $r->{status} == 200;
            }
        }
    };
    # /readyz's "written" of each worker, summed: the pools' own count
    my $written = sub {
        my %seen;
        for (1 .. 100) {
            my $r = $s->request('GET /readyz');
            $seen{ $r->{worker} } = decode_json($r->{body})->{database}{written};
            last if keys %seen == 2;
        }
        my $sum = 0;
        $sum += $_ for values %seen;
        return $sum;
    };

    $calls->(1 .. 3);
    $v = wait_metrics($s, 'three calls written',
        sub { $_[0]{$done} > 0 && $_[0]{agentlocator_db_writes_queued} == 0
              && $_[0]{agentlocator_db_in_flight} == 0
              && $pg->psql("SELECT count(*) FROM calls WHERE status = 'completed'") == 3 });
    is($v->{$done}, $written->(), 'done: the sum of the workers\' own counts');
    is($v->{'agentlocator_crm_writes_total{result="failed"}'}, 0, 'none failed');

    # connections go through their states while it is away: no two
    # answers need agree then
    ok($pg->stop, 'the database stops');
    $v = wait_metrics($s, 'the database away', sub { $_[0]{$ready} == 0 }, 10,
                      moving => 1);
    $calls->(4);
    $v = wait_metrics($s, 'a call while it is away',
        sub { $_[0]{agentlocator_spool_bytes} > 0 && $_[0]{agentlocator_db_writes_queued} > 0 },
        10, moving => 1);
    cmp_ok($v->{agentlocator_spool_files}, '>=', 1, 'in a journal');
    my $before = $v->{$done};

    ok($pg->start, 'the database is back');
    $v = wait_metrics($s, 'the backlog written',
        sub { $_[0]{$ready} == 4 && $_[0]{agentlocator_db_writes_queued} == 0
              && $_[0]{agentlocator_spool_bytes} == 0 }, 45);
    cmp_ok($v->{$done}, '>', $before, 'the waiting writes are done');
    is($v->{$done}, $written->(), 'done: still the workers\' own counts');
    ok($s->stop, 'stopped');
});

__DATA__

=== TEST 1: agentlocator_metrics is a location's handler, not the http block's
--- http_config
    agentlocator_metrics;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_metrics" directive is not allowed here/



=== TEST 2: nor a server's
--- config
    agentlocator_metrics;
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_metrics" directive is not allowed here/



=== TEST 3: it takes no argument
--- config
    location = /metrics { agentlocator_metrics on; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid number of arguments in "agentlocator_metrics" directive/



=== TEST 4: once per location
--- config
    location = /metrics { agentlocator_metrics; agentlocator_metrics; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_metrics" directive is duplicate/



=== TEST 5: not beside another handler
--- http_config
    agentlocator_zone calls 1m;
--- config
    location = /metrics { agentlocator_status; agentlocator_metrics; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"agentlocator_metrics" directive conflicts with another content handler in this location/



=== TEST 6: a registry zone cannot take the metrics zone's name
--- http_config
    agentlocator_zone agentlocator_metrics 1m;
--- config
    location = /metrics { agentlocator_metrics; }
--- must_die
--- error_log eval
qr/\[emerg\] .*an agentlocator_zone is named "agentlocator_metrics", the name of the metrics' own zone: give it another name/



=== TEST 7: without a zone or a database: the workers and the watchdog's families
--- config
    location = /metrics { agentlocator_metrics; }
--- request
GET /metrics
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
Cache-Control: no-store
--- response_body_like eval
qr/\A# HELP agentlocator_workers .*\n# TYPE agentlocator_workers gauge\nagentlocator_workers 1\n# HELP agentlocator_watchdog_redirects_total .*\nagentlocator_watchdog_rest_duration_seconds_count 0\n\z/s
--- no_error_log
[error]



=== TEST 8: a second location answers too (the same zone)
--- config
    location = /metrics { agentlocator_metrics; }
    location = /private/metrics { agentlocator_metrics; }
--- request
GET /private/metrics
--- response_body_like eval
qr/^agentlocator_workers 1$/m
--- no_error_log
[error]



=== TEST 9: HEAD: the headers only
--- config
    location = /metrics { agentlocator_metrics; }
--- request
HEAD /metrics
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
--- response_body
--- no_error_log
[error]



=== TEST 10: other methods: 405
--- config
    location = /metrics { agentlocator_metrics; }
--- request
POST /metrics
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- no_error_log
[error]
