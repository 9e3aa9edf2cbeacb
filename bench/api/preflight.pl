#!/usr/bin/perl
# Pre-flight of bench/api/run: one request per endpoint, each must answer
# 200 with the total (or the call) that the database holds, counted here
# with SQL of its own, not the module's statements.  Also saves the threads
# page's answer as the floor's body (the same size as a real answer).
#
# usage: preflight.pl PORT CONNINFO FLOOR_BODY TOKEN1 TOKEN2 TOKEN3 ..
#
# Prints "preflight <endpoint> status=.. total=.. want=.. bytes=.." lines;
# exit 1 (with the reason on stderr) when an answer is not what it must be.

use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP ();

my ($port, $conninfo, $floor, @tok) = @ARGV;
die "usage: $0 PORT CONNINFO FLOOR_BODY TOKEN1 ..\n" unless @tok >= 3;

my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
my $json = JSON::PP->new->utf8;

sub sql {
    my ($q) = @_;
    open my $ph, '-|', 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
        $conninfo, '-c', $q or die "psql: $!\n";
    my $v = do { local $/; <$ph> };
    close $ph or die "psql failed on: $q\n";
    chomp $v;
    return $v;
}

my $sid = sprintf 'CA%032x', 2;    # call 2: business 2 (seed.sql)
my $q = 'כהן';
(my $qenc = $q) =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
my @checks = (
    [ threads   => 1, '/api/threads?page=1&limit=25',
      'SELECT count(*) FROM threads WHERE business_id = 1' ],
    [ messages  => 1, '/api/threads/1/messages?limit=50',
      'SELECT count(*) FROM messages WHERE thread_id = 1' ],
    [ calls     => 2, '/api/calls?page=2&status=completed',
      q{SELECT count(*) FROM calls WHERE business_id = 2 AND status = 'completed'} ],
    [ call      => 2, "/api/calls/$sid",
      "SELECT count(*) FROM call_events WHERE call_sid = '$sid'" ],
    [ customers => 3, "/api/crm/customers?q=$qenc",
      "SELECT count(*) FROM customers WHERE business_id = 3"
      . " AND (phone LIKE '%$q%' OR name ILIKE '%$q%')" ],
);

my $fail = 0;
for my $c (@checks) {
    my ($name, $b, $path, $want_sql) = @$c;
    my $r = $http->get("http://127.0.0.1:$port$path",
                       { headers => { Authorization => "Bearer $tok[$b - 1]" } });
    my $want = sql($want_sql);
    my $doc = eval { $json->decode($r->{content}) } // {};
    my $got = $name eq 'call' ? scalar @{ $doc->{timeline} // [] } : $doc->{total};
    my $ok = $r->{status} == 200 && defined $got && $got == $want && $want > 0;
    if ($ok && $name eq 'call') {
        $ok = ($doc->{call_sid} // '') eq $sid;
    } elsif ($ok) {
        my $rows = @{ $doc->{results} // [] };
        my $limit = $doc->{limit} // 0;
        my $page = $doc->{page} // 0;
        my $expect = $want - ($page - 1) * $limit;
        $expect = $limit if $expect > $limit;
        $expect = 0 if $expect < 0;
        $ok = $rows == $expect;
    }
    printf "preflight %s status=%d total=%s want=%s bytes=%d\n", $name, $r->{status},
        $got // '-', $want, length($r->{content} // '');
    unless ($ok) {
        print STDERR "pre-flight: GET $path (business $b): $r->{status}, "
            . ($name eq 'call' ? "timeline of " : 'total ') . ($got // 'none')
            . ", the database has $want: " . substr($r->{content} // '', 0, 300) . "\n";
        $fail = 1;
    }
    if ($name eq 'threads' && $ok) {
        open my $fh, '>:raw', $floor or die "$floor: $!\n";
        print $fh $r->{content};
        close $fh or die "$floor: $!\n";
    }
}

# no token: 401, so the figures are not of a module that lets anyone in
my $r = $http->get("http://127.0.0.1:$port/api/threads");
print "preflight no-token status=$r->{status}\n";
if ($r->{status} != 401) {
    print STDERR "pre-flight: GET /api/threads without a token answered $r->{status}, not 401\n";
    $fail = 1;
}
exit $fail;
