package Test::AgentLocator::Postgres;

# A real PostgreSQL cluster for the CRM tests: initdb into a temp dir, its
# own port on 127.0.0.1 and its own unix socket directory, trust auth for
# the superuser "agentlocator", a database "agentlocator".  Stopped (fast)
# when the object goes away.  As root, the server runs as the "postgres"
# user, as PostgreSQL refuses to run as root.
#
#   my $pg = Test::AgentLocator::Postgres->new
#       or plan skip_all => Test::AgentLocator::Postgres->why_not;
#   $pg->conninfo;                    # for psql, tools/migrate, the module
#   $pg->psql('SELECT 1');            # -At output; dies on an SQL error
#   $pg->stop; $pg->start;            # the database going away and back

use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Scalar::Util ();

my $WhyNot;

# Every cluster still running, stopped by END below.  An object held until
# global destruction is destroyed after File::Temp's END has removed its
# directory: DESTROY then finds no postmaster.pid, and the server, its data
# gone, lives on until it notices a minute later.  This END is compiled
# after File::Temp's, so it runs first.
my %Running;

END {
    local $?;
    $_->stop('immediate') for grep { defined && $_->{owner} == $$ } values %Running;
    %Running = ();
}

# A test killed by prove or by a timeout still stops its cluster.
my %SigNum = (HUP => 1, INT => 2, TERM => 15);
for my $sig (keys %SigNum) {
    $SIG{$sig} = sub { exit 128 + $SigNum{$sig} } if ($SIG{$sig} // 'DEFAULT') eq 'DEFAULT';
}

sub why_not { $WhyNot // 'PostgreSQL is not installed (Debian: postgresql)' }

sub bindir {
    for my $dir (glob('/usr/lib/postgresql/*/bin')) {
        return $dir if -x "$dir/initdb" && -x "$dir/pg_ctl";
    }
    my $pg_config = `pg_config --bindir 2>/dev/null` // '';
    chomp $pg_config;
    return $pg_config if $pg_config && -x "$pg_config/initdb";
    return undef;
}

sub new {
    my ($class, %o) = @_;
    my $bin = bindir() or return undef;
    # a forked child (a mock server) must not stop its parent's cluster
    my $self = bless { bin => $bin, port => free_port(), owner => $$ }, $class;
    $self->{root} = tempdir('pg-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $self->{data} = "$self->{root}/data";
    $self->{sock} = "$self->{root}/sock";
    mkdir $self->{sock};
    if ($> == 0) {
        my (undef, undef, $uid, $gid) = getpwnam('postgres')
            or do { $WhyNot = 'running as root and there is no "postgres" user'; return undef };
        chown $uid, $gid, $self->{root}, $self->{sock};
        chmod 0755, $self->{root};
        $self->{as} = ['runuser', '-u', 'postgres', '--'];
    }
    $self->run('initdb', '-D', $self->{data}, '-U', 'agentlocator', '--auth=trust',
               '-E', 'UTF8', '--no-locale', '--no-sync')
        or do { $WhyNot = "initdb failed: $self->{last}"; return undef };
    $Running{"$self"} = $self;
    Scalar::Util::weaken($Running{"$self"});
    $self->start or do { $WhyNot = "the server did not start: $self->{last}"; return undef };
    $self->psql('CREATE DATABASE agentlocator', 'postgres');
    return $self;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp')
        or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# runs @cmd; (true if it exited 0, its stdout and stderr together)
sub capture {
    my (@cmd) = @_;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec @cmd or die "exec $cmd[0]: $!";
    }
    my $text = do { local $/; <$out> } // '';
    close $out;
    return ($? == 0, $text);
}

# a program of the cluster's bindir, as the cluster's user; its output is
# kept in {last}
sub run {
    my ($self, $prog, @args) = @_;
    (my $ok, $self->{last}) = capture(@{ $self->{as} // [] }, "$self->{bin}/$prog", @args);
    return $ok;
}

sub start {
    my ($self) = @_;
    return $self->run('pg_ctl', '-D', $self->{data}, '-l', "$self->{root}/server.log",
        '-w', '-t', '30', '-o',
        "-p $self->{port} -k $self->{sock} -c listen_addresses=127.0.0.1 "
        # fsync off: a test never loses the machine.  Commits stay
        # synchronous: a killed server must keep what it acknowledged.
        . "-c fsync=off -c full_page_writes=off",
        'start');
}

sub stop {
    my ($self, $mode) = @_;
    return 1 unless -f "$self->{data}/postmaster.pid";
    return $self->run('pg_ctl', '-D', $self->{data}, '-m', $mode // 'fast', '-w', 'stop');
}

sub port { $_[0]{port} }

sub conninfo {
    my ($self, $db) = @_;
    return "host=127.0.0.1 port=$self->{port} user=agentlocator dbname=" . ($db // 'agentlocator');
}

# psql -At; dies with psql's message on an error
sub psql {
    my ($self, $sql, $db) = @_;
    my ($ok, $text) = capture('psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
                              $self->conninfo($db), '-c', $sql);
    die "psql: $text" unless $ok;
    chomp $text;
    return $text;
}

sub DESTROY {
    my ($self) = @_;
    local $?;
    $self->stop('immediate') if $self->{data} && $self->{owner} == $$;
    delete $Running{"$self"};
}

1;
