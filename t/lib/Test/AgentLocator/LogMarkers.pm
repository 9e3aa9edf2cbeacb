package Test::AgentLocator::LogMarkers;

# What never shows up in the log of a healthy nginx: an alert (a worker
# that died, a leak nginx itself saw), an emergency, a sanitizer's report.
# Both runners read this one list: Socket.pm for Test::Nginx blocks,
# Server.pm for scenarios.

use strict;
use warnings;
use Exporter 'import';

our @EXPORT_OK = qw(@FATAL_LOG_MARKERS);

our @FATAL_LOG_MARKERS = ('[alert]', '[emerg]', 'exited on signal',
                          'AddressSanitizer', 'LeakSanitizer',
                          'runtime error:');

1;
