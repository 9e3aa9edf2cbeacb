package Test::AgentLocator::Socket;

# A test runner for nginx modules that reads openresty's Test::Nginx::Socket
# block format (=== TEST N / --- config / --- request ...) on top of Debian's
# Test::Base.  It is an independent implementation of the documented
# semantics, used when the real Test::Nginx is not installed (it is not in
# Debian).  See t/lib/Test/AgentLocator/Nginx.pm for how it is selected.
#
# Design points that differ from a daemonizing harness:
#  * nginx runs with "daemon off" as our direct child, so its exit is seen
#    by waitpid() at once instead of after PID 1 gets around to reaping it;
#  * we are a child subreaper, so workers orphaned by a killed master become
#    our children and are reaped here too;
#  * every block gets a fresh servroot and a random free port, so
#    "prove -j N" can run test files in parallel.

use strict;
use warnings;
use Test::Base -base;    # lowercase: no Spiffy source filter

use Config ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle uniq);
use Test::AgentLocator::LogMarkers ();
use POSIX qw(WNOHANG);
use Test::LongString ();
use Time::HiRes qw(time sleep);
use Test::AgentLocator::Valgrind ();

our @EXPORT = qw(
    run_tests repeat_each workers master_on master_off master_process_enabled
    no_shuffle log_level no_long_string no_root_location
    add_block_preprocessor env_to_nginx server_port server_root html_dir
    timeout worker_connections check_accum_error_log bail_out
);

# ---------------------------------------------------------------------------
# Settings (same defaults and environment knobs as Test::Nginx::Util)

our $Workers           = 1;
our $MasterProcess     = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $WorkerConnections = 1024;
our $RepeatEach        = 1;
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $Timeout           = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $CheckAccumErrLog  = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $UseValgrind       = Test::AgentLocator::Valgrind::enabled();
# the one factor by which our waits for nginx grow under valgrind
our $Slow              = Test::AgentLocator::Valgrind::slow();
our ($NoLongString, $NoRootLocation, @EnvToNginx, @BlockPreprocessors);

# A port fixed by the user wins; otherwise one free port for the whole file
# (Test::Nginx's TEST_NGINX_RANDOMIZE), chosen before blocks() evaluates
# any "eval" section that may name it.
our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                  || pick_free_ports(1);

# Test::Nginx::Socket's pause before it reads the error log (its
# TestNginxSleep * 3), for lines logged after the response went out.
our $TestNginxSleep    = $ENV{TEST_NGINX_SLEEP} || 0.015;

# Test::Nginx::Socket's sections that this runner does not implement: a
# block with one fails loudly instead of passing a check it never made.
# (Sections Test::Nginx does not know either, such as one a block
# preprocessor reads, are the test file's business.)
my %NotImplemented = map { $_ => 1 } qw(
    http2 curl curl_protocol curl_options curl_error post_main_config
    server_name init post_setup_server_root request_eval
    response_body_filters response_body_json_sort response_body_eval
    response_headers_like raw_response_headers_like
    raw_response_headers_unlike error_code_like error_log_file access_log
    no_access_log shutdown grep_error_log grep_error_log_out http09
    reload_fails skip_eval skip_nginx skip_nginx2 skip_openssl todo stap
    stap_out stap_out_like stap_out_unlike udp_listen udp_reply
    udp_reply_delay udp_query tcp_listen tcp_no_close tcp_reply_delay
    tcp_reply tcp_query tcp_query_len tcp_query_auto_timeout tcp_shutdown
    no_check_leak suppress_stderr server_addr_for_client
    shutdown_error_log no_shutdown_error_log
);

# Per-process servroot so parallel test files never share one.
my $OwnServRoot = !$ENV{TEST_NGINX_SERVROOT};
our $ServRoot = $ENV{TEST_NGINX_SERVROOT}
    || File::Spec->rel2abs(-d 't' ? "t/servroot_$$"
                           : File::Spec->catdir(File::Spec->tmpdir, "servroot_$$"));
my $LogDir    = "$ServRoot/logs";
my $ErrLog    = "$LogDir/error.log";
my $StderrLog = "$LogDir/stderr.log";
my $PidFile   = "$LogDir/nginx.pid";
my $OwnerPid  = $$;
my $CurrentProc;    # the running nginx, for END / signal cleanup

# Lines that must never show up in the logs of a healthy run.
my @FatalLogMarkers = @Test::AgentLocator::LogMarkers::FATAL_LOG_MARKERS;

# ---------------------------------------------------------------------------
# Exported configuration functions (names and prototypes as in Test::Nginx)

