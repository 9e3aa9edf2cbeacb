#!/usr/bin/perl
# Signed Twilio webhooks for bench/crm/run, as whole HTTP requests, each
# followed by a NUL byte (what load.c reads).
#
# usage: gen-requests.pl TOKEN PUBLIC_URL HOST SALT KIND N OUT
#
#   KIND calls:    N calls, each its incoming_call (CallSid, AccountSid, From,
#                  To, CallStatus=ringing) then its call_status (CallSid,
#                  CallStatus=completed, CallDuration 1..600): 2N requests
#   KIND incoming: N incoming_calls
#   KIND baseline: the same N incoming_calls (same SALT) sent to /baseline
#
# CallSids are 'CA' + 32 hex digits of sha1(SALT-i): distinct across KINDs
# when the SALTs differ.  From is +1555 and 7 digits of i, so each call is a
# new customer, as in the pgbench peer (sql.pl).
#
# X-Twilio-Signature = base64(HMAC-SHA1(token, URL . key1 . value1 . ...))
# with the parameters sorted by key, URL = PUBLIC_URL + the webhook's path
# (as bench/webhooks/gen-requests.pl does).

use strict;
use warnings;
use Digest::SHA qw(hmac_sha1_base64 sha1_hex);

my ($token, $public, $host, $salt, $kind, $n, $out) = @ARGV;
die "usage: $0 TOKEN PUBLIC_URL HOST SALT calls|incoming|baseline N OUT\n"
    unless defined $out && $n =~ /^[1-9][0-9]*$/
           && $kind =~ /^(calls|incoming|baseline)$/;

my $account = 'AC' . ('a1' x 16);
my $to      = '+16665550100';

sub enc {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

# path, [key, value, ...] in the order they go in the body
sub request {
    my ($path, $sign_path, @kv) = @_;
    my %p = @kv;
    my $sig = hmac_sha1_base64($public . $sign_path
                               . join('', map { $_ . $p{$_} } sort keys %p),
                               $token);
    $sig .= '=' while length($sig) % 4;    # Digest::SHA leaves out the padding
    my @body;
    for (my $i = 0; $i < @kv; $i += 2) {
        push @body, "$kv[$i]=" . enc($kv[$i + 1]);
    }
    my $body = join '&', @body;
    return "POST $path HTTP/1.1\r\nHost: $host\r\n"
         . "Content-Type: application/x-www-form-urlencoded\r\n"
         . "X-Twilio-Signature: $sig\r\n"
         . 'Content-Length: ' . length($body) . "\r\n\r\n$body\0";
}

open my $fh, '>', "$out.tmp" or die "$out.tmp: $!\n";
binmode $fh;
srand(42);
for my $i (1 .. $n) {
    my $sid = 'CA' . substr(sha1_hex("$salt-$i"), 0, 32);
    my @incoming = (CallSid => $sid, AccountSid => $account,
                    From => sprintf('+1555%07d', $i % 10_000_000), To => $to,
                    CallStatus => 'ringing');
    if ($kind eq 'baseline') {
        print $fh request('/baseline', '/webhook/incoming_call', @incoming);
        next;
    }
    print $fh request('/webhook/incoming_call', '/webhook/incoming_call',
                      @incoming);
    next if $kind eq 'incoming';
    print $fh request('/webhook/call_status', '/webhook/call_status',
                      CallSid => $sid, CallStatus => 'completed',
                      CallDuration => 1 + int rand 600);
}
close $fh or die "$out.tmp: $!\n";
rename "$out.tmp", $out or die "$out: $!\n";
