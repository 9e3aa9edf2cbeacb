
/*
 * The spool's records (ngx_agentlocator_spool_record.h): written whole,
 * read back from whatever a killed worker or a bad disk left.  A reader
 * trusts nothing in a record until its CRC checks out, and even then
 * checks every length against what is there.
 */


#include <string.h>

#include "ngx_agentlocator_spool_record.h"


static uint32_t  ngx_agentlocator_spool_crc_table[256];


size_t
ngx_agentlocator_spool_record_size(size_t name_len, size_t n,
    const ngx_agentlocator_spool_param_t *params)
{
    size_t  i, len;

    if (name_len > 255 || n > NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX) {
        return 0;
    }

    len = 2 + name_len;

    for (i = 0; i < n; i++) {
        if (params[i].len > NGX_AGENTLOCATOR_SPOOL_RECORD_MAX) {
            return 0;
        }

        len += 4 + (params[i].data ? params[i].len : 0);
    }

    if (len > NGX_AGENTLOCATOR_SPOOL_RECORD_MAX) {
        return 0;
    }

    return NGX_AGENTLOCATOR_SPOOL_HEADER + len;
}


void
ngx_agentlocator_spool_record_encode(uint8_t *out, const char *name,
    size_t name_len, size_t n, const ngx_agentlocator_spool_param_t *params)
{
    size_t    i;
    int32_t   plen;
    uint8_t  *p;
    uint32_t  word;

    p = out + NGX_AGENTLOCATOR_SPOOL_HEADER;

    *p++ = (uint8_t) name_len;
    memcpy(p, name, name_len);
    p += name_len;
    *p++ = (uint8_t) n;

    for (i = 0; i < n; i++) {
        plen = params[i].data ? (int32_t) params[i].len : -1;
        memcpy(p, &plen, 4);
        p += 4;

        if (params[i].data) {
            memcpy(p, params[i].data, params[i].len);
            p += params[i].len;
        }
    }

    word = NGX_AGENTLOCATOR_SPOOL_MAGIC;
    memcpy(out, &word, 4);
    word = (uint32_t) (p - out - NGX_AGENTLOCATOR_SPOOL_HEADER);
    memcpy(out + 4, &word, 4);
    word = ngx_agentlocator_spool_crc32(out + NGX_AGENTLOCATOR_SPOOL_HEADER,
                                        p - out - NGX_AGENTLOCATOR_SPOOL_HEADER);
    memcpy(out + 8, &word, 4);
}


ngx_agentlocator_spool_scan_e
ngx_agentlocator_spool_record_scan(const uint8_t *buf, size_t len,
    size_t *used, int *found, ngx_agentlocator_spool_view_t *view)
{
    size_t          i;
    int32_t         plen;
    uint32_t        magic, size, crc;
    const uint8_t  *p, *last;

    *found = 0;

    if (len < NGX_AGENTLOCATOR_SPOOL_HEADER) {
        /* too few bytes to tell, or the start of a header */
        if (len < 4) {
            *used = NGX_AGENTLOCATOR_SPOOL_HEADER;
            return NGX_AGENTLOCATOR_SPOOL_SHORT;
        }

        memcpy(&magic, buf, 4);

        if (magic == NGX_AGENTLOCATOR_SPOOL_MAGIC) {
            *used = NGX_AGENTLOCATOR_SPOOL_HEADER;
            return NGX_AGENTLOCATOR_SPOOL_SHORT;
        }

        goto bad;
    }

    memcpy(&magic, buf, 4);
    memcpy(&size, buf + 4, 4);
    memcpy(&crc, buf + 8, 4);

    if (magic != NGX_AGENTLOCATOR_SPOOL_MAGIC
        || size > NGX_AGENTLOCATOR_SPOOL_RECORD_MAX)
    {
        goto bad;
    }

    if (len - NGX_AGENTLOCATOR_SPOOL_HEADER < size) {
        *used = NGX_AGENTLOCATOR_SPOOL_HEADER + size;
        return NGX_AGENTLOCATOR_SPOOL_SHORT;
    }

    p = buf + NGX_AGENTLOCATOR_SPOOL_HEADER;
    last = p + size;

    if (ngx_agentlocator_spool_crc32(p, size) != crc || last - p < 2) {
        goto bad;
    }

    view->name_len = *p++;
    view->name = p;

    if ((size_t) (last - p) < view->name_len + 1) {
        goto bad;
    }

    p += view->name_len;
    view->n = *p++;

    if (view->n > NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX) {
        goto bad;
    }

    for (i = 0; i < view->n; i++) {
        if (last - p < 4) {
            goto bad;
        }

        memcpy(&plen, p, 4);
        p += 4;

        if (plen == -1) {
            view->params[i].data = NULL;
            view->params[i].len = 0;
            continue;
        }

        if (plen < 0 || last - p < plen) {
            goto bad;
        }

        view->params[i].data = p;
        view->params[i].len = (size_t) plen;
        p += plen;
    }

    if (p != last) {
        goto bad;
    }

    *used = NGX_AGENTLOCATOR_SPOOL_HEADER + size;
    return NGX_AGENTLOCATOR_SPOOL_OK;

bad:

    *used = ngx_agentlocator_spool_record_resync(buf, len, found);
    return NGX_AGENTLOCATOR_SPOOL_BAD;
}


size_t
ngx_agentlocator_spool_record_resync(const uint8_t *buf, size_t len,
    int *found)
{
    size_t    i;
    uint32_t  magic;

    for (i = 1; i + 4 <= len; i++) {
        memcpy(&magic, buf + i, 4);

        if (magic == NGX_AGENTLOCATOR_SPOOL_MAGIC) {
            *found = 1;
            return i;
        }
    }

    *found = 0;

    return (len > 4) ? len - 3 : 1;
}


/* CRC-32 (IEEE 802.3, as zlib's), the table made on first use. */

uint32_t
ngx_agentlocator_spool_crc32(const uint8_t *p, size_t len)
{
    int       k;
    uint32_t  c, crc;
    size_t    i;

    if (ngx_agentlocator_spool_crc_table[1] == 0) {
        for (i = 0; i < 256; i++) {
            c = (uint32_t) i;

            for (k = 0; k < 8; k++) {
                c = (c & 1) ? 0xedb88320 ^ (c >> 1) : c >> 1;
            }

            ngx_agentlocator_spool_crc_table[i] = c;
        }
    }

    crc = 0xffffffff;

    for (i = 0; i < len; i++) {
        crc = ngx_agentlocator_spool_crc_table[(crc ^ p[i]) & 0xff]
              ^ (crc >> 8);
    }

    return crc ^ 0xffffffff;
}
