# Self-tests of the Test::Nginx::Socket-compatible runner in t/lib.
#
# Each fixture t/runner/*.tx is run as a child perl with our own runner
# forced (TEST_AGENTLOCATOR_OWN_RUNNER=1) and no dynamic module
# (TEST_NGINX_LOAD_MODULE=), and its TAP output is checked here.  The
# fixtures use stock nginx features only.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempfile);
use Time::HiRes qw(time);

chdir dirname(abs_path(__FILE__)) . '/..' or die "chdir: $!";

# Runs a fixture; returns its exit status, output and parsed test results.
sub run_fixture {
    my ($file, %env) = @_;
    local %ENV = %ENV;
    # A fixed port or servroot from the caller would make parallel runs clash.
    delete @ENV{qw(TEST_NGINX_SERVER_PORT TEST_NGINX_PORT TEST_NGINX_SERVROOT TEST_NGINX_NO_CLEAN)};
    %ENV = (%ENV, TEST_AGENTLOCATOR_OWN_RUNNER => 1, TEST_NGINX_LOAD_MODULE => '', %env);
    defined $env{$_} or delete $ENV{$_} for keys %env;

    my (undef, $errfile) = tempfile(UNLINK => 1);
    my $t0 = time;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', $errfile or die;
        exec $^X, $file or die "exec: $!";
    }
    my $tap = do { local $/; <$out> } // '';
    close $out;
    my $r = { status => $? >> 8, tap => $tap, secs => time - $t0, pid => $pid,
              err => do { local (@ARGV, $/) = $errfile; <> } // '' };
    while ($tap =~ /^(not )?ok \d+ - (.*)$/mg) {
        push @{ $r->{tests} }, { ok => !$1, name => $2 =~ s/\\#/#/gr };
    }
    ok(!-e "t/servroot_$pid", "$file: servroot t/servroot_$pid removed");
    note(sprintf "%s: %.3fs", $file, $r->{secs});
    return $r;
}

sub tests_named {
    my ($r, $re) = @_;
    return grep { $_->{name} =~ $re } @{ $r->{tests} };
}

# Asserts that exactly $n tests match $re and all are ok (or all not ok).
sub expect {
    my ($r, $re, $ok, $n, $what) = @_;
    my @t = tests_named($r, $re);
    is(scalar @t, $n // 1, "$what: found");
    is(scalar(grep { !$_->{ok} == !$ok } @t), scalar @t,
       "$what: reported as " . ($ok ? 'ok' : 'not ok'))
        or diag($r->{tap}, $r->{err});
}

subtest 'passing blocks pass' => sub {
    my $r = run_fixture('t/runner/pass.tx', TEST_NGINX_FOO => 'bar');
    is($r->{status}, 0, 'exit status 0') or diag($r->{tap}, $r->{err});
    is(scalar(grep { !$_->{ok} } @{ $r->{tests} }), 0, 'no test failed');
    is(scalar(tests_named($r, qr/clean shutdown/)), 12, 'one implicit check per block');
    expect($r, qr/TEST 2: .* - header X-Three not present/, 1, 1, '!Header absent');
    expect($r, qr/TEST 3: .* - status code ok/, 1, 1, 'error_code 204');
    expect($r, qr/TEST 5: .* - status code ok/, 1, 2, 'eval request array: one check per request');
    expect($r, qr/TEST 5: .* - response_body .*req 1\)/, 1, 1, 'eval request array: body of 2nd request');
    expect($r, qr/TEST 6: .* - response_body_like/, 1, 1, '$TEST_NGINX_* expansion');
    expect($r, qr/TEST 7: .* - response_body/, 1, 1, 'user_files');
    expect($r, qr/TEST 8: .* - response_body/, 1, 1, 'request body + Content-Length');
    expect($r, qr/TEST 9: .* - response_body/, 1, 1, 'raw_request');
    expect($r, qr/TEST 10: .* - pattern .* matches a line/, 1, 1, 'error_log');
    expect($r, qr/TEST 10: .* - pattern .* does not match/, 1, 2, 'no_error_log eval');
    expect($r, qr/TEST 11: .* - die as expected/, 1, 1, 'must_die');
    expect($r, qr/TEST 11: .* - pattern "unknown directive/, 1, 1, 'must_die [emerg] in error_log');
};

subtest 'each broken expectation is reported as a failure' => sub {
    my $r = run_fixture('t/runner/fail.tx');
    is($r->{status}, 7, 'exit status = number of failures') or diag($r->{tap}, $r->{err});
    expect($r, qr/TEST 1: .* - response_body - /, 0, 1, 'wrong response_body');
    like($r->{err}, qr/^# -there\n# \+world$/m, 'response_body failure shows a diff');
    expect($r, qr/TEST 2: .* - status code ok/, 0, 1, 'wrong error_code');
    expect($r, qr/TEST 3: .* - header X-Val ok/, 0, 1, 'wrong response_headers');
    expect($r, qr/TEST 4: .* - header X-Present not present/, 0, 1, '!Header present');
    expect($r, qr/TEST 5: .* - pattern .* should match a line/, 0, 1, 'missing error_log line');
    expect($r, qr/TEST 6: .* - pattern .* should not match/, 0, 1, 'present no_error_log line');
    expect($r, qr/TEST 7: .* - die as expected/, 0, 1, 'must_die but nginx starts');
    expect($r, qr/clean shutdown/, 1, 7, 'implicit checks still pass');
};

subtest 'what would not run alike under Test::Nginx bails out' => sub {
    my $r = run_fixture('t/runner/no-config.tx');
    like($r->{tap}, qr/^Bail out!.*TEST 1: no config - No '--- config' section specified/m,
         'a block without --- config') or diag($r->{tap}, $r->{err});
    $r = run_fixture('t/runner/unimplemented.tx');
    like($r->{tap}, qr/^Bail out!.*not implemented by this runner: --- error_code_like/m,
         'a Test::Nginx section this runner does not implement') or diag($r->{tap}, $r->{err});
};

subtest 'error_log after each request, against the lines since the last check' => sub {
    my $r = run_fixture('t/runner/log-per-request.tx');
    is($r->{status}, 1, 'one failure') or diag($r->{tap}, $r->{err});
    my @checks = tests_named($r, qr/pattern "No such file or directory"/);
    is(scalar @checks, 2, 'checked twice');
    ok(!$checks[0]{ok} && $checks[0]{name} =~ /should match/, 'missing after the 1st request');
    ok($checks[1]{ok}, 'found after the 2nd');
};

subtest 'workers(2) + master_on() + repeat_each(2)' => sub {
    my $r = run_fixture('t/runner/workers.tx');
    is($r->{status}, 0, 'exit status 0') or diag($r->{tap}, $r->{err});
    expect($r, qr/TEST 1: .* - status code ok/, 1, 2, 'block 1 ran twice');
    expect($r, qr/TEST 1: .* - response_body_like/, 1, 2, 'block 1 body checked twice');
    expect($r, qr/TEST 2: .* matches a line in error.log \(req 1\)/, 1, 1,
           'error_log checked for the 2nd repetition');
    expect($r, qr/two worker processes started/, 1, 1, 'two workers');
};

subtest 'load_module is prepended from TEST_NGINX_LOAD_MODULE' => sub {
    my $r = run_fixture('t/runner/one.tx', TEST_NGINX_LOAD_MODULE => '/nonexistent/x.so');
    isnt($r->{status}, 0, 'fails');
    expect($r, qr/clean shutdown/, 0, 1, 'start failure is a test failure');
    like($r->{err}, qr{dlopen\(\) "/nonexistent/x\.so" failed}, 'nginx stderr is shown');
};

subtest 'default module path' => sub {
    # the .so is built for the stock binary, not for a static one that
    # already has the module compiled in
    my $r = run_fixture('t/runner/one.tx', TEST_NGINX_LOAD_MODULE => undef,
                        TEST_NGINX_BINARY => '/usr/sbin/nginx');
    if (-f 'build/ngx_http_agentlocator_module.so') {
        is($r->{status}, 0, 'built module loads') or diag($r->{tap}, $r->{err});
    } else {
        like($r->{tap}, qr/^Bail out!.*ngx_http_agentlocator_module\.so not found: run `make build` first/m,
             'BAIL_OUT when the module is not built');
    }
};

subtest 'a minimal block' => sub {
    my $r = run_fixture('t/runner/one.tx');
    is($r->{status}, 0, 'passes') or diag($r->{tap}, $r->{err});
    # a figure for the log, not an assertion: CI machines are noisy
    note(sprintf 'start nginx + 1 request + stop, with perl start-up: %.3fs',
         $r->{secs});
};

done_testing();
