#!/usr/bin/perl
# The report of bench/crm/run, from its results.txt (one "what key=value ..."
# line per measurement), and the exit status: 1 when the figures are not
# valid (answers other than 200, writes that vanished), else 0 whatever
# they are.
#
# usage: report.pl SETUP.txt RESULTS.txt ERROR.log WORKDIR CRM.c

use strict;
use warnings;

my ($setup, $results, $errlog, $work, $crm_c) = @ARGV;
die "usage: $0 SETUP RESULTS ERROR.log WORKDIR CRM.c\n" unless defined $crm_c;

my $TARGET_RATIO = 0.5;    # module events/s >= 0.5 x pgbench -M prepared
my $TARGET_P99   = 1.2;    # p99 down/up and slow/up <= 1.2

# "what [name] key=value ..." -> $r{what}{name}{key}, or $r{what}{key}
my %r;
open my $fh, '<', $results or die "$results: $!\n";
while (<$fh>) {
    chomp;
    my ($what, @rest) = split ' ';
    my $name = (@rest && $rest[0] !~ /=/) ? shift @rest : '';
    my $h = $name eq '' ? ($r{$what} //= {}) : ($r{$what}{$name} //= {});
    # "sql in_so=1 1": values may hold spaces; a key starts a new pair
    my $line = join ' ', @rest;
    while ($line =~ /(\w+)=(.*?)(?=\s+\w+=|$)/g) { $h->{$1} = $2 }
    $h->{_} = $line if $line !~ /=/;
}
close $fh;

my @bad;       # reasons the figures are not valid (exit 1)
my @warn;      # worth saying, figures still stand

open $fh, '<', $setup or die "$setup: $!\n";
print "bench/crm: $_" while <$fh>;
close $fh;
print "\n";

sub ms { sprintf '%.2fms', ($_[0] // 0) / 1000 }

# a ratio with two decimals, three when two would round it onto the target
sub two {
    my ($x, $target) = @_;
    my $s = sprintf '%.2f', $x;
    return $s == $target && $x != $target ? sprintf('%.3f', $x) : $s;
}

# --- part 1 ---------------------------------------------------------------

my (@mod, %peer_all);   # per round
for my $round (sort keys %{ $r{flood} // {} }) {
    my $f = $r{flood}{$round};
    my $before = $r{readyz}{"before-$round"} // {};
    my $after  = $r{readyz}{"after-$round"} // {};
    my %d = map { $_ => ($after->{$_} // 0) - ($before->{$_} // 0) }
            qw(written refused dropped);
    my %wb = map { split /:/ } split /,/, $before->{written_by} // '';
    my @share = map { my ($pid, $n) = split /:/; $n - ($wb{$pid} // 0) }
                split /,/, $after->{written_by} // '';
    my $events = $f->{events} // 0;
    my $secs = ($f->{reached_us} // 0) / 1e6;
    push @mod, { round => $round, f => $f, d => \%d, share => \@share,
                 events => $events, target => $f->{target} // 0, secs => $secs,
                 rate => $secs > 0 ? $events / $secs : 0,
                 rows => $r{rows}{"module-$round"} // {} };

    push @bad, "part 1 $round: $f->{bad} answers other than 200, $f->{errors} broken requests"
        if ($f->{bad} // 1) || ($f->{errors} // 1);
    if ($events < $f->{target}) {
        if ($d{dropped} + $d{refused} + $events >= $f->{target}) {
            push @warn, sprintf "part 1 $round: %d of %d events never reached the database "
                . "(%d dropped: a worker's queue was full, CRM_QUEUE_FULL; %d refused): its "
                . "events/s counts only the %d that did, up to when the count stopped moving. "
                . "Lower CALLS, or SPOOL=1.", $f->{target} - $events, $f->{target},
                $d{dropped}, $d{refused}, $events;
        } else {
            push @bad, sprintf "part 1 $round: %d of %d events reached the database, and "
                . "readyz accounts for only %d dropped and %d refused: writes vanished",
                $events, $f->{target}, $d{dropped}, $d{refused};
        }
    }
}
for my $key (sort keys %{ $r{pgbench} // {} }) {
    my ($mode, $round) = $key =~ /^(\w+)-(r\d+)$/ or next;
    my $p = $r{pgbench}{$key};
    my $ev = 2 * ($p->{transactions} // 0);
    my $rate = 2 * ($p->{tps} // 0);
    push @{ $peer_all{$mode} }, { round => $round, rate => $rate, events => $ev,
                                  secs => $rate ? $ev / $rate : 0 };
    push @bad, "pgbench -M $mode $round: $p->{failed} failed transactions" if $p->{failed};
    my $rows = $r{rows}{"$mode-$round"} // {};
    push @bad, "pgbench -M $mode $round: $rows->{events} rows in call_events, not $ev"
        if defined $rows->{events} && $rows->{events} != $ev;
}

sub best { (sort { $b->{rate} <=> $a->{rate} } @_)[0] }
my $m = best(@mod) // { rate => 0, events => 0, secs => 0, f => {}, d => {}, share => [],
                        rows => {}, target => 0 };
my %peer = map { $_ => best(@{ $peer_all{$_} }) } keys %peer_all;

print "part 1: call events/s into PostgreSQL (incoming_call + call_status per call)\n";
printf "  %-22s %9s %8s %8s\n", '', 'events/s', 'events', 'seconds';
printf "  %-22s %9.0f %8d %8.2f   (first request -> count(*) = %d; HTTP part %.2f s, %.0f req/s)\n",
    'module', $m->{rate}, $m->{events}, $m->{secs}, $m->{target},
    ($m->{f}{flood_us} // 0) / 1e6, $m->{f}{req_per_s} // 0;
for my $mode (qw(prepared extended)) {
    my $p = $peer{$mode} or next;
    printf "  %-22s %9.0f %8d %8.2f%s\n", "pgbench -M $mode", $p->{rate}, $p->{events},
        $p->{secs}, $mode eq 'extended'
        ? '   (unnamed statements, parsed and planned each time, one at a time per connection)' : '';
}
print "\n";

if ($peer{prepared} && $peer{prepared}{rate}) {
    my $ratio = $m->{rate} / $peer{prepared}{rate};
    printf "ratio module/pgbench -M prepared: %s  (target >= %.1f): %s\n", two($ratio, $TARGET_RATIO),
        $TARGET_RATIO, $ratio >= $TARGET_RATIO ? 'PASS' : 'BELOW TARGET';
}
printf "ratio module/pgbench -M extended: %.2f  (no target: the same statements, unnamed, one at a time per connection)\n",
    $m->{rate} / $peer{extended}{rate} if $peer{extended} && $peer{extended}{rate};
printf "every round, events/s: module %s; -M prepared %s; -M extended %s\n",
    join(', ', map { sprintf '%.0f', $_->{rate} } @mod),
    map { join(', ', map { sprintf '%.0f', $_->{rate} } @{ $peer_all{$_} // [] }) || '-' }
    qw(prepared extended);
printf "module, best round: readyz written %d, refused %d, dropped %d (by worker: %s; HTTP connections by worker: %s); rows: %s calls, %s events\n",
    $m->{d}{written} // 0, $m->{d}{refused} // 0, $m->{d}{dropped} // 0,
    join(' + ', @{ $m->{share} }) || '?', ($m->{f}{conns_by_worker} // '?') =~ s/,/ + /gr,
    $m->{rows}{calls} // '?', $m->{rows}{events} // '?';
my $cpu = ($m->{f}{client_cpu_us} // 0) / 1e6;
my $flood_s = ($m->{f}{flood_us} // 0) / 1e6;
printf "client: %.2f s CPU over the %.2f s of HTTP requests (%.0f%% of one CPU; all CPUs %s%% busy)%s\n",
    $cpu, $flood_s, $flood_s ? 100 * $cpu / $flood_s : 0, $m->{f}{cpus_busy_pct} // '?',
    ($flood_s && $cpu / $flood_s > 0.8) ? ': it may be the limit of the HTTP part' : '';
printf "poll: count(*) every 20 ms after the last answer, %d polls, the last took %.1f ms\n",
    $m->{f}{polls} // 0, ($m->{f}{poll_query_us} // 0) / 1000;

my $sql = $r{sql} // {};
my @sha = split ' ', $sql->{sha1} // '';
my @in  = split ' ', $sql->{in_so} // '';
printf "statements: read from %s at run time (incoming_call %s, call_status %s); in the .so byte for byte: %s\n",
    $crm_c =~ s{.*/(src/)}{$1}r, $sha[0] // '?', $sha[1] // '?',
    (grep { !$_ } @in) ? 'NO' : 'yes';
push @warn, "the .so does not hold the SQL that src/ngx_agentlocator_crm.c has now (the build "
    . "is older or newer than the source): pgbench ran another text than the module"
    if grep { !$_ } @in;
print "\n";

# --- part 2 ---------------------------------------------------------------

print "part 2: incoming_call latency, counted from when each request was due (\"from send\": from when it went out)\n";
printf "  %-6s %8s %8s %8s %8s %10s %8s %8s %7s\n",
    '', 'p50', 'p99', 'p99.9', 'max', 'p99 from', 'lag p99', 'CPUs', 'non-200';
printf "  %-6s %8s %8s %8s %8s %10s %8s %8s %7s\n",
    '', '', '', '', '', 'send', '', 'busy', '';
my %p;
for my $ph (qw(floor up down slow)) {
    my $x = $r{paced}{$ph} or next;
    $p{$ph} = $x;
    printf "  %-6s %8s %8s %8s %8s %10s %8s %7s%% %7d%s\n", $ph,
        ms($x->{p50_us}), ms($x->{p99_us}), ms($x->{p999_us}), ms($x->{max_us}),
        ms($x->{sent_p99_us}), ms($x->{lag_p99_us}), $x->{cpus_busy_pct} // '?',
        ($x->{bad} // 0) + ($x->{errors} // 0),
        { floor => '   /baseline: the client and nginx alone',
          up => '   database up', down => '   pg_ctl stop -m fast',
          slow => '   ACCESS EXCLUSIVE held on calls' }->{$ph};
    push @bad, "part 2 $ph: $x->{bad} answers other than 200, $x->{errors} broken requests"
        if ($x->{bad} // 1) || ($x->{errors} // 1);
    push @warn, sprintf "part 2 $ph: sent at %.0f/s, not %d/s: the client could not keep the rate",
        $x->{sent_rate}, $x->{rate} if $x->{sent_rate} < 0.95 * $x->{rate};
}
print "\n";
for my $ph (qw(down slow)) {
    next unless $p{$ph} && $p{up} && $p{up}{p99_us};
    my $ratio = $p{$ph}{p99_us} / $p{up}{p99_us};
    printf "ratio p99 %s/up: %s  (target <= %.1f): %s%s\n", $ph, two($ratio, $TARGET_P99), $TARGET_P99,
        $ratio <= $TARGET_P99 ? 'PASS' : 'ABOVE TARGET',
        ($ratio > $TARGET_P99 && ($p{$ph}{lag_p99_us} // 0) >= 0.5 * $p{$ph}{p99_us})
        ? sprintf('; the client was itself %s late (lag p99): the CPUs were busy with more than this phase',
                  ms($p{$ph}{lag_p99_us}))
        : '';
}
if ($p{up} && $p{up}{sent_p99_us}) {
    printf "from send (without the client's lateness): p99 down/up %s, slow/up %s\n",
        map { $p{$_} ? sprintf('%.2f', $p{$_}{sent_p99_us} / $p{up}{sent_p99_us}) : '-' }
        qw(down slow);
}
my $land = $r{landed} // {};
my $rd = $r{readyz}{down} // {};
my $rs = $r{readyz}{slow} // {};
my $dropped = ($rd->{dropped} // 0) - ($r{readyz}{part2}{dropped} // 0);
printf "while down: %s writes queued in the workers (readyz), %s; reconnected and written %s s after PostgreSQL was started again\n",
    $rd->{queued} // '?', $dropped ? "$dropped dropped" : 'none dropped',
    $land->{down}{reconnect_s} // '?';
printf "while locked: %s writes waiting in PostgreSQL for the lock, %s queued in the workers; all written %s s after the lock went\n",
    $r{waiting}{slow}{_} // '?', $rs->{queued} // '?', $land->{slow}{drain_s} // '?';
for my $ph (qw(up down slow)) {
    my $l = $land->{$ph} or next;
    push @warn, "part 2: after the $ph phase $l->{calls} calls in the database, not $l->{want}"
        if $l->{calls} != $l->{want};
}
my $lagmax = 0;
$lagmax = $_->{lag_p99_us} > $lagmax ? $_->{lag_p99_us} : $lagmax for values %p;
my $ccpu = 0;
$ccpu += $_->{client_cpu_us} // 0 for values %p;
printf "client: lag (sent - due) p99 at most %s; %.2f s CPU over the %d phases\n",
    ms($lagmax), $ccpu / 1e6, scalar keys %p;
print "\n";

# --- the rest ---------------------------------------------------------------

my %lvl;
my %tag;
if (open my $el, '<', $errlog) {
    while (<$el>) {
        $lvl{$1}++ if /\[(\w+)\]/;
        $tag{$1}++ if /\[(?:error|crit|alert|emerg)\] .*?\b(CRM_[A-Z_]+)/;
    }
}
my $errs = join(', ', map { "$_ $tag{$_}" } sort keys %tag) || 'none';
printf "error log: %d alert/crit/emerg, %d error lines (%s); %s\n",
    ($lvl{alert} // 0) + ($lvl{crit} // 0) + ($lvl{emerg} // 0), $lvl{error} // 0, $errs, $errlog;
push @warn, "CRM_WRITE_FAILED in the error log: the database refused writes"
    if $tag{CRM_WRITE_FAILED};
my @busy = map { "$_ $r{busy}{$_}{before}%" } sort keys %{ $r{busy} // {} };
my $busiest = (sort { $b <=> $a } map { $_->{before} // 0 } values %{ $r{busy} // {} })[0] // 0;
printf "other load: the CPUs were busy just before each part: %s%s\n",
    join(", ", @busy) || "?",
    $busiest > 10 ? ': something else runs, the figures are not comparable' : '';
print "files: $work\n";

print "\nWARNING: $_\n" for @warn;
if (@bad) {
    print "\nFAIL: $_\n" for @bad;
    print "the figures above are not valid\n";
    exit 1;
}
exit 0;
