package Test::AgentLocator::Server;

# One nginx with our module for scenario tests that the block format cannot
# express: reloads, killed workers, the same call across known workers.
# nginx runs in the foreground as our child (no slow reaping by PID 1).
#
#   my $s = Test::AgentLocator::Server->new(workers => 2, http => '...',
#                                          server => '...');
#   (also main => '...' for the main context, connections => N for
#   worker_connections, listen => '...' for options of the listen line)
#   my $res = $s->request('GET /status');       # {status, headers, body, worker}
#   $s->reload; $s->kill_worker($pid); $s->stop;

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(WNOHANG);
use Scalar::Util ();
use Test::AgentLocator::LogMarkers qw(@FATAL_LOG_MARKERS);
use Test::More ();
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Valgrind ();

use File::Basename qw(dirname);

# this file is <top>/t/lib/Test/AgentLocator/Server.pm
my $Top = abs_path(dirname(abs_path(__FILE__)) . '/../../../..');

sub new {
    my ($class, %o) = @_;
    my $self = bless { workers => 2, http => '', server => '', main => '',
                       connections => 1024, listen => '', %o }, $class;
    $self->{root} = tempdir("$Top/t/servroot_scenario_XXXXXX",
                            CLEANUP => !$ENV{TEST_NGINX_NO_CLEAN});
    make_path(map { "$self->{root}/$_" } qw(conf logs html));
    $self->{port} = free_port();
    $self->write_conf;
    $self->start;
    return $self;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp') or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub module_line {
    my $so = exists $ENV{TEST_NGINX_LOAD_MODULE} ? $ENV{TEST_NGINX_LOAD_MODULE}
           : "$Top/build/ngx_http_agentlocator_module.so";
    return $so eq '' ? '' : "load_module $so;";
}

sub write_conf {
    my ($self, %o) = @_;
    $self->{$_} = $o{$_} for keys %o;
    my $user = $> == 0 ? 'user root;' : '';
    open my $fh, '>', "$self->{root}/conf/nginx.conf" or die $!;
    print $fh <<"EOC";
@{[module_line()]}
$user
daemon off;
master_process on;
worker_processes $self->{workers};
error_log logs/error.log info;
pid logs/nginx.pid;
$self->{main}
events { worker_connections $self->{connections}; accept_mutex off; }
http {
    access_log off;
    client_body_temp_path $self->{root}/client_body_temp;
    proxy_temp_path $self->{root}/proxy_temp;
    fastcgi_temp_path $self->{root}/fastcgi_temp;
    uwsgi_temp_path $self->{root}/uwsgi_temp;
    scgi_temp_path $self->{root}/scgi_temp;
    $self->{http}
    server {
        listen 127.0.0.1:$self->{port} $self->{listen};
        add_header X-Worker \$pid always;
        $self->{server}
    }
@{[ $self->tls_server ]}
}
EOC
    close $fh;
}

# With tls => { cert => FILE, key => FILE }: the same server again, over
# TLS on $self->{tls_port}.
sub tls_server {
    my ($self) = @_;
    return '' unless $self->{tls};
    $self->{tls_port} //= free_port();
    return <<"EOS";
    server {
        listen 127.0.0.1:$self->{tls_port} ssl;
        ssl_certificate $self->{tls}{cert};
        ssl_certificate_key $self->{tls}{key};
        add_header X-Worker \$pid always;
        $self->{server}
    }
EOS
}

# TEST_NGINX_USE_VALGRIND: nginx and its workers under memcheck, one log
# per process; stop() fails when any of them reports an error or a leak.
# Every wait for nginx below grows by $Slow then (Valgrind.pm).
our $Slow = Test::AgentLocator::Valgrind::slow();

sub valgrind_errors {
    my ($self) = @_;
    return Test::AgentLocator::Valgrind::report("$self->{root}/logs");
}

