#!/usr/bin/perl
# Latency percentiles of pgbench's per-transaction logs (--log: one file
# per thread, "client_id transaction_no time script_no time_epoch time_us
# ...", time being the transaction's latency in microseconds).
#
# usage: pglog.pl LOGFILE...
#
# The first transaction of each client with each script is left out: it
# prepared the script's statements (-M prepared parses and plans them on
# first use), which the module does once per connection, when it connects,
# before any request.  Counted in "first=".
#
# With --rate, pgbench counts a transaction's latency from its scheduled
# start, and logs its schedule lag (how late it started) after time_us.
#
# Prints "n=.. first=.. logfailed=.. p50_us=.. p90_us=.. p99_us=.. p999_us=..
# max_us=.. lag_p99_us=.." (lag 0 without --rate); percentiles by nearest
# rank, as bench/crm/load.c computes its own.

use strict;
use warnings;

my (@lat, @lag, %seen);
my ($failed, $first) = (0, 0);
for my $f (@ARGV) {
    open my $fh, '<', $f or die "$f: $!\n";
    while (<$fh>) {
        my @x = split ' ';
        next unless @x >= 6;
        if (!$seen{"$x[0] $x[3]"}++) { $first++; next }
        if ($x[2] =~ /^\d+$/) { push @lat, $x[2] } else { $failed++ }
        push @lag, $x[6] if @x >= 7 && $x[6] =~ /^\d+$/;
    }
}
@lat = sort { $a <=> $b } @lat;
@lag = sort { $a <=> $b } @lag;
my $n = @lat;
sub pct {
    my ($v, $p) = @_;
    my $n = @$v;
    return 0 unless $n;
    my $i = int($p * $n + 0.999999) - 1;
    $i = 0 if $i < 0;
    $i = $n - 1 if $i >= $n;
    return $v->[$i];
}
printf "n=%d first=%d logfailed=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d lag_p99_us=%d\n",
    $n, $first, $failed, pct(\@lat, .50), pct(\@lat, .90), pct(\@lat, .99), pct(\@lat, .999),
    $n ? $lat[-1] : 0, pct(\@lag, .99);
