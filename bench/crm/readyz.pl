#!/usr/bin/perl
# GET /readyz of every nginx worker (each has its own CRM pool and counts):
# a new connection per request, until WORKERS distinct X-Worker pids have
# answered (the listen socket has reuseport, so connections spread).
#
# usage: readyz.pl PORT WORKERS
#
# Prints one line: "states=ok,ok workers=2 connected=8 queued=0 written=..
# refused=.. dropped=.." (every number of the "database" object, summed
# over the workers; states: each worker's checks.database, by pid;
# written_by: each worker's pid:written).
# Exit 1 when not every worker answered within 200 connections.

use strict;
use warnings;
use IO::Socket::INET;

my ($port, $workers) = @ARGV;
die "usage: $0 PORT WORKERS\n" unless defined $workers;

my %seen;
for (1 .. 200) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 2) or next;
    print $s "GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    my $r = do { local $/; <$s> } // '';
    close $s;
    my ($pid) = $r =~ /^X-Worker:\s*(\d+)/mi or next;
    $seen{$pid} = $r;
    last if keys %seen >= $workers;
}
exit 1 if keys %seen < $workers;

my (%sum, @states, @by);
for my $pid (sort { $a <=> $b } keys %seen) {
    my $r = $seen{$pid};
    push @states, $r =~ /"checks":\{[^}]*"database":"(\w+)"/ ? $1 : 'none';
    my %w;
    if ($r =~ /"database":\{([^}]*)\}/) {
        my $d = $1;
        $w{$1} = $2 while $d =~ /"(\w+)":(-?\d+)/g;
    }
    $sum{$_} += $w{$_} for keys %w;
    push @by, "$pid:" . ($w{written} // 0);
}
print join(' ', 'states=' . join(',', @states), 'workers=' . keys %seen,
           (map { "$_=$sum{$_}" } sort keys %sum),
           'written_by=' . join(',', @by)), "\n";
