#!/usr/bin/perl
# The report of MODE=mixed bench/watchdog/run, from its work directory:
#   meta.txt          key=value lines written by run
#   mixed.tsv         mixed.c's calls, one line each (see mixed.c)
#   mixed.summary     mixed.c's own CPU and counts
#   mock.tsv          the mock's records: <µs> <CallSid> <conn> <ok> <why>
#                       <body length>
#   mock.summary      the mock's counters
#   cpu.tsv           <µs> <pid> <utime> <stime> <schedstat ns> <rss kB>
#                       per worker and the mock; <µs> all <busy> <total> 0
#   status.json       GET /status at the end
#   nginx/logs/error.log
#
# Lateness of a redirect = the mock's first arrival for the CallSid - the
# call's deadline as the client saw it:
#   no_stream_start           incoming_call's answer read + start_timeout
#   no_media, stream_dropped  its last media frame sent + no_media_timeout
# A lateness below -1 ms (clock noise) is an early redirect: a defect.
#
# usage: report-mixed.pl WORKDIR
# Exit status 1 when the run could not measure (a call that did not run as
# planned, a worker that died); 0 otherwise, whatever the figures.

use strict;
use warnings;
use JSON::PP;
use FindBin;
use lib $FindBin::Bin;
use WatchdogReport;

$| = 1;

my ($work) = @ARGV;
die "usage: report-mixed.pl WORKDIR\n" unless defined $work && -d $work;

my %m = read_meta($work);
my $fh;

my $EARLY_MS = -1;    # below this, a redirect came before its deadline
my @KINDS = qw(no_stream_start no_media stream_dropped healthy);
my @broken;

# --- the calls ----------------------------------------------------------------

my @cols = qw(sid kind sched ic_sent ic_ans ic_status ws_101 ws_status
              start_sent frames first_media last_media ended server_closed
              cs_sent cs_ans cs_status err);
my (@calls, %by_sid);
open $fh, '<', "$work/mixed.tsv" or die "$work/mixed.tsv: $! (mixed.c wrote nothing?)\n";
while (<$fh>) {
    my @v = split;
    next unless @v == @cols;
    my %c;
    @c{@cols} = @v;
    push @calls, \%c;
    $by_sid{ $c{sid} } = \%c;
}
close $fh;

my %sum = read_kv("$work/mixed.summary");

# --- the mock's records -------------------------------------------------------

my (%arrivals, $bad, %why, $unknown);
open $fh, '<', "$work/mock.tsv" or die "$work/mock.tsv: $!\n";
while (<$fh>) {
    my ($t, $sid, $conn, $ok, $why) = split;
    unless ($ok) { $bad++; $why{$why}++ }
    push @{ $arrivals{$sid} }, $t;
}
close $fh;
$bad //= 0;
$unknown = grep { !$by_sid{$_} && !/^CA$m{tag}00/ } keys %arrivals;

my %mocksum = read_kv("$work/mock.summary");

# --- the module's log: each call's redirect reason, stream counts -------------

my (%reason, %levels, %msgs, $log200, $logerr, %by_worker, %ws);
my $elog = "$work/nginx/logs/error.log";
if (open $fh, '<', $elog) {
    while (<$fh>) {
        count_log_line($_, \%levels, \%msgs) or next;
        if (my ($wpid, $sid, $r, $st) = / (\d+)#\d+: .*WATCHDOG_REDIRECT call=(CA\w+) reason=(\w+) attempt=\d+ status=(\w+)/) {
            $reason{$sid} //= $r;
            if ($st =~ /^2\d\d$/) { $log200++; $by_worker{$wpid}++ } else { $logerr++ }
        }
        $ws{$1}++ if /\b(WS_START|WS_STOP|WS_CLOSE|WS_PROTOCOL_ERROR|WS_BAD_MESSAGE)\b/;
    }
    close $fh;
}

# --- per kind -----------------------------------------------------------------

