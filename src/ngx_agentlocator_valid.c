
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


int
ngx_agentlocator_sid_ok(const unsigned char *data, size_t len,
    const char *prefix)
{
    size_t         i;
    unsigned char  ch;

    if (len != NGX_AGENTLOCATOR_SID_LEN
        || data[0] != (unsigned char) prefix[0]
        || data[1] != (unsigned char) prefix[1])
    {
        return 0;
    }

    for (i = 2; i < NGX_AGENTLOCATOR_SID_LEN; i++) {
        ch = data[i];

        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')
              || (ch >= 'A' && ch <= 'F')))
        {
            return 0;
        }
    }

    return 1;
}
