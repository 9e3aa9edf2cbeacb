#!/usr/bin/perl
# Reads the CRM API's statements out of src/ngx_agentlocator_api_query.c
# (the C string literals ngx_agentlocator_api_*_sql, with the file's own
# macros expanded: ISO(col) and NGX_AGENTLOCATOR_API_CALL_COLUMNS) and
# writes the pgbench scripts that run them, and what api.lua needs to ask
# the module for the same rows, so that the peer runs the text the module
# has today, not a copy that drifts.
#
# usage: sql.pl API_QUERY.c MODULE.so OUTDIR BUSINESSES THREADS CALLS PAGES
#
# One pgbench transaction = one API request = the statements the module
# sends for it, in one pipeline ending in one sync (\startpipeline ..
# \endpipeline), as ngx_agentlocator_pg_send() sends a read:
#
#   threads    count + page   $1 business :b, $2 NULL (no ?type=),
#                             $3 25, $4 (page - 1) * 25
#   messages   count + page   $1 the thread's business, $2 thread :t,
#                             $3 50, $4 0
#   calls      count + page   $1 :b, $2 'completed', $3 25, $4 (page - 1) * 25
#   call       call + events + recordings
#                             $1 the call's business, $2 its CallSid
#   customers  count + page   $1 :b, $2 '%' q '%', $3 25, $4 0: one script
#                             per q of @Q (customers-K.pgbench), equal weights
#
# pgbench binds every variable as text, which is what the module binds
# too; what differs, because pgbench has no string variables and no NULL
# parameter:
#   - threads' $2 is NULLIF(:nofilter, 'none') with -D nofilter=none: a
#     parameter the planner sees as the module's NULL (folded away in a
#     custom plan, a run-time test in a generic one);
#   - the CallSid is 'CA' || lpad(to_hex(:n), 32, '0'), an expression of
#     the call's number (a microsecond's work);
#   - customers' patterns and calls' status are -D variables (real text
#     parameters), one script per pattern.
# Parameters are drawn as api.lua draws them: business uniform in 1..B,
# page uniform in 1..PAGES, thread uniform in 1..THREADS (its business
# 1 + (t - 1) % B, seed.sql's layout), call uniform in 1..CALLS (likewise).
#
# OUTDIR gets:
#   <endpoint>.pgbench, customers-K.pgbench
#   pgbench-<endpoint>.args   pgbench's -f and -D arguments, one a line,
#                             for threads, messages, calls, call, customers
#                             and mix (all five, equal weights)
#   params.lua                for api.lua: B, THREADS, CALLS, PAGES, the
#                             patterns' q= values, URL-encoded
#   sql.txt                   "name in_so=0|1 params=N sha1=..." a line per
#                             statement: is it, byte for byte, in the .so
#                             nginx loads? (0: the build is older or newer
#                             than src/)
#
# Exit 1 when a statement is missing or its parameters are not the ones
# ngx_agentlocator_api_handler() binds: then the bench would not run what
# the module runs.

use strict;
use warnings;
use Digest::SHA qw(sha1_hex);

my ($src, $so, $dir, $B, $THREADS, $CALLS, $PAGES) = @ARGV;
die "usage: $0 API_QUERY.c MODULE.so OUTDIR BUSINESSES THREADS CALLS PAGES\n"
    unless defined $PAGES;

# ?q= of the customers endpoint, as a user types them: a Hebrew surname
# (273 matches a business), a Latin one (ILIKE), a first name, digits of a
# phone (a few), a phone prefix (a thousand), and nothing that matches
# (the whole business scanned).  No LIKE metacharacters: the module would
# escape them, and the patterns here are passed as they are.
my @Q = ('כהן', 'katz', 'מאיה', '123', '+97250001', 'אין כזה');

my $c = do { local $/; open my $fh, '<', $src or die "$src: $!\n"; <$fh> };
my $bin = do { local $/; open my $fh, '<:raw', $so or die "$so: $!\n"; <$fh> };

# --- the C: macros, then string literals -----------------------------------

(my $flat = $c) =~ s/\\\n/ /g;                      # line continuations
$flat =~ s{/\*.*?\*/}{ }gs;                         # comments

