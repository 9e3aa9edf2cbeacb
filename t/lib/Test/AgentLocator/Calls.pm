package Test::AgentLocator::Calls;

# Twilio calls as Twilio makes them, for the watchdog's scenario suites: an
# nginx with the voice webhooks, the media stream and the watchdog, a mock
# of Twilio's REST API, and per call the times the client itself saw, so a
# redirect's lateness is measured from the client's side:
#
#   my $t = Test::AgentLocator::Calls->new(workers => 2,
#               watchdog => 'start_timeout=2s no_media_timeout=1500ms');
#   my $sent = $t->incoming(1);          # time the webhook was sent
#   my $ws = $t->stream(1);              # connected + start
#   $t->media($ws, 1) for 1 .. 10;       # paced by the caller
#   $t->wait_redirects(1);
#   my $late = $t->lateness(1, $t->{last_media}{1} + 1.5);

use strict;
use warnings;
use Test::More ();
use Time::HiRes qw(sleep time);
use Test::AgentLocator::Server;
use Test::AgentLocator::TwilioMock;
use Test::AgentLocator::Twilio qw(form call_sid);
use Test::AgentLocator::WebSocket;

our $ACCOUNT = 'AC' . '1' x 32;
our $CALLER_ACCOUNT = 'AC' . '2' x 32;
our $FORM = 'Content-Type: application/x-www-form-urlencoded';

sub new {
    my ($class, %o) = @_;
    my $self = bless { last_media => {}, sent => {} }, $class;
    my $mock = $self->{mock} = Test::AgentLocator::TwilioMock->new;
    $mock->mode(%{ $o{mode} }) if $o{mode};
    my $wd = $o{watchdog} // 'start_timeout=2s no_media_timeout=1500ms';
    my $api = $o{api} // $mock->url;
    my $http = <<"_EOC_";
    agentlocator_zone calls @{[ $o{zone} // '4m' ]};
    agentlocator_public_url https://voice.example.com;
    agentlocator_twilio_account_sid $ACCOUNT;
    agentlocator_twilio_auth_token secret-token;
    agentlocator_twilio_api_url $api;
    agentlocator_watchdog $wd;
    agentlocator_fallback_prompt /static/tts/fallback.mp3;
    @{[ $o{http} // '' ]}
_EOC_
    my $server = <<"_EOC_";
    agentlocator_signature off;
    location = /webhook/incoming_call { agentlocator_voice incoming_call; }
    location = /webhook/stream_status { agentlocator_voice stream_status; }
    location = /webhook/stream_ended  { agentlocator_voice stream_ended; }
    location = /webhook/call_status   { agentlocator_voice call_status; }
    location /ws/twilio-media/        { agentlocator_media_stream; }
    location = /status                { agentlocator_status; }
    @{[ $o{server} // '' ]}
_EOC_
    $self->{s} = Test::AgentLocator::Server->new(
        workers => $o{workers} // 2, http => $http, server => $server,
        main => $o{main} // '', %{ $o{server_opts} // {} });
    return $self;
}

sub server { $_[0]{s} }
sub mock   { $_[0]{mock} }

# POST a voice webhook for call $n; returns { status, body, sent, answered }
sub webhook {
    my ($self, $name, $n, @kv) = @_;
    my $sent = time;
    my $r = $self->{s}->request("POST /webhook/$name", headers => [$FORM],
        body => form(CallSid => call_sid($n), @kv));
    $r->{sent} = $sent;
    $r->{answered} = time;
    return $r;
}

# incoming_call for $n; remembers (and returns) the time it was sent, and
# the stream URL our TwiML gave the call
sub incoming {
    my ($self, $n) = @_;
    my $r = $self->webhook('incoming_call', $n, AccountSid => $CALLER_ACCOUNT,
                           From => '+15551230000', To => '+15557650000');
    die "incoming_call $n: $r->{status}" unless $r->{status} == 200;
    $self->{stream_path}{$n} = Test::AgentLocator::WebSocket::stream_path($r->{body})
        // die "incoming_call $n: no <Stream url>";
    return $self->{sent}{$n} = $r->{sent};
}

# A media stream for call $n at the URL its incoming_call gave: connected +
# start, as Twilio sends them
sub stream {
    my ($self, $n) = @_;
    my $path = $self->{stream_path}{$n} // die "stream $n before its incoming_call";
    my $ws = Test::AgentLocator::WebSocket->connect($self->{s}{port}, $path);
    die "upgrade for $n: " . $ws->status unless $ws->status == 101;
    $ws->{n} = $n;
    $ws->{seq} = 1;
    $ws->twilio_start($n, account => $CALLER_ACCOUNT);
    return $ws;
}

# One media frame; the time it was handed to the kernel is the call's
# last media as the client knows it.
sub media {
    my ($self, $ws) = @_;
    $ws->{seq}++;
    my $before = time;
    $ws->twilio_media($ws->{n}, $ws->{seq});
    $self->{last_media}{ $ws->{n} } = $before;
}

sub stop {
    my ($self, $ws) = @_;
    $ws->{seq}++;
    $ws->twilio_stop($ws->{n}, $ws->{seq});
}

# requests the mock got for call $n, in order
sub redirects {
    my ($self, $n) = @_;
    return @{ $self->{mock}->by_call->{ call_sid($n) } // [] };
}

# Waits up to $secs for $cond, longer under valgrind (by the harness's one
# factor, Server.pm's $Slow): every caller waits for something to happen.
sub wait_until {
    my ($cond, $secs) = @_;
    my $until = time + $secs * $Test::AgentLocator::Server::Slow;
    while (time < $until) { return 1 if $cond->(); sleep 0.02 }
    return 0;
}

# until every call in @n has at least one request at the mock
sub wait_redirects {
    my ($self, $secs, @n) = @_;
    return wait_until(sub {
        my $by = $self->{mock}->by_call;
        !grep { !@{ $by->{ call_sid($_) } // [] } } @n;
    }, $secs);
}

# the first request's arrival at the mock minus $deadline, in ms
sub lateness {
    my ($self, $n, $deadline) = @_;
    my ($first) = $self->redirects($n);
    return undef unless $first;
    return 1000 * ($first->{time} - $deadline);
}

sub call { my ($self, $n) = @_; scalar $self->{s}->call($n) }

# test assertions over the mock's view of the calls
sub once_each {
    my ($self, $what, @n) = @_;
    my @bad = grep { scalar($self->redirects($_)) != 1 } @n;
    Test::More::ok(!@bad, "$what: each redirected exactly once")
        or Test::More::diag(join ' ', map { "$_ x" . scalar($self->redirects($_)) } @bad);
}

sub none {
    my ($self, $what, @n) = @_;
    my @bad = grep { scalar $self->redirects($_) } @n;
    Test::More::ok(!@bad, "$what: not redirected") or Test::More::diag("redirected: @bad");
}

1;
