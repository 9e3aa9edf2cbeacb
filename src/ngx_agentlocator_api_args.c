
/*
 * The CRM API's paging and filters (ngx_agentlocator_api_args.h): what a
 * query string may ask, bounded before it reaches a statement.
 */


#include "ngx_agentlocator_api_args.h"
#include "ngx_agentlocator_ws_codec.h"

#include <string.h>


static long ngx_agentlocator_api_number(const ngx_agentlocator_form_str_t *v,
    size_t max_len);
static int ngx_agentlocator_api_call_path(const unsigned char *p,
    const unsigned char *last, ngx_agentlocator_api_path_t *out);


#define ngx_agentlocator_api_is(s)                                            \
    (len == sizeof(s) - 1 && memcmp(path, s, sizeof(s) - 1) == 0)
#define ngx_agentlocator_api_starts(s)                                        \
    (len > sizeof(s) - 1 && memcmp(path, s, sizeof(s) - 1) == 0)


const char *
ngx_agentlocator_api_path(const unsigned char *path, size_t len,
    ngx_agentlocator_api_path_t *out)
{
    const unsigned char  *slash, *last;

    memset(out, 0, sizeof(ngx_agentlocator_api_path_t));
    out->route = NGX_AGENTLOCATOR_API_ROUTE_PAGE;
    out->page = NGX_AGENTLOCATOR_API_THREADS;

    if (ngx_agentlocator_api_is("whatsapp/send")) {
        out->route = NGX_AGENTLOCATOR_API_ROUTE_SEND;
        return NULL;
    }

    if (ngx_agentlocator_api_is("threads")) {
        out->page = NGX_AGENTLOCATOR_API_THREADS;
        return NULL;
    }

    if (ngx_agentlocator_api_is("calls")) {
        out->page = NGX_AGENTLOCATOR_API_CALLS;
        return NULL;
    }

    if (ngx_agentlocator_api_is("crm/customers")) {
        out->page = NGX_AGENTLOCATOR_API_CUSTOMERS;
        return NULL;
    }

    if (ngx_agentlocator_api_is("live")) {
        out->route = NGX_AGENTLOCATOR_API_ROUTE_LIVE;
        return NULL;
    }

    last = path + len;

    if (ngx_agentlocator_api_starts("threads/")) {
        out->id.data = (unsigned char *) path + 8;
        slash = memchr(out->id.data, '/', last - out->id.data);

        if (slash == NULL || last - slash != 9
            || memcmp(slash, "/messages", 9) != 0)
        {
            return "no such API endpoint";
        }

        out->id.len = slash - out->id.data;

        if (ngx_agentlocator_api_number(&out->id,
                                        NGX_AGENTLOCATOR_API_MAX_ID) < 0)
        {
            return "no such thread";
        }

        out->page = NGX_AGENTLOCATOR_API_MESSAGES;
        return NULL;
    }

    if (ngx_agentlocator_api_starts("calls/")) {
        return ngx_agentlocator_api_call_path(path + 6, last, out)
               ? NULL : "no such call";
    }

    return "no such API endpoint";
}


/* {CallSid}, or {CallSid}/recordings/{id}/audio: 1 if so */

static int
ngx_agentlocator_api_call_path(const unsigned char *p,
    const unsigned char *last, ngx_agentlocator_api_path_t *out)
{
    static const char  recordings[] = "/recordings/";
    static const char  audio[] = "/audio";

    out->id.data = (unsigned char *) p;
    out->id.len = (size_t) (last - p) < NGX_AGENTLOCATOR_SID_LEN
                  ? (size_t) (last - p) : NGX_AGENTLOCATOR_SID_LEN;

    if (!ngx_agentlocator_sid_ok(out->id.data, out->id.len, "CA")) {
        return 0;
    }

    p += out->id.len;

    if (p == last) {
        out->route = NGX_AGENTLOCATOR_API_ROUTE_CALL;
        return 1;
    }

    if ((size_t) (last - p) <= sizeof(recordings) - 1 + sizeof(audio) - 1
        || memcmp(p, recordings, sizeof(recordings) - 1) != 0
        || memcmp(last - (sizeof(audio) - 1), audio, sizeof(audio) - 1) != 0)
    {
        return 0;
    }

    out->sub.data = (unsigned char *) p + sizeof(recordings) - 1;
    out->sub.len = last - (sizeof(audio) - 1) - out->sub.data;

    if (ngx_agentlocator_api_number(&out->sub,
                                    NGX_AGENTLOCATOR_API_MAX_ID) < 0)
    {
        return 0;
    }

    out->route = NGX_AGENTLOCATOR_API_ROUTE_AUDIO;

    return 1;
}


