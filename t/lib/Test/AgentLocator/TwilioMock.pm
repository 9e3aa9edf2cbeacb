package Test::AgentLocator::TwilioMock;

# t/mock/twilio_rest.py as a child process: the one thing we mock is
# Twilio's REST API (and, with script => 'baileys_bridge.py', args => [...],
# the WhatsApp bridge's POST /send).

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IO::Socket::INET;
use JSON::PP qw(encode_json decode_json);
use POSIX qw(WNOHANG);

my $Top = abs_path(dirname(abs_path(__FILE__)) . '/../../../..');

sub new {
    my ($class, %o) = @_;
    my $script = $o{script} // 'twilio_rest.py';
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        exec '/usr/bin/python3', "$Top/t/mock/$script", @{ $o{args} // [] }
            or die "exec: $!";
    }
    my $line = <$out> // die "the mock $script did not start";
    my ($port) = $line =~ /^PORT (\d+)/ or die "the Twilio mock said: $line";
    return bless { pid => $pid, port => $port, out => $out }, $class;
}

sub port { $_[0]{port} }
sub url  { "http://127.0.0.1:$_[0]{port}" }

sub http {
    my ($self, $method, $path, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                  Timeout => 5) or die "mock: $!";
    $body //= '';
    print $s "$method $path HTTP/1.1\r\nHost: mock\r\nConnection: close\r\n"
             . "Content-Length: " . length($body) . "\r\n\r\n$body";
    local $/;
    my $raw = <$s> // '';
    my (undef, $content) = split /\r\n\r\n/, $raw, 2;
    return decode_json($content || 'null');
}

sub mode     { my ($self, %m) = @_; $self->http('POST', '/__mode', encode_json(\%m)) }
sub reset    { $_[0]->http('POST', '/__reset', '{}') }
sub requests { $_[0]->http('GET', '/__requests') }

# requests per CallSid: { CA... => [request, ...] }
sub by_call {
    my ($self) = @_;
    my %calls;
    for my $r (@{ $self->requests }) {
        my ($call) = $r->{path} =~ m{/Calls/(CA[0-9a-f]{32})\.json$};
        push @{ $calls{$call} }, $r if $call;
    }
    return \%calls;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    # at global destruction the test's exit status is in $?: keep it
    local $?;
    kill 'TERM', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

1;