sub repeat_each (@)            { $RepeatEach = shift if @_; $RepeatEach }
sub workers (@)                { $Workers = shift if @_; $Workers }
sub worker_connections (@)     { $WorkerConnections = shift if @_; $WorkerConnections }
sub master_on ()               { $MasterProcess = 'on' }
sub master_off ()              { $MasterProcess = 'off' }
sub master_process_enabled (@) { $MasterProcess = $_[0] ? 'on' : 'off' if @_; $MasterProcess }
sub no_shuffle ()              { $NoShuffle = 1 }
sub log_level (@)              { $LogLevel = shift if @_; $LogLevel }
sub no_long_string ()          { $NoLongString = 1 }
sub no_root_location ()        { $NoRootLocation = 1 }
sub check_accum_error_log ()   { $CheckAccumErrLog = 1 }
sub timeout (@)                { $Timeout = shift if @_; $Timeout }
sub server_root ()             { $ServRoot }
sub html_dir ()                { "$ServRoot/html" }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }

sub server_port (@) {
    $ServerPort = shift if @_;
    return $ServerPort;
}

sub env_to_nginx (@) {
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n" if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# ---------------------------------------------------------------------------
# Main loop

sub run_tests () {
    init_runner();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        next if defined $block->SKIP;    # Test::Base drops these already
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        check_sections($block);
        run_block($block);
    }
    cleanup();
}

# What this runner and Test::Nginx::Socket would not run alike: a section
# it does not implement, or a block without "--- config" (Test::Nginx
# reuses the previous block's nginx then, or bails out on the first).
sub check_sections {
    my ($block) = @_;
    my $name = $block->name;
    my @unknown = grep { $NotImplemented{$_} } @{ $block->{_section_order}[0] || [] };
    bail_out("$name - section(s) not implemented by this runner: "
             . join(', ', map { "--- $_" } @unknown)) if @unknown;
    bail_out("$name - No '--- config' section specified (an empty one will do)")
        unless defined $block->config;
}

sub run_block {
    my ($block) = @_;
    my $ctx = { block => $block, name => $block->name,
                must_die => defined $block->must_die,
                log_pos => {} };
    $ctx->{valgrind} = $UseValgrind && !$ctx->{must_die};

    setup_block_env($ctx);
    prepare_servroot($ctx);
    write_user_files($ctx);
    write_config($ctx);

    my @problems;
    if ($ctx->{must_die}) {
        # nginx is expected to refuse to start; each repetition tries again.
        for my $rep (0 .. $RepeatEach - 1) {
            run_must_die($ctx, $rep);
            push @problems, stop_nginx($ctx);
        }
    } else {
        if (start_nginx($ctx)) {
            # One nginx serves all repetitions, as in Test::Nginx.
            run_requests($ctx, $_) for 0 .. $RepeatEach - 1;
        }
        push @problems, stop_nginx($ctx);
    }
    check_logs_clean($ctx, @problems);
}

# ---------------------------------------------------------------------------
# Per-block environment, servroot and nginx.conf

sub setup_block_env {
    my ($ctx) = @_;
    # All ports are picked in one go so they are distinct from each other.
    # (Test::Nginx defines neither TEST_NGINX_HTML_DIR nor the servroot:
    # a test file that uses them sets them itself, from html_dir())
    my @ports = grep { $_ != $ServerPort } pick_free_ports(4);
    delete $ENV{$_} for grep { /^TEST_NGINX_RAND_PORT_\d+$/ } keys %ENV;
    $ENV{"TEST_NGINX_RAND_PORT_$_"} = $ports[$_ - 1] for 1 .. 3;
}

sub pick_free_ports {
    my ($n) = @_;
    # Binding to port 0 makes the kernel choose a port nobody listens on.
    my @socks = map {
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                              Proto => 'tcp')
            or die "cannot bind a free port on 127.0.0.1: $!\n";
    } 1 .. $n;
    my @ports = map { $_->sockport } @socks;
    close $_ for @socks;
    return wantarray ? @ports : $ports[0];
}

# $TEST_NGINX_FOO -> $ENV{TEST_NGINX_FOO}; an undefined one is a test bug.
sub expand_env {
    my ($text, $name) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{env_value($1, $name)}ge;
    return $text;
}

sub env_value {
    my ($var, $name) = @_;
    return $ENV{$var} if defined $ENV{$var};
    # Any further TEST_NGINX_RAND_PORT_N gets a free port on first use.
    return $ENV{$var} = pick_free_ports(1) if $var =~ /^TEST_NGINX_RAND_PORT_\d+$/;
    bail_out("$name - No environment $var defined.");
}

sub prepare_servroot {
    # Remove only what we create, in case TEST_NGINX_SERVROOT points at
    # something the user cares about.
    remove_tree((map { "$ServRoot/$_" } qw(conf html logs cache)),
                glob("$ServRoot/*_temp"), glob("$ServRoot/*_cache"));
    # and, as openresty's Test::Nginx does, nothing else: a block that left
    # anything more (a directory its nginx made) stops that harness here
    if (-d $ServRoot && !rmdir $ServRoot) {
        my $left = join ' ', map { s{.*/}{}r } glob("$ServRoot/*");
        bail_out("Can't remove $ServRoot (not empty?): $! ($left: a"
                 . " block's nginx made something there other than conf, cache,"
                 . " html, logs, *_temp or *_cache, which openresty's"
                 . " Test::Nginx would not remove either)");
    }
    make_path(map { "$ServRoot/$_" } qw(conf html logs));
    write_file("$ServRoot/html/index.html",
               "<html><head><title>It works!</title></head><body>It works!</body></html>");
}

