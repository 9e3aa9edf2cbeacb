
/*
 * The spool's record format, in plain C (no nginx types) so that it can be
 * fuzzed on its own (fuzz/spool_record.c).  A record:
 *
 *   magic "ASL1" (4) | payload length (4) | CRC-32 of the payload (4)
 *   payload: name length (1) | name | count (1) |
 *            count x (length (4, -1: NULL) | bytes)
 *
 * Integers are in this machine's byte order: a journal never leaves the
 * host that wrote it.
 */

#ifndef _NGX_AGENTLOCATOR_SPOOL_RECORD_H_INCLUDED_
#define _NGX_AGENTLOCATOR_SPOOL_RECORD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_AGENTLOCATOR_SPOOL_MAGIC        0x314c5341   /* "ASL1" */
#define NGX_AGENTLOCATOR_SPOOL_HEADER       12
#define NGX_AGENTLOCATOR_SPOOL_RECORD_MAX   65536        /* payload */
#define NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX   16


typedef struct {
    const uint8_t   *data;       /* NULL: SQL NULL */
    size_t           len;
} ngx_agentlocator_spool_param_t;


typedef struct {
    const uint8_t   *name;
    size_t           name_len;
    size_t           n;
    ngx_agentlocator_spool_param_t  params[NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX];
} ngx_agentlocator_spool_view_t;


typedef enum {
    NGX_AGENTLOCATOR_SPOOL_OK = 0,   /* a record: "used" bytes */
    NGX_AGENTLOCATOR_SPOOL_SHORT,    /* a record may start here: more bytes */
    NGX_AGENTLOCATOR_SPOOL_BAD       /* none here: skip "used" bytes */
} ngx_agentlocator_spool_scan_e;


/* 0: too big (a name over 255 bytes, too many parameters, a payload over
 * the limit) */
size_t ngx_agentlocator_spool_record_size(size_t name_len, size_t n,
    const ngx_agentlocator_spool_param_t *params);

/* writes the record (record_size() bytes) to "out" */
void ngx_agentlocator_spool_record_encode(uint8_t *out, const char *name,
    size_t name_len, size_t n, const ngx_agentlocator_spool_param_t *params);

/*
 * Looks at buf[0 .. len).  OK: *used is the record's size and "view"
 * points into buf.  SHORT: what is there may be the start of a record of
 * *used bytes.  BAD: no record starts here; the next magic is *used bytes
 * on (*found set), or there is none in buf (*used leaves the last 3 bytes,
 * which may begin one).
 */
ngx_agentlocator_spool_scan_e ngx_agentlocator_spool_record_scan(
    const uint8_t *buf, size_t len, size_t *used, int *found,
    ngx_agentlocator_spool_view_t *view);

/* where the next magic after buf[0] is, as scan() says for BAD */
size_t ngx_agentlocator_spool_record_resync(const uint8_t *buf, size_t len,
    int *found);

uint32_t ngx_agentlocator_spool_crc32(const uint8_t *p, size_t len);


#endif /* _NGX_AGENTLOCATOR_SPOOL_RECORD_H_INCLUDED_ */
