package Test::AgentLocator::Nginx;

# The entry point our t/*.t files use:
#
#     use lib 't/lib';
#     use Test::AgentLocator::Nginx 'no_plan';
#
# It picks openresty's Test::Nginx::Socket when that is installed (so the
# tests run under the reference harness wherever users have it) and our own
# Test::AgentLocator::Socket otherwise, or when TEST_AGENTLOCATOR_OWN_RUNNER
# is true.  Either way it arranges for our dynamic module to be loaded into
# every test's nginx:
#
#   TEST_NGINX_LOAD_MODULE unset   -> <repo>/build/ngx_http_agentlocator_module.so
#   TEST_NGINX_LOAD_MODULE=/x.so   -> that file
#   TEST_NGINX_LOAD_MODULE=        -> module is compiled into nginx: load nothing

use strict;
use warnings;
use Cwd ();
use File::Basename ();
use File::Spec ();

# This file is <repo>/t/lib/Test/AgentLocator/Nginx.pm.
my $RepoRoot = Cwd::abs_path(
    File::Spec->catdir(File::Basename::dirname(Cwd::abs_path(__FILE__)),
                       (File::Spec->updir) x 4));

sub real_test_nginx_installed {
    my $our_lib = Cwd::abs_path("$RepoRoot/t/lib") // '';
    for my $dir (grep { !ref } @INC) {
        my $abs = Cwd::abs_path($dir) // next;
        next if $abs eq $our_lib;
        return 1 if -f "$dir/Test/Nginx/Socket.pm";
    }
    return 0;
}

sub implementation {
    return 'Test::Nginx::Socket'
        if !$ENV{TEST_AGENTLOCATOR_OWN_RUNNER} && real_test_nginx_installed();
    return 'Test::AgentLocator::Socket';
}

# Path of the .so to load, or undef when the module is built into nginx.
sub module_path {
    my $env = $ENV{TEST_NGINX_LOAD_MODULE};
    if (defined $env) {
        return length $env ? File::Spec->rel2abs($env) : undef;
    }
    my $so = "$RepoRoot/build/ngx_http_agentlocator_module.so";
    if (!-f $so) {
        require Test::More;
        Test::More::BAIL_OUT("build/ngx_http_agentlocator_module.so not found: "
                             . "run `make build` first, or set TEST_NGINX_LOAD_MODULE");
    }
    return $so;
}

sub import {
    my ($class, @args) = @_;
    my $impl = implementation();
    (my $file = "$impl.pm") =~ s{::}{/}g;
    require $file;

    if (defined(my $so = module_path())) {
        # Both implementations run block preprocessors before starting nginx.
        $impl->can('add_block_preprocessor')->(sub {
            my ($block) = @_;
            $block->set_value(main_config => "load_module $so;\n"
                                           . ($block->main_config // ''));
        });
    }

    # Hand over to the implementation's (Test::Base) import so that its
    # exports, and any plan arguments, land in the calling test file.
    @_ = ($impl, @args);
    goto &{ $impl->can('import') };
}

1;
