#!/usr/bin/perl
# bench/chaos/report.pl RUN_DIR: the checks of bench/chaos/run over what a
# run left in its directory (load*.jsonl, phases.txt, mock.json, the CRM's
# rows, meta.json, nginx's error log).  Prints the report; exit 0 when
# every check passed, 1 otherwise.  Run it again on a kept run to reread.

use strict;
use warnings;
use JSON::PP qw(decode_json);

my $W = shift // die "usage: $0 RUN_DIR\n";
my $TWILIO_TIMEOUT_MS = 15000;

sub slurp { open my $f, '<', $_[0] or return ''; local $/; <$f> }
sub lines { grep { length } split /\n/, slurp($_[0]) }

my $meta = decode_json(slurp("$W/meta.json"));
my (@calls, @msgs, @wh, @att);
for my $file (sort glob "$W/load*.jsonl") {
    for (lines($file)) {
        my $l = decode_json($_);
        push @calls, $l if $l->{call};
        push @msgs, $l if $l->{msg};
        push @wh, $l if $l->{wh};
        push @att, $l if $l->{w};
    }
}
my @phases = map { my ($n, $a, $b, $what) = split / /, $_, 4; { name => $n, t0 => $a, t1 => $b, what => $what // '' } }
             lines("$W/phases.txt");

my @fail;       # the checks that failed, one line each
my %lost;       # phase => what was lost or went wrong there

sub phase_of {
    my ($t) = @_;
    for (@phases) { return $_->{name} if $t >= $_->{t0} && $t < $_->{t1} }
    return 'after';
}

# --- every call has exactly one outcome ----------------------------------

my %redirects;
for my $r (@{ decode_json(slurp("$W/mock.json") || '[]') }) {
    next unless ($r->{method} // '') eq 'POST';
    $redirects{$1}++ if ($r->{path} // '') =~ m{/Calls/(CA[0-9a-f]{32})\.json$};
}

my (%by, @bad);
for my $c (@calls) {
    my $s = $c->{scenario};
    my $b = $by{$s} //= { calls => 0, completed => 0, fallback => 0,
                          redirect => 0, none => 0, two => 0, unanswered => 0 };
    $b->{calls}++;
    if (($c->{answered} // '') ne '200') {
        $b->{unanswered}++;
        $lost{ phase_of($c->{t}) }{'call unanswered'}++;
        push @bad, "$c->{call} $s: incoming_call never answered ("
                   . ($c->{answered} // 'null') . ')';
        next;
    }
    my $red = $redirects{ $c->{call} } // 0;
    my $done = ($c->{stream} // '') eq 'stopped' ? 1 : 0;
    my $fb = ($c->{ended} // '') eq 'fallback' ? 1 : 0;
    my $n = $done + $fb + $red;
    $b->{completed} += $done;
    $b->{fallback} += $fb;
    $b->{redirect}++ if $red;
    my $why = '';
    $why = 'no outcome' if $n == 0;
    $why = "$n outcomes" if $n > 1;
    $why ||= "stream_ended answered $c->{ended}"
        if $c->{ended} && $c->{ended} !~ /^(fallback|empty)$/;
    $why ||= "client error: $c->{error}" if $c->{error};
    if ($why) {
        $lost{ phase_of($c->{t}) }{ $n == 0 ? 'call without outcome' : $n > 1 ? 'call with two outcomes' : 'call odd' }++;
        $n == 0 ? $b->{none}++ : $n > 1 ? $b->{two}++ : ();
        push @bad, sprintf '%s %-9s %s (stream %s, stream_ended %s, redirects %d, call_status %s)',
            $c->{call}, $s, $why, $c->{stream} // '-', $c->{ended} // '-', $red,
            $c->{completed} // '-';
    }
}

print "\ncalls: every call must end in exactly one of: its stream completed, the fallback\n",
      "       from stream_ended, one watchdog redirect (counted at the Twilio mock)\n";
printf "  %-10s %6s %10s %9s %9s %5s %5s %11s\n", qw(scenario calls completed fallback redirect none two+ unanswered);
my %tot;
for my $s (sort keys %by) {
    my $b = $by{$s};
    printf "  %-10s %6d %10d %9d %9d %5d %5d %11d\n", $s, @$b{qw(calls completed fallback redirect none two unanswered)};
    $tot{$_} += $b->{$_} for keys %$b;
}
printf "  %-10s %6d %10d %9d %9d %5d %5d %11d\n", 'all', map { $tot{$_} // 0 } qw(calls completed fallback redirect none two unanswered);
if (@bad) {
    print "  $_\n" for @bad[0 .. ($#bad < 19 ? $#bad : 19)];
    print "  ... and ", @bad - 20, " more\n" if @bad > 20;
    push @fail, scalar(@bad) . ' call(s) without exactly one outcome';
}

# --- no CRM row missing or duplicated ------------------------------------

my %row;
for (lines("$W/calls.tsv")) {
    my ($sid, $status, $acct) = split /\t/;
    $row{$sid} = { status => $status, account => $acct };
}
my (%incoming);
for (lines("$W/events.tsv")) {
    my ($sid, $ev) = split /\t/;
    $incoming{$sid}++ if $ev eq 'incoming';
}
my ($calls_sent, $calls_missing, $status_wrong, $ev_missing, $ev_twice, @crm_bad) = (0) x 5;
my %ours;
for my $c (@calls) {
    next unless ($c->{answered} // '') eq '200';
    $calls_sent++;
    $ours{ $c->{call} } = 1;
    my $r = $row{ $c->{call} };
    my $ph = phase_of($c->{t});
    if (!$r) { $calls_missing++; $lost{$ph}{'calls row'}++; push @crm_bad, "$c->{call}: no calls row"; next }
    if (($c->{completed} // '') eq '200' && $r->{status} ne 'completed') {
        $status_wrong++;
        $lost{$ph}{'final status'}++;
        push @crm_bad, "$c->{call}: status '$r->{status}', call_status completed was answered 200";
    }
    my $ev = $incoming{ $c->{call} } // 0;
    $lost{$ph}{'incoming event'}++ if $ev != 1;
    $ev_missing++, push @crm_bad, "$c->{call}: no 'incoming' event" if $ev == 0;
    $ev_twice++, push @crm_bad, "$c->{call}: $ev 'incoming' events" if $ev > 1;
}
my $idle_registered = 0;
for my $log (glob "$W/idle*.log") {
    $idle_registered += $1 if slurp($log) =~ /loadgen: (\d+) calls registered/;
}
my $idle_rows = grep { !$ours{$_} && $row{$_}{account} ne $meta->{account} } keys %row;
my $idle_missing = $idle_registered - $idle_rows;
push @crm_bad, "idle streams: $idle_registered calls registered, $idle_rows calls rows" if $idle_missing;

my %mcount;
for (lines("$W/messages.tsv")) { my ($p, $id) = split /\t/; $mcount{"$p $id"}++ }
my ($msg_sent, $msg_missing, $msg_twice, $msg_unanswered, $msg_refused) = (0) x 5;
my %refused;
for my $m (@msgs) {
    if (($m->{status} // '') eq '503') {
        $msg_refused++;
        $refused{ phase_of($m->{t}) }++;
        next;
    }
    if (($m->{status} // '') ne '200') { $msg_unanswered++; $lost{ phase_of($m->{t}) }{'message unanswered'}++; next }
    $msg_sent++;
    my $n = $mcount{"$m->{provider} $m->{msg}"} // 0;
    $lost{ phase_of($m->{t}) }{'message row'}++ if $n != 1;
    $msg_missing++, push @crm_bad, "$m->{provider} $m->{msg}: no messages row" if $n == 0;
    $msg_twice++, push @crm_bad, "$m->{provider} $m->{msg}: $n rows" if $n > 1;
}

print "\nCRM: what the load was answered 200 for, against PostgreSQL after the spool drained\n";
printf "  calls     %6d answered, %d missing, %d with a wrong final status; 'incoming' event: %d missing, %d twice\n",
    $calls_sent, $calls_missing, $status_wrong, $ev_missing, $ev_twice;
printf "  idle      %6d registered by loadgen, %d calls rows (%d missing)\n",
    $idle_registered, $idle_rows, $idle_missing;
printf "  messages  %6d answered 200, %d missing, %d duplicated; %d still 503 after %s tries 5 s apart (WA_NOT_STORED:\n"
     . "            the module asked the sender to retry; not expected in the CRM), %d never answered\n",
    $msg_sent, $msg_missing, $msg_twice, $msg_refused, 3, $msg_unanswered;
push @fail, "$msg_unanswered WhatsApp webhook(s) never answered" if $msg_unanswered;
if (@crm_bad) {
    print "  $_\n" for @crm_bad[0 .. ($#crm_bad < 19 ? $#crm_bad : 19)];
    push @fail, scalar(@crm_bad) . ' CRM row(s) missing, duplicated or wrong';
}

# --- no worker leaked memory or descriptors ------------------------------

my ($b4, $af) = @$meta{qw(before after)};
print "\nworkers at the two quiet moments (after the warm-up; after pg_restart .. slow_idle);\n",
      "  judged: private memory (RssAnon) +$meta->{RSS_TOL_KB} KB, descriptors +$meta->{FD_TOL} per worker at most\n";
my $leak_ok = 1;
for my $pid (sort keys %$b4) {
    my ($x, $y) = ($b4->{$pid}, $af->{$pid});
    if (!$y) {
        printf "  worker %s: gone by the second measurement (it must not be)\n", $pid;
        $leak_ok = 0;
        next;
    }
    my $danon = ($y->{anon} // 0) - ($x->{anon} // 0);
    my $dfd = $y->{fds} - $x->{fds};
    my $ok = $danon <= $meta->{RSS_TOL_KB} && $dfd <= $meta->{FD_TOL};
    $leak_ok &&= $ok;
    printf "  worker %s: RssAnon %d -> %d KB (%+d), VmRSS %d -> %d KB (%+d, the zone's pages included), fds %d -> %d (%+d): %s\n",
        $pid, $x->{anon} // 0, $y->{anon} // 0, $danon, $x->{rss}, $y->{rss}, $y->{rss} - $x->{rss},
        $x->{fds}, $y->{fds}, $dfd, $ok ? 'ok' : 'LEAK?';
}
# where it grew: each phase's end (not a quiet moment: the load runs)
my @mem = grep { $_->{mem} } map { decode_json($_) } lines("$W/readyz.jsonl");
if (@mem) {
    print "  RssAnon (KB) of these workers at each phase's end, under load:\n";
    for my $m (@mem) {
        printf "    %-11s %s\n", $m->{phase}, join '  ', map {
            "$_ " . ($m->{mem}{$_} ? $m->{mem}{$_}{anon} : '-') } sort keys %$b4;
    }
}
push @fail, 'a worker grew past the tolerance or was replaced' unless $leak_ok && %$b4;

# --- webhooks' p99 per phase, and the phases' summary --------------------

sub pct {
    my ($v, $p) = @_;
    return 0 unless @$v;
    my $i = int($p * @$v + 0.999999) - 1;
    $i = 0 if $i < 0;
    return $v->[$i];
}

my $log = slurp("$W/nginx/logs/error.log");
my %tag;
$tag{$1}++ while $log =~ /\[(?:error|warn|notice|alert|crit|emerg)\] \d+#\d+: (?:\*\d+ )?([A-Z][A-Z_]{3,})\b/g;
my @signals = $log =~ /exited on signal (\d+)/g;
my $sig9 = grep { $_ == 9 } @signals;
my @crash = grep { $_ != 9 } @signals;
# the master's "[alert] worker process N exited on signal 9" is the run's own kill
my ($alerts) = scalar(() = $log =~ /\[(?:alert|crit|emerg)\](?! \d+#\d+: worker process \d+ exited on signal 9\n)/g);

# the module's counters per phase: what each worker's /readyz said at the
# phase's end, less what it said at the end of the one before
my (%rz_delta, %rz_last);
for (lines("$W/readyz.jsonl")) {
    my $r = decode_json($_);
    for my $pid (keys %{ $r->{workers} }) {
        my $w = $r->{workers}{$pid};
        my %now = (dropped => $w->{database}{dropped} // 0,
                   spool_write_failed => ($w->{spool} // {})->{write_failed} // 0);
        for my $k (keys %now) {
            $rz_delta{ $r->{phase} }{$k} += $now{$k} - ($rz_last{$pid}{$k} // 0);
            $rz_last{$pid}{$k} = $now{$k};
        }
    }
}

print "\nwebhooks per phase, each attempt (Twilio's timeout is per request): p99 of the time to an\n",
      "  HTTP answer, 15 s counted for an attempt without one; a connection refused or reset\n",
      "  (a killed worker's) is tried again by Twilio: 'failed' counts those attempts, 'unanswd'\n",
      "  the webhooks that never got an answer; dropped/spool_wf: the workers' /readyz counters\n",
      "  (CRM writes dropped, spool appends failed) over the phase (a worker that died takes its own)\n";
printf "  %-11s %6s %8s %8s %8s %6s %7s %5s %5s %7s %8s  %s\n", qw(phase attempts p50ms p99ms maxms failed unanswd 5xx 503 dropped spool_wf what);
my @summary;
for my $ph (grep { $_->{name} ne 'quiet' } @phases) {
    my @in = grep { $_->{t} >= $ph->{t0} && $_->{t} < $ph->{t1} } @att;
    my @ms = sort { $a <=> $b } map {
        $_->{status} =~ /^\d+$/ ? $_->{ms} : $_->{ms} + $TWILIO_TIMEOUT_MS }
        grep { $_->{status} !~ /^(reset|refused)$/ } @in;
    my $failed = grep { $_->{status} =~ /^(reset|refused)$/ } @in;
    my $unans = grep { $_->{t} >= $ph->{t0} && $_->{t} < $ph->{t1} && $_->{status} !~ /^\d+$/ } @wh;
    my $s5 = grep { $_->{status} =~ /^5\d\d$/ && $_->{status} != 503 } @in;
    my $s503 = grep { $_->{status} eq '503' } @in;
    my $p99 = pct(\@ms, 0.99);
    my $d = $rz_delta{ $ph->{name} } // {};
    printf "  %-11s %6d %8.1f %8.1f %8.1f %6d %7d %5d %5d %7d %8d  %s\n", $ph->{name}, scalar @in,
        pct(\@ms, 0.5), $p99, $ms[-1] // 0, $failed, $unans, $s5, $s503,
        $d->{dropped} // 0, $d->{spool_write_failed} // 0, $ph->{what};
    my $ok = $p99 < $TWILIO_TIMEOUT_MS && !$s5 && !$unans;
    push @fail, "phase $ph->{name}: webhooks p99 " . sprintf('%.0f', $p99) . " ms, $s5 answered 5xx, $unans never answered"
        unless $ok || !@in;
    $lost{ $ph->{name} }{'CRM writes dropped (CRM_QUEUE_FULL)'} += $d->{dropped} if $d->{dropped};
    push @summary, [$ph, scalar @in, $p99, $unans, $ok];
}

print "\nnginx error log: ", scalar(@signals), " worker exits on a signal (",
      "$sig9 SIGKILL, by the run: ", scalar(@{ $meta->{killed} }), "; other signals: ",
      (@crash ? "@crash" : 'none'), "), $alerts alert/crit/emerg\n";
print "  keys: ", join(', ', map { "$_ $tag{$_}" } sort { $tag{$b} <=> $tag{$a} } keys %tag), "\n";
push @fail, "a worker died of signal @crash (a crash)" if @crash;
push @fail, "$alerts alert/crit/emerg line(s) in the error log" if $alerts;
for my $lost (qw(CRM_LOST CRM_QUEUE_FULL)) {
    push @fail, "$tag{$lost} $lost line(s): CRM writes lost" if $tag{$lost};
}
push @fail, 'the nginx master was gone at the end' unless $meta->{master_alive};
for my $log (sort glob "$W/idle*.log") {
    my $r = slurp($log);
    my %v = $r =~ /(\w+)=(\S+)/g;
    if (!%v) {
        print "idle streams ($log): no RESULT\n";
        push @fail, "the idle streams of $log did not run";
        next;
    }
    printf "idle streams (%s): %d opened, %d failed to connect or upgrade, %d closed by the server, %d closed clean\n",
        $log =~ m{([^/]+)\.log$}, $v{open_at_window_start}, $v{connect_fail} + $v{handshake_fail} + $v{handshake_timeout},
        $v{server_close}, $v{closed_clean};
    push @fail, "idle streams ($log): not all $v{streams} held and closed clean"
        unless $v{open_at_window_end} == $v{streams} && $v{closed_clean} == $v{streams};
}
my $slow = slurp("$W/slowloris.log");
print "slow clients: ", ($slow =~ /(SLOWLORIS.*)/ ? $1 : 'no report'), "\n";
print "disk full: ", ($meta->{disk_full} eq 'tmpfs'
    ? "the spool on a $meta->{SPOOL_SIZE} tmpfs, filled by dd during phase disk_full"
    : 'SKIPPED (needs root to mount a tmpfs for the spool)'), "\n";

print "\nper phase (for docs/reliability.md):\n";
my $lost_txt = ($calls_missing + $msg_missing + $idle_missing + $status_wrong + $ev_missing) ? 'CRM writes lost (see above)' : 'nothing lost';
for my $s (@summary) {
    my ($ph, $n, $p99, $unans, $ok) = @$s;
    my $l = $lost{ $ph->{name} };
    my $lt = $l ? join(', ', map { "$l->{$_} $_" } sort keys %$l) : 'nothing lost';
    $lt .= "; $refused{ $ph->{name} } WhatsApp refused with 503 (retry later)" if $refused{ $ph->{name} };
    printf "  %-11s | %s | %d webhook requests, p99 %.0f ms, %d unanswered | %s | %s\n",
        $ph->{name}, $ph->{what} || 'no fault', $n, $p99, $unans,
        ($ok && !$l) ? 'survived' : 'NOT survived', $lt;
}
printf "  %-11s | calls %d (one outcome each: %s), WhatsApp %d, idle-stream calls %d | %s\n",
    'overall', $tot{calls} // 0, @bad ? scalar(@bad) . ' did not' : 'all', $msg_sent,
    $idle_registered, $lost_txt;

print "\n", (@fail ? join('', map { "FAIL: $_\n" } @fail) : "PASS: every check\n");
exit(@fail ? 1 : 0);
