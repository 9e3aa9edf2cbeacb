package Test::AgentLocator::Twilio;

# What Twilio does on the wire, for the tests: form-encode a webhook body and
# sign it as Twilio does (base64 HMAC-SHA1 of URL + sorted key/value pairs).
# Written from Twilio's documentation; independent of the module's C code.

use strict;
use warnings;
use Digest::SHA qw(hmac_sha1_base64 hmac_sha1_hex);
use Exporter 'import';

our @EXPORT_OK = qw(form twilio_signature signed_request call_sid stream_token);

# form(k => v, ...) -> "k=v&..." with application/x-www-form-urlencoded rules
sub form {
    my @pairs = @_;
    my @out;
    while (my ($k, $v) = splice @pairs, 0, 2) {
        push @out, enc($k) . '=' . enc($v);
    }
    return join '&', @out;
}

sub enc {
    my $s = utf8_bytes($_[0]);
    $s =~ s/([^A-Za-z0-9\-._~ ])/sprintf '%%%02X', ord $1/ge;
    $s =~ tr/ /+/;
    return $s;
}

# Characters to the UTF-8 bytes Twilio sends ("Zo\x{eb}" -> "Zo\xc3\xab").
sub utf8_bytes {
    my ($s) = @_;
    utf8::upgrade($s);
    utf8::encode($s);
    return $s;
}

# twilio_signature($token, $url, k => v, ...): keys sorted, values of a
# repeated key sorted, exact duplicates once (as Twilio's libraries do).
sub twilio_signature {
    my ($token, $url, @pairs) = @_;
    my %seen;
    my @kv;
    while (my ($k, $v) = splice @pairs, 0, 2) {
        ($k, $v) = (utf8_bytes($k), utf8_bytes($v));
        push @kv, [$k, $v] unless $seen{"$k\0$v"}++;
    }
    my $data = $url . join '', map { $_->[0] . $_->[1] }
        sort { $a->[0] cmp $b->[0] || $a->[1] cmp $b->[1] } @kv;
    my $sig = hmac_sha1_base64($data, $token);
    $sig .= '=' while length($sig) % 4;
    return $sig;
}

# A Test::Nginx request with its signature header:
# signed_request($token, $public_url, $uri, k => v, ...) -> [request, headers]
sub signed_request {
    my ($token, $public, $uri, @pairs) = @_;
    my $sig = twilio_signature($token, "$public$uri", @pairs);
    return ("POST $uri\n" . form(@pairs),
            "Content-Type: application/x-www-form-urlencoded\n"
            . "X-Twilio-Signature: $sig");
}

# The token of a call's stream URL, .../{CallSid}/{token}, as the README
# defines it: the first 16 bytes, in hex, of HMAC-SHA1 under the auth token
# of "agentlocator-stream-url:" followed by the CallSid.
sub stream_token {
    my ($token, $call_sid) = @_;
    return substr(hmac_sha1_hex("agentlocator-stream-url:$call_sid", $token), 0, 32);
}

# A well-formed CallSid from a small number, for readable tests.
sub call_sid {
    my ($n) = @_;
    return sprintf 'CA%032x', $n;
}

1;
