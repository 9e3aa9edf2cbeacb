package Test::AgentLocator::WebSocket;

# A WebSocket client for the media stream tests.  The handshake and the
# parsing of server frames come from CPAN's Protocol::WebSocket (an
# implementation independent of ours); client frames are built here by hand
# so tests can also send what a broken client would (unmasked, reserved
# bits, bad lengths, fragments, partial writes).

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use Socket ();
use MIME::Base64 qw(encode_base64);
use Protocol::WebSocket::Frame;
use Protocol::WebSocket::Handshake::Client;
use Time::HiRes qw(time sleep);
use Test::AgentLocator::Twilio qw(form twilio_signature);
use Test::AgentLocator::Valgrind ();

# waits for nginx's answers grow by the harness's one valgrind factor; a
# timeout a test passes itself is its own (it may be the point of it)
my $Slow = Test::AgentLocator::Valgrind::slow();

my $JSON = JSON::PP->new->canonical;

# connect($port, $path, headers => [...], request => "raw request",
#         rcvbuf => bytes)
# Returns the client after a 101, or { status, head, body } otherwise.
sub connect {
    my ($class, $port, $path, %o) = @_;
    my $sock;
    if ($o{rcvbuf}) {
        # set before connecting, so the window is small from the start
        $sock = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
        setsockopt($sock, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), $o{rcvbuf})
            or die "SO_RCVBUF: $!";
        CORE::connect($sock, Socket::pack_sockaddr_in($port,
                                                      Socket::inet_aton('127.0.0.1')))
            or die "connect: $!";
    } else {
        $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp', Timeout => 5 * $Slow)
            or die "connect: $!";
    }
    my $hs = Protocol::WebSocket::Handshake::Client->new(
        url => "ws://localhost:$port$path");
    my $req = $o{request} // do {
        my $r = $hs->to_string;
        $r =~ s/^Origin: [^\r]*\r\n//mi;    # Twilio sends none
        $r =~ s/\r\n\r\n\z/\r\n/;
        $r .= "$_\r\n" for @{ $o{headers} // [] };
        "$r\r\n";
    };
    syswrite($sock, $req . ($o{pipelined} // ''));

    my $buf = '';
    my $sel = IO::Select->new($sock);
    while ($buf !~ /\r\n\r\n/) {
        last unless $sel->can_read(5 * $Slow);
        my $n = sysread($sock, $buf, 65536, length $buf);
        last unless $n;
    }
    my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
    $head //= '';
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\r\n/, $head;
    my $self = bless { sock => $sock, sel => $sel, status => $status // 0,
                       head => $head, headers => \%h, rest => $rest // '',
                       handshake => $hs }, $class;
    if (($status // 0) != 101) {
        # read the rest of an error response
        while ($sel->can_read(2)) {
            my $n = sysread($sock, $self->{rest}, 65536, length $self->{rest});
            last unless $n;
        }
        $self->{body} = $self->{rest};
        return $self;
    }
    # Protocol::WebSocket checks Sec-WebSocket-Accept against its key
    $hs->parse("$head\r\n\r\n");
    $self->{accept_ok} = $hs->is_done && !$hs->error;
    $self->{frames} = Protocol::WebSocket::Frame->new(max_payload_size => 0);
    $self->{frames}->append($self->{rest}) if length $self->{rest};
    return $self;
}

# Twilio opens a call's stream only after its incoming_call: register($port,
# $n, signed => [$token, $public_url], webhook => '/webhook/incoming_call',
# account => 'AC...') posts that webhook for call $n (AccountSid as in
# sids() unless given) and returns the
# path of the stream URL in our TwiML, "/ws/twilio-media/{CallSid}/{token}";
# dies unless the answer has one.
sub register {
    my ($port, $n, %o) = @_;
    my ($call, undef, $account) = sids($n);
    $account = $o{account} if $o{account};
    my $uri = $o{webhook} // '/webhook/incoming_call';
    my @kv = (CallSid => $call, AccountSid => $account,
              From => '+15551230000', To => '+15557650000');
    my $body = form(@kv);
    my @h = ('Content-Type: application/x-www-form-urlencoded');
    if (my $signed = $o{signed}) {
        push @h, 'X-Twilio-Signature: '
            . twilio_signature($signed->[0], "$signed->[1]$uri", @kv);
    }
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Proto => 'tcp', Timeout => 5 * $Slow)
        or die "connect: $!";
    print $sock "POST $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . join('', map { "$_\r\n" } @h)
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    local $/;
    my $raw = <$sock> // '';
    close $sock;
    return stream_path($raw) // die "incoming_call $n: no <Stream url> in: $raw";
}

# The path of the <Stream url="wss://host/..."> in a TwiML answer, or undef.
sub stream_path {
    my ($twiml) = @_;
    my ($path) = $twiml =~ m{<Stream url="wss://[^/"]+(/[^"]*)"};
    return $path;
}

# The per-call part of a stream path: "/{CallSid}/{token}"
sub call_part {
    my ($path) = @_;
    my ($part) = $path =~ m{(/CA[0-9a-f]{32}/[0-9a-f]+)\z} or die "no call in $path";
    return $part;
}

# register() then connect() to the call's stream URL, or to $o{prefix}
# followed by the URL's per-call part (a test's own media location).
sub connect_call {
    my ($class, $port, $n, %o) = @_;
    my @reg = qw(signed webhook account);
    my $path = register($port, $n, map { $_ => $o{$_} } grep { exists $o{$_} } @reg);
    $path = $o{prefix} . call_part($path) if defined $o{prefix};
    delete @o{@reg, 'prefix'};
    my $ws = $class->connect($port, $path, %o);
    $ws->{path} = $path;
    return $ws;
}

sub status { $_[0]{status} }
sub header { $_[0]{headers}{lc $_[1]} }

# A client frame: masked unless told otherwise.
sub frame {
    my (%o) = @_;
    my $payload = $o{payload} // '';
    my $b0 = ($o{fin} // 1 ? 0x80 : 0) | (($o{rsv} // 0) << 4) | ($o{opcode} // 1);
    my $len = length $payload;
    my $masked = $o{masked} // 1;
    my $m = $masked ? 0x80 : 0;
    my $hdr = chr($b0);
    if ($len < 126)        { $hdr .= chr($m | $len) }
    elsif ($len <= 0xffff) { $hdr .= chr($m | 126) . pack('n', $len) }
    else                   { $hdr .= chr($m | 127) . pack('Q>', $len) }
    return $hdr . $payload unless $masked;
    my $key = pack('N', int rand 0xffffffff);
    my @k = unpack 'C4', $key;
    my $i = 0;
    (my $body = $payload) =~ s/(.)/chr(ord($1) ^ $k[$i++ % 4])/ges;
    return $hdr . $key . $body;
}

sub send_raw {
    my ($self, $bytes) = @_;
    local $SIG{PIPE} = 'IGNORE';
    while (length $bytes) {
        my $n = syswrite($self->{sock}, $bytes);
        return 0 unless defined $n;
        substr($bytes, 0, $n, '');
    }
    return 1;
}

sub send_frame { my ($self, %o) = @_; $self->send_raw(frame(%o)) }
sub send_text  { my ($self, $t) = @_; $self->send_frame(opcode => 1, payload => $t) }
sub send_json  { my ($self, $v) = @_; $self->send_text($JSON->encode($v)) }

# The next server frame as { opcode, payload }, or undef at EOF/timeout.
sub recv_frame {
    my ($self, $timeout) = @_;
    my $until = time + ($timeout // 3 * $Slow);
    for (;;) {
        my $payload = $self->{frames}->next_bytes;
        if (defined $payload) {
            return { opcode => $self->{frames}->opcode, payload => $payload };
        }
        my $left = $until - time;
        return undef if $left <= 0 || !$self->{sel}->can_read($left);
        my $n = sysread($self->{sock}, my $buf, 65536);
        return undef unless $n;
        $self->{frames}->append($buf);
    }
}

# Waits for the server's close frame; returns its code (and reason).
sub recv_close {
    my ($self, $timeout) = @_;
    while (my $f = $self->recv_frame($timeout)) {
        next unless $f->{opcode} == 8;
        my ($code, $reason) = length $f->{payload} >= 2
            ? (unpack('n', $f->{payload}), substr($f->{payload}, 2)) : (1005, '');
        return wantarray ? ($code, $reason) : $code;
    }
    return;
}

# True once the server has closed the TCP connection.
sub eof_within {
    my ($self, $timeout) = @_;
    my $until = time + $timeout;
    while (time < $until) {
        return 0 unless $self->{sel}->can_read($until - time);
        my $n = sysread($self->{sock}, my $buf, 65536);
        return 1 if defined $n && $n == 0;
        return 1 unless defined $n;
    }
    return 0;
}

sub close_socket { close $_[0]{sock} }

# Twilio's messages (../shared/twilio-facts.md §2)
sub sids {
    my ($n) = @_;
    return (sprintf('CA%032x', $n), sprintf('MZ%032x', $n), 'AC' . 'a' x 32);
}

sub twilio_start {
    my ($self, $n, %o) = @_;
    my ($call, $stream, $account) = sids($n);
    $account = $o{account} if $o{account};
    $self->send_json({ event => 'connected', protocol => 'Call', version => '1.0.0' });
    $self->send_json({ event => 'start', sequenceNumber => '1', streamSid => $stream,
        start => { accountSid => $account, streamSid => $stream, callSid => $call,
                   tracks => ['inbound'],
                   mediaFormat => { encoding => 'audio/x-mulaw', sampleRate => 8000,
                                    channels => 1 },
                   customParameters => { call_sid => $call } } });
}

sub media_json {
    my ($n, $seq, $audio) = @_;
    my (undef, $stream) = sids($n);
    $audio //= chr(0xff) x 160;
    return $JSON->encode({ event => 'media', sequenceNumber => "$seq", streamSid => $stream,
        media => { track => 'inbound', chunk => "$seq", timestamp => $seq * 20,
                   payload => encode_base64($audio, '') } });
}

sub twilio_media {
    my ($self, $n, $seq, $audio) = @_;
    $self->send_text(media_json($n, $seq, $audio));
}

sub twilio_stop {
    my ($self, $n, $seq) = @_;
    my ($call, $stream, $account) = sids($n);
    $self->send_json({ event => 'stop', sequenceNumber => "$seq", streamSid => $stream,
                       stop => { accountSid => $account, callSid => $call } });
}

# A clean end: our close frame, the server's answer, then EOF.
sub close_ws {
    my ($self, $code) = @_;
    $self->send_frame(opcode => 8, payload => pack('n', $code // 1000));
    my $got = $self->recv_close(3);
    close $self->{sock};
    return $got;
}

1;
