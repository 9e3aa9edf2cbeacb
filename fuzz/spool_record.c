/*
 * libFuzzer: the CRM spool's records (src/ngx_agentlocator_spool_record.c),
 * read back from whatever a killed worker or a bad disk left in a journal.
 *
 * The input is a journal, read the way the worker reads one: records in a
 * row, a torn or damaged one skipped to the next magic.  Every step must
 * make progress and stay inside the buffer (ASan), and a record accepted
 * must encode back to exactly its bytes.  The input's first bytes also
 * make a record of their own (a name and parameters), which must scan back
 * as the same record, whole and in every cut short of whole.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_agentlocator_spool_record.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "spool_record: %s\n", what);                          \
        abort();                                                              \
    }


static void
journal(const uint8_t *data, size_t size)
{
    int                             found;
    size_t                          off, used, len;
    uint8_t                        *again;
    ngx_agentlocator_spool_scan_e   rc;
    ngx_agentlocator_spool_view_t   view;

    off = 0;

    while (off < size) {
        rc = ngx_agentlocator_spool_record_scan(data + off, size - off, &used,
                                                &found, &view);

        if (rc == NGX_AGENTLOCATOR_SPOOL_SHORT) {
            CHECK(used > size - off, "short, yet the record fits");
            used = ngx_agentlocator_spool_record_resync(data + off,
                                                        size - off, &found);
            if (!found) {
                used = size - off;
            }

        } else if (rc == NGX_AGENTLOCATOR_SPOOL_BAD) {
            if (!found) {
                used = size - off;
            }

        } else {
            len = ngx_agentlocator_spool_record_size(view.name_len, view.n,
                                                     view.params);
            CHECK(len == used, "a record's size is not what it encodes to");

            again = malloc(len);
            CHECK(again != NULL, "out of memory");
            ngx_agentlocator_spool_record_encode(again,
                                                 (const char *) view.name,
                                                 view.name_len, view.n,
                                                 view.params);
            CHECK(memcmp(again, data + off, len) == 0,
                  "a record does not encode back to its bytes");
            free(again);
        }

        CHECK(used >= 1 && used <= size - off, "no progress, or past the end");
        off += used;
    }
}


/*
 * A record made of the input: byte 0 the parameter count, byte 1 which of
 * them are NULL, then the name and each parameter cut from the rest.
 */

static void
round_trip(const uint8_t *data, size_t size)
{
    int                             found;
    size_t                          i, n, len, used, cut, name_len;
    uint8_t                        *rec;
    const uint8_t                  *p, *last;
    ngx_agentlocator_spool_scan_e   rc;
    ngx_agentlocator_spool_view_t   view;
    ngx_agentlocator_spool_param_t  params[NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX];

    if (size < 3) {
        return;
    }

    n = data[0] % (NGX_AGENTLOCATOR_SPOOL_PARAMS_MAX + 1);
    p = data + 3;
    last = data + size;
    name_len = data[2] < (size_t) (last - p) ? data[2] : (size_t) (last - p);
    const uint8_t *name = p;
    p += name_len;

    for (i = 0; i < n; i++) {
        cut = (size_t) (last - p) / (n - i);
        params[i].data = (data[1] >> (i % 8) & 1) ? NULL : p;
        params[i].len = params[i].data ? cut : 0;
        p += cut;
    }

    len = ngx_agentlocator_spool_record_size(name_len, n, params);
    if (len == 0) {
        return;
    }

    rec = malloc(len);
    CHECK(rec != NULL, "out of memory");
    ngx_agentlocator_spool_record_encode(rec, (const char *) name, name_len, n,
                                         params);

    rc = ngx_agentlocator_spool_record_scan(rec, len, &used, &found, &view);
    CHECK(rc == NGX_AGENTLOCATOR_SPOOL_OK && used == len,
          "a record just made does not scan back");
    CHECK(view.name_len == name_len
          && memcmp(view.name, name, name_len) == 0, "the name changed");
    CHECK(view.n == n, "the count changed");

    for (i = 0; i < n; i++) {
        CHECK((view.params[i].data == NULL) == (params[i].data == NULL),
              "a NULL changed");
        CHECK(view.params[i].len == params[i].len
              && (params[i].data == NULL
                  || memcmp(view.params[i].data, params[i].data,
                            params[i].len) == 0),
              "a parameter changed");
    }

    /* cut short anywhere: never a record, never past the cut */
    for (cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        CHECK(copy != NULL, "out of memory");
        memcpy(copy, rec, cut);
        rc = ngx_agentlocator_spool_record_scan(copy, cut, &used, &found,
                                                &view);
        CHECK(rc != NGX_AGENTLOCATOR_SPOOL_OK, "a cut record was accepted");
        free(copy);
    }

    free(rec);
}


/* CRC-32's check value (zlib's, which fuzz/make-seeds.py writes seeds with) */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    CHECK(ngx_agentlocator_spool_crc32((const uint8_t *) "123456789", 9)
          == 0xcbf43926, "CRC-32 is not IEEE's");

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    journal(data, size);
    round_trip(data, size);

    return 0;
}
