/*
 * libFuzzer: application/x-www-form-urlencoded bodies and query strings
 * (src/ngx_agentlocator_form_codec.c), as Twilio's webhooks and the API's
 * clients send them.
 *
 * Byte 0 picks the caller's room for pairs (what the module allocates, or
 * 0 to 55); the rest is the body.  It is parsed by the module and by a
 * small reference model written here from the WHATWG urlencoded rules as
 * the module applies them (empty pairs skipped, "+" is a space, a "%" not
 * followed by two hex digits refused, at most 128 pairs): same verdict,
 * same pairs, byte for byte, each decoded in place inside the body.  Every
 * key is looked up as the reference would (first value, or a conflict
 * when it repeats with another value).  The body's bytes are also escaped
 * and must parse back to themselves, alone and as pairs.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_agentlocator_form_codec.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "form: %s\n", what);                                  \
        abort();                                                              \
    }

#define REF_OK         0
#define REF_TOO_MANY   1
#define REF_MALFORMED  2


typedef struct {
    uint8_t  *key;
    size_t    key_len;
    uint8_t  *value;
    size_t    value_len;
} ref_pair_t;


typedef struct {
    ref_pair_t  pairs[NGX_AGENTLOCATOR_FORM_MAX_PARAMS];
    size_t      n;
    int         verdict;
} ref_form_t;


static int
ref_hex(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/* a fresh copy of s[0..len) decoded; NULL if malformed */

static uint8_t *
ref_decode(const uint8_t *s, size_t len, size_t *out_len)
{
    size_t    i, o;
    uint8_t  *out;

    out = malloc(len + 1);
    CHECK(out, "out of memory");

    for (i = 0, o = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';

        } else if (s[i] != '%') {
            out[o++] = s[i];

        } else if (i + 2 < len
                   && ref_hex(s[i + 1]) >= 0 && ref_hex(s[i + 2]) >= 0)
        {
            out[o++] = (uint8_t) (ref_hex(s[i + 1]) * 16 + ref_hex(s[i + 2]));
            i += 2;

        } else {
            free(out);
            return NULL;
        }
    }

    *out_len = o;

    return out;
}


static void
ref_parse(const uint8_t *s, size_t len, size_t room, ref_form_t *f)
{
    size_t          start, end, eq, limit;
    ref_pair_t     *p;

    f->n = 0;
    f->verdict = REF_OK;

    limit = room < NGX_AGENTLOCATOR_FORM_MAX_PARAMS
            ? room : NGX_AGENTLOCATOR_FORM_MAX_PARAMS;

    for (start = 0; start < len; start = end + 1) {
        end = start;

        while (end < len && s[end] != '&') {
            end++;
        }

        if (end == start) {
            continue;
        }

        if (f->n == limit) {
            f->verdict = REF_TOO_MANY;
            return;
        }

        eq = start;

        while (eq < end && s[eq] != '=') {
            eq++;
        }

        p = &f->pairs[f->n];
        p->key = ref_decode(s + start, eq - start, &p->key_len);
        p->value = NULL;

        if (p->key) {
            p->value = eq < end
                       ? ref_decode(s + eq + 1, end - eq - 1, &p->value_len)
                       : ref_decode(s, 0, &p->value_len);
        }

        if (p->key == NULL || p->value == NULL) {
            free(p->key);
            free(p->value);
            f->verdict = REF_MALFORMED;
            return;
        }

        f->n++;
    }
}


static void
ref_free(ref_form_t *f)
{
    size_t  i;

    for (i = 0; i < f->n; i++) {
        free(f->pairs[i].key);
        free(f->pairs[i].value);
    }
}


static int
same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}


/* the module's lookup of a name against the reference's */

