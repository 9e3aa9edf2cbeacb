
/*
 * The CRM API's query strings, once split into a form: ?page= and ?limit=
 * and each page's filter (threads' ?type=, calls' ?status=, customers'
 * ?q= as an escaped LIKE pattern).  Plain C over the form, no nginx, so a
 * fuzzer drives it alone (fuzz/api_args.c); ngx_agentlocator_api.c is the
 * glue.
 */


#ifndef _NGX_AGENTLOCATOR_API_ARGS_H_INCLUDED_
#define _NGX_AGENTLOCATOR_API_ARGS_H_INCLUDED_


#include <stddef.h>

#include "ngx_agentlocator_form_codec.h"


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