const char *
ngx_agentlocator_api_paging(const ngx_agentlocator_form_t *form, long *page,
    long *limit)
{
    int                          rc;
    ngx_agentlocator_form_str_t  v;

    *page = 1;
    *limit = NGX_AGENTLOCATOR_API_LIMIT;

    rc = ngx_agentlocator_form_find(form, (unsigned char *) "page", 4, &v);

    if (rc == NGX_AGENTLOCATOR_FORM_CONFLICT) {
        return "page is given twice";
    }

    if (rc == NGX_AGENTLOCATOR_FORM_FOUND) {
        *page = ngx_agentlocator_api_number(&v, 7);

        if (*page < 1 || *page > NGX_AGENTLOCATOR_API_MAX_PAGE) {
            return "page must be a whole number from 1 to 1000000";
        }
    }

    rc = ngx_agentlocator_form_find(form, (unsigned char *) "limit", 5, &v);

    if (rc == NGX_AGENTLOCATOR_FORM_CONFLICT) {
        return "limit is given twice";
    }

    if (rc == NGX_AGENTLOCATOR_FORM_FOUND) {
        *limit = ngx_agentlocator_api_number(&v, 3);

        if (*limit < 1 || *limit > NGX_AGENTLOCATOR_API_MAX_LIMIT) {
            return "limit must be a whole number from 1 to 100";
        }
    }

    return NULL;
}


/*
 * 1 to max_len decimal digits, nothing else; -1 if not (18 digits at most:
 * no overflow of a long)
 */

static long
ngx_agentlocator_api_number(const ngx_agentlocator_form_str_t *v,
    size_t max_len)
{
    long    n;
    size_t  i;

    if (v->len == 0 || v->len > max_len) {
        return -1;
    }

    n = 0;

    for (i = 0; i < v->len; i++) {
        if (v->data[i] < '0' || v->data[i] > '9') {
            return -1;
        }

        n = n * 10 + (v->data[i] - '0');
    }

    return n;
}


const char *
ngx_agentlocator_api_filter(const ngx_agentlocator_form_t *form,
    unsigned which, unsigned char *pattern,
    ngx_agentlocator_form_str_t *filter)
{
    int                          rc;
    size_t                       i;
    unsigned char               *p;
    const char                  *name;
    ngx_agentlocator_form_str_t  v;

    filter->data = NULL;
    filter->len = 0;

    name = (which == NGX_AGENTLOCATOR_API_THREADS) ? "type"
           : (which == NGX_AGENTLOCATOR_API_CALLS) ? "status" : "q";

    rc = ngx_agentlocator_form_find(form, (const unsigned char *) name,
                                    strlen(name), &v);

    if (rc == NGX_AGENTLOCATOR_FORM_CONFLICT) {
        return "a filter is given twice";
    }

    if (rc == NGX_AGENTLOCATOR_FORM_ABSENT || v.len == 0) {
        return NULL;
    }

    if (which != NGX_AGENTLOCATOR_API_CUSTOMERS) {
        if (v.len > 32) {
            return "type and status are at most 32 characters";
        }

        for (i = 0; i < v.len; i++) {
            if (!((v.data[i] >= 'a' && v.data[i] <= 'z') || v.data[i] == '-'
                  || v.data[i] == '_'))
            {
                return "type and status are lowercase letters, - and _";
            }
        }

        *filter = v;
        return NULL;
    }

    if (v.len > NGX_AGENTLOCATOR_API_MAX_QUERY) {
        return "q is at most 100 bytes";
    }

    /* what the database can store: UTF-8 without NUL */
    if (memchr(v.data, '\0', v.len) != NULL
        || !ngx_agentlocator_utf8_valid(v.data, v.len))
    {
        return "q must be UTF-8 text";
    }

    p = pattern;
    *p++ = '%';

    for (i = 0; i < v.len; i++) {
        if (v.data[i] == '%' || v.data[i] == '_' || v.data[i] == '\\') {
            *p++ = '\\';
        }

        *p++ = v.data[i];
    }

    *p++ = '%';

    filter->data = pattern;
    filter->len = p - pattern;

    return NULL;
}
