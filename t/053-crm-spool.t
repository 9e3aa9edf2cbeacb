# The CRM's spool (SPEC §7): no write Twilio was answered about is lost.
# With a real PostgreSQL that is away from the start, killed mid-run, or
# back only after nginx itself was SIGKILLed or reloaded; a journal with a
# torn and a damaged record; a spool whose disk is full.  Every call's rows
# appear exactly once in the end, and the webhooks never wait.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use POSIX ();
use JSON::PP qw(decode_json);
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Postgres;
use Test::AgentLocator::Server;
use Test::AgentLocator::Calls;
use Test::AgentLocator::Twilio qw(form call_sid);

my $pg = Test::AgentLocator::Postgres->new
    or plan skip_all => Test::AgentLocator::Postgres->why_not;
system('tools/migrate', $pg->conninfo) == 0 or die 'migrate';

*wait_until = \&Test::AgentLocator::Calls::wait_until;

my $FORM = 'Content-Type: application/x-www-form-urlencoded';

sub server {
    my ($spool, $params, %o) = @_;
    return Test::AgentLocator::Server->new(workers => $o{workers} // 2, http => <<"_EOC_",
    agentlocator_zone calls 4m;
    agentlocator_public_url https://voice.example.com;
    agentlocator_watchdog off;
    agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_spool $spool @{[ $params // '' ]};
_EOC_
        server => <<'_EOC_');
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location = /readyz { agentlocator_health ready; }
_EOC_
}

sub spool_dir {
    my $dir = tempdir('spool-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0777, $dir;
    return $dir;
}

# incoming_call then call_status for each call; every answer a 200, and
# the slowest of them in ms
sub calls {
    my ($s, @n) = @_;
    my ($bad, $slowest) = (0, 0);
    for my $n (@n) {
        for my $w (['incoming_call', From => '+15550001111', To => '+15550002222'],
                   ['call_status', CallStatus => 'completed', CallDuration => 9]) {
            my ($hook, @kv) = @$w;
            my $t0 = time;
            my $r = $s->request("POST /webhook/$hook", headers => [$FORM],
                                body => form(CallSid => call_sid($n), @kv));
            $slowest = 1000 * (time - $t0) if 1000 * (time - $t0) > $slowest;
            $bad++ unless $r->{status} == 200;
        }
    }
    return ($bad, $slowest);
}

sub in_list { join ',', map { "'" . call_sid($_) . "'" } @_ }

# calls rows and events of calls @n: "calls events"
sub stored {
    my @n = @_;
    my $in = in_list(@n);
    return $pg->psql("SELECT (SELECT count(*) FROM calls WHERE call_sid IN ($in)) || ' ' ||
                             (SELECT count(*) FROM call_events WHERE call_sid IN ($in))");
}

sub wait_stored {
    my ($want, $secs, @n) = @_;
    return wait_until(sub { stored(@n) eq $want }, $secs);
}

# /readyz's spool of each worker, summed
sub spool_total {
    my ($s, $key) = @_;
    my %seen;
    for (1 .. 30) {
        my $r = $s->request('GET /readyz');
        $seen{ $r->{worker} } = decode_json($r->{body})->{spool}{$key};
        last if keys %seen == $s->{workers};
    }
    my $sum = 0;
    $sum += $_ for values %seen;
    return $sum;
}

sub answered_in_time {
    my ($bad, $slowest) = @_;
    is($bad, 0, 'every webhook answered 200');
    # a webhook never waits on the database: far below Twilio's 15 s
    cmp_ok($slowest, '<', 2000, 'no webhook waited') or diag "slowest: $slowest ms";
}

subtest 'the database down from the start: spooled, then every row exactly once' => sub {
    $pg->stop;
    my $dir = spool_dir();
    my $s = server($dir);
    my @n = (1 .. 40);
    answered_in_time(calls($s, @n));
    cmp_ok(spool_total($s, 'bytes'), '>', 0, 'the spool holds the writes');
    $pg->start or die 'pg start';
    ok(wait_stored('40 80', 30, @n), '40 calls, 80 events') or diag stored(@n);
    ok(wait_until(sub { spool_total($s, 'bytes') == 0 }, 5), 'the spool emptied');
    like($s->error_log, qr/CRM_DOWN/, 'the database being away was logged');
    unlike($s->error_log, qr/CRM_LOST|CRM_QUEUE_FULL|SPOOL_WRITE_FAILED/, 'nothing lost');
    ok($s->stop, 'stopped');
    is(join(' ', glob("$dir/*")), '', 'no journal left');
};

subtest 'the database killed mid-run and started again' => sub {
    my $dir = spool_dir();
    my $s = server($dir);
    my @n = (101 .. 160);
    my @res = calls($s, @n[0 .. 19]);
    $pg->stop('immediate');
    my @down = calls($s, @n[20 .. 39]);
    $pg->start or die 'pg start';
    my @up = calls($s, @n[40 .. 59]);
    answered_in_time($res[0] + $down[0] + $up[0],
                     (sort { $b <=> $a } $res[1], $down[1], $up[1])[0]);
    ok(wait_stored('60 120', 30, @n), '60 calls, 120 events') or diag stored(@n);
    ok($s->stop, 'stopped');
};

subtest 'nginx SIGKILLed with writes in its spool: replayed once when it is back' => sub {
    $pg->stop;
    my $dir = spool_dir();
    my $s = server($dir, 'fsync=always');
    my @n = (201 .. 230);
    answered_in_time(calls($s, @n));
    $s->kill_all;
    my @journals = glob("$dir/*.spool");
    ok(@journals >= 1, 'journals on disk: ' . scalar @journals);
    $pg->start or die 'pg start';
    $s->start;
    ok(wait_stored('30 60', 30, @n), '30 calls, 60 events') or diag stored(@n);
    like($s->error_log, qr/SPOOL_ADOPTED file="\Q$dir\E\/\d+-\d+\.spool" bytes=\d+/,
         'the journals were taken over');
    ok(wait_until(sub { !glob("$dir/*.spool") || spool_total($s, 'files') == 0 }, 5),
       'and emptied');
    ok($s->stop, 'stopped');
    is(join(' ', glob("$dir/*")), '', 'no journal left');
};

subtest 'journals left under the names the new workers would give: never written over' => sub {
    # a container started again gives its workers the pids of the last
    # run's: their journals, not yet replayed, carry the names the new
    # workers would give theirs (found by the image's docker-check)
    $pg->stop;
    my $dir = spool_dir();
    my $s = server($dir, 'fsync=always');
    my @old = (701 .. 712);
    answered_in_time(calls($s, @old));
    $s->kill_all;
    my @journals = map { open my $fh, '<:raw', $_ or die $!; local $/; <$fh> } glob("$dir/*.spool");
    ok(@journals >= 1, 'the killed workers\' journals: ' . scalar @journals);
    unlink glob("$dir/*");
    $s->start;
    # each new worker's first name taken by one of the dead run's journals
    my @pids = $s->workers;
    # (whole, then renamed into place: a worker looking for orphans must
    # never find one half written, as it never finds a real one so)
    my ($uid, $gid) = (stat "/proc/$pids[0]")[4, 5];
    for my $i (0 .. $#pids) {
        my $tmp = "$dir/plant-$pids[$i]";
        open my $fh, '>:raw', $tmp or die $!;
        print $fh $journals[$i % @journals];
        close $fh;
        # the workers' own, as a dead run's journals are
        chown $uid, $gid, $tmp;
        chmod 0600, $tmp;
        rename $tmp, "$dir/$pids[$i]-0.spool" or die $!;
    }
    # at once, before the workers' next look for orphans: a first write in
    # each worker, which starts its journal
    my (%wrote, @new);
    for my $n (721 .. 760) {
        my $r = $s->request('POST /webhook/incoming_call', headers => [$FORM],
                            body => form(CallSid => call_sid($n), From => '+15550001111'));
        is($r->{status}, 200, "incoming_call $n") or last;
        push @new, $n;
        $wrote{ $r->{worker} } = 1;
        last if keys %wrote == @pids;
    }
    is(scalar keys %wrote, scalar @pids, 'every worker started a journal');
    # and this run dies too, before the database is back: what the dead
    # run's journals held is on disk under their names, or nowhere
    $s->kill_all;
    $pg->start or die 'pg start';
    $s->start;
    my $want = (12 + @new) . ' ' . (24 + @new);
    ok(wait_stored($want, 30, @old, @new), 'every call of both runs, once')
        or diag(join "\n", "stored: " . stored(@old, @new) . ", wanted $want",
                "planted for " . join(' ', @pids), grep { /SPOOL_|WS_|CRM_/ } split /\n/, $s->error_log);
    unlike($s->error_log, qr/SPOOL_WRITE_FAILED/, 'no journal failed to start');
    ok(wait_until(sub { !glob("$dir/*.spool") || spool_total($s, 'files') == 0 }, 10), 'all emptied');
    ok($s->stop, 'stopped');
};

subtest 'a torn last record and a damaged one: skipped, logged, the rest replayed' => sub {
    $pg->stop;
    my $dir = spool_dir();
    my $s = server($dir);
    my @n = (301 .. 312);
    answered_in_time(calls($s, @n));
    $s->kill_all;
    my ($big) = sort { -s $b <=> -s $a } glob("$dir/*.spool");
    my $size = -s $big;
    # a byte in the first record's parameters, and the last record's end
    open my $fh, '+<', $big or die $!;
    binmode $fh;
    seek $fh, 40, 0;
    read $fh, my $byte, 1;
    seek $fh, 40, 0;
    print $fh chr(ord($byte) ^ 0x55);
    close $fh;
    truncate $big, $size - 7 or die $!;
    $pg->start or die 'pg start';
    $s->start;
    ok(wait_until(sub { (split ' ', stored(@n))[1] == 22 }, 30),
       'every event but the two damaged ones') or diag stored(@n);
    sleep 0.5;
    is((split ' ', stored(@n))[1], 22, 'and no more');
    my @torn = $s->error_log =~ /SPOOL_TORN file="\Q$big\E" offset=\d+ bytes=\d+/g;
    is(scalar @torn, 2, 'both logged, with the file and the offset');
    ok($s->stop, 'stopped');
};

subtest 'reloaded with writes in the spool: the new workers replay them' => sub {
    $pg->stop;
    my $dir = spool_dir();
    my $s = server($dir);
    my @n = (401 .. 420);
    answered_in_time(calls($s, @n));
    $s->reload;
    like($s->error_log, qr/SPOOL_LEFT files=1 bytes=\d+/, 'the old workers left their journals');
    $pg->start or die 'pg start';
    ok(wait_stored('20 40', 30, @n), '20 calls, 40 events') or diag stored(@n);
    like($s->error_log, qr/SPOOL_ADOPTED/, 'taken over by the new workers');
    ok($s->stop, 'stopped');
    is(join(' ', glob("$dir/*")), '', 'no journal left');
};

subtest 'a write the database refuses is dropped alone; one it asks to retry lands' => sub {
    # a refusal (a constraint) for one caller, a serialization failure
    # twice for another, decided in the database
    $pg->psql(q{
        CREATE SEQUENCE test_retry;
        CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.from_number = '+10000000666' THEN
                RAISE EXCEPTION 'refused by the test' USING ERRCODE = '23514';
            END IF;
            IF NEW.from_number = '+10000000777' THEN
                IF nextval('test_retry') <= 2 THEN
                    RAISE EXCEPTION 'try again' USING ERRCODE = '40001';
                END IF;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_refuse BEFORE INSERT ON calls
            FOR EACH ROW EXECUTE FUNCTION test_refuse();
    });
    $pg->stop;
    my $dir = spool_dir();
    my $s = server($dir);
    my @n = (601 .. 622);
    # queued while the database is away, so they go out in batches
    answered_in_time(calls($s, @n[0 .. 19]));
    for my $w ([621, '+10000000666'], [622, '+10000000777']) {
        my $r = $s->request('POST /webhook/incoming_call', headers => [$FORM],
                            body => form(CallSid => call_sid($w->[0]), From => $w->[1]));
        is($r->{status}, 200, "incoming_call from $w->[1]");
        $r = $s->request('POST /webhook/call_status', headers => [$FORM],
                         body => form(CallSid => call_sid($w->[0]), CallStatus => 'completed'));
        is($r->{status}, 200, 'its call_status');
    }
    $pg->start or die 'pg start';
    # 22 calls; every event but the refused caller's "incoming"
    ok(wait_stored('22 43', 30, @n), 'everything but the refused write') or diag stored(@n);
    sleep 0.5;
    is(stored(@n), '22 43', 'and nothing more');
    is($pg->psql(q{SELECT count(*) FROM call_events WHERE idempotency_key = }
                 . "'" . call_sid(622) . ":incoming'"), 1, 'the retried write landed once');
    my @refused = $s->error_log =~ /CRM_WRITE_FAILED what=incoming_call sqlstate=23514: ERROR:  refused by the test/g;
    is(scalar @refused, 1, 'the refusal logged once, not retried');
    like($s->error_log, qr/connection \d+: 1 write\(s\) again at once \(sqlstate 40001\)/,
         'the retry said why');
    unlike($s->error_log, qr/CRM_DOWN.*asked to retry/, 'and the connection stayed');
    is(spool_total($s, 'files'), 0, 'the spool emptied');
    ok($s->stop, 'stopped');
    $pg->psql('DROP TRIGGER test_refuse ON calls; DROP FUNCTION test_refuse(); DROP SEQUENCE test_retry');
};

# The database behind on purpose: a trigger holds each call's event until
# the test moves a mark past the call (lag()), and one call's until
# release(); a held write holds its connection's batch.  Each look at the
# gate is a new snapshot, so the trigger sees it move.  The held call has
# its own caller, so that no other write waits on its rows.
my $HELD_FROM = '+15550009999';

sub hold {
    my ($held) = @_;
    $pg->psql(qq{
        CREATE TABLE test_gate (upto int NOT NULL, held int NOT NULL,
                                open boolean NOT NULL);
        INSERT INTO test_gate VALUES (2147483647, $held, false);
        CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS \$\$
        DECLARE
            n int := ('x' || right(NEW.call_sid, 8))::bit(32)::int;
        BEGIN
            WHILE n > (SELECT upto FROM test_gate)
                  OR (n = (SELECT held FROM test_gate)
                      AND NOT (SELECT open FROM test_gate))
            LOOP
                PERFORM pg_sleep(0.01);
            END LOOP;
            RETURN NEW;
        END \$\$;
        CREATE TRIGGER test_hold BEFORE INSERT ON call_events
            FOR EACH ROW EXECUTE FUNCTION test_hold();
    });
}

sub lag { $pg->psql("UPDATE test_gate SET upto = $_[0]") }

sub release { $pg->psql('UPDATE test_gate SET upto = 2147483647, open = true') }

sub unhold {
    $pg->psql('DROP TRIGGER test_hold ON call_events; DROP FUNCTION test_hold(); DROP TABLE test_gate');
}

sub held_call {
    my ($s, $n) = @_;
    my $r = $s->request('POST /webhook/incoming_call', headers => [$FORM],
                        body => form(CallSid => call_sid($n), From => $HELD_FROM));
    return $r->{status};
}

sub connected {
    my ($s) = @_;
    return wait_until(sub {
        (decode_json($s->request('GET /readyz')->{body})->{database}{connected} // 0) == 2
    }, 10);
}

# the journals on disk: { name => bytes }
sub journals {
    my ($dir) = @_;
    my %j;
    for (glob("$dir/*.spool")) {
        my $size = -s $_;
        $j{ (m{([^/]+)$})[0] } = $size if defined $size;
    }
    return \%j;
}

# events of the calls $a .. $b
sub events_between {
    my ($a, $b) = @_;
    return $pg->psql("SELECT count(*) FROM call_events WHERE call_sid BETWEEN '"
                     . call_sid($a) . "' AND '" . call_sid($b) . "'");
}

# stored() of the calls $a .. $b, when they are many
sub stored_between {
    my ($a, $b) = @_;
    my $in = "BETWEEN '" . call_sid($a) . "' AND '" . call_sid($b) . "'";
    return $pg->psql("SELECT (SELECT count(*) FROM calls WHERE call_sid $in) || ' ' ||
                             (SELECT count(*) FROM call_events WHERE call_sid $in)");
}

sub wait_stored_between {
    my ($want, $secs, $a, $b) = @_;
    return wait_until(sub { stored_between($a, $b) eq $want }, $secs);
}

subtest 'steady writes with the database behind: old journals go as they are taken, the spool stays near what is pending' => sub {
    # the database takes each call's writes only when 50 calls more were
    # sent, and the first write not at all until the end: under steady
    # load something is always pending.  A journal is left at 16k; each
    # must go as soon as all it holds is taken, the first (with the held
    # write) stay until that is taken too.
    my $J = 16 * 1024;
    hold(800);
    my $dir = spool_dir();
    my $s = server($dir, "journal_size=16k", workers => 1);
    ok(connected($s), 'both connections up');
    is(held_call($s, 800), 200, 'the held call answered');
    my ($first) = keys %{ journals($dir) };
    ok($first, "the first journal: $first");
    my (%max, $over, $written);
    my ($sent, $last, $worst) = (1, 800, '');
    for my $n (801 .. 3000) {
        my ($bad) = calls($s, $n);
        is($bad, 0, "call $n answered") or last if $bad;
        ($last, $sent) = ($n, $sent + 2);
        next if $n % 25;
        lag($n - 50);
        # the database's count first: what it has taken can only grow
        my $missing = $sent - events_between(800, $n);
        my $j = journals($dir);
        for (keys %$j) { $max{$_} = $j->{$_} if $j->{$_} > ($max{$_} // 0) }
        my $disk = 0;
        $disk += $_ for values %$j;
        # the held journal, one being taken, the current one, and the
        # writes not taken at 512 bytes each (a record here is ~150)
        my $bound = 3 * ($J + 1024) + 512 * $missing;
        if ($disk > $bound && !$over++) {
            $worst = "$disk bytes on disk with $missing writes pending: "
                   . join(' ', map { "$_=$j->{$_}" } sort keys %$j);
        }
        $written = 0;
        $written += $_ for values %max;
        last if $written >= 10 * $J;
    }
    cmp_ok($written, '>=', 10 * $J, "written: $written bytes, in " . scalar(keys %max) . ' journals seen');
    ok(!$over, 'the spool never held much more than what was pending') or diag $worst;
    # all but the held write taken: what stays is the journal that holds it
    lag($last);
    my $want = 2 * ($last - 800) + 1;
    ok(wait_until(sub { events_between(800, $last) == $want - 1 }, 30), 'all but the held write taken')
        or diag events_between(800, $last) . " of $want";
    is(events_between(800, 800), 0, 'the held write is still pending');
    my $j;
    ok(wait_until(sub { $j = journals($dir); !grep { $j->{$_} && $_ ne $first } keys %$j }, 5),
       'every other journal removed or emptied while it is pending')
        or diag join ' ', map { "$_=$j->{$_}" } sort keys %$j;
    my @gone = grep { !exists $j->{$_} } keys %max;
    cmp_ok(scalar @gone, '>=', 5, 'journals removed: ' . scalar @gone);
    ok(exists $j->{$first}, 'the journal with the held write is kept');
    cmp_ok($j->{$first} // 0, '<=', $J + 1024, "and it is one journal's size: " . ($j->{$first} // 0));
    release();
    ok(wait_stored_between(($last - 799) . " $want", 30, 800, $last), 'then every write, once')
        or diag stored_between(800, $last);
    ok(wait_until(sub { spool_total($s, 'files') == 0 }, 5), 'the spool emptied');
    unlike($s->error_log, qr/CRM_LOST|CRM_QUEUE_FULL|SPOOL_WRITE_FAILED|SPOOL_ROTATE_FAILED|SPOOL_TORN/,
           'nothing lost, nothing torn');
    ok($s->stop, 'stopped');
    is(join(' ', glob("$dir/*")), '', 'no journal left');
    unhold();
};

subtest 'the database away for long: few journals, not one per journal_size' => sub {
    # each journal holds a descriptor (its lock): past four journals'
    # worth, a new one is started only once the current one is also a
    # quarter of the older ones' bytes, so their number grows with the
    # logarithm of the backlog
    my $J = 16 * 1024;
    $pg->stop;
    my $dir = spool_dir();
    my $s = server($dir, "journal_size=16k", workers => 1);
    my ($bad) = calls($s, 1001 .. 2500);
    is($bad, 0, 'every webhook answered 200');
    my $j = journals($dir);
    my $bytes = 0;
    $bytes += $_ for values %$j;
    my $files = keys %$j;
    cmp_ok($bytes, '>', 20 * $J, "$bytes bytes spooled");
    # 5 of 16k, then each 1.25 times the last, the current one, and one
    # for records' sizes
    my $most = 7 + POSIX::ceil(log($bytes / (5 * $J)) / log(1.25));
    cmp_ok($files, '<=', $most, "in $files journals (at most $most; "
           . POSIX::ceil($bytes / $J) . ' at 16k each)');
    $pg->start or die 'pg start';
    ok(wait_stored_between('1500 3000', 60, 1001, 2500), 'then every write, once')
        or diag stored_between(1001, 2500);
    ok(wait_until(sub { spool_total($s, 'files') == 0 }, 5), 'the spool emptied');
    unlike($s->error_log, qr/CRM_LOST|CRM_QUEUE_FULL|SPOOL_WRITE_FAILED|SPOOL_ROTATE_FAILED/, 'nothing lost');
    ok($s->stop, 'stopped');
    is(join(' ', glob("$dir/*")), '', 'no journal left');
};

subtest 'a killed worker\'s journals are replayed oldest first' => sub {
    # a dead worker leaves several journals; whoever takes them over
    # replays them in the order they were written, whatever order the
    # directory lists them in
    $pg->stop;
    my $dir = spool_dir();
    my $s = server($dir, "journal_size=16k", workers => 1);
    my ($bad) = calls($s, 3001 .. 3500);
    is($bad, 0, 'every webhook answered 200');
    my @journals = glob("$dir/*.spool");
    cmp_ok(scalar @journals, '>=', 4, 'journals: ' . scalar @journals);
    $s->kill_all;
    $pg->start or die 'pg start';
    $s->start;
    ok(wait_stored_between('500 1000', 30, 3001, 3500), 'every write, once')
        or diag stored_between(3001, 3500);
    # a batch of 64 on each of the 2 connections may overtake another:
    # the first 100 writes against the last 100 of 1000
    my ($first, $last) = split ' ', $pg->psql(
        "SELECT (SELECT max(id) FROM call_events WHERE call_sid BETWEEN '" . call_sid(3001)
        . "' AND '" . call_sid(3050) . "') || ' ' || (SELECT min(id) FROM call_events "
        . "WHERE call_sid BETWEEN '" . call_sid(3451) . "' AND '" . call_sid(3500) . "')");
    cmp_ok($first, '<', $last, 'the first calls\' writes landed before the last ones\'');
    ok($s->stop, 'stopped');
};

# strace delivers SIGKILL to a worker as it enters the system call named:
# a crash at that very step of making or removing a journal
sub strace_kill {
    my ($s, $pid, $syscall, $log) = @_;
    my $st = fork // die "fork: $!";
    if (!$st) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $log;
        { exec 'strace', '-p', $pid, '-o', '/dev/null', '-e', "trace=$syscall",
                    '-e', "inject=$syscall:signal=KILL" }
        POSIX::_exit(127);
    }
    my $attached = wait_until(sub { (`cat $log 2>/dev/null` // '') =~ /attached/ }, 5);
    if (!$attached) {
        kill 'TERM', $st;
        waitpid $st, 0;
        return;
    }
    $s->allow_log(qr/worker process $pid exited on signal 9\b/);
    return $st;
}

sub replaced {
    my ($s, $pid) = @_;
    return $s->wait_for(sub {
        my @now = $s->workers;
        @now == $s->{workers} && !(grep { $_ == $pid } @now)
            && Test::AgentLocator::Server::waiting(@now);
    }, 15);
}

# whether strace is there and may attach to a process (a container may
# forbid ptrace)
sub strace_works {
    return 0 unless system('strace -V >/dev/null 2>&1') == 0;
    my $child = fork // die "fork: $!";
    if (!$child) { sleep 30; POSIX::_exit(0) }
    my $log = File::Temp->new;
    my $st = fork // die "fork: $!";
    if (!$st) {
        open STDERR, '>', $log->filename;
        { exec 'strace', '-p', $child, '-o', '/dev/null', '-e', 'trace=none' }
        POSIX::_exit(127);
    }
    my $ok = wait_until(sub { (`cat @{[ $log->filename ]}` // '') =~ /attached/ }, 3);
    kill 'KILL', $child;
    waitpid $child, 0;
    waitpid $st, 0;
    return $ok;
}

SKIP: {
    skip 'needs strace, allowed to attach to a process (Debian: strace)', 1
        unless strace_works();

subtest 'a worker SIGKILLed in the middle of making or removing a journal: nothing lost, nothing twice' => sub {
    # the database behind as above, so that journals are made and removed
    # with writes pending; the worker killed at a chosen step, twice
    hold(5000);
    my $dir = spool_dir();
    my $s = server($dir, "journal_size=16k", workers => 1);
    ok(connected($s), 'both connections up');
    is(held_call($s, 5000), 200, 'the held call answered');
    my $log = "$dir.strace";
    my $n = 5001;
    # link(): a rotation's new journal made and locked, not yet named;
    # the next unlink(): its temporary name let go, or a journal the
    # database has taken all of being removed
    for my $syscall (qw(link unlink)) {
        my ($pid) = $s->workers;
        # what the worker took over from the last one read back first
        ok(wait_until(sub { spool_total($s, 'unread') == 0 }, 30), "$syscall: the spool read back");
        my $st = strace_kill($s, $pid, $syscall, $log);
        ok($st, "$syscall: strace attached to worker $pid") or last;
        my $killed;
        while ($n < 9000 && !$killed) {
            for my $w (['incoming_call', From => '+15550001111'],
                       ['call_status', CallStatus => 'completed']) {
                my ($hook, @kv) = @$w;
                my $body = form(CallSid => call_sid($n), @kv);
                my $r = $s->request("POST /webhook/$hook", headers => [$FORM], body => $body);
                next if $r->{status} == 200;
                # killed while it answered: not answered, so Twilio sends it again
                $killed = 1;
                ok(replaced($s, $pid), "$syscall: the master started a new worker");
                $r = $s->request("POST /webhook/$hook", headers => [$FORM], body => $body);
                is($r->{status}, 200, "$syscall: the webhook sent again answered");
            }
            lag($n - 50) unless $n % 25;
            $n++;
        }
        ok($killed, "$syscall: the worker was killed entering $syscall()") or kill 'TERM', $st;
        waitpid $st, 0;
        is(join(' ', glob("$dir/*.new")), '', "$syscall: no temporary journal left");
        like($s->error_log, qr/SPOOL_ADOPTED file="\Q$dir\E\/$pid-\d+\.spool"/,
             "$syscall: its journals taken over");
    }
    # and steady writes go on in the third worker
    for (1 .. 100) {
        my ($bad) = calls($s, $n);
        is($bad, 0, "call $n") or last if $bad;
        lag($n - 50) unless $n % 25;
        $n++;
    }
    release();
    my $want = ($n - 5000) . ' ' . (2 * ($n - 5001) + 1);
    ok(wait_stored_between($want, 30, 5000, $n - 1), 'every write, once')
        or diag stored_between(5000, $n - 1) . ", wanted $want";
    ok(wait_until(sub { spool_total($s, 'files') == 0 }, 10), 'the spool emptied');
    unlike($s->error_log, qr/CRM_LOST|CRM_QUEUE_FULL|SPOOL_WRITE_FAILED|SPOOL_ROTATE_FAILED/, 'nothing lost');
    ok($s->stop, 'stopped');
    is(join(' ', glob("$dir/*")), '', 'no journal left');
    unlink $log;
    unhold();
};
}

SKIP: {
    my $dir = spool_dir();
    skip 'a full disk needs a small tmpfs: mount as root', 1
        unless $> == 0 && system("mount -t tmpfs -o size=8k,mode=0777 tmpfs $dir 2>/dev/null") == 0;

    subtest 'the spool\'s disk full: logged and counted, the writes kept in memory' => sub {
        $pg->stop;
        my $s = server($dir);
        my @n = (501 .. 600);
        answered_in_time(calls($s, @n));
        cmp_ok(spool_total($s, 'write_failed'), '>', 0, '/readyz counts the failed appends');
        like($s->error_log, qr/SPOOL_WRITE_FAILED what=\w+ failed=1: cannot append to "\Q$dir\E\/[^"]+"; the write is kept in memory only \(28: No space left on device\)/,
             'the full disk logged');
        $pg->start or die 'pg start';
        ok(wait_stored('100 200', 30, @n), '100 calls, 200 events: nothing lost')
            or diag stored(@n);
        ok($s->stop, 'stopped');
    };
    system('umount', $dir);
}

done_testing();
