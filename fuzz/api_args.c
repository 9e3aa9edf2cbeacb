/*
 * libFuzzer: the CRM API's query strings (?page=, ?limit=, ?type=,
 * ?status=, ?q=), split by src/ngx_agentlocator_form_codec.c as the API
 * does and read by src/ngx_agentlocator_api_args.c.
 *
 * Byte 0 picks the page (threads, calls, customers); the rest is the
 * query string.  Checked against rules written here from the README's API
 * section: page 1..1000000 and limit 1..100 in plain digits (defaults 1
 * and 25), each given at most once (or twice alike); type and status 1 to
 * 32 of [a-z_-]; q at most 100 bytes of UTF-8 (RFC 3629) without NUL,
 * becoming a LIKE pattern "%q%" in which every %, _ and \ of q is escaped,
 * so that it matches q literally and nothing else; and the rows' offset
 * (page - 1) * limit stays far inside a bigint.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_agentlocator_api_args.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "api_args: %s\n", what);                              \
        abort();                                                              \
    }

#define ABSENT    0
#define FOUND     1
#define TWICE     2


static int
ref_get(const ngx_agentlocator_form_t *f, const char *name,
    ngx_agentlocator_form_str_t *v)
{
    int     state;
    size_t  i, n;

    state = ABSENT;
    n = strlen(name);

    for (i = 0; i < f->nparams; i++) {
        if (f->params[i].key.len != n
            || memcmp(f->params[i].key.data, name, n) != 0)
        {
            continue;
        }

        if (state == ABSENT) {
            *v = f->params[i].value;
            state = FOUND;

        } else if (f->params[i].value.len != v->len
                   || (v->len && memcmp(f->params[i].value.data, v->data,
                                        v->len) != 0))
        {
            return TWICE;
        }
    }

    return state;
}


/* digits only, at most "max" of them, as a number; -1 if not */

static long
ref_number(const ngx_agentlocator_form_str_t *v, size_t max)
{
    long    n;
    size_t  i;

    if (v->len == 0 || v->len > max) {
        return -1;
    }

    for (i = 0, n = 0; i < v->len; i++) {
        if (v->data[i] < '0' || v->data[i] > '9') {
            return -1;
        }

        n = n * 10 + v->data[i] - '0';
    }

    return n;
}


/* RFC 3629 §4's table */

static int
ref_utf8(const uint8_t *s, size_t len)
{
    size_t   i, n, k;
    uint8_t  lo, hi;

    for (i = 0; i < len; i += n) {
        lo = 0x80;
        hi = 0xbf;

        if (s[i] < 0x80) {
            n = 1;
        } else if (s[i] >= 0xc2 && s[i] <= 0xdf) {
            n = 2;
        } else if (s[i] >= 0xe0 && s[i] <= 0xef) {
            n = 3;
            lo = s[i] == 0xe0 ? 0xa0 : 0x80;
            hi = s[i] == 0xed ? 0x9f : 0xbf;
        } else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
            n = 4;
            lo = s[i] == 0xf0 ? 0x90 : 0x80;
            hi = s[i] == 0xf4 ? 0x8f : 0xbf;
        } else {
            return 0;
        }

        if (i + n > len) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if (s[i + k] < (k == 1 ? lo : 0x80)
                || s[i + k] > (k == 1 ? hi : 0xbf))
            {
                return 0;
            }
        }
    }

    return 1;
}


static void
check_paging(const ngx_agentlocator_form_t *form)
{
    int                          pst, lst;
    long                         page, limit, want_page, want_limit;
    const char                  *err;
    ngx_agentlocator_form_str_t  pv, lv;

    err = ngx_agentlocator_api_paging(form, &page, &limit);

    pst = ref_get(form, "page", &pv);
    lst = ref_get(form, "limit", &lv);

    want_page = (pst == FOUND) ? ref_number(&pv, 7) : 1;
    want_limit = (lst == FOUND) ? ref_number(&lv, 3) : 25;

    if (pst == TWICE || want_page < 1 || want_page > 1000000
        || lst == TWICE || want_limit < 1 || want_limit > 100)
    {
        CHECK(err != NULL, "paging the rules refuse was accepted");

        if (pst == TWICE) {
            CHECK(strcmp(err, "page is given twice") == 0,
                  "a repeated page not refused as such");
        }

        return;
    }

    CHECK(err == NULL, "paging the rules accept was refused");
    CHECK(page == want_page && limit == want_limit,
          "not the page and limit asked for");
    CHECK((page - 1) * limit <= 99999900, "an offset past the last page");
}