my %macro;      # name -> [ [params] or undef, body ]
while ($flat =~ /^[ \t]*#[ \t]*define[ \t]+(\w+)(\(([^)]*)\))?[ \t]*(.*)$/mg) {
    my ($name, $params, $body) = ($1, $3, $4);
    $body =~ s/\s+$//;
    $macro{$name} = [ defined $params ? [ split /\s*,\s*/, $params ] : undef,
                      $body ];
}

# expands the macros of this file in an initializer: string literals are
# kept, macro names (with string literal arguments) replaced by their body
my $LIT = qr/"(?:[^"\\\n]|\\.)*"/;
sub expand {
    my ($text) = @_;
    for my $round (1 .. 20) {
        my $changed = 0;
        $text =~ s{($LIT)|\b([A-Za-z_]\w*)\b(\s*\(((?:\s*$LIT)+\s*)\))?}{
            my ($lit, $name, $call, $arg) = ($1, $2, $3, $4);
            if (defined $lit) {
                $lit;
            } else {
                my $m = $macro{$name}
                    or die "$src: '$name' in a statement: not a macro of this file; update bench/api/sql.pl\n";
                $changed = 1;
                if ($m->[0]) {
                    die "$src: $name without its argument\n" unless defined $call;
                    die "$src: $name takes @{[scalar @{ $m->[0] }]} arguments\n"
                        unless @{ $m->[0] } == 1;
                    my $p = $m->[0][0];
                    my $body = $m->[1];
                    # the parameter's name outside the body's literals
                    $body =~ s{($LIT)|\b\Q$p\E\b}{defined $1 ? $1 : $arg}ge;
                    " $body ";
                } else {
                    " $m->[1]" . ($call // '') . ' ';
                }
            }
        }ge;
        return $text unless $changed;
    }
    die "$src: macros nested too deep\n";
}

sub c_string {
    my ($name) = @_;
    $flat =~ /static\s+const\s+char\s+\Q$name\E\s*\[\]\s*=\s*([^;]*);/s
        or die "$src: no static const char $name\[\] = ...;\n";
    my $text = expand($1);
    my $s = '';
    while ($text =~ /\G\s*"((?:[^"\\\n]|\\.)*)"/gc) {
        my $piece = $1;
        $piece =~ s/\\(["\\'?])/$1/g;
        $piece =~ s/\\n/\n/g;
        $piece =~ s/\\t/\t/g;
        die "$src: $name: an escape this script does not read: $1\n"
            if $piece =~ /(\\.)/;
        $s .= $piece;
    }
    $text =~ /\G\s*$/gc
        or die "$src: $name: something other than string literals: "
               . substr($text, pos($text) // 0, 40) . "\n";
    return $s;
}

# the statements, and the parameters ngx_agentlocator_api_handler() binds
my @names = qw(threads_count threads messages_count messages calls_count
               calls call call_events call_recordings customers_count
               customers);
my %nparams = map { $_ => /_count$|^call(_|$)/ ? 2 : 4 } @names;
my %sql;
my @info;
for my $n (@names) {
    my $s = c_string("ngx_agentlocator_api_${n}_sql");
    my %seen = map { $_ => 1 } $s =~ /\$(\d+)/g;
    my $got = join ' ', sort { $a <=> $b } keys %seen;
    my $want = join ' ', 1 .. $nparams{$n};
    die "$src: api_$n has parameters \$" . join(', $', split ' ', $got)
        . ", the handler binds \$" . join(', $', split ' ', $want)
        . ": update bench/api/sql.pl\n" unless $got eq $want;
    die "$src: api_$n has a string literal with a colon or an E'' literal; "
        . "pgbench would read it as a variable: update bench/api/sql.pl\n"
        if $s =~ /'[^']*:[^']*'/ || $s =~ /[Ee]'/;
    die "$src: api_$n has a ':name' outside a cast; update bench/api/sql.pl\n"
        if $s =~ /(?<!:):[A-Za-z_]/;
    $sql{$n} = $s;
    push @info, sprintf "%s in_so=%d params=%d sha1=%s", "api_$n",
        index($bin, $s) >= 0 ? 1 : 0, $nparams{$n}, substr(sha1_hex($s), 0, 12);
}

# the handler binds: $1 business, $2 filter or id, $3 limit, $4 offset
# (pages); $1 business, $2 CallSid (one call)
sub bind_sql {
    my ($n, %p) = @_;
    (my $s = $sql{$n}) =~ s/\$(\d+)(?!\d)/
        defined $p{$1} ? $p{$1} : die "internal: \$$1 of $n unmapped\n"/ge;
    $s =~ s/\s+/ /g;
    $s =~ s/^ | $//g;
    return $s;
}

my %script;
my $page_vars = "\\set b random(1, $B)\n\\set page random(1, $PAGES)\n"
              . "\\set lim 25\n\\set off (:page - 1) * :lim\n";

$script{threads} = $page_vars . pipeline(
    map { bind_sql($_, 1 => ':b', 2 => q{NULLIF(:nofilter, 'none')}, 3 => ':lim',
                   4 => ':off') } qw(threads_count threads));

$script{messages} = "\\set t random(1, $THREADS)\n\\set b 1 + (:t - 1) % $B\n"
    . "\\set lim 50\n\\set off 0\n" . pipeline(
    map { bind_sql($_, 1 => ':b', 2 => ':t', 3 => ':lim', 4 => ':off') }
    qw(messages_count messages));

$script{calls} = $page_vars . pipeline(
    map { bind_sql($_, 1 => ':b', 2 => ':status', 3 => ':lim', 4 => ':off') }
    qw(calls_count calls));

$script{call} = "\\set n random(1, $CALLS)\n\\set b 1 + (:n - 1) % $B\n"
    . pipeline(map { bind_sql($_, 1 => ':b',
                              2 => q{('CA' || lpad(to_hex(:n::bigint), 32, '0'))}) }
               qw(call call_events call_recordings));

for my $k (1 .. @Q) {
    $script{"customers-$k"} = "\\set b random(1, $B)\n\\set lim 25\n\\set off 0\n"
        . pipeline(map { bind_sql($_, 1 => ':b', 2 => ":q$k", 3 => ':lim',
                                  4 => ':off') } qw(customers_count customers));
}

sub pipeline { join '', "\\startpipeline\n", (map { "$_;\n" } @_), "\\endpipeline\n" }

for my $name (sort keys %script) {
    my $f = "$dir/$name.pgbench";
    open my $fh, '>', $f or die "$f: $!\n";
    print $fh "-- generated by bench/api/sql.pl from $src\n", $script{$name};
    close $fh or die "$f: $!\n";
}

# pgbench's arguments: -f (with a weight), -D
my @defs = ('-D', 'nofilter=none', '-D', 'status=completed',
            map { ('-D', "q$_=%$Q[$_ - 1]%") } 1 .. @Q);
my %args = (
    threads   => [ '-f', "$dir/threads.pgbench" ],
    messages  => [ '-f', "$dir/messages.pgbench" ],
    calls     => [ '-f', "$dir/calls.pgbench" ],
    call      => [ '-f', "$dir/call.pgbench" ],
    customers => [ map { ('-f', "$dir/customers-$_.pgbench\@1") } 1 .. @Q ],
);
# the mix: each endpoint as often (customers' scripts share its weight)
my $w = @Q;
$args{mix} = [ (map { ('-f', "$dir/$_.pgbench\@$w") } qw(threads messages calls call)),
               @{ $args{customers} } ];
for my $e (keys %args) {
    my $f = "$dir/pgbench-$e.args";
    open my $fh, '>', $f or die "$f: $!\n";
    print $fh "$_\n" for @{ $args{$e} }, @defs;
    close $fh or die "$f: $!\n";
}

sub urlenc {
    (my $s = shift) =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}
{
    use bytes;
    open my $fh, '>', "$dir/params.lua" or die "$dir/params.lua: $!\n";
    print $fh "-- generated by bench/api/sql.pl\nreturn {\n",
        "  businesses = $B, threads = $THREADS, calls = $CALLS, pages = $PAGES,\n",
        "  q = { ", join(', ', map { '"' . urlenc($_) . '"' } @Q), " },\n}\n";
    close $fh or die "$dir/params.lua: $!\n";
}

open my $fh, '>', "$dir/sql.txt" or die "$dir/sql.txt: $!\n";
print $fh "$_\n" for @info;
close $fh or die "$dir/sql.txt: $!\n";
