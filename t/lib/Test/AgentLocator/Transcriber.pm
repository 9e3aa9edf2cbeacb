package Test::AgentLocator::Transcriber;

# t/mock/transcriber.py for the transcription suites (t/064, t/065): one
# mock plays Twilio's recordings (fetched with the account's Basic auth)
# and the OpenAI-compatible service (it answers with the SHA-256 of the
# audio it got), and an nginx that transcribes with both:
#
#   my $svc = Test::AgentLocator::Transcriber->new;   # a TwilioMock
#   my $t = $svc->host($pg, $wavs, 'model=whisper-large-v3 timeout=5s');
#   $svc->put_recording(1, wav(4000));   # Twilio has RE...01 now
#   $t->webhook('handle_recording', 1, RecordingSid => re_sid(1),
#               RecordingUrl => $svc->recording_url(1));
#   transcriptions_are($t->server, { transcribed => 1 }, 'one');

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use Test::More ();
use Test::AgentLocator::Calls;
use Test::AgentLocator::TwilioMock;

our @ISA = ('Test::AgentLocator::TwilioMock');
our @EXPORT_OK = qw(re_sid wav transcriptions transcriptions_are);

# agentlocator_transcriptions_total's labels, as the module prints them
our @RESULTS = qw(transcribed retried failed given_up resumed abandoned
                  skipped);

sub new {
    my ($class) = @_;
    return $class->SUPER::new(script => 'transcriber.py',
        args => ['--account', $Test::AgentLocator::Calls::ACCOUNT,
                 '--token', 'secret-token']);
}

# Calls (t/lib/Test/AgentLocator/Calls.pm) with the CRM, the streams' WAVs
# in $wavs, agentlocator_transcribe_url at this mock with $params, and
# handle_recording and /metrics
sub host {
    my ($self, $pg, $wavs, $params) = @_;
    return Test::AgentLocator::Calls->new(
        api => $self->url,
        watchdog => 'start_timeout=30s no_media_timeout=30s',
        http => qq{agentlocator_postgres "@{[ $pg->conninfo ]}" pool=2;
    agentlocator_recordings $wavs;
    agentlocator_transcribe_url @{[ $self->url ]}/v1/audio/transcriptions
        $params;},
        server => 'location = /webhook/handle_recording { agentlocator_voice handle_recording; }
    location = /metrics { agentlocator_metrics; }');
}

# a well-formed RecordingSid from a small number
sub re_sid { sprintf 'RE%032x', $_[0] }

# a WAV header and n bytes of mu-law noise
sub wav {
    my ($n) = @_;
    my $data = join '', map { chr(int rand 256) } 1 .. $n;
    return 'RIFF' . pack('V', 36 + $n) . 'WAVEfmt ' . pack('VvvVVvv', 16, 7, 1, 8000, 8000, 1, 8)
           . 'data' . pack('V', $n) . $data;
}

sub recording_url {
    my ($self, $n) = @_;
    return $self->url . "/2010-04-01/Accounts/$Test::AgentLocator::Calls::ACCOUNT/Recordings/"
           . re_sid($n);
}

# Twilio has recording $n from now on: these bytes
sub put_recording {
    my ($self, $n, $bytes) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->port) or die;
    print $sock 'PUT /__recordings/' . re_sid($n) . " HTTP/1.1\r\nHost: m\r\nConnection: close\r\n"
                . 'Content-Length: ' . length($bytes) . "\r\n\r\n$bytes";
    local $/;
    my $r = <$sock>;
    die "PUT: $r" unless $r =~ m{^HTTP/1\.\d 200};
}

# what the service was asked to transcribe
sub posts { grep { $_->{method} eq 'POST' } @{ $_[0]->requests } }

# agentlocator_transcriptions_total of nginx $s: { result => count }
sub transcriptions {
    my ($s) = @_;
    my $r = $s->request('GET /metrics');
    die "GET /metrics: $r->{status}" unless $r->{status} == 200;
    return { $r->{body} =~ /^agentlocator_transcriptions_total\{result="(\w+)"\} (\d+)$/mg };
}

# Every label, each at its count in %$want (0 if not there), or that many
# more than in %$since (an earlier transcriptions()): within a few seconds,
# as the events the test caused have their log lines
sub transcriptions_are {
    my ($s, $want, $what, $since) = @_;
    my %want = map { $_ => ($since ? $since->{$_} : 0) + ($want->{$_} // 0) } @RESULTS;
    my $got;
    Test::AgentLocator::Calls::wait_until(sub {
        $got = transcriptions($s);
        !grep { ($got->{$_} // -1) != $want{$_} } @RESULTS;
    }, 5);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::is_deeply($got, \%want, "agentlocator_transcriptions_total: $what");
}

1;