static void
check_filter(const ngx_agentlocator_form_t *form, unsigned which)
{
    int                          st, ok;
    size_t                       i, o;
    uint8_t                      pattern[NGX_AGENTLOCATOR_API_MAX_PATTERN];
    uint8_t                      back[NGX_AGENTLOCATOR_API_MAX_PATTERN];
    const char                  *err;
    ngx_agentlocator_form_str_t  v, f;

    /* the room the glue allocates, exactly: ASan sees a write past it */
    uint8_t  *room = malloc(NGX_AGENTLOCATOR_API_MAX_PATTERN);
    CHECK(room, "out of memory");

    err = ngx_agentlocator_api_filter(form, which, room, &f);

    st = ref_get(form, which == NGX_AGENTLOCATOR_API_THREADS ? "type"
                       : which == NGX_AGENTLOCATOR_API_CALLS ? "status"
                                                             : "q", &v);

    if (st == TWICE) {
        CHECK(err && strcmp(err, "a filter is given twice") == 0,
              "a repeated filter not refused as such");
        goto done;
    }

    if (st == ABSENT || v.len == 0) {
        CHECK(err == NULL && f.data == NULL && f.len == 0,
              "no filter given but one made");
        goto done;
    }

    if (which != NGX_AGENTLOCATOR_API_CUSTOMERS) {
        ok = v.len <= 32;

        for (i = 0; ok && i < v.len; i++) {
            ok = (v.data[i] >= 'a' && v.data[i] <= 'z') || v.data[i] == '-'
                 || v.data[i] == '_';
        }

        CHECK(ok == (err == NULL), "type/status: not the rules' verdict");

        if (ok) {
            CHECK(f.len == v.len && memcmp(f.data, v.data, v.len) == 0,
                  "type/status is not the value given");
        }

        goto done;
    }

    ok = v.len <= 100 && memchr(v.data, '\0', v.len) == NULL
         && ref_utf8(v.data, v.len);

    CHECK(ok == (err == NULL), "q: not the rules' verdict");

    if (!ok) {
        goto done;
    }

    CHECK(f.data == room && f.len >= 2 && f.len <= sizeof(pattern),
          "the pattern is not in the room given");
    memcpy(pattern, f.data, f.len);
    CHECK(pattern[0] == '%' && pattern[f.len - 1] == '%',
          "the pattern is not %q%");

    /* LIKE's reading of the inside: \x is x, a bare % or _ a wildcard */
    for (i = 1, o = 0; i < f.len - 1; i++) {
        if (pattern[i] == '\\') {
            CHECK(i + 1 < f.len - 1, "a pattern ends in an escape");
            i++;
            back[o++] = pattern[i];
            continue;
        }

        CHECK(pattern[i] != '%' && pattern[i] != '_',
              "a wildcard left in the pattern");
        back[o++] = pattern[i];
    }

    CHECK(o == v.len && memcmp(back, v.data, o) == 0,
          "the pattern does not match q literally");

done:

    free(room);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                     room;
    uint8_t                   *copy;
    unsigned                   which;
    const char                *err;
    ngx_agentlocator_form_t    form;
    ngx_agentlocator_param_t  *params;

    static const unsigned  pages[] = {
        NGX_AGENTLOCATOR_API_THREADS, NGX_AGENTLOCATOR_API_CALLS,
        NGX_AGENTLOCATOR_API_CUSTOMERS
    };

    if (size == 0) {
        return 0;
    }

    which = pages[data[0] % 3];
    data++;
    size--;

    /* the API refuses a longer query string before parsing it */
    if (size > NGX_AGENTLOCATOR_API_MAX_ARGS) {
        return 0;
    }

    copy = malloc(size + 1);
    CHECK(copy, "out of memory");
    memcpy(copy, data, size);

    room = ngx_agentlocator_form_count(copy, size);
    if (room > NGX_AGENTLOCATOR_FORM_MAX_PARAMS) {
        room = NGX_AGENTLOCATOR_FORM_MAX_PARAMS;
    }

    params = malloc(room * sizeof(ngx_agentlocator_param_t));
    CHECK(params, "out of memory");

    form.params = params;
    form.nalloc = room;

    err = ngx_agentlocator_form_parse(copy, size, &form);

    if (err == NULL) {
        check_paging(&form);
        check_filter(&form, which);
    }

    free(params);
    free(copy);

    return 0;
}
