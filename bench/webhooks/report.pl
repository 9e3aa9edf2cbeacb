#!/usr/bin/perl
# The report of bench/webhooks/run, from its results file:
#   module|baseline ROUND key=value ...   (wrk.lua's BENCH line)
#   zone ROUND key=value ...              (/status "zone" after the round)
#
# usage: report.pl SETUP.txt RESULTS.txt TARGET ERROR.log WORKDIR
# Exit status 1 when the module answered non-2xx or lost connections.

use strict;
use warnings;

$| = 1;    # in order with the runner's stderr

my ($setup, $results, $target, $error_log, $work) = @ARGV;

my %r;    # $r{kind}{round}{key}
open my $fh, '<', $results or die "$results: $!\n";
while (<$fh>) {
    my ($kind, $round, @kv) = split;
    $r{$kind}{$round} = { map { split /=/, $_, 2 } @kv };
}
close $fh;

my @rounds = sort { $a <=> $b } keys %{ $r{module} };
sub best {
    my ($kind) = @_;
    my ($best) = sort { $r{$kind}{$b}{rps} <=> $r{$kind}{$a}{rps} } @rounds;
    return $best;
}
my ($mb, $bb) = (best('module'), best('baseline'));
my ($mod, $base) = ($r{module}{$mb}, $r{baseline}{$bb});
my $z = $r{zone}{$mb};

sub ms { sprintf '%.2fms', $_[0] / 1000 }
sub sockerr { my ($x) = @_; $x->{connect} + $x->{read} + $x->{write} + $x->{timeout} }

open $fh, '<', $setup or die "$setup: $!\n";
my @setup = <$fh>;
close $fh;

print "\nwebhooks: POST /webhook/incoming_call (module: X-Twilio-Signature checked,\n",
      "          a new registry entry per request) vs POST /baseline (return 200)\n",
      "          with the same request bytes, in the same nginx\n";
print "          $_" for @setup;
print "\n";
printf "%-9s %11s %9s %9s %8s %8s %9s %8s\n",
       '', 'requests/s', 'p50', 'p99', 'non-2xx', 'sockerr', 'requests', 'seconds';
for (["module", $mod], ["baseline", $base]) {
    my ($k, $x) = @$_;
    printf "%-9s %11.0f %9s %9s %8d %8d %9d %8.2f\n", $k, $x->{rps},
           ms($x->{p50_us}), ms($x->{p99_us}), $x->{non2xx}, sockerr($x),
           $x->{requests}, $x->{duration_us} / 1e6;
}

my $ratio = $mod->{rps} / $base->{rps};
printf "\nratio module/baseline: %.2f  (target >= %s with one worker): %s\n",
       $ratio, $target, $ratio >= $target ? 'PASS' : 'BELOW TARGET';

printf "every round, requests/s: module %s; baseline %s\n",
       join(', ', map { sprintf '%.0f', $r{module}{$_}{rps} } @rounds),
       join(', ', map { sprintf '%.0f', $r{baseline}{$_}{rps} } @rounds);

if ($z && $z->{entries}) {
    my $used = $z->{pages_total} - $z->{pages_free};
    printf "zone after round %d: %d entries (capacity %d, full %d); "
         . "%.0f zone bytes per live call\n"
         . "    = (pages_total - pages_free) * 4096 / entries"
         . " = (%d - %d) * 4096 / %d; module's entry_bytes: %d\n",
           $mb, $z->{entries}, $z->{capacity}, $z->{full},
           $used * 4096 / $z->{entries},
           $z->{pages_total}, $z->{pages_free}, $z->{entries},
           $z->{entry_bytes};
} else {
    print "zone after round $mb: no entries?\n";
}

my ($non2xx, $sockerr, $wrapped, $full, $bad_baseline) = (0) x 5;
for my $i (@rounds) {
    $non2xx  += $r{module}{$i}{non2xx};
    $sockerr += sockerr($r{module}{$i});
    $wrapped += $r{module}{$i}{wrapped};
    $full    += $r{zone}{$i}{full} // 0;
    $bad_baseline += $r{baseline}{$i}{non2xx} + sockerr($r{baseline}{$i});
}
my $ended = join ', ', map {
    $r{module}{$_}{exhausted} ? 'requests used up' : 'duration'
} @rounds;
print "module rounds ended by: $ended; CallSids sent twice: $wrapped\n";

my ($alerts, $errors) = (0, 0);
if (open $fh, '<', $error_log) {
    while (<$fh>) {
        $alerts++ if /\[(alert|crit|emerg)\]/;
        $errors++ if /\[error\]/;
    }
    close $fh;
}
print "error log: $alerts alert/crit/emerg, $errors error lines ($error_log)\n",
      "wrk output: $work/wrk-*.txt\n";

my ($busy) = sort { $b <=> $a } map { $r{busy}{$_}{before} // 0 } @rounds;
print "other load: the CPUs were up to $busy% busy just before a round\n";

my @warn;
push @warn, "the machine was $busy% busy before a round started (other"
          . " jobs?): these figures are not comparable" if $busy > 10;
push @warn, "$wrapped module requests reused a CallSid (the cheaper"
          . " idempotent path): the module figure is optimistic" if $wrapped;
push @warn, "the registry was full $full times (ZONE_FULL): raise ZONE" if $full;
push @warn, "the baseline had $bad_baseline non-2xx answers or socket errors"
    if $bad_baseline;
push @warn, "alert/crit/emerg lines in $error_log" if $alerts;
print STDERR "bench/webhooks: WARNING: $_\n" for @warn;

if ($non2xx || $sockerr) {
    print STDERR "bench/webhooks: FAIL: the module answered $non2xx non-2xx"
               . " and lost $sockerr connections under load: the figures"
               . " above are not valid\n";
    exit 1;
}
exit 0;
