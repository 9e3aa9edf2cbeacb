
/*
 * Identifiers' shapes (ngx_agentlocator_valid.h): checked before a value
 * reaches the zone, the CRM or a provider.
 */


#include "ngx_agentlocator_valid.h"

#include <string.h>


int
ngx_agentlocator_e164_ok(const unsigned char *data, size_t len)
{
    size_t  i;

    if (len < 3 || len > 16 || data[0] != '+' || data[1] == '0') {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if (data[i] < '0' || data[i] > '9') {
            return 0;
        }
    }

    return 1;
}


int
ngx_agentlocator_http_url_ok(const unsigned char *data, size_t len)
{
    return (len > 7 && memcmp(data, "http://", 7) == 0)
           || (len > 8 && memcmp(data, "https://", 8) == 0);
}


/*
 * Hex digits, either case: one load and one test per character, as every
 * webhook checks a SID or two (its CallSid once, where the form is read;
 * incoming_call its AccountSid too), and a range test per class was ~2% of
 * incoming_call's CPU.
 */
static const unsigned char  ngx_agentlocator_hex[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1
};


int
ngx_agentlocator_sid_ok(const unsigned char *data, size_t len,
    const char *prefix)
{
    size_t         i;
    unsigned char  all;

    if (len != NGX_AGENTLOCATOR_SID_LEN
        || data[0] != (unsigned char) prefix[0]
        || data[1] != (unsigned char) prefix[1])
    {
        return 0;
    }

    /* no early exit: a branch-free AND the compiler can unroll */
    all = 1;

    for (i = 2; i < NGX_AGENTLOCATOR_SID_LEN; i++) {
        all &= ngx_agentlocator_hex[data[i]];
    }

    return all;
}
