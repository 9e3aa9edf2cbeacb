#!/usr/bin/perl
# CPU time used so far by nginx's workers and by PostgreSQL, from /proc,
# for bench/api/run to take the difference around a measurement.
#
# usage: cpu.pl NGINX_MASTER_PID POSTMASTER_PID
#
# Prints "nginx_us=.. pg_us=.." (microseconds, user + system):
#   nginx: every child of the master (its workers), utime + stime
#   pg:    the postmaster's utime + stime + cutime + cstime (the backends
#          that have exited, once reaped: pgbench's, between two calls)
#          and every live child's utime + stime
# A process that is gone counts 0; the numbers are clock ticks, so
# 1/CLK_TCK s (10 ms) resolution each.

use strict;
use warnings;
use POSIX ();

my ($master, $postmaster) = @ARGV;
die "usage: $0 NGINX_MASTER_PID POSTMASTER_PID\n" unless defined $postmaster;
my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

my %stat;    # pid -> [ppid, utime, stime, cutime, cstime]
opendir my $d, '/proc' or die "/proc: $!\n";
for my $pid (grep { /^\d+$/ } readdir $d) {
    open my $fh, '<', "/proc/$pid/stat" or next;
    my $s = <$fh> // next;
    $s =~ s/^.*\)\s+//s;        # after "pid (comm) "
    my @f = split ' ', $s;      # f[0] is field 3 (state)
    $stat{$pid} = [ $f[1], @f[11 .. 14] ];
}
closedir $d;

my ($ng, $pg) = (0, 0);
for my $pid (keys %stat) {
    my ($ppid, $u, $s) = @{ $stat{$pid} };
    $ng += $u + $s if $ppid == $master;
    $pg += $u + $s if $ppid == $postmaster;
}
if (my $pm = $stat{$postmaster}) {
    $pg += $pm->[1] + $pm->[2] + $pm->[3] + $pm->[4];
}
printf "nginx_us=%d pg_us=%d\n", $ng * 1e6 / $hz, $pg * 1e6 / $hz;
