
/*
 * What a request to the CRM API asks: its endpoint (the path after the
 * location's prefix, with the ids in it) and its query string, once split
 * into a form: ?page= and ?limit= and each page's filter (threads' ?type=,
 * calls' ?status=, customers' ?q= as an escaped LIKE pattern).  Plain C,
 * no nginx, so a fuzzer drives it alone (fuzz/api_args.c);
 * ngx_agentlocator_api.c is the glue.
 */


#ifndef _NGX_AGENTLOCATOR_API_ARGS_H_INCLUDED_
#define _NGX_AGENTLOCATOR_API_ARGS_H_INCLUDED_


#include <stddef.h>

#include "ngx_agentlocator_form_codec.h"
#include "ngx_agentlocator_valid.h"


#define NGX_AGENTLOCATOR_API_LIMIT        25       /* a page's rows */
#define NGX_AGENTLOCATOR_API_MAX_LIMIT    100
#define NGX_AGENTLOCATOR_API_MAX_PAGE     1000000
#define NGX_AGENTLOCATOR_API_MAX_QUERY    100      /* bytes of ?q= */
#define NGX_AGENTLOCATOR_API_MAX_ARGS     2048     /* of the query string */

/* room for ?q= as a LIKE pattern: each byte escaped, and a % either side */
#define NGX_AGENTLOCATOR_API_MAX_PATTERN                                      \
    (2 * NGX_AGENTLOCATOR_API_MAX_QUERY + 2)

/* the pages (ngx_agentlocator_api_pages[] is in this order) */
#define NGX_AGENTLOCATOR_API_THREADS    0
#define NGX_AGENTLOCATOR_API_MESSAGES   1
#define NGX_AGENTLOCATOR_API_CALLS      2
#define NGX_AGENTLOCATOR_API_CUSTOMERS  3

/* the endpoints */
#define NGX_AGENTLOCATOR_API_ROUTE_PAGE   0      /* one of the pages above */
#define NGX_AGENTLOCATOR_API_ROUTE_CALL   1      /* calls/{CallSid} */
#define NGX_AGENTLOCATOR_API_ROUTE_SEND   2      /* whatsapp/send */
#define NGX_AGENTLOCATOR_API_ROUTE_LIVE   3      /* live */
#define NGX_AGENTLOCATOR_API_ROUTE_AUDIO  4      /* .../recordings/{id}/audio */

#define NGX_AGENTLOCATOR_API_MAX_ID       18     /* digits of a bigint id */


typedef struct {
    unsigned                      route;
    unsigned                      page;         /* of ROUTE_PAGE */
    ngx_agentlocator_form_str_t   id;           /* thread or CallSid */
    ngx_agentlocator_form_str_t   sub;          /* recording */
} ngx_agentlocator_api_path_t;


/*
 * The endpoint path[0..len) names (no leading "/"): threads,
 * threads/{id}/messages, calls, calls/{CallSid},
 * calls/{CallSid}/recordings/{id}/audio, live, crm/customers,
 * whatsapp/send.  NULL, or the reason for a 404; the ids point into path.
 */
const char *ngx_agentlocator_api_path(const unsigned char *path, size_t len,
    ngx_agentlocator_api_path_t *out);


/*
 * page >= 1 (default 1), 1 <= limit <= 100 (default 25).  NULL, or the
 * reason for a 400.
 */
const char *ngx_agentlocator_api_paging(const ngx_agentlocator_form_t *form,
    long *page, long *limit);

/*
 * The filter of page "which" (not MESSAGES, whose filter is its path):
 * filter->data NULL when none is given (SQL NULL), else type and status
 * as given, or q as "%q%" with its LIKE metacharacters escaped, written
 * to "pattern" (room for NGX_AGENTLOCATOR_API_MAX_PATTERN).  NULL, or the
 * reason for a 400.
 */
const char *ngx_agentlocator_api_filter(const ngx_agentlocator_form_t *form,
    unsigned which, unsigned char *pattern,
    ngx_agentlocator_form_str_t *filter);


#endif /* _NGX_AGENTLOCATOR_API_ARGS_H_INCLUDED_ */
