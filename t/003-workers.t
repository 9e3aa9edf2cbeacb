# The zone under a real master with several workers: each of them maps the
# same zone.  A scenario rather than a block, as it must see which worker
# answered each request (X-Worker) and that every one of them did.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::AgentLocator::Server;

subtest 'every worker of the master maps the same zone' => sub {
    # reuseport: the kernel spreads connections over the workers by their
    # addresses, so 64 connections reach both (all on one: 1 in 2^63)
    my $s = Test::AgentLocator::Server->new(workers => 2, listen => 'reuseport',
        http => "    agentlocator_zone calls 1m;\n",
        server => "    location = /readyz { agentlocator_health ready; }\n");
    my (%by_worker, @bad);
    for (1 .. 64) {
        my $r = $s->request('GET /readyz');
        push @bad, "$r->{status} $r->{body}"
            unless $r->{status} == 200
                   && $r->{body} =~ /^\{"ready":true,.*"zone":\{"name":"calls","size":1048576,"entries":0,/;
        $by_worker{ $r->{worker} }++;
    }
    is_deeply(\@bad, [], 'every answer: ready, with the 1m zone "calls"');
    is(scalar keys %by_worker, 2, 'both workers answered: '
       . join ', ', map { "$_ x$by_worker{$_}" } sort keys %by_worker);
    is_deeply([sort keys %by_worker], [sort $s->workers], 'they are the master\'s two workers');
    unlike($s->error_log, qr/\[error\]/, 'no error logged');
    ok($s->stop, 'stopped');
};

done_testing();
