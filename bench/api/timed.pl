#!/usr/bin/perl
# Runs a command and writes the CPU time it used (user + system, its own
# children included, in microseconds) and its wall time to a file, for
# bench/api/run's CPU accounting of the clients (wrk, pgbench).
#
# usage: timed.pl OUTFILE COMMAND [ARG...]
#
# OUTFILE gets "client_us=.. wall_us=..".  TERM, INT and HUP are passed
# on to the command; the exit status is the command's.

use strict;
use warnings;
use Time::HiRes qw(time);

my $out = shift;
die "usage: $0 OUTFILE COMMAND [ARG...]\n" unless @ARGV;
my $t0 = time;
my $pid = fork // die "fork: $!\n";
if (!$pid) {
    exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n";
}
for my $sig (qw(TERM INT HUP)) {
    $SIG{$sig} = sub { kill $sig => $pid };
}
while (waitpid($pid, 0) < 0) { last unless $!{EINTR} }
my $rc = $?;
my $wall = time - $t0;
my @t = times;
open my $fh, '>', $out or die "$out: $!\n";
printf $fh "client_us=%d wall_us=%d\n", 1e6 * ($t[2] + $t[3]), 1e6 * $wall;
close $fh or die "$out: $!\n";
exit($rc & 127 ? 128 + ($rc & 127) : $rc >> 8);
