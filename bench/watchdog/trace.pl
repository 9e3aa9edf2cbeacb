#!/usr/bin/perl
# bench/watchdog/run TRACE=1: reads `perf script -F pid,time,event` of the
# uprobes run sets on the module (GROUP:tick, tick_ret, due, due_ret,
# curltimer, curltimer_ret, curlevent, curlevent_ret) and of
# syscalls:sys_{enter,exit}_epoll_wait, per nginx worker, and prints:
#
# - every watchdog tick longer than 2 ms: its length, how many
#   registry_due passes it made (each claims up to 64 calls under the zone
#   lock) and how long the longest of them held the lock;
# - the longest curl timer passes (curl_multi_socket_action TIMEOUT);
# - curl socket events: count and length;
# - the longest event-loop turns (epoll_wait returned -> next epoll_wait),
#   which is what a webhook arriving meanwhile waits for.
#
# usage: perf script -i perf.data -F pid,time,event | trace.pl

use strict;
use warnings;

my %w;    # pid -> state and results

while (<>) {
    my ($pid, $t, $ev) = /^\s*(\d+)\s+(\d+\.\d+):\s+(\S+?):?\s*$/ or next;
    $ev =~ s/^.*://;
    my $x = $w{$pid} //= { open => {}, ticks => [], dues => [], timer => [],
                           events => [], turns => [] };

    if ($ev eq 'sys_exit_epoll_wait') { $x->{woke} = $t; next }
    if ($ev eq 'sys_enter_epoll_wait') {
        push @{ $x->{turns} }, [ $x->{woke}, $t - $x->{woke} ] if defined $x->{woke};
        next;
    }

    my ($name, $ret) = $ev =~ /^([a-z]+?)(_ret(?:__return)?)?$/ or next;

    if (!$ret) {
        $x->{open}{$name} = $t;
        $x->{tick} = { t => $t, dues => 0, due_max => 0 } if $name eq 'tick';
        next;
    }

    my $from = delete $x->{open}{$name};
    next unless defined $from;
    my $ms = ($t - $from) * 1000;

    if ($name eq 'tick') {
        $x->{tick}{ms} = $ms;
        push @{ $x->{ticks} }, $x->{tick};
    } elsif ($name eq 'due') {
        push @{ $x->{dues} }, $ms;
        if (my $k = $x->{tick}) {
            $k->{dues}++;
            $k->{due_max} = $ms if $ms > $k->{due_max};
        }
    } elsif ($name eq 'curltimer') {
        push @{ $x->{timer} }, [ $from, $ms ];
    } elsif ($name eq 'curlevent') {
        push @{ $x->{events} }, $ms;
    }
}

sub pct { my ($p, $s) = @_; @$s ? $s->[ int($p / 100 * $#$s + 0.5) ] : 0 }

for my $pid (sort { $a <=> $b } keys %w) {
    my $x = $w{$pid};
    my @big = grep { $_->{ms} > 2 } @{ $x->{ticks} };
    my $t0 = @big ? $big[0]{t} : (@{ $x->{ticks} } ? $x->{ticks}[0]{t} : 0);

    printf "worker %d: %d ticks, %d longer than 2 ms (times from the first of those)\n",
           $pid, scalar @{ $x->{ticks} }, scalar @big;
    for my $k (@big) {
        printf "    tick at +%6.0f ms took %6.1f ms: %3d registry passes (%d-%d claims),"
               . " longest lock hold %.2f ms\n", ($k->{t} - $t0) * 1000, $k->{ms},
               $k->{dues}, ($k->{dues} - 1) * 64, $k->{dues} * 64 - 1, $k->{due_max};
    }

    my @d = sort { $a <=> $b } @{ $x->{dues} };
    printf "  registry_due: %d passes, p50 %.3f ms, max %.3f ms (the zone lock is held"
           . " for each)\n", scalar @d, pct(50, \@d), $d[-1] // 0 if @d;

    my @tm = sort { $b->[1] <=> $a->[1] } @{ $x->{timer} };
    printf "  curl timer passes: %d, longest %s\n", scalar @tm,
           join(', ', map { sprintf '%.1f ms (+%.0f)', $_->[1], ($_->[0] - $t0) * 1000 }
                      @tm[0 .. ($#tm < 3 ? $#tm : 3)]) if @tm;

    my @e = sort { $a <=> $b } @{ $x->{events} };
    if (@e) {
        my $sum = 0;
        $sum += $_ for @e;
        printf "  curl socket events: %d, p50 %.3f ms, p99 %.3f ms, max %.2f ms, %.2f s in all\n",
               scalar @e, pct(50, \@e), pct(99, \@e), $e[-1], $sum / 1000;
    }

    my @turns = sort { $b->[1] <=> $a->[1] } grep { $_->[0] >= $t0 - 0.1 } @{ $x->{turns} };
    printf "  longest event-loop turns: %s\n",
           join(', ', map { sprintf '%.1f ms (+%.0f)', $_->[1] * 1000, ($_->[0] - $t0) * 1000 }
                      @turns[0 .. ($#turns < 5 ? $#turns : 5)]) if @turns;
}
