package Test::AgentLocator::Valgrind;

# TEST_NGINX_USE_VALGRIND for both of our runners (the block format's and
# the scenario servers'), meaning what it means to openresty's Test::Nginx:
#
#   TEST_NGINX_USE_VALGRIND=1        memcheck with full leak checking and
#                                    ./valgrind.suppress (Test::Nginx reads
#                                    that file from the current directory:
#                                    the repository's top, where prove runs)
#   TEST_NGINX_USE_VALGRIND='--x ..' these valgrind options instead, as given
#   TEST_NGINX_VALGRIND_EXIT_ON_FIRST_ERR  stop nginx at its first error
#
# nginx runs in the foreground as ever; valgrind follows the master's
# forks, so every worker is checked too, each in a log of its own
# (logs/valgrind.<pid>.log).  Any error, and any definite leak, fails the
# test.  Unlike Test::Nginx we read the logs instead of leaving valgrind's
# report on the terminal for a human to notice.
#
# Everything under valgrind runs 10 to 50 times slower, so the harness's
# waits for nginx grow by one factor, slow() (TEST_NGINX_VALGRIND_SLOW,
# default 10); a test that measures time itself skips under valgrind with
# skip_reason().

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);

# this file is <top>/t/lib/Test/AgentLocator/Valgrind.pm
my $Top = abs_path(dirname(abs_path(__FILE__)) . '/../../../..');

# valgrind's exit code when it found errors in the process it started
use constant ERROR_EXIT => 99;

sub enabled { !!$ENV{TEST_NGINX_USE_VALGRIND} }

sub slow {
    return 1 unless enabled();
    my $f = $ENV{TEST_NGINX_VALGRIND_SLOW};
    return defined $f && $f =~ /^\d+(?:\.\d+)?$/ && $f > 0 ? $f : 10;
}

sub suppressions { "$Top/valgrind.suppress" }

# The command line that runs @nginx under memcheck, logging into $logdir;
# @nginx itself when valgrind is off.
sub command {
    my ($logdir, @nginx) = @_;
    my $use = $ENV{TEST_NGINX_USE_VALGRIND};
    return @nginx unless $use;
    my @opts;
    if ($use =~ /^\d+$/) {
        # Test::Nginx's own defaults, and only definite leaks count
        @opts = ('--tool=memcheck', '--leak-check=full',
                 # frames of a module nginx has dlclose()d by the time a
                 # leak is reported keep their names
                 '--keep-debuginfo=yes',
                 '--show-leak-kinds=definite',
                 '--errors-for-leak-kinds=definite',
                 '--num-callers=100', '--gen-suppressions=all',
                 '--suppressions=' . suppressions());
        push @opts, '--exit-on-first-error=yes'
            if $ENV{TEST_NGINX_VALGRIND_EXIT_ON_FIRST_ERR};
    } else {
        @opts = split ' ', $use;
    }
    push @opts, "--log-file=$logdir/valgrind.%p.log"
        unless grep { /^--log-(?:file|fd|socket)=/ } @opts;
    push @opts, '--error-exitcode=' . ERROR_EXIT
        unless grep { /^--error-exitcode=/ } @opts;
    return ('valgrind', '-q', @opts, @nginx);
}

# What valgrind reported for the processes that logged into $logdir (an
# empty log is a clean process: -q says nothing otherwise).
sub report {
    my ($logdir) = @_;
    my $out = '';
    for my $log (sort glob "$logdir/valgrind.*.log") {
        next unless -s $log;
        open my $fh, '<', $log or next;
        local $/;
        $out .= <$fh> // '';
    }
    return $out;
}

# Why a test that times things cannot be meaningful under valgrind, or
# undef when valgrind is off.
sub skip_reason {
    my ($what) = @_;
    return undef unless enabled();
    return "under valgrind: $what";
}

1;