sub write_file {
    my ($path, $data) = @_;
    open my $fh, '>', $path or bail_out("cannot write $path: $!");
    binmode $fh;
    print $fh $data;
    close $fh or bail_out("cannot write $path: $!");
}

sub write_user_files {
    my ($ctx) = @_;
    my $files = $ctx->{block}->user_files;
    return unless defined $files;
    my @files;    # [name, body]
    if (ref $files eq 'ARRAY') {
        @files = @$files;
    } else {
        for my $line (split /^/m, $files) {
            if ($line =~ /^>>> (\S+)/) { push @files, [$1, ''] }
            elsif (@files)             { $files[-1][1] .= $line }
        }
    }
    for my $f (@files) {
        my ($fname, $body) = @$f;
        my $path = $fname =~ m{^/} ? $fname : html_dir() . "/$fname";
        (my $dir = $path) =~ s{/[^/]*$}{};
        make_path($dir) unless -d $dir;
        write_file($path, expand_env($body // '', $ctx->{name}));
    }
}

my $NginxV;
sub nginx_has_module {
    my ($mod) = @_;
    $NginxV //= `'@{[nginx_binary()]}' -V 2>&1` // '';
    return $NginxV !~ /--without-http_${mod}_module/;
}

sub write_config {
    my ($ctx) = @_;
    my ($block, $name) = ($ctx->{block}, $ctx->{name});
    my $main  = expand_env($block->main_config // '', $name);
    my $http  = expand_env($block->http_config // '', $name);
    my $conf  = expand_env($block->config      // '', $name);
    my $level = $block->log_level || $LogLevel;

    # Sanitizer settings must survive nginx's environment scrubbing.
    my $env = join '', map { my $v = /\s/ ? "'$_'" : $_; "env $v;\n" }
        uniq @EnvToNginx, qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS);
    # As root, workers would otherwise run as "nobody" and fail to write
    # their temp files under the servroot.
    my $user = $> == 0 ? "user root;\n" : '';

    my $temp = join ' ', map { "${_}_temp_path $ServRoot/${_}_temp;" }
        grep { $http !~ /\b${_}_temp_path\b/ }    # the test sets its own
        grep { /^(?:client_body|proxy)$/ || nginx_has_module($_) }
        qw(client_body proxy fastcgi uwsgi scgi);
    my $root = $NoRootLocation ? ''
        : "        location / {\n            root html;\n            index index.html;\n        }\n";

    write_file("$ServRoot/conf/nginx.conf", <<"EOC");
worker_processes $Workers;
daemon off;
master_process $MasterProcess;
error_log logs/error.log $level;
pid logs/nginx.pid;
$user$env
$main

events {
    accept_mutex off;
    worker_connections $WorkerConnections;
}

http {
    access_log logs/access.log;
    $temp
    default_type text/plain;
    keepalive_timeout 68;

$http

    server {
        listen 127.0.0.1:$ServerPort;
        server_name localhost;
        client_max_body_size 30M;

        # Begin test case config...
$conf
        # End test case config.

$root    }
}
EOC
}

# ---------------------------------------------------------------------------
# Process handling

sub init_runner {
    # Workers orphaned by a killed master get re-parented to us instead of
    # to a slow-reaping PID 1.
    prctl(36, 1);    # PR_SET_CHILD_SUBREAPER
    for my $sig (qw(INT TERM)) {
        $SIG{$sig} = sub { exit 1 } if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
    }
}

sub prctl {
    my ($option, $arg) = @_;
    my %nr = (x86_64 => 157, aarch64 => 167);    # __NR_prctl
    my ($arch) = $Config::Config{archname} =~ /^(\w+)-linux/ or return;
    return unless $nr{$arch};
    return eval { syscall($nr{$arch}, $option, $arg, 0, 0, 0) };
}

sub nginx_binary {
    return $ENV{TEST_NGINX_BINARY} if $ENV{TEST_NGINX_BINARY};
    return '/usr/sbin/nginx' if -x '/usr/sbin/nginx';
    for my $dir (split /:/, $ENV{PATH} // '') {
        return "$dir/nginx" if -x "$dir/nginx";
    }
    bail_out('nginx binary not found: set TEST_NGINX_BINARY');
}

sub nginx_command {
    my ($ctx) = @_;
    my @cmd = (nginx_binary(), '-p', "$ServRoot/", '-c', 'conf/nginx.conf');
    return @cmd unless $ctx->{valgrind};
    return Test::AgentLocator::Valgrind::command($LogDir, @cmd);
}

# Fork+exec nginx in the foreground and wait until it has written its pid
# file, which it does only after opening the listening sockets.  (We do not
# probe with connect(): that would put a stray connection into error.log.)
# Returns true when nginx is up; otherwise records why in $ctx->{start_error}.
sub start_nginx {
    my ($ctx) = @_;
    my @cmd = nginx_command($ctx);
    unlink $PidFile;
    STDOUT->flush; STDERR->flush;
    my $pid = fork // bail_out("fork() failed: $!");
    exec_nginx(@cmd) if $pid == 0;

    my $proc = $CurrentProc = $ctx->{proc} = { pid => $pid, started => time };
    my $limit = 10 * ($ctx->{valgrind} ? $Slow : 1);
    my $nap = 0.002;
    while (1) {
        if (reap_nginx($proc)) {
            $ctx->{start_error} = "nginx exited during startup ("
                . describe_status($proc->{status}) . "); its stderr:\n"
                . slurp($StderrLog);
            return 0;
        }
        return 1 if -s $PidFile;
        if (time - $proc->{started} > $limit) {
            $ctx->{start_error} = "nginx did not write its pid file within ${limit}s";
            return 0;
        }
        sleep $nap;
        $nap = 0.01 if ($nap *= 2) > 0.01;
    }
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar <$fh> // '';
}

sub exec_nginx {
    my @cmd = @_;
    # Own process group, so a hung nginx can be killed with its workers;
    # and die with us if the runner is killed hard.
    setpgrp(0, 0);
    prctl(1, 9);    # PR_SET_PDEATHSIG, SIGKILL
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $StderrLog;
    open STDERR, '>&', \*STDOUT;
    $ENV{LD_PRELOAD} = $ENV{TEST_NGINX_LD_PRELOAD} if $ENV{TEST_NGINX_LD_PRELOAD};
    { exec { $cmd[0] } @cmd }
    print STDERR "cannot exec $cmd[0]: $!\n";
    POSIX::_exit(127);    # no END blocks in the child
}

# Non-blocking check whether nginx exited; remembers its wait status.
sub reap_nginx {
    my ($proc) = @_;
    return 1 if defined $proc->{status};
    return 0 if waitpid($proc->{pid}, WNOHANG) != $proc->{pid};
    $proc->{status} = $?;
    return 1;
}

sub nginx_alive {
    my ($ctx) = @_;
    return $ctx->{proc} && !reap_nginx($ctx->{proc});
}

sub describe_status {
    my ($st) = @_;
    return 'killed by signal ' . ($st & 127) . ($st & 128 ? ', core dumped' : '')
        if $st & 127;
    my $code = $st >> 8;
    return "exit code $code" . ($code == Test::AgentLocator::Valgrind::ERROR_EXIT
                                && $UseValgrind
                                ? ' (valgrind found errors)' : '');
}

# Graceful stop with SIGQUIT, like "nginx -s quit".  Returns a list of
# problems for the implicit end-of-block check.
sub stop_nginx {
    my ($ctx) = @_;
    my $proc = delete $ctx->{proc} or return;
    my @problems;
    if (reap_nginx($proc)) {
        push @problems, "nginx exited before it was stopped: "
            . describe_status($proc->{status}) unless $ctx->{must_die};
    } else {
        kill 'QUIT', $proc->{pid};
        my $limit = 5 * ($ctx->{valgrind} ? $Slow : 1);
        my ($deadline, $nap, $again) = (time + $limit, 0.001, time + 0.25);
        until (reap_nginx($proc) || time > $deadline) {
            sleep $nap;
            $nap = 0.02 if ($nap *= 2) > 0.02;
            # with master_process off, nginx can take the signal between
            # its quit check and epoll_wait(), then sleep until the next
            # event (a master tells its workers through their channel
            # instead): say it again; a hung nginx still does not exit
            if (time > $again) {
                kill 'QUIT', $proc->{pid};
                $again = time + 0.25;
            }
        }
        if (!defined $proc->{status}) {
            push @problems, "nginx did not exit on SIGQUIT within ${limit}s: "
                . "a non-cancelable timer or a leaked connection?\n"
                . stuck_report($proc->{pid});
            kill 'KILL', -$proc->{pid};    # the whole group: master + workers
            waitpid($proc->{pid}, 0);
            $proc->{status} = $?;
            reap_strays(1);
        } elsif ($proc->{status} != 0) {
            push @problems, "nginx exited abnormally on SIGQUIT: "
                . describe_status($proc->{status});
        }
    }
    undef $CurrentProc;
    reap_strays(0);
    return @problems;
}

# What a stuck nginx was doing: its processes (state, kernel wait) and the
# end of its error log, for a failure that does not reproduce.
sub stuck_report {
    my ($master) = @_;
    my @lines;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        my ($pid, $comm, $state, $ppid) = $line =~ /^(\d+) \((.*)\) (\S) (\d+)/
            or next;
        next unless $pid == $master || $ppid == $master;
        my $wchan = '';
        if (open my $w, '<', "/proc/$pid/wchan") { $wchan = <$w> // '' }
        push @lines, "  pid $pid ($comm) state $state wchan $wchan";
    }
    my @log;
    if (open my $fh, '<', $ErrLog) {
        @log = <$fh>;
        splice @log, 0, @log - 20 if @log > 20;
    }
    return join "\n", @lines, '  error.log, last lines:',
        map { chomp; "    $_" } @log;
}

# Reap processes re-parented to us as subreaper (workers of a killed
# master).  Bounded: the test file may have long-lived children of its own.
sub reap_strays {
    my ($wait) = @_;
    my $until = time + $wait;
    while ((my $pid = waitpid(-1, WNOHANG)) >= 0) {
        next if $pid > 0;
        last if time >= $until;
        sleep 0.005;
    }
}

# Kills an nginx left running by a bail-out, die or signal.
sub cleanup {
    return if $$ != $OwnerPid || !$CurrentProc || defined $CurrentProc->{status};
    kill 'KILL', -$CurrentProc->{pid};
    waitpid($CurrentProc->{pid}, 0);
    undef $CurrentProc;
    reap_strays(1);
}

# The servroot outlives run_tests() so a test file can still inspect it.
END {
    cleanup();
    remove_tree($ServRoot)
        if $$ == $OwnerPid && $OwnServRoot && !$ENV{TEST_NGINX_NO_CLEAN} && -d $ServRoot;
}

# ---------------------------------------------------------------------------
# must_die

sub run_must_die {
    my ($ctx, $rep) = @_;
    my ($block, $name) = ($ctx->{block}, $ctx->{name});
    my $started = start_nginx($ctx);
    # Give a config that fails in init_process (after the pid file) a moment.
    if ($started) {
        my $until = time + 0.3;
        sleep 0.01 while time < $until && nginx_alive($ctx);
    }
    my $proc = $ctx->{proc};
    my $status = reap_nginx($proc) ? $proc->{status} : undef;
    my $expect = $block->must_die;
    if (!defined $status) {
        fail("$name - die as expected");
        diag("nginx started and kept running although --- must_die was given");
    } elsif ($expect =~ /^\d+$/) {
        is($status >> 8, $expect, "$name - die with the expected exit code");
    } else {
        isnt($status, 0, "$name - die as expected");
    }
    check_error_log($ctx, $rep);
}

# ---------------------------------------------------------------------------
# Requests

# Turns the request/raw_request sections into a list of
# { packets => [bytes...], method => ..., raw => bool }.
sub build_requests {
    my ($ctx) = @_;
    my ($block, $name) = ($ctx->{block}, $ctx->{name});
    if (defined(my $raw = $block->raw_request)) {
        my @packets = map { expand_env(ref $_ eq 'HASH' ? $_->{value} : $_, $name) }
            ref $raw eq 'ARRAY' ? @$raw : ($raw);
        my ($method) = join('', @packets) =~ /^\s*(\S+)/;
        return [{ packets => \@packets, method => $method // '', raw => 1 }];
    }
    my $more = $block->more_headers // '';
    if (defined(my $pipelined = $block->pipelined_requests)) {
        # one connection: keep-alive for all but the last, which closes
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $pipelined eq 'ARRAY' && @$pipelined;
        my @one = map {
            my $hdrs = ref $more eq 'ARRAY' ? $more->[$_]
                       // bail_out("$name - --- more_headers lacks data for the $_ pipelined request")
                     : $more;
            build_http_request($ctx, $pipelined->[$_], $hdrs,
                               $_ == $#$pipelined ? 'close' : 'keep-alive');
        } 0 .. $#$pipelined;
        return [{ packets => [join '', map { $_->{packets}[0] } @one],
                  method => $one[0]{method}, raw => 0, close => 1,
                  responses => scalar @one }];
    }
    my $request = $block->request;
    return [] unless defined $request;
    my @reqs = ref $request eq 'ARRAY' ? @$request : ($request);
    my $i = 0;
    return [ map {
        my $hdrs = ref $more eq 'ARRAY' ? $more->[$i] // '' : $more;
        $i++;
        build_http_request($ctx, ref $_ eq 'ARRAY' ? join('', @$_) : $_, $hdrs);
    } @reqs ];
}

sub build_http_request {
    my ($ctx, $text, $more, $connection) = @_;
    my $name = $ctx->{name};
    $text = expand_env($text, $name);
    1 while $text =~ s/^\s*#[^\n]*\n|^\s+//;    # leading comments and blanks
    my ($line, $body) = split /\n/, $text, 2;
    my ($method, $uri, $ver) = ($line // '') =~ /^(\S+)(?:[ \t]+(\S+))?(?:[ \t]+(\S+))?[ \t]*$/
        or bail_out("$name - bad request line \"" . ($line // '') . "\", want METHOD [URI [HTTP/1.x]]");
    $body = $body // '';
    $body =~ s/^\s+|\s+$//g;

    my $headers = '';
    my $chunked;
    for my $h (split /\n+/, expand_env($more, $name)) {
        next if $h =~ /^\s*(?:#|$)/;
        my ($k, $v) = split /:\s*/, $h, 2;
        $chunked = 1 if lc $k eq 'transfer-encoding' && ($v // '') =~ /chunked/i;
        $headers .= "$k: " . ($v // '') . "\r\n";
    }
    my $pre = '';
    $pre .= "Host: localhost\r\n" if $headers !~ /^Host:/mi;
    $pre .= "Connection: " . ($connection // 'close') . "\r\n"
        if $headers !~ /^Connection:/mi;
    my $close = "$pre$headers" =~ /^Connection:\s*close\b/mi;
    $headers .= "Content-Length: " . length($body) . "\r\n"
        if length $body && !$chunked && $headers !~ /^Content-Length:/mi;
    my $bytes = sprintf "%s %s %s\r\n%s%s\r\n%s",
        $method, $uri // '/', $ver // 'HTTP/1.1', $pre, $headers, $body;
    return { packets => [$bytes], method => $method, raw => 0, close => $close };
}

sub parse_time {
    my ($t) = @_;
    return undef unless defined $t;
    return $1 / 1000 if $t =~ /^\s*([\d.]+)\s*ms\s*$/;
    return $1 if $t =~ /^\s*([\d.]+)\s*s?\s*$/;
    return $t;
}

# As Test::Nginx::Socket: each request's response is checked, then (for
# all but the last, after --- wait) the error log lines added since the
# last look; after the last request, --- wait and the error log again.
sub run_requests {
    my ($ctx, $rep) = @_;
    my ($block, $name) = ($ctx->{block}, $ctx->{name});
    my $reqs = build_requests($ctx);
    bail_out("$name - request empty") unless @$reqs;
    my $pipelined = $reqs->[0]{responses};
    my $need_array = $pipelined || @$reqs > 1;
    my $timeout = parse_time($block->timeout) // $Timeout;
    $timeout *= $Slow if $ctx->{valgrind};
    my $wait = parse_time($block->wait);
    my $last = $pipelined ? $pipelined - 1 : $#$reqs;
    my $raw;

    for my $i (0 .. $last) {
        if (!$pipelined || $i == 0) {
            ($raw, my $timed_out, my $err) = exchange($ctx, $reqs->[$i], $timeout);
            diag("$name - $err") if $err;
            fail("ERROR: client socket timed out - $name") if $timed_out && !$block->abort;
        }
        if (!defined $block->ignore_response) {
            # pipelined: each response is cut from what is left of the last
            my ($res, $raw_headers, undef, $left) =
                parse_response($raw, $reqs->[$pipelined ? 0 : $i]{method}, $name);
            $raw = $left // '';
            check_error_code($ctx, $res, $i, $need_array);
            check_response_headers($ctx, $res, $raw_headers, $i, $need_array);
            check_response_body($ctx, $res, $rep, $i, $need_array);
        }
        next if $i == $last;
        sleep $wait if $wait;
        check_error_log($ctx, $rep);
    }
    sleep $wait if $wait;
    check_error_log($ctx, $rep);
}

# Sends one request (or a pipeline) on a fresh connection and reads the
# answer: until the server closes when we asked it to ("Connection: close",
# and always for raw_request), else until the response is complete by its
# framing; or until the timeout expires.
sub exchange {
    my ($ctx, $req, $timeout) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $deadline = time + $timeout;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ServerPort,
                                     Proto => 'tcp', Timeout => $timeout)
        or return ('', 0, "connect() to 127.0.0.1:$ServerPort failed: $@");
    $sock->blocking(0);
    my $sel = IO::Select->new($sock);
    my $delay = parse_time($ctx->{block}->raw_request_middle_delay);

    my ($buf, $timed_out, $n) = ('', 0);
  PACKET:
    for my $i (0 .. $#{ $req->{packets} }) {
        my $pkt = $req->{packets}[$i];
        sleep $delay if $i && $delay;
        while (length $pkt) {
            my $left = $deadline - time;
            last PACKET if $left <= 0 || !$sel->can_write($left);
            $n = syswrite($sock, $pkt);
            next if !defined $n && ($!{EAGAIN} || $!{EINTR});
            last PACKET unless defined $n;    # peer closed early: read what it sent
            substr($pkt, 0, $n, '');
        }
    }
    # "Connection: close" (ours unless the test sends another): read to the
    # end, so bytes a response should not have (a HEAD or 204 body) are seen
    while ($req->{raw} || $req->{close} || !(parse_response($buf, $req->{method}))[2]) {
        my $left = $deadline - time;
        if (!$sel->can_read($left > 0 ? $left : 0)) { $timed_out = 1; last }
        $n = sysread($sock, $buf, 65536, length $buf);
        next if !defined $n && ($!{EAGAIN} || $!{EINTR});
        last unless $n;    # EOF or reset
    }
    close $sock;
    return ($buf, $timed_out);
}

# Returns (HTTP::Response or undef, raw header text, complete?, the bytes
# after this response when its framing says where it ends).  The body
# is what came after the headers, cut at Content-Length or de-chunked;
# with "name", a body shorter than its Content-Length is warned about, as
# Test::Nginx::Socket does (a response check then sees what came).
sub parse_response {
    my ($buf, $method, $name) = @_;
    # Interim 1xx responses (100 Continue) precede the real one.
    while ($buf =~ m{^HTTP/\d\.\d +1(?!01)\d\d\b} && (my $at = index($buf, "\r\n\r\n")) >= 0) {
        substr($buf, 0, $at + 4, '');
    }
    my $at = index($buf, "\r\n\r\n");
    return (undef, '', 0) if $at < 0;
    my $raw_headers = substr($buf, 0, $at + 2);
    my $body = substr($buf, $at + 4);
    my $res = HTTP::Response->parse($raw_headers);
    my $code = $res->code // 0;
    my $head = uc($method // '') eq 'HEAD';
    my ($content, $complete, $left) = ($body, 0);    # default: delimited by close
    if ($head || $code =~ /^(?:1\d\d|204|304)$/) {
        # framing says no body: complete, but what did come is kept
        $complete = 1;
    } elsif ((scalar $res->header('Transfer-Encoding') // '') =~ /chunked/i) {
        ($content, $complete, my $used) = dechunk($body);
        $left = substr($body, $used) if $complete;
    } elsif (defined(my $len = scalar $res->header('Content-Length'))) {
        $complete = length($body) >= $len;
        ($content, $left) = (substr($body, 0, $len), substr($body, $len)) if $complete;
        warn "WARNING: $name - response body truncated: $len expected, but got "
             . length($body) . "\n" if defined $name && !$complete;
    }
    $res->content($content);
    return ($res, $raw_headers, $complete, $left);
}

# (content, complete?, bytes used)
sub dechunk {
    my ($body) = @_;
    my ($out, $pos) = ('', 0);
    while (substr($body, $pos) =~ /^([0-9a-fA-F]+)[^\r\n]*\r\n/) {
        my $len = hex $1;
        $pos += length $&;
        return substr($body, $pos) =~ /^(?:[^\r\n]+\r\n)*\r\n/
            ? ($out, 1, $pos + length $&) : ($out, 0)
            if $len == 0;    # last chunk, then trailers and an empty line
        return ($out, 0) if length($body) < $pos + $len + 2;
        $out .= substr($body, $pos, $len);
        $pos += $len + 2;
    }
    return ($out, 0);
}

# ---------------------------------------------------------------------------
# Response checks

# A single request may use scalar or one-element array expectations; a list
# of requests needs an array of expectations (as in Test::Nginx).
sub indexed_value {
    my ($ctx, $val, $i, $need_array) = @_;
    return $val->[$need_array ? $i : 0] if ref $val eq 'ARRAY';
    bail_out("$ctx->{name} - You asked for many requests, the expected results should be arrays as well.")
        if $need_array;
    return $val;
}

sub check_error_code {
    my ($ctx, $res, $i, $need_array) = @_;
    my $block = $ctx->{block};
    my $want = defined $block->error_code
        ? indexed_value($ctx, $block->error_code, $i, $need_array) : 200;
    is(($res && $res->code) // '', $want, "$ctx->{name} - status code ok");
}

sub check_response_headers {
    my ($ctx, $res, $raw_headers, $i, $need_array) = @_;
    my $spec = $ctx->{block}->response_headers;
    return unless defined $spec;
    $spec = indexed_value($ctx, $spec, $i, $need_array);
    for my $line (split /\n/, $spec) {
        $line =~ s/^\s+|\s+$//g;
        next unless length $line;
        if ($line =~ /^!\s*(.+)$/) {
            my $key = $1;
            unlike($raw_headers, qr/^\s*\Q$key\E\s*:/mi,
                   "$ctx->{name} - header $key not present in the raw headers");
            next;
        }
        my ($key, $val) = split /\s*:\s*/, $line, 2;
        $val = expand_env(($val // '') =~ s/\$ServerPort\b/$ServerPort/gr, $ctx->{name});
        my $got = $res ? scalar $res->header($key) : undef;
        is($got // '', $val, "$ctx->{name} - header $key ok");
    }
}

sub check_response_body {
    my ($ctx, $res, $rep, $i, $need_array) = @_;
    my ($block, $name) = ($ctx->{block}, $ctx->{name});
    my $got = $res ? $res->content : '';
    if (defined $block->response_body) {
        my $want = indexed_value($ctx, $block->response_body, $i, $need_array);
        my $tname = "$name - response_body - response is expected (repeated req $rep, req $i)";
        if (ref $want eq 'Regexp') {
            return like($got, $want, "$name - response_body - like (repeated req $rep, req $i)");
        }
        $want = expand_env($want =~ s/\$ServerPort\b/$ServerPort/gr, $name);
        my $ok = $NoLongString ? is($got, $want, $tname)
                               : Test::LongString::is_string($got, $want, $tname);
        show_diff($want, $got) if !$ok && "$want$got" =~ /\n/;
        return;
    }
    for my $type (qw(like unlike)) {
        my $pat = $block->${\"response_body_$type"};
        next unless defined $pat;
        $pat = indexed_value($ctx, $pat, $i, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g unless ref $pat;
        # One line, so the TAP test name stays intact.
        my $summary = $got =~ s/^\s+|\s+$//gr =~ s/\s+/ /gr;
        $summary = substr($summary, 0, 60) . '...' if length $summary > 63;
        my $cmp = $type eq 'like' ? \&like : \&unlike;
        $cmp->($got, qr/$pat/s, "$name - response_body_$type - response is expected ($summary)");
    }
}

sub show_diff {
    my ($want, $got) = @_;
    return unless eval { require Text::Diff; 1 };
    diag("diff (- expected, + got):\n"
         . Text::Diff::diff(\$want, \$got, { STYLE => 'Unified' }));
}

# ---------------------------------------------------------------------------
# Error log checks

sub log_patterns {
    my ($ctx, $pats) = @_;
    return [] unless defined $pats;
    my @p = ref $pats eq 'ARRAY' ? @$pats
          : ref $pats            ? ($pats)
          : grep { length } split /\n+/, $pats;
    # (patterns are taken as written: Test::Nginx expands no $TEST_NGINX_*)
    return [ grep { defined } @p ];
}

sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

# Complete lines appended to error.log and stderr.log since the last call
# (stderr.log holds what nginx says before error.log is open, e.g. the
# [emerg] of a must_die config).
sub read_new_log_lines {
    my ($ctx) = @_;
    my @lines;
    for my $file ($ErrLog, $StderrLog) {
        open my $fh, '<', $file or next;
        my $pos = $CheckAccumErrLog ? 0 : $ctx->{log_pos}{$file} // 0;
        seek $fh, $pos, 0;
        my $data = do { local $/; <$fh> } // '';
        my $end = rindex($data, "\n") + 1;    # leave a partial line for later
        $ctx->{log_pos}{$file} = $pos + $end;
        push @lines, split /^/m, substr($data, 0, $end);
    }
    return @lines;
}

sub check_error_log {
    my ($ctx, $rep) = @_;
    my ($block, $name) = ($ctx->{block}, $ctx->{name});
    return unless defined $block->error_log || defined $block->no_error_log;
    my $want = log_patterns($ctx, $block->error_log);
    my $dont = log_patterns($ctx, $block->no_error_log);

    # Lines logged after the response (the log phase, timers) get the
    # same short pause as under Test::Nginx, no more: a line that needs
    # longer needs --- wait under both.
    sleep $TestNginxSleep * 3 * ($ctx->{valgrind} ? $Slow : 1) if nginx_alive($ctx);
    my @lines = read_new_log_lines($ctx);

    for my $pat (@$want) {
        if (grep { line_matches($_, $pat) } @lines) {
            pass("$name - pattern \"$pat\" matches a line in error.log (req $rep)");
        } else {
            fail("$name - pattern \"$pat\" should match a line in error.log (req $rep)");
            diag("error log is $ErrLog (kept with TEST_NGINX_NO_CLEAN=1)");
        }
    }
    for my $pat (@$dont) {
        my ($hit) = grep { line_matches($_, $pat) } @lines;
        if (defined $hit) {
            chomp $hit;
            fail("$name - pattern \"$pat\" should not match any line in error.log"
                 . " but matches line \"$hit\" (req $rep)");
        } else {
            pass("$name - pattern \"$pat\" does not match a line in error.log (req $rep)");
        }
    }
}

# The implicit last test of every block: a clean shutdown, and nothing in the
# logs that signals a bug (alerts, sanitizer or valgrind reports).
sub check_logs_clean {
    my ($ctx, @problems) = @_;
    my $name = $ctx->{name};
    unshift @problems, $ctx->{start_error} if $ctx->{start_error} && !$ctx->{must_die};

    my $expected = join "\n", map { "$_" } @{ log_patterns($ctx, $ctx->{block}->error_log) };
    my @markers = grep {
        !($_ eq '[emerg]' && ($ctx->{must_die} || $expected =~ /\[emerg/))
        # nginx logs a worker's death at [alert]: expected with it
        && !(($_ eq '[alert]' || $_ eq 'exited on signal') && $expected =~ /\[alert/)
    } @FatalLogMarkers;
    my $re = join '|', map { quotemeta } @markers;

    for my $file ($ErrLog, $StderrLog) {
        open my $fh, '<', $file or next;
        (my $short = $file) =~ s{^\Q$ServRoot\E/}{};
        while (my $line = <$fh>) {
            push @problems, "$short: $line" =~ s/\n$//r if $line =~ /$re/;
        }
    }
    if (my $vg = Test::AgentLocator::Valgrind::report($LogDir)) {
        push @problems, "valgrind reported:\n$vg";
    }
    ok(!@problems, "$name - clean shutdown, no alerts or sanitizer reports in the logs");
    if (@problems) {
        splice @problems, 30, @problems - 30, '...' if @problems > 31;
        diag(join "\n", @problems);
    }
}

1;
