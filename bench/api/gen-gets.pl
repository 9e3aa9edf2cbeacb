#!/usr/bin/perl
# The API requests of bench/api/run's part 1b as whole HTTP requests, each
# followed by a NUL byte (what paced.c reads), drawn as api.lua draws them
# for wrk (see there and sql.pl): the same endpoints, parameters and tokens.
#
# usage: gen-gets.pl PARAMS.lua ENDPOINT N HOST SEED TOKEN1 .. TOKENB

use strict;
use warnings;

my ($params, $endpoint, $n, $host, $seed, @tok) = @ARGV;
die "usage: $0 PARAMS.lua ENDPOINT N HOST SEED TOKEN1 ..\n"
    unless @tok && $n =~ /^[1-9][0-9]*$/;

my $lua = do { local $/; open my $fh, '<', $params or die "$params: $!\n"; <$fh> };
my %P;
$P{$1} = $2 while $lua =~ /\b(businesses|threads|calls|pages)\s*=\s*(\d+)/g;
my ($qlist) = $lua =~ /\bq\s*=\s*\{([^}]*)\}/ or die "$params: no q\n";
my @q = $qlist =~ /"([^"]*)"/g;
die "$params: not what sql.pl writes\n" unless keys %P == 4 && @q;
my $B = $P{businesses};
die "$B businesses, " . @tok . " tokens\n" unless @tok == $B;

my @kinds = qw(threads messages calls call customers);
srand($seed);
sub rnd { 1 + int rand shift }    # uniform in 1..N, as Lua's math.random(N)

binmode STDOUT;
for (1 .. $n) {
    my $kind = $endpoint eq 'mix' ? $kinds[rand @kinds] : $endpoint;
    my ($b, $path);
    if ($kind eq 'threads') {
        $b = rnd($B);
        $path = '/api/threads?page=' . rnd($P{pages}) . '&limit=25';
    } elsif ($kind eq 'messages') {
        my $t = rnd($P{threads});
        $b = 1 + ($t - 1) % $B;
        $path = "/api/threads/$t/messages?limit=50";
    } elsif ($kind eq 'calls') {
        $b = rnd($B);
        $path = '/api/calls?page=' . rnd($P{pages}) . '&status=completed';
    } elsif ($kind eq 'call') {
        my $c = rnd($P{calls});
        $b = 1 + ($c - 1) % $B;
        $path = sprintf '/api/calls/CA%032x', $c;
    } elsif ($kind eq 'customers') {
        $b = rnd($B);
        $path = '/api/crm/customers?q=' . $q[rand @q];
    } else {
        die "no endpoint $kind\n";
    }
    print "GET $path HTTP/1.1\r\nHost: $host\r\nAuthorization: Bearer $tok[$b - 1]\r\n\r\n\0";
}