sub start {
    my ($self) = @_;
    my $bin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>>', "$self->{root}/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;
        { exec Test::AgentLocator::Valgrind::command("$self->{root}/logs",
                   $bin, '-p', "$self->{root}/", '-c', 'conf/nginx.conf') }
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $self->register;
    $self->wait_for(sub { -s "$self->{root}/logs/nginx.pid" }, 10 * $Slow)
        or die "nginx did not start:\n" . $self->slurp('stderr.log');
    $self->wait_for(sub { $self->workers == $self->{workers}
                          && waiting($self->workers) }, 10 * $Slow)
        or die "nginx workers did not start";
}

# True when every one of @pids sleeps in epoll_wait: a worker forked is
# not yet a worker that takes connections (its init is slow under
# valgrind, and under load); a test that counts on two workers answering
# waits for both.  Where the kernel hides wchan ("0"), sleeping will do.
sub waiting {
    for my $pid (@_) {
        open my $st, '<', "/proc/$pid/stat" or return 0;
        my ($state) = (<$st> // '') =~ /^\d+ \(.*\) (\S)/ or return 0;
        return 0 unless $state eq 'S';
        open my $wc, '<', "/proc/$pid/wchan" or next;
        my $wchan = <$wc> // '0';
        return 0 unless $wchan =~ /epoll/ || $wchan eq '0';
    }
    return 1;
}

sub wait_for {
    my ($self, $cond, $secs) = @_;
    my $until = time + $secs;
    while (time < $until) {
        return 1 if $cond->();
        die "nginx exited:\n" . $self->slurp('stderr.log')
            if waitpid($self->{pid}, WNOHANG) == $self->{pid};
        sleep 0.01;
    }
    return 0;
}

# Worker pids: the master's children (cache manager etc. would be listed
# too; these tests configure none).
sub workers {
    my ($self) = @_;
    my $f = "/proc/$self->{pid}/task/$self->{pid}/children";
    open my $fh, '<', $f or return ();
    my @pids = split ' ', (<$fh> // '');
    return wantarray ? @pids : scalar @pids;
}

# HUP; returns when the old workers are gone and new ones run.  With
# keep_old => 1 it returns as soon as the new ones run: old workers that
# still serve streams go on until those end.
sub reload {
    my ($self, %conf) = @_;
    my $keep_old = delete $conf{keep_old};
    $self->write_conf(%conf) if %conf;
    my %old = map { $_ => 1 } $self->workers;
    kill 'HUP', $self->{pid};
    $self->wait_for(sub {
        my @new = grep { !$old{$_} } $self->workers;
        @new == $self->{workers} && waiting(@new)
            && ($keep_old || $self->workers == $self->{workers});
    }, 15 * $Slow) or die "reload did not replace the workers";
}

sub kill_worker {
    my ($self, $pid) = @_;
    # the master's "[alert] worker process N exited on signal 9" is ours
    $self->allow_log(qr/worker process $pid exited on signal 9\b/);
    kill 'KILL', $pid;
    $self->wait_for(sub {
        my @now = $self->workers;
        @now == $self->{workers} && !(grep { $_ == $pid } @now)
            && waiting(@now);
    }, 15 * $Slow) or die "the master did not replace worker $pid";
}

# SIGKILL to the master and every worker at once, as a crash or an OOM
# kill would; start() brings the same nginx (configuration, prefix) back.
sub kill_all {
    my ($self) = @_;
    my @pids = ($self->{pid}, $self->workers);
    $self->allow_log(qr/exited on signal 9\b/);
    # the master first: it would replace a worker it saw die
    kill 'KILL', @pids;
    waitpid($self->{pid}, 0);
    1 while waitpid(-1, WNOHANG) > 0;
    $self->wait_for_gone(@pids);
    unlink "$self->{root}/logs/nginx.pid";
    delete $self->{pid};
}

sub wait_for_gone {
    my ($self, @pids) = @_;
    my $until = time + 10 * $Slow;
    sleep 0.01 while time < $until && grep { kill 0, $_ } @pids;
}

# request("POST /uri", body => ..., headers => [...]) on a new connection
# Call CA%032x as GET /status shows it (undef when it is not there); in
# list context also the pid of the worker that answered.
sub call {
    my ($self, $n) = @_;
    my $r = $self->request('GET /status');
    my ($c) = grep { $_->{call_sid} eq sprintf('CA%032x', $n) }
              @{ JSON::PP::decode_json($r->{body})->{calls} };
    return wantarray ? ($c, $r->{worker}) : $c;
}

sub request {
    my ($self, $line, %o) = @_;
    my $body = $o{body} // '';
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $self->{port},
                                     Proto => 'tcp', Timeout => 5 * $Slow)
        or die "connect: $!";
    my $hdrs = join '', map { "$_\r\n" } @{ $o{headers} // [] };
    $hdrs .= "Content-Length: " . length($body) . "\r\n" if length $body;
    print $sock "$line HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                . "$hdrs\r\n$body";
    local $/;
    my $raw = <$sock> // '';
    close $sock;
    my ($head, $content) = split /\r\n\r\n/, $raw, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () }
            split /\r\n/, $head // '';
    return { status => $status // 0, headers => \%h, body => $content // '',
             worker => $h{'x-worker'} // 0 };
}

sub slurp {
    my ($self, $name) = @_;
    open my $fh, '<', "$self->{root}/logs/$name" or return '';
    local $/;
    return <$fh> // '';
}

sub error_log { $_[0]->slurp('error.log') }

# Lines that never belong in a healthy nginx's log, and those a test
# caused on purpose (allow_log): a SIGKILL it sent, a fault it injected.
my $Fatal = do {
    my $re = join '|', map { quotemeta } @FATAL_LOG_MARKERS;
    qr/$re/;
};

sub allow_log {
    my ($self, $re) = @_;
    push @{ $self->{allowed} }, $re;
}

sub log_problems {
    my ($self) = @_;
    my @allowed = @{ $self->{allowed} // [] };
    return grep { my $l = $_; !grep { $l =~ $_ } @allowed }
           grep { /$Fatal/ } split /\n/, $self->error_log;
}

# Stops nginx (SIGQUIT) and says whether all went well: it exited in time,
# valgrind found nothing, and its log has no alert, emergency, crash or
# sanitizer report that the test did not cause (each one also fails a test
# of its own, so a scenario that ignores the return value still fails).
sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'QUIT', $self->{pid};
    my $until = time + 10 * $Slow;
    while (time < $until) {
        last if waitpid($self->{pid}, WNOHANG) == $self->{pid};
        sleep 0.01;
    }
    if (kill 0, $self->{pid}) {
        kill 'KILL', $self->{pid};
        waitpid($self->{pid}, 0);
        $self->{stuck} = 1;
    }
    1 while waitpid(-1, WNOHANG) > 0;
    delete $self->{pid};
    my $ok = !$self->{stuck};
    if (my @bad = $self->log_problems) {
        splice @bad, 20 if @bad > 20;
        $self->report_failure("an alert, crash or sanitizer report in its log",
                              join "\n", @bad);
        $ok = 0;
    }
    if (my $vg = $self->valgrind_errors) {
        $self->report_failure("valgrind reported errors or definite leaks",
                              $vg);
        $ok = 0;
    }
    return $ok;
}

sub report_failure {
    my ($self, $what, $detail) = @_;
    $what = "nginx in $self->{root}: $what";
    if (${^GLOBAL_PHASE} eq 'DESTRUCT') {
        print STDERR "# $what:\n", map { "#   $_\n" } split /\n/, $detail;
    } else {
        Test::More::fail($what);
        Test::More::diag($detail);
    }
}

# A server the test never stopped is stopped before Test::More counts the
# results (this END runs before Test::Builder's, which was defined first),
# so what its shutdown reveals (a valgrind leak report is written only
# then) still fails the test file.
my %Live;

sub register { Scalar::Util::weaken($Live{ $_[0] + 0 } = $_[0]) }

END { local $?; $_->stop for grep { defined } values %Live }

sub DESTROY { delete $Live{ $_[0] + 0 }; $_[0]->stop }

1;