my $start_to = $m{start_timeout_ms} * 1000;
my $media_to = $m{no_media_timeout_ms} * 1000;
my (%k, @late_all, @early_list, @start_delay, @media_s, %reasons, %notes);
for my $kind (@KINDS) {
    $k{$kind} = { calls => 0, redirected => 0, missing => 0, dup => 0,
                  early => 0, late => [], errors => 0, server_closed => 0 };
}
for my $c (@calls) {
    my $x = $k{ $c->{kind} };
    $x->{calls}++;
    if ($c->{err} eq 'no_close_answer') {
        $notes{"$c->{kind}: the server did not answer the close frame within 2 s"}++;
    } elsif ($c->{err} ne '-') {
        $x->{errors}++;
        push @broken, "$c->{sid} ($c->{kind}): $c->{err}";
        next;
    }
    $x->{server_closed}++ if $c->{server_closed};
    if ($c->{kind} ne 'no_stream_start') {
        push @start_delay, ($c->{start_sent} - $c->{ic_ans}) / 1000;
        push @media_s, ($c->{last_media} - $c->{first_media}) / 1e6 if $c->{first_media};
    }
    my $arr = $arrivals{ $c->{sid} };
    my ($first) = $arr ? sort { $a <=> $b } @$arr : ();
    if ($c->{kind} eq 'healthy') {
        if ($arr) { $x->{redirected}++; $x->{dup}++ if @$arr > 1 }
        $reasons{healthy}{ $reason{ $c->{sid} } // '?' }++ if $arr;
        next;
    }
    my $deadline = $c->{kind} eq 'no_stream_start'
                   ? $c->{ic_ans} + $start_to : $c->{last_media} + $media_to;
    $c->{deadline} = $deadline;
    unless ($arr) { $x->{missing}++; next }
    $x->{redirected}++;
    $x->{dup}++ if @$arr > 1;
    $reasons{ $c->{kind} }{ $reason{ $c->{sid} } // '?' }++;
    my $late = ($first - $deadline) / 1000;
    push @{ $x->{late} }, $late;
    push @late_all, $late;
    # early is judged from the send time (see report.pl's lrow)
    my $from_send = $c->{kind} eq 'no_stream_start'
                    ? ($first - ($c->{ic_sent} + $start_to)) / 1000 : $late;
    if ($from_send < $EARLY_MS) {
        $x->{early}++;
        push @early_list, [ $from_send, $c ];
    }
}

# --- CPU over the run ---------------------------------------------------------

my ($cpu) = read_cpu("$work/cpu.tsv");
my $tck = $m{clk_tck} || 100;
my ($wa, $wb) = ($m{mixed_start}, $m{mixed_end});
my (undef, $nginx_s) = cpu_between($cpu, $tck, $wa, $wb, split ' ', $m{workers_before});
my (undef, $mock_s) = cpu_between($cpu, $tck, $wa, $wb, $m{mock_pid});
my $machine = machine_between($cpu, $tck, $wa, $wb);
my $client_s = ($sum{user_s} // 0) + ($sum{sys_s} // 0);

# --- /status at the end ------------------------------------------------------

my %states;
my $st = read_status($work);
if ($st) {
    for my $c (@{ $st->{calls} }) {
        my $mine = $by_sid{ $c->{call_sid} } or next;
        $states{"$mine->{kind} $c->{state}"}++;
    }
}

if (($m{workers_before} // '') ne ($m{workers_after} // '')) {
    push @broken, "nginx workers changed during the run: "
                  . "$m{workers_before} -> $m{workers_after} (one died?)";
}

# --- report -------------------------------------------------------------------

my @sched = sort { $a <=> $b } map { $_->{sched} } @calls;
my $spread = @sched ? ($sched[-1] - $sched[0]) / 1e6 : 0;
my ($mmin, $mmax) = split ' ', $m{media_ms};

print "\n";
printf "watchdog, mixed: %d calls started over %.1f s, %d worker(s); start_timeout=%gs no_media_timeout=%gs interval=%s\n",
       scalar @calls, $spread, $m{workers}, $m{start_timeout_ms} / 1000,
       $m{no_media_timeout_ms} / 1000, $m{interval};
printf "          module revision %s (built %s); nginx %s, libcurl %s\n",
       $m{revision}, $m{module}, $m{nginx}, $m{libcurl};
printf "          MIX=%s SEED=%s, media %d-%d ms per stream; %s\n", $m{mix}, $m{seed},
       $mmin, $mmax, $m{placement};
printf "          machine before the run: %s%% of CPUs busy, load %s; after: %s%% busy%s\n",
       $m{busy_before}, $m{load_before}, $m{busy_after},
       ($m{busy_before} > 10 ? '  (LOADED: figures not comparable)' : '');
print "\n";

print "lateness = first redirect at the mock - deadline, ms; deadline from the client's side:\n";
print "  no_stream_start: incoming_call answer read + start_timeout;"
      . " no_media, stream_dropped: last media frame sent + no_media_timeout\n";
printf "  early = below %d ms from the deadline, for no_stream_start counted from the send time of incoming_call (a redirect before its deadline: a defect)\n", $EARLY_MS;
printf "  %-18s %5s %10s %7s %10s %5s %8s %8s %8s %8s\n", 'kind', 'calls', 'redirected',
       'missing', 'duplicated', 'early', 'min', 'p50', 'p99', 'max';
my $tot = { calls => 0, redirected => 0, missing => 0, dup => 0, early => 0 };
for my $kind (@KINDS) {
    my $x = $k{$kind};
    my (undef, $mn, $p50, $p99, $mx) = stats(@{ $x->{late} });
    if ($kind eq 'healthy') {
        printf "  %-18s %5d %10d %7s %10s %5s %8s %8s %8s %8s   (must be 0 redirected)\n",
               $kind, $x->{calls}, $x->{redirected}, '-', $x->{dup} ? $x->{dup} : '-', '-',
               '-', '-', '-', '-';
        next;
    }
    printf "  %-18s %5d %10d %7d %10d %5d %8s %8s %8s %8s\n", $kind, $x->{calls},
           $x->{redirected}, $x->{missing}, $x->{dup}, $x->{early}, f($mn), f($p50), f($p99), f($mx);
    $tot->{$_} += $x->{$_} for keys %$tot;
}
my ($n_all, $mn_all, $p50_all, $p99_all, $mx_all) = stats(@late_all);
printf "  %-18s %5d %10d %7d %10d %5d %8s %8s %8s %8s\n", 'all to redirect', $tot->{calls},
       $tot->{redirected}, $tot->{missing}, $tot->{dup}, $tot->{early},
       f($mn_all), f($p50_all), f($p99_all), f($mx_all);
printf "  (p99 by nearest rank: with %d redirects it is the %s)\n", $n_all,
       $n_all && $n_all < 100 ? 'largest' : sprintf('%d-th smallest', int(0.99 * $n_all + 0.999999))
    if $n_all;
for my $kind (@KINDS) {
    next unless $reasons{$kind};
    printf "  the module's reason for %s: %s\n", $kind,
           join(', ', map { "$_ $reasons{$kind}{$_}" } sort keys %{ $reasons{$kind} });
}
print "\n";

my (undef, undef, $sd50, undef, $sdmax) = stats(@start_delay);
my (undef, $md_min, $md50, undef, $md_max) = stats(@media_s);
my $closed = join(', ', map { "$_ $k{$_}{server_closed}" } grep { $k{$_}{server_closed} } @KINDS);
printf "streams: %d opened; \"start\" sent %s ms (p50) / %s ms (max) after the incoming_call answer;\n"
       . "         media %s-%s s per stream (p50 %s), %s frames in all; closed by the server first: %s\n",
       scalar @start_delay, f($sd50), f($sdmax), f($md_min), f($md_max), f($md50),
       $sum{frames} // '?', $closed || 'none';
printf "module log: %d WS_START, %d WS_STOP, %d WS_CLOSE, %d WS_PROTOCOL_ERROR, %d WS_BAD_MESSAGE;"
       . " %d WATCHDOG_REDIRECT 2xx, %d not%s\n",
       map({ $ws{$_} // 0 } qw(WS_START WS_STOP WS_CLOSE WS_PROTOCOL_ERROR WS_BAD_MESSAGE)),
       $log200 // 0, $logerr // 0,
       (keys %by_worker > 1 ? ' (by worker: ' . join(', ', map { "$_: $by_worker{$_}" } sort keys %by_worker) . ')' : '');
printf "mock: %d requests, %d malformed%s, %d for CallSids never called, at most %s connections open\n",
       scalar(map { @$_ } values %arrivals), $bad,
       (%why ? ' (' . join(', ', map { "$_ $why{$_}" } sort keys %why) . ')' : ''),
       $unknown, $mocksum{open_max} // '?';
printf "/status at the end: %s\n", join(', ', map { "$_ $states{$_}" } sort keys %states) || '-'
    if $st;
print_log_summary(\%levels, \%msgs, $elog);
printf "note: %d x %s\n", $notes{$_}, $_ for sort keys %notes;
if ($machine) {
    printf "other load: the machine over the run (%.1f s): %.0f%% of %.0f CPUs busy = %.2f CPU-s: nginx %.2f,"
           . " mock %.2f, client (mixed.c) %.2f, everything else %.2f (the kernel, sampler, other jobs)\n",
           $machine->{secs}, $machine->{pct}, $machine->{ncpu}, $machine->{busy}, $nginx_s, $mock_s,
           $client_s, $machine->{busy} - $nginx_s - $mock_s - $client_s;
}
print "\n";

if (@early_list) {
    my @e = sort { $a->[0] <=> $b->[0] } @early_list;
    my %ek;
    $ek{ $_->[1]{kind} }++ for @e;
    printf "EARLY: %d redirect(s) came before their deadline, by up to %.1f ms (%s).\n",
           scalar @e, -$e[0][0], join(', ', map { "$_ $ek{$_}" } sort keys %ek);
    print "       A redirect before its deadline is a defect (SPEC §6: \"never before its deadline\").\n";
    my $show = @e < 5 ? $#e : 4;
    for my $x (@e[0 .. $show]) {
        my $c = $x->[1];
        printf "       %s %-15s lateness %7.1f ms%s\n", $c->{sid}, $c->{kind}, $x->[0],
               $c->{kind} eq 'no_stream_start' ? ''
               : sprintf(' (%d frames, last sent %.3f s after the first)', $c->{frames},
                         ($c->{last_media} - $c->{first_media}) / 1e6);
    }
}
if ($tot->{missing}) {
    printf "MISSING: %s never redirected within %d s of their deadline.\n",
           join(', ', map { "$k{$_}{missing} $_" } grep { $_ ne 'healthy' && $k{$_}{missing} } @KINDS),
           $m{grace_s};
}
if ($k{healthy}{redirected}) {
    printf "HEALTHY REDIRECTED: %d call(s) that streamed and ended properly were redirected.\n",
           $k{healthy}{redirected};
}

my $dups = $tot->{dup} + $k{healthy}{dup};
my $pass = defined $p99_all && $p99_all < $m{target_mixed_p99_ms} && !$tot->{early}
           && !$tot->{missing} && !$dups && !$k{healthy}{redirected} && !$bad && !$unknown;
printf "RESULT: mixed, %d calls on %d worker(s): p99 lateness %s ms (target < %d), early %d%s,"
       . " missing %d, duplicated %d, healthy redirected %d: %s\n",
       scalar @calls, $m{workers}, f($p99_all), $m{target_mixed_p99_ms}, $tot->{early},
       ($tot->{early} ? sprintf(' (min %.1f ms)', $mn_all) : ''), $tot->{missing}, $dups,
       $k{healthy}{redirected}, $pass ? 'PASS' : 'BELOW TARGET';
print "files: $work\n";

if (@broken) {
    my $show = @broken < 10 ? $#broken : 9;
    print "BROKEN: $_\n" for @broken[0 .. $show];
    printf "BROKEN: ... and %d more\n", @broken - 10 if @broken > 10;
    exit 1;
}
exit 0;
