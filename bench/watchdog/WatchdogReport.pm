package WatchdogReport;

# What report.pl (the storm) and report-mixed.pl (MODE=mixed) both read
# from a run's work directory and how they count it: meta.txt and the
# helpers' one-line summaries, percentiles, the CPU sampler's file, and the
# error log's levels with its most frequent messages.

use strict;
use warnings;
use Exporter 'import';
use JSON::PP ();

our @EXPORT = qw(read_meta read_kv read_status pct stats f read_cpu cpu_between
                 machine_between count_log_line print_log_summary);

# meta.txt: key=value lines written by run
sub read_meta {
    my ($work) = @_;
    my %m;
    open my $fh, '<', "$work/meta.txt" or die "$work/meta.txt: $!\n";
    while (<$fh>) { chomp; my ($k, $v) = split /=/, $_, 2; $m{$k} = $v }
    close $fh;
    return %m;
}

# a file of one line "key=value key=value ..." (mock.summary, mixed.summary)
sub read_kv {
    my ($file) = @_;
    open my $fh, '<', $file or return ();
    my $line = <$fh> // '';
    close $fh;
    return map { split /=/, $_, 2 } split ' ', $line;
}

sub pct {    # nearest rank; list sorted ascending
    my ($p, $s) = @_;
    return undef unless @$s;
    my $i = int($p / 100 * @$s + 0.999999) - 1;
    $i = 0 if $i < 0;
    $i = $#$s if $i > $#$s;
    return $s->[$i];
}

sub stats {  # -> (n, min, p50, p99, max)
    my @s = sort { $a <=> $b } @_;
    return (scalar @s, $s[0], pct(50, \@s), pct(99, \@s), $s[-1]);
}

sub f { defined $_[0] ? sprintf('%.1f', $_[0]) : '-' }

# cpu.tsv from "calls sample": per pid [t, ticks, schedstat ns], for "all"
# (the machine) [t, busy jiffies, 0, total jiffies]; and per pid [t, RSS kB]
sub read_cpu {
    my ($file) = @_;
    my (%cpu, %rss);
    open my $fh, '<', $file or return (\%cpu, \%rss);
    while (<$fh>) {
        my ($t, $pid, $ut, $st, $ns, $kb) = split;
        next if $ut eq 'gone';
        push @{ $rss{$pid} }, [ $t, $kb ] if defined $kb;
        push @{ $cpu{$pid} }, $pid eq 'all' ? [ $t, $ut, 0, $st ]
                                            : [ $t, $ut + $st, $ns ];
    }
    close $fh;
    return (\%cpu, \%rss);
}

# the pids' CPU between a and b (µs), from the samples just outside:
# (s by ticks, s by schedstat, the samples' real a, real b)
sub cpu_between {
    my ($cpu, $tck, $a, $b, @pids) = @_;
    my ($ticks, $ns, $ra, $rb) = (0, 0, undef, undef);
    for my $pid (grep { $cpu->{$_} } @pids) {
        my $s = $cpu->{$pid};
        my ($x) = grep { $_->[0] <= $a } reverse @$s;
        my ($y) = grep { $_->[0] >= $b } @$s;
        $x //= $s->[0];
        $y //= $s->[-1];
        $ticks += $y->[1] - $x->[1];
        $ns += $y->[2] - $x->[2];
        $ra = $x->[0] if !defined $ra || $x->[0] < $ra;
        $rb = $y->[0] if !defined $rb || $y->[0] > $rb;
    }
    return ($ticks / ($tck || 100), $ns / 1e9, $ra // $a, $rb // $b);
}

# the whole machine between a and b: { busy => CPU-s, pct => % of all
# CPUs, ncpu, secs }, or undef without samples
sub machine_between {
    my ($cpu, $tck, $a, $b) = @_;
    my $s = $cpu->{all} or return undef;
    my ($x) = grep { $_->[0] <= $a } reverse @$s;
    my ($y) = grep { $_->[0] >= $b } @$s;
    ($x, $y) = ($x // $s->[0], $y // $s->[-1]);
    return undef unless $y->[3] > $x->[3];
    $tck ||= 100;
    my $secs = ($y->[0] - $x->[0]) / 1e6;
    return { busy => ($y->[1] - $x->[1]) / $tck,
             pct => 100 * ($y->[1] - $x->[1]) / ($y->[3] - $x->[3]),
             ncpu => $secs > 0 ? ($y->[3] - $x->[3]) / $tck / $secs : 1,
             secs => $secs };
}

# /status as run saved it at the end (status.json), or undef
sub read_status {
    my ($work) = @_;
    open my $fh, '<', "$work/status.json" or return undef;
    local $/;
    my $st = eval { JSON::PP::decode_json(<$fh>) };
    close $fh;
    return $st;
}

# one error log line: its level counted, and for warn and worse its
# message with numbers and SIDs masked; returns the level (undef: no level)
sub count_log_line {
    my ($line, $levels, $msgs) = @_;
    my ($lvl) = $line =~ /^\S+ \S+ \[(\w+)\]/ or return undef;
    $levels->{$lvl}++;
    if ($lvl =~ /^(emerg|alert|crit|error|warn)$/) {
        (my $k = $line) =~ s/^\S+ \S+ //;
        $k =~ s/\d+#\d+: (\*\d+ )?//;
        $k =~ s/(CA|MZ)[0-9a-f]{32}/$1.../g;
        $k =~ s/\b\d+\b/N/g;
        $k =~ s/, client: .*//;
        chomp $k;
        $msgs->{$k}++;
    }
    return $lvl;
}

sub print_log_summary {
    my ($levels, $msgs, $elog) = @_;
    printf "error log: %d emerg, %d alert, %d crit, %d error, %d warn lines (%s)\n",
           map({ $levels->{$_} // 0 } qw(emerg alert crit error warn)), $elog;
    my @top = sort { $msgs->{$b} <=> $msgs->{$a} } keys %$msgs;
    printf "    %6d x %s\n", $msgs->{$_}, $_ for @top[0 .. ($#top < 9 ? $#top : 9)];
}

1;