static void
check_find(const ngx_agentlocator_form_t *form, const ref_form_t *ref,
    const uint8_t *name, size_t len)
{
    int                          rc, want;
    size_t                       i;
    const ref_pair_t            *first;
    ngx_agentlocator_form_str_t  v;

    first = NULL;
    want = NGX_AGENTLOCATOR_FORM_ABSENT;

    for (i = 0; i < ref->n; i++) {
        if (!same(ref->pairs[i].key, ref->pairs[i].key_len, name, len)) {
            continue;
        }

        if (first == NULL) {
            first = &ref->pairs[i];
            want = NGX_AGENTLOCATOR_FORM_FOUND;

        } else if (!same(ref->pairs[i].value, ref->pairs[i].value_len,
                         first->value, first->value_len))
        {
            want = NGX_AGENTLOCATOR_FORM_CONFLICT;
            break;
        }
    }

    rc = ngx_agentlocator_form_find(form, name, len, &v);

    CHECK(rc == want, "a lookup disagrees with the reference");

    if (rc == NGX_AGENTLOCATOR_FORM_FOUND) {
        CHECK(same(v.data, v.len, first->value, first->value_len),
              "a lookup found another value than the first");
    }
}


static void
parse(const uint8_t *data, size_t size, size_t room)
{
    size_t                     i, amps;
    uint8_t                   *copy;
    const char                *err;
    ref_form_t                 ref;
    ngx_agentlocator_form_t    form;
    ngx_agentlocator_param_t  *params;

    copy = malloc(size ? size : 1);
    CHECK(copy, "out of memory");

    if (size) {
        memcpy(copy, data, size);
    }

    for (i = 0, amps = 0; i < size; i++) {
        amps += (data[i] == '&');
    }

    CHECK(ngx_agentlocator_form_count(copy, size) == amps + 1,
          "form_count is not one more than the ampersands");

    if (room == SIZE_MAX) {
        /* what ngx_agentlocator_form_new() gives */
        room = ngx_agentlocator_form_count(copy, size);
        if (room > NGX_AGENTLOCATOR_FORM_MAX_PARAMS) {
            room = NGX_AGENTLOCATOR_FORM_MAX_PARAMS;
        }
    }

    /* exactly the room asked for: ASan sees a write past it */
    params = malloc((room ? room : 1) * sizeof(ngx_agentlocator_param_t));
    CHECK(params, "out of memory");

    form.params = params;
    form.nalloc = room;
    form.nparams = 77;

    err = ngx_agentlocator_form_parse(copy, size, &form);

    ref_parse(data, size, room, &ref);

    switch (ref.verdict) {

    case REF_OK:
        CHECK(err == NULL, "a body the reference reads was refused");
        break;

    case REF_TOO_MANY:
        CHECK(err && strcmp(err, "too many form parameters") == 0,
              "too many pairs were not refused as such");
        break;

    default:
        CHECK(err && strcmp(err, "malformed percent-encoding in form body")
                     == 0,
              "malformed percent-encoding was not refused as such");
    }

    if (err == NULL) {
        CHECK(form.nparams == ref.n, "not the reference's number of pairs");
        CHECK(form.nparams <= room
              && form.nparams <= NGX_AGENTLOCATOR_FORM_MAX_PARAMS
              && form.nparams <= amps + 1,
              "more pairs than the bounds");

        for (i = 0; i < form.nparams; i++) {
            CHECK(same(params[i].key.data, params[i].key.len,
                       ref.pairs[i].key, ref.pairs[i].key_len),
                  "a key differs from the reference's");
            CHECK(same(params[i].value.data, params[i].value.len,
                       ref.pairs[i].value, ref.pairs[i].value_len),
                  "a value differs from the reference's");
            CHECK(params[i].key.data >= copy
                  && params[i].key.data + params[i].key.len <= copy + size
                  && params[i].value.data >= copy
                  && params[i].value.data + params[i].value.len
                     <= copy + size,
                  "a pair outside the body");
        }

        for (i = 0; i < form.nparams && i < 16; i++) {
            check_find(&form, &ref, ref.pairs[i].key, ref.pairs[i].key_len);
        }

        check_find(&form, &ref, data, size < 6 ? size : 6);
        check_find(&form, &ref, (const uint8_t *) "CallSid", 7);
    }

    ref_free(&ref);
    free(params);
    free(copy);
}


