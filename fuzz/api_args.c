/*
 * libFuzzer: what a request to the CRM API asks, read by
 * src/ngx_agentlocator_api_args.c: its endpoint, and its query string
 * (?page=, ?limit=, ?type=, ?status=, ?q=) split by
 * src/ngx_agentlocator_form_codec.c as the API does.
 *
 * Byte 0 picks a page (threads, calls, customers) for when the path names
 * none; the rest is the request's path (after /api/) and, after the first
 * "?", its query string.  The path is routed by a reference that splits
 * it at "/" and matches the README's endpoints; the module must name the
 * same route, page and ids (inside the path) or 404 with the same reason.
 * The query is checked against rules written here from the README's API
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

#define MAX_SEGS  8

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


static int
seg_is(const ngx_agentlocator_form_str_t *s, const char *lit)
{
    return s->len == strlen(lit) && memcmp(s->data, lit, s->len) == 0;
}


/* 1 to 18 digits */

static int
seg_id(const ngx_agentlocator_form_str_t *s)
{
    size_t  i;

    if (s->len == 0 || s->len > 18) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return 0;
        }
    }

    return 1;
}


/* "CA" and 32 hex digits */

static int
seg_sid(const ngx_agentlocator_form_str_t *s)
{
    size_t  i;

    if (s->len != 34 || s->data[0] != 'C' || s->data[1] != 'A') {
        return 0;
    }

    for (i = 2; i < 34; i++) {
        if (!strchr("0123456789abcdefABCDEF", s->data[i]) || !s->data[i]) {
            return 0;
        }
    }

    return 1;
}


static void
check_path(const uint8_t *path, size_t len, unsigned *page)
{
    size_t                       n, i, start;
    const char                  *err, *want;
    unsigned                     route, want_page;
    ngx_agentlocator_form_str_t  seg[MAX_SEGS], *id, *sub;
    ngx_agentlocator_api_path_t  to;

    /* an exact copy: ASan sees a read past the path */
    uint8_t  *copy = malloc(len + 1);
    CHECK(copy, "out of memory");
    memcpy(copy, path, len);

    err = ngx_agentlocator_api_path(copy, len, &to);

    for (n = 0, start = 0, i = 0; i <= len; i++) {
        if (i == len || copy[i] == '/') {
            if (n == MAX_SEGS) {
                n++;
                break;
            }

            seg[n].data = copy + start;
            seg[n].len = i - start;
            n++;
            start = i + 1;
        }
    }

    want = "no such API endpoint";
    route = NGX_AGENTLOCATOR_API_ROUTE_PAGE;
    want_page = NGX_AGENTLOCATOR_API_THREADS;
    id = sub = NULL;

    if (n == 1 && seg_is(&seg[0], "threads")) {
        want = NULL;

    } else if (n == 1 && seg_is(&seg[0], "calls")) {
        want = NULL;
        want_page = NGX_AGENTLOCATOR_API_CALLS;

    } else if (n == 1 && seg_is(&seg[0], "live")) {
        want = NULL;
        route = NGX_AGENTLOCATOR_API_ROUTE_LIVE;

    } else if (n == 2 && seg_is(&seg[0], "crm")
               && seg_is(&seg[1], "customers"))
    {
        want = NULL;
        want_page = NGX_AGENTLOCATOR_API_CUSTOMERS;

    } else if (n == 2 && seg_is(&seg[0], "whatsapp")
               && seg_is(&seg[1], "send"))
    {
        want = NULL;
        route = NGX_AGENTLOCATOR_API_ROUTE_SEND;

    } else if (n == 3 && seg_is(&seg[0], "threads")
               && seg_is(&seg[2], "messages"))
    {
        want = seg_id(&seg[1]) ? NULL : "no such thread";
        want_page = NGX_AGENTLOCATOR_API_MESSAGES;
        id = &seg[1];

    } else if (n >= 2 && seg_is(&seg[0], "calls")
               && (n > 2 || seg[1].len))
    {
        /* "calls/" and anything: a call, its recording's audio, or none */
        want = "no such call";

        if (n == 2 && seg_sid(&seg[1])) {
            want = NULL;
            route = NGX_AGENTLOCATOR_API_ROUTE_CALL;
            id = &seg[1];

        } else if (n == 5 && seg_sid(&seg[1]) && seg_is(&seg[2], "recordings")
                   && seg_id(&seg[3]) && seg_is(&seg[4], "audio"))
        {
            want = NULL;
            route = NGX_AGENTLOCATOR_API_ROUTE_AUDIO;
            id = &seg[1];
            sub = &seg[3];
        }
    }

    if (want) {
        CHECK(err && strcmp(err, want) == 0,
              "a path the reference refuses: not refused so");
        free(copy);
        return;
    }

    CHECK(err == NULL, "a path the reference routes was refused");
    CHECK(to.route == route, "not the reference's route");

    if (route == NGX_AGENTLOCATOR_API_ROUTE_PAGE) {
        CHECK(to.page == want_page, "not the reference's page");

        if (want_page != NGX_AGENTLOCATOR_API_MESSAGES) {
            *page = want_page;
        }
    }

    CHECK(id ? (to.id.data == id->data && to.id.len == id->len)
             : to.id.len == 0, "not the reference's id");
    CHECK(sub ? (to.sub.data == sub->data && to.sub.len == sub->len)
              : to.sub.len == 0, "not the reference's recording");

    free(copy);
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
    uint8_t                   *copy, *q;
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

    q = memchr(data, '?', size);

    check_path(data, q ? (size_t) (q - data) : size, &which);

    if (q == NULL) {
        return 0;
    }

    size -= q + 1 - data;
    data = q + 1;

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
