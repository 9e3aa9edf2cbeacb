#!/usr/bin/perl
# The report of bench/api/run, from its results.txt (one "what [name]
# key=value ..." line per measurement), and the exit status: 1 when the
# figures are not valid (errors under load, writes that vanished), else 0
# whatever they are.
#
# usage: report.pl SETUP.txt RESULTS.txt ERROR.log WORKDIR API_QUERY.c

use strict;
use warnings;

my ($setup, $results, $errlog, $work, $api_c) = @ARGV;
die "usage: $0 SETUP RESULTS ERROR.log WORKDIR API_QUERY.c\n" unless defined $api_c;

my $TARGET_API = 1.5;      # module p99 <= 1.5 x pgbench's
my $TARGET_WH  = 1.2;      # webhooks' p99 slow/up and down/up <= 1.2

# "what [name] key=value ..." -> $r{what}{name}{key}, or $r{what}{key}
my %r;
my @order;      # part 1's endpoints, in the order they ran
open my $fh, '<', $results or die "$results: $!\n";
while (<$fh>) {
    chomp;
    my ($what, @rest) = split ' ';
    next unless defined $what;
    my $name = (@rest && $rest[0] !~ /=/) ? shift @rest : '';
    push @order, $name if $what eq 'wrk' && !grep { $_ eq $name } @order;
    my $h = $name eq '' ? ($r{$what} //= {}) : ($r{$what}{$name} //= {});
    my $line = join ' ', @rest;
    while ($line =~ /(\w+)=(.*?)(?=\s+\w+=|$)/g) { $h->{$1} = $2 }
    $h->{_} = $line if $line !~ /=/;
}
close $fh;

my @bad;       # reasons the figures are not valid (exit 1)
my @warn;      # worth saying, figures still stand

open $fh, '<', $setup or die "$setup: $!\n";
print "bench/api: $_" while <$fh>;
close $fh;
if (my $s = $r{seed}) {
    printf "bench/api: seeded %s customers, %s threads, %s messages, %s calls, %s call events, "
         . "%s recordings, %s transcripts (%s MB) in %s s\n",
        map { $s->{$_} // '?' } qw(customers threads messages calls events recordings
                                   transcripts db_mb seconds);
}
print "\n";

sub ms { sprintf '%.2fms', ($_[0] // 0) / 1000 }

sub two {   # a ratio with two decimals, three when two would round it onto the target
    my ($x, $target) = @_;
    my $s = sprintf '%.2f', $x;
    return $s == $target && $x != $target ? sprintf('%.3f', $x) : $s;
}

# --- part 1 ---------------------------------------------------------------

my %what = (
    threads   => 'GET /api/threads?page=P&limit=25',
    messages  => 'GET /api/threads/T/messages?limit=50',
    calls     => 'GET /api/calls?page=P&status=completed',
    call      => 'GET /api/calls/CA... (3 statements)',
    customers => 'GET /api/crm/customers?q=...',
    mix       => 'the five above, uniformly',
);

print "part 1: the CRM API through the module (wrk) against its statements from pgbench (-M prepared, pipelined)\n";
printf "  %-10s %-43s | %-35s | %s\n", '', '   ---------- the module (wrk) ----------',
    '  ---- pgbench (the SQL alone) ----', 'module/pgbench';
printf "  %-10s %8s %8s %8s %8s %7s | %8s %8s %8s %8s | %7s %7s\n",
    '', 'req/s', 'p50', 'p90', 'p99', 'KB/req', 'tps', 'p50', 'p90', 'p99', 'req/s', 'p99';
my (@pass, @above, %ratio);
for my $e (@order) {
    next if $e =~ /^burst/;
    my $w = $r{wrk}{$e} or next;
    my $p = $r{pgbench}{$e};
    my $n = $w->{requests} || 1;
    my $line = sprintf "  %-10s %8.0f %8s %8s %8s %7.1f", $e, $w->{rps}, ms($w->{p50_us}),
        ms($w->{p90_us}), ms($w->{p99_us}), ($w->{bytes} // 0) / $n / 1024;
    if ($p) {
        my $rr = $p->{tps} ? $w->{rps} / $p->{tps} : 0;
        my $pr = $p->{p99_us} ? $w->{p99_us} / $p->{p99_us} : 0;
        $ratio{$e} = $pr;
        $line .= sprintf " | %8.0f %8s %8s %8s | %7.2f %7s", $p->{tps}, ms($p->{p50_us}),
            ms($p->{p90_us}), ms($p->{p99_us}), $rr, two($pr, $TARGET_API);
        push @{ $pr <= $TARGET_API ? \@pass : \@above }, $e;
        push @bad, "pgbench $e: $p->{failed} failed transactions" if $p->{failed};
    } else {
        $line .= '   floor: /floor, a static copy of a threads page, same requests, no module';
    }
    print "$line\n";
    my $errs = ($w->{connect} // 0) + ($w->{read} // 0) + ($w->{write} // 0) + ($w->{timeout} // 0);
    push @bad, "part 1 $e: $w->{non2xx} answers of 400 or more, $errs socket errors under load"
        if ($w->{non2xx} // 1) || $errs;
}
print "\n";
for my $e (grep { $what{$_} } @order) {
    printf "  %-10s %s\n", $e, $what{$e};
}
print "\n";
if (%ratio) {
    printf "ratio p99 module/pgbench (target <= %.1f): %s\n", $TARGET_API,
        join(', ', map { sprintf '%s %s %s', $_, two($ratio{$_}, $TARGET_API),
                         $ratio{$_} <= $TARGET_API ? 'PASS' : 'ABOVE TARGET' }
                   grep { exists $ratio{$_} } @order);
}
print "  req/s: the module's requests/s (wrk); tps: pgbench's transactions/s, one request's statements each\n";
print "  p50..p99: wrk's latency of a request; pgbench's of a transaction (--log, every one but each\n"
    . "    client's first of each script, which prepared its statements: the module prepares when it connects)\n";
print "  KB/req: the answers' bytes (headers and JSON) per request, as wrk read them\n";
my @split = map { "$_ $r{wrk}{$_}{split}" . (($r{wrk}{$_}{tries} // 1) > 1 ? " ($r{wrk}{$_}{tries} starts)" : '') }
            grep { $r{wrk}{$_}{split} && $_ !~ /^burst/ } @order;
print "  wrk's connections on each worker (reuseport places them at random; wrk is started again, up to 10\n"
    . "    times, until they are even give or take one): @{[ join ', ', @split ]}\n" if @split;

# CPU per request: what each side spent, from /proc (cpu.pl, timed.pl)
my $ncpu = $r{ncpu}{n} || 2;
if (my @c = grep { $r{cpu}{"wrk-$_"} && $r{cpu}{"pgbench-$_"} } @order) {
    print "\n  CPU per request (user + system, microseconds): where the 2 CPUs went\n";
    printf "  %-10s %8s %8s %8s %8s %6s | %8s %8s %8s %6s\n", '', 'nginx', 'postgres',
        'wrk', 'all', 'busy', 'postgres', 'pgbench', 'all', 'busy';
    for my $e (@c) {
        my $m = $r{cpu}{"wrk-$e"};
        my $p = $r{cpu}{"pgbench-$e"};
        my $mn = $r{wrk}{$e}{requests} || 1;
        my $pn = $r{pgbench}{$e}{transactions} || 1;
        my $mall = $m->{nginx_us} + $m->{pg_us} + $m->{client_us};
        my $pall = $p->{pg_us} + $p->{client_us} + $p->{nginx_us};
        printf "  %-10s %8.0f %8.0f %8.0f %8.0f %5.0f%% | %8.0f %8.0f %8.0f %5.0f%%\n", $e,
            $m->{nginx_us} / $mn, $m->{pg_us} / $mn, $m->{client_us} / $mn, $mall / $mn,
            $m->{wall_us} ? 100 * $mall / $m->{wall_us} / $ncpu : 0,
            $p->{pg_us} / $pn, $p->{client_us} / $pn, $pall / $pn,
            $p->{wall_us} ? 100 * $pall / $p->{wall_us} / $ncpu : 0;
    }
    if (my $f = $r{cpu}{'wrk-floor'}) {
        my $n = $r{wrk}{floor}{requests} || 1;
        printf "  %-10s %8.0f %8s %8.0f %8.0f %5.0f%%   (nginx serving a file: HTTP alone)\n", 'floor',
            $f->{nginx_us} / $n, '-', $f->{client_us} / $n,
            ($f->{nginx_us} + $f->{client_us}) / $n,
            $f->{wall_us} ? 100 * ($f->{nginx_us} + $f->{client_us} + $f->{pg_us}) / $f->{wall_us} / $ncpu : 0;
    }
    print "  busy: of all CPUs over the run, by these processes (10 ms ticks); the rest idle or others'\n";
}

# --- part 1b ----------------------------------------------------------------

if (my @o = grep { $r{open}{$_} && $r{openpg}{$_} } @order) {
    print "\npart 1b: the same, at the same request rate (open loop, Poisson arrivals, latency from when each was due)\n";
    printf "  %-10s %7s | %8s %8s %8s %8s | %8s %8s %8s %8s | %7s\n", '', 'req/s',
        'p50', 'p99', 'p99.9', 'lag p99', 'p50', 'p99', 'p99.9', 'lag p99', 'p99';
    printf "  %-10s %7s | %-35s | %-35s | %7s\n", '', '', '  ---- the module (paced.c) ----',
        '  ---- pgbench --rate ----', 'ratio';
    for my $e (@o) {
        my ($m, $p) = ($r{open}{$e}, $r{openpg}{$e});
        my $pr = $p->{p99_us} ? $m->{p99_us} / $p->{p99_us} : 0;
        printf "  %-10s %7d | %8s %8s %8s %8s | %8s %8s %8s %8s | %7s\n", $e, $p->{rate},
            ms($m->{p50_us}), ms($m->{p99_us}), ms($m->{p999_us}), ms($m->{lag_p99_us}),
            ms($p->{p50_us}), ms($p->{p99_us}), ms($p->{p999_us}), ms($p->{lag_p99_us}),
            two($pr, $TARGET_API);
        push @bad, "part 1b $e: $m->{bad} answers other than 200, $m->{errors} broken requests"
            if ($m->{bad} // 1) || ($m->{errors} // 1);
        push @bad, "part 1b $e (pgbench): $p->{logfailed} failed transactions" if $p->{logfailed};
        push @warn, sprintf "part 1b $e: the module's client sent at %.0f/s, not %d/s",
            $m->{sent_rate}, $m->{rate} if $m->{sent_rate} < 0.95 * $m->{rate};
        for my $x ([ 'the module\'s client (paced.c)', $m ], [ 'pgbench', $p ]) {
            push @warn, sprintf "part 1b $e: %s was itself %s late at p99 (lag), against a p99 of %s: "
                . "its figure is mostly its own lateness, not the server's", $x->[0],
                ms($x->[1]{lag_p99_us}), ms($x->[1]{p99_us})
                if ($x->[1]{lag_p99_us} // 0) >= 0.5 * ($x->[1]{p99_us} || 1);
        }
    }
    print "  req/s: a share of the lower of part 1's two throughputs (OPEN_SHARE), the same for both\n";
    print "  lag p99: how late the client itself sent (paced.c) or started (pgbench's schedule lag) a request\n";
    print "  paced.c's connections on each worker (spread evenly by asking X-Worker): "
        . join(', ', map { "$_ " . ($r{open}{$_}{split} // '?') } @o) . "\n";
    print "\n";
}

my @pf = map { "$_ $r{preflight}{$_}{total}" } grep { $r{preflight}{$_}{total} }
         qw(threads messages calls call customers);
print "pre-flight: one request per endpoint answered 200 with the database's own count ("
    . join(', ', @pf) . "); no token: $r{preflight}{'no-token'}{status}\n";

my $sqli = $r{sql} // {};
my @notin = grep { !$sqli->{$_}{in_so} } sort keys %$sqli;
printf "statements: %d read from %s at run time; in the .so byte for byte: %s\n",
    scalar keys %$sqli, $api_c =~ s{.*/(src/)}{$1}r,
    @notin ? 'NO (' . join(', ', @notin) . ')' : 'yes';
push @warn, "the .so does not hold the SQL that src/ngx_agentlocator_api_query.c has now "
    . "(@notin): the build is older or newer than the source, pgbench ran another text"
    if @notin;
print "\n";

# --- part 2 ---------------------------------------------------------------

print "part 2: inbound Baileys webhooks (POST /webhook/whatsapp/baileys, signed, a new message each)\n";
my $bu = $r{wrk}{burst};
my $bf = $r{wrk}{'burst-floor'};
if ($bu) {
    printf "  %-8s %10s %8s %8s %8s %8s %8s\n", 'burst', 'webhooks/s', 'p50', 'p99', 'max', 'non-2xx', 'answered';
    for my $x ([module => $bu], [floor => $bf]) {
        my ($n, $w) = @$x;
        next unless $w;
        printf "  %-8s %10.0f %8s %8s %8s %8d %8d%s\n", $n, $w->{rps}, ms($w->{p50_us}),
            ms($w->{p99_us}), ms($w->{max_us}), $w->{non2xx}, $w->{requests},
            $n eq 'floor' ? '   /floor/baileys: return 200, the same requests' : '';
        my $errs = ($w->{connect} // 0) + ($w->{read} // 0) + ($w->{write} // 0) + ($w->{timeout} // 0);
        push @bad, "part 2 burst ($n): $w->{non2xx} answers of 400 or more, $errs socket errors"
            . ($n eq 'module' ? ' (503: the workers\' queues were full; lower WEBHOOKS, or SPOOL=1)' : '')
            if $w->{non2xx} || $errs;
        push @bad, "part 2 burst ($n): $w->{wrapped} webhooks sent twice" if $w->{wrapped};
    }
    printf "  ratio module/floor: %.2f (no target: what answering a webhook costs beside answering at all)\n",
        $bu->{rps} / $bf->{rps} if $bf && $bf->{rps};
    my $l = $r{landed}{burst} // {};
    my $rb = $r{readyz}{'before-burst'} // {};
    my $ra = $r{readyz}{'after-burst'} // {};
    my %d = map { $_ => ($ra->{$_} // 0) - ($rb->{$_} // 0) } qw(written dropped refused);
    printf "  landed: %d messages in PostgreSQL %.2f s after the first request: %.0f messages/s "
         . "(readyz: written %d, dropped %d, refused %d)\n",
        $l->{messages} // 0, $l->{seconds} // 0,
        ($l->{seconds} // 0) > 0 ? ($l->{messages} // 0) / $l->{seconds} : 0,
        $d{written}, $d{dropped}, $d{refused};
    if (($l->{messages} // 0) < $bu->{requests} - $bu->{non2xx}) {
        push @bad, sprintf "part 2 burst: %d webhooks answered 200, %d messages in the database "
            . "(readyz: %d dropped, %d refused, %s still queued)", $bu->{requests} - $bu->{non2xx},
            $l->{messages} // 0, $d{dropped}, $d{refused}, $ra->{queued} // '?';
    }
    push @warn, "part 2 burst: $d{dropped} writes dropped (CRM_QUEUE_FULL)" if $d{dropped};
    if (my $c = $r{cpu}{burst}) {
        my $n = ($l->{messages} // 0) || 1;
        printf "  CPU per webhook (first request until the last write landed, microseconds): "
             . "nginx %.0f, postgres %.0f, wrk %.0f%s\n",
            $c->{nginx_us} / $n, $c->{pg_us} / $n, $c->{client_us} / $n,
            $r{cpu}{'burst-floor'} && $bf ? sprintf('; the floor: nginx %.0f, wrk %.0f',
                $r{cpu}{'burst-floor'}{nginx_us} / ($bf->{requests} || 1),
                $r{cpu}{'burst-floor'}{client_us} / ($bf->{requests} || 1)) : '';
    }
    print "\n";
}

print "  paced: latency counted from when each webhook was due (\"from send\": from when it went out)\n";
printf "  %-6s %8s %8s %8s %8s %10s %8s %8s %7s\n",
    '', 'p50', 'p99', 'p99.9', 'max', 'p99 from', 'lag p99', 'CPUs', 'non-200';
printf "  %-6s %8s %8s %8s %8s %10s %8s %8s %7s\n", '', '', '', '', '', 'send', '', 'busy', '';
my %p;
for my $ph (qw(floor up slow down)) {
    my $x = $r{paced}{$ph} or next;
    $p{$ph} = $x;
    printf "  %-6s %8s %8s %8s %8s %10s %8s %7s%% %7d%s\n", $ph,
        ms($x->{p50_us}), ms($x->{p99_us}), ms($x->{p999_us}), ms($x->{max_us}),
        ms($x->{sent_p99_us}), ms($x->{lag_p99_us}), $x->{cpus_busy_pct} // '?',
        ($x->{bad} // 0) + ($x->{errors} // 0),
        { floor => '   /floor/baileys: the client and nginx alone',
          up => '   database up', slow => '   ACCESS EXCLUSIVE held on messages',
          down => '   pg_ctl stop -m fast' }->{$ph};
    push @bad, "part 2 $ph: $x->{bad} answers other than 200, $x->{errors} broken requests"
        if ($x->{bad} // 1) || ($x->{errors} // 1);
    push @warn, sprintf "part 2 $ph: sent at %.0f/s, not %d/s: the client could not keep the rate",
        $x->{sent_rate}, $x->{rate} if $x->{sent_rate} < 0.95 * $x->{rate};
}
print "\n";
for my $ph (qw(slow down)) {
    next unless $p{$ph} && $p{up} && $p{up}{p99_us};
    my $ratio = $p{$ph}{p99_us} / $p{up}{p99_us};
    printf "ratio p99 %s/up: %s  (target <= %.1f): %s%s\n", $ph, two($ratio, $TARGET_WH), $TARGET_WH,
        $ratio <= $TARGET_WH ? 'PASS' : 'ABOVE TARGET',
        ($ratio > $TARGET_WH && ($p{$ph}{lag_p99_us} // 0) >= 0.5 * $p{$ph}{p99_us})
        ? sprintf('; the client was itself %s late (lag p99): the CPUs were busy with more than this phase',
                  ms($p{$ph}{lag_p99_us}))
        : '';
}
if ($p{up} && $p{up}{sent_p99_us}) {
    printf "from send (without the client's lateness): p99 slow/up %s, down/up %s\n",
        map { $p{$_} ? sprintf('%.2f', $p{$_}{sent_p99_us} / $p{up}{sent_p99_us}) : '-' }
        qw(slow down);
}
my $land = $r{landed} // {};
my $rs = $r{readyz}{slow} // {};
my $rd = $r{readyz}{down} // {};
printf "while locked: %s writes waiting in PostgreSQL for the lock, %s queued in the workers; "
     . "all landed %s s after the lock went\n",
    $r{waiting}{slow}{_} // '?', $rs->{queued} // '?', $land->{slow}{drain_s} // '?';
printf "while down: %s writes queued in the workers (readyz); reconnected and all landed %s s "
     . "after PostgreSQL was started again\n",
    $rd->{queued} // '?', $land->{down}{reconnect_s} // '?';
for my $ph (qw(up slow down)) {
    my $l = $land->{$ph} or next;
    push @bad, "part 2 $ph: $l->{messages} of the phase's $l->{want} webhooks in the database"
        . " after its writes drained: writes vanished"
        if $l->{messages} != $l->{want};
}
my $re = $r{readyz}{end} // {};
my $rst = $r{readyz}{start} // {};
my $dropped = ($re->{dropped} // 0) - ($rst->{dropped} // 0);
my $refused = ($re->{refused} // 0) - ($rst->{refused} // 0);
printf "readyz over the run: written %d, dropped %d, refused %d\n",
    ($re->{written} // 0) - ($rst->{written} // 0), $dropped, $refused;
push @warn, "$refused writes refused by the database (CRM_WRITE_FAILED): a defect" if $refused;
print "\n";

# --- the rest ---------------------------------------------------------------

my (%lvl, %tag);
if (open my $el, '<', $errlog) {
    while (<$el>) {
        $lvl{$1}++ if /\[(\w+)\]/;
        $tag{$1}++ if /\[(?:warn|error|crit|alert|emerg)\] .*?\b([A-Z][A-Z_]{3,})\b/;
    }
}
my $errs = join(', ', map { "$_ $tag{$_}" } sort keys %tag) || 'none';
printf "error log: %d alert/crit/emerg, %d error, %d warn lines (%s); %s\n",
    ($lvl{alert} // 0) + ($lvl{crit} // 0) + ($lvl{emerg} // 0), $lvl{error} // 0,
    $lvl{warn} // 0, $errs, $errlog;
my @busy = map { "$_ $r{busy}{$_}{before}%" } grep { defined $r{busy}{$_}{before} }
           sort keys %{ $r{busy} // {} };
my $busiest = (sort { $b <=> $a } map { $_->{before} // 0 } values %{ $r{busy} // {} })[0] // 0;
printf "other load: the CPUs were busy just before each run: %s%s\n",
    join(', ', @busy) || '?',
    $busiest > 10 ? ': something else runs, the figures are not comparable' : '';
if (-s "$work/perf-top.txt") {
    print "\nperf (PROFILE=1): the nginx workers during part 1's mix, by library, then by symbol\n";
    open my $pf, '<', "$work/perf-top.txt" or die;
    print "  $_" while <$pf>;
}
print "files: $work\n";

print "\nWARNING: $_\n" for @warn;
if (@bad) {
    print "\nFAIL: $_\n" for @bad;
    print "the figures above are not valid\n";
    exit 1;
}
exit 0;