static int
unreserved(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
           || c == '~';
}


/* escape(s) parses back to s, as a key and as a value */

static void
escape(const uint8_t *data, size_t size)
{
    size_t                     i, n, want, start, end, eq, npairs;
    uint8_t                   *enc, *p;
    const char                *err;
    ngx_agentlocator_form_t    form;
    ngx_agentlocator_param_t   params[NGX_AGENTLOCATOR_FORM_MAX_PARAMS];

    enc = malloc(3 * size + 8);
    CHECK(enc, "out of memory");

    memcpy(enc, "a=", 2);
    p = ngx_agentlocator_form_escape(enc + 2, data, size);
    n = p - (enc + 2);

    for (i = 0, want = 0; i < size; i++) {
        want += unreserved(data[i]) ? 1 : 3;
    }

    CHECK(n == want, "an escape of the wrong length");

    for (i = 0; i < n; i++) {
        if (enc[2 + i] == '%') {
            CHECK(i + 2 < n
                  && ((enc[3 + i] >= '0' && enc[3 + i] <= '9')
                      || (enc[3 + i] >= 'A' && enc[3 + i] <= 'F'))
                  && ((enc[4 + i] >= '0' && enc[4 + i] <= '9')
                      || (enc[4 + i] >= 'A' && enc[4 + i] <= 'F')),
                  "an escape that is not %XX in upper case");
            i += 2;

        } else {
            CHECK(unreserved(enc[2 + i]), "a reserved byte left unescaped");
        }
    }

    form.params = params;
    form.nalloc = NGX_AGENTLOCATOR_FORM_MAX_PARAMS;

    err = ngx_agentlocator_form_parse(enc, n + 2, &form);
    CHECK(err == NULL && form.nparams == 1
          && same(params[0].key.data, params[0].key.len,
                  (const uint8_t *) "a", 1)
          && same(params[0].value.data, params[0].value.len, data, size),
          "an escaped value did not parse back to itself");

    free(enc);

    /* the body's own "&"-pieces, each split at its first "=", re-encoded */

    enc = malloc(3 * size + 2 * NGX_AGENTLOCATOR_FORM_MAX_PARAMS + 8);
    CHECK(enc, "out of memory");

    p = enc;
    npairs = 0;

    for (start = 0; npairs < NGX_AGENTLOCATOR_FORM_MAX_PARAMS;
         start = end + 1)
    {
        for (end = start; end < size && data[end] != '&'; end++) {
            /* void */
        }

        for (eq = start; eq < end && data[eq] != '='; eq++) {
            /* void */
        }

        if (npairs) {
            *p++ = '&';
        }

        p = ngx_agentlocator_form_escape(p, data + start, eq - start);
        *p++ = '=';

        if (eq < end) {
            p = ngx_agentlocator_form_escape(p, data + eq + 1, end - eq - 1);
        }

        npairs++;

        if (end >= size) {
            break;
        }
    }

    err = ngx_agentlocator_form_parse(enc, p - enc, &form);
    CHECK(err == NULL && form.nparams == npairs,
          "re-encoded pairs did not parse as as many pairs");

    for (i = 0, start = 0; i < npairs; i++, start = end + 1) {
        for (end = start; end < size && data[end] != '&'; end++) {
            /* void */
        }

        for (eq = start; eq < end && data[eq] != '='; eq++) {
            /* void */
        }

        CHECK(same(params[i].key.data, params[i].key.len, data + start,
                   eq - start)
              && same(params[i].value.data, params[i].value.len,
                      data + (eq < end ? eq + 1 : end),
                      eq < end ? end - eq - 1 : 0),
              "a re-encoded pair did not parse back to itself");
    }

    free(enc);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t  room;

    if (size == 0) {
        return 0;
    }

    room = data[0] < 200 ? SIZE_MAX : (size_t) (data[0] - 200);

    parse(data + 1, size - 1, room);
    escape(data + 1, size - 1);

    return 0;
}
