
/*
 * The CRM's JSON API (SPEC §8), behind "agentlocator_api" in a prefix
 * location: bearer JWTs (HS256, ngx_agentlocator_jwt.c) that name the
 * caller's business and role; pages of threads, a thread's messages,
 * calls and customers; one call with its timeline and recordings; live
 * calls and recordings' audio (ngx_agentlocator_api_live.c); and WhatsApp
 * sends (ngx_agentlocator_whatsapp_send.c).  Every read goes
 * through the worker's PostgreSQL pool and never blocks; the request waits
 * for it on a timer of its own, and a request that goes away cancels it.
 * The answers are written by ngx_agentlocator_api_json.c, all with yajl.
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_jwt.h"


/* how long a request waits for the database */
#define NGX_AGENTLOCATOR_API_TIMEOUT      5000

/* paging and filters: ngx_agentlocator_api_args.h */


/* the routes, NGX_AGENTLOCATOR_API_ROUTE_*: ngx_agentlocator_api_args.h */


typedef struct {
    ngx_http_request_t           *r;
    ngx_agentlocator_pg_read_t   *read;
    ngx_event_t                   timer;
    ngx_connection_t              timer_owner;
    ngx_uint_t                    route;
    ngx_agentlocator_api_page_t  *page_def;
    ngx_int_t                     page;
    ngx_int_t                     limit;
    ngx_agentlocator_api_answer_pt  answer;     /* another file's read */
    void                         *data;
} ngx_agentlocator_api_ctx_t;


static ngx_int_t ngx_agentlocator_api_route(ngx_http_request_t *r,
    ngx_str_t *path, ngx_uint_t *route, ngx_uint_t *page, ngx_str_t *id,
    ngx_str_t *sub, ngx_int_t *rc);
static ngx_int_t ngx_agentlocator_api_auth(ngx_http_request_t *r,
    ngx_agentlocator_jwt_claims_t *claims, ngx_int_t *rc);
static ngx_uint_t ngx_agentlocator_api_may_send(const char *role);
static ngx_uint_t ngx_agentlocator_api_may_read(const char *role);
static ngx_int_t ngx_agentlocator_api_args(ngx_http_request_t *r,
    ngx_agentlocator_form_t *form, ngx_int_t *rc);
static const char *ngx_agentlocator_api_filter_of(ngx_http_request_t *r,
    ngx_uint_t which, ngx_agentlocator_form_t *form, ngx_str_t *filter);
static ngx_int_t ngx_agentlocator_api_start(ngx_http_request_t *r,
    ngx_agentlocator_api_ctx_t *ctx, ngx_agentlocator_pg_query_t *q,
    ngx_uint_t nq);
static void ngx_agentlocator_api_answered(void *data, struct pg_result **res,
    ngx_uint_t n, const char *error);
static void ngx_agentlocator_api_timeout(ngx_event_t *ev);
static void ngx_agentlocator_api_cleanup(void *data);



ngx_int_t
ngx_agentlocator_api_handler(ngx_http_request_t *r)
{
    u_char                         business[NGX_INT64_LEN];
    ngx_int_t                      rc;
    ngx_str_t                      path, id, sub, filter, params[4];
    ngx_uint_t                     route, page;
    const char                    *err;
    ngx_agentlocator_form_t        form;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_agentlocator_api_ctx_t    *ctx;
    ngx_agentlocator_pg_query_t    q[3];
    ngx_agentlocator_jwt_claims_t  claims;
    long                           page_n, limit_n;
    u_char                         offset[NGX_INT64_LEN], limit[NGX_INT_T_LEN];

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /* the endpoint is what follows the location's prefix */
    path.data = r->uri.data + ngx_min(clcf->name.len, r->uri.len);
    path.len = r->uri.len - ngx_min(clcf->name.len, r->uri.len);

    while (path.len && path.data[0] == '/') {
        path.data++;
        path.len--;
    }

    /*
     * each step answers the request itself when it stops there; the token
     * first: a stranger learns nothing, not even which paths exist
     */

    if (ngx_agentlocator_api_auth(r, &claims, &rc) != NGX_OK
        || ngx_agentlocator_api_route(r, &path, &route, &page, &id, &sub,
                                      &rc)
           != NGX_OK)
    {
        return rc;
    }

    if (route == NGX_AGENTLOCATOR_API_ROUTE_SEND) {
        if (!ngx_agentlocator_api_may_send(claims.role)) {
            return ngx_agentlocator_api_error(r, NGX_HTTP_FORBIDDEN,
                                              "this role may not send");
        }

        return ngx_agentlocator_whatsapp_send(r, claims.business_id);
    }

    if (!ngx_agentlocator_api_may_read(claims.role)) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_FORBIDDEN,
                                          "this role may not read the CRM");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    params[0].data = business;
    params[0].len = ngx_sprintf(business, "%L", (int64_t) claims.business_id)
                    - business;

    if (route == NGX_AGENTLOCATOR_API_ROUTE_LIVE) {
        return ngx_agentlocator_api_live(r, &params[0]);
    }

    if (route == NGX_AGENTLOCATOR_API_ROUTE_AUDIO) {
        return ngx_agentlocator_api_recording_audio(r, &params[0], &id, &sub);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_agentlocator_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->route = route;

    if (route == NGX_AGENTLOCATOR_API_ROUTE_CALL) {
        params[1] = id;

        q[0].st = ngx_agentlocator_api_call.call;
        q[1].st = ngx_agentlocator_api_call.events;
        q[2].st = ngx_agentlocator_api_call.recordings;
        q[0].n = q[1].n = q[2].n = 2;
        q[0].params = q[1].params = q[2].params = params;

        return ngx_agentlocator_api_start(r, ctx, q, 3);
    }

    if (ngx_agentlocator_api_args(r, &form, &rc) != NGX_OK) {
        return rc;
    }

    err = ngx_agentlocator_api_paging(&form, &page_n, &limit_n);
    if (err) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_BAD_REQUEST, err);
    }

    ctx->page = page_n;
    ctx->limit = limit_n;

    if (page == NGX_AGENTLOCATOR_API_MESSAGES) {
        filter = id;

    } else {
        err = ngx_agentlocator_api_filter_of(r, page, &form, &filter);
        if (err) {
            return ngx_agentlocator_api_error(r, NGX_HTTP_BAD_REQUEST, err);
        }
    }

    ctx->page_def = &ngx_agentlocator_api_pages[page];

    params[1] = filter;
    params[2].data = limit;
    params[2].len = ngx_sprintf(limit, "%i", ctx->limit) - limit;
    params[3].data = offset;
    params[3].len = ngx_sprintf(offset, "%L",
                                (int64_t) (ctx->page - 1) * ctx->limit)
                    - offset;

    q[0].st = ctx->page_def->count;
    q[0].n = 2;
    q[0].params = params;
    q[1].st = ctx->page_def->rows;
    q[1].n = 4;
    q[1].params = params;

    return ngx_agentlocator_api_start(r, ctx, q, 2);
}


/*
 * The endpoint: threads, threads/{id}/messages, calls, calls/{CallSid},
 * calls/{CallSid}/recordings/{id}/audio, live, crm/customers (GET) and
 * whatsapp/send (POST).  Anything else is 404, a wrong method 405.
 */

static ngx_int_t
ngx_agentlocator_api_route(ngx_http_request_t *r, ngx_str_t *path,
    ngx_uint_t *route, ngx_uint_t *page, ngx_str_t *id, ngx_str_t *sub,
    ngx_int_t *rc)
{
    const char                   *missing;
    ngx_agentlocator_api_path_t   to;

    missing = ngx_agentlocator_api_path(path->data, path->len, &to);

    if (missing) {
        *rc = ngx_agentlocator_api_error(r, NGX_HTTP_NOT_FOUND, missing);
        return NGX_DECLINED;
    }

    *route = to.route;
    *page = to.page;
    id->data = to.id.data;
    id->len = to.id.len;
    sub->data = to.sub.data;
    sub->len = to.sub.len;

    if (to.route == NGX_AGENTLOCATOR_API_ROUTE_SEND) {
        *rc = ngx_agentlocator_allow_methods(r, NGX_HTTP_POST, "POST");

    } else {
        *rc = ngx_agentlocator_allow_methods(r, NGX_HTTP_GET|NGX_HTTP_HEAD,
                                             "GET, HEAD");
    }

    return *rc == NGX_DECLINED ? NGX_OK : NGX_DECLINED;
}


/*
 * "Authorization: Bearer <JWT>": 401 without one or with a bad one (the
 * reason in the body and the log, never the token), else its claims.
 */

static ngx_int_t
ngx_agentlocator_api_auth(ngx_http_request_t *r,
    ngx_agentlocator_jwt_claims_t *claims, ngx_int_t *rc)
{
    ngx_str_t                      token;
    const char                    *err;
    ngx_table_elt_t               *h;
    ngx_agentlocator_main_conf_t  *amcf;

    static ngx_str_t  challenge = ngx_string("Bearer realm=\"agentlocator\"");
    static ngx_str_t  invalid = ngx_string("Bearer realm=\"agentlocator\", "
                                           "error=\"invalid_token\"");

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len < 7
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) != 0)
    {
        (void) ngx_agentlocator_add_header(r, "WWW-Authenticate", &challenge);
        *rc = ngx_agentlocator_api_error(r, NGX_HTTP_UNAUTHORIZED,
                                         "a bearer token is required");
        return NGX_DECLINED;
    }

    token.data = h->value.data + 7;
    token.len = h->value.len - 7;

    while (token.len && token.data[0] == ' ') {
        token.data++;
        token.len--;
    }

    while (token.len && token.data[token.len - 1] == ' ') {
        token.len--;
    }

    err = ngx_agentlocator_jwt_verify(token.data, token.len, amcf->jwt_key,
                                      (long long) ngx_time(), claims);
    if (err) {
        (void) ngx_agentlocator_add_header(r, "WWW-Authenticate", &invalid);
        *rc = ngx_agentlocator_api_error(r, NGX_HTTP_UNAUTHORIZED, err);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* The token key, its HMAC blocks hashed once per configuration. */

ngx_int_t
ngx_agentlocator_api_conf(ngx_conf_t *cf, ngx_agentlocator_main_conf_t *amcf)
{
    ngx_agentlocator_jwt_key_t  *key;

    if (amcf->jwt_secret.len == 0) {
        return NGX_OK;
    }

    key = ngx_palloc(cf->pool, sizeof(ngx_agentlocator_jwt_key_t));
    if (key == NULL) {
        return NGX_ERROR;
    }

    ngx_agentlocator_jwt_key_init(key, amcf->jwt_secret.data,
                                  amcf->jwt_secret.len);
    amcf->jwt_key = key;

    return NGX_OK;
}


/* Who may do what: every role reads, "viewer" may not send. */

static ngx_uint_t
ngx_agentlocator_api_may_read(const char *role)
{
    return ngx_strcmp(role, "admin") == 0 || ngx_strcmp(role, "agent") == 0
           || ngx_strcmp(role, "viewer") == 0;
}


static ngx_uint_t
ngx_agentlocator_api_may_send(const char *role)
{
    return ngx_strcmp(role, "admin") == 0 || ngx_strcmp(role, "agent") == 0;
}


/* The query string, parsed as a form (a copy: it is decoded in place). */

static ngx_int_t
ngx_agentlocator_api_args(ngx_http_request_t *r, ngx_agentlocator_form_t *form,
    ngx_int_t *rc)
{
    u_char                   *copy;
    ngx_int_t                 parsed;
    const char               *err;
    ngx_agentlocator_form_t  *f;

    form->nparams = 0;
    form->nalloc = 0;
    form->params = NULL;

    if (r->args.len == 0) {
        return NGX_OK;
    }

    if (r->args.len > NGX_AGENTLOCATOR_API_MAX_ARGS) {
        *rc = ngx_agentlocator_api_error(r, NGX_HTTP_BAD_REQUEST,
                                         "query string too long");
        return NGX_DECLINED;
    }

    *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    copy = ngx_pnalloc(r->pool, r->args.len);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(copy, r->args.data, r->args.len);

    parsed = ngx_agentlocator_form_new(r->pool, copy, r->args.len, &f, &err);

    if (parsed == NGX_DECLINED) {
        *rc = ngx_agentlocator_api_error(r, NGX_HTTP_BAD_REQUEST, err);
        return NGX_DECLINED;
    }

    if (parsed != NGX_OK) {
        return NGX_ERROR;
    }

    *form = *f;

    return NGX_OK;
}


/*
 * A page's filter ($2), in the request's pool (ngx_agentlocator_api_filter
 * says which and how); none given: SQL NULL.
 */

static const char *
ngx_agentlocator_api_filter_of(ngx_http_request_t *r, ngx_uint_t which,
    ngx_agentlocator_form_t *form, ngx_str_t *filter)
{
    u_char                       *pattern;
    const char                   *err;
    ngx_agentlocator_form_str_t   f;

    pattern = NULL;

    if (which == NGX_AGENTLOCATOR_API_CUSTOMERS) {
        pattern = ngx_pnalloc(r->pool, NGX_AGENTLOCATOR_API_MAX_PATTERN);
        if (pattern == NULL) {
            return "out of memory";
        }
    }

    err = ngx_agentlocator_api_filter(form, which, pattern, &f);

    filter->data = f.data;
    filter->len = f.len;

    return err;
}


/*
 * A read of another file's endpoint: "answer" makes the request's answer
 * of its results.
 */

ngx_int_t
ngx_agentlocator_api_read(ngx_http_request_t *r,
    ngx_agentlocator_pg_query_t *q, ngx_uint_t nq,
    ngx_agentlocator_api_answer_pt answer, void *data)
{
    ngx_agentlocator_api_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_agentlocator_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->answer = answer;
    ctx->data = data;

    return ngx_agentlocator_api_start(r, ctx, q, nq);
}


/*
 * The read goes out; the request waits for its answer (or its timer, or
 * goes away and cancels it).
 */

static ngx_int_t
ngx_agentlocator_api_start(ngx_http_request_t *r,
    ngx_agentlocator_api_ctx_t *ctx, ngx_agentlocator_pg_query_t *q,
    ngx_uint_t nq)
{
    const char          *err;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->r = r;

    err = NULL;
    ctx->read = ngx_agentlocator_pg_read(q, nq, ngx_agentlocator_api_answered,
                                         ctx, &err);
    if (ctx->read == NULL) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          err);
    }

    cln->handler = ngx_agentlocator_api_cleanup;
    cln->data = ctx;

    /*
     * not cancelable: a worker that is quitting answers the requests it
     * has before it goes (at most this long)
     */
    ctx->timer_owner.fd = (ngx_socket_t) -1;
    ctx->timer.handler = ngx_agentlocator_api_timeout;
    ctx->timer.data = &ctx->timer_owner;
    ctx->timer_owner.data = ctx;
    ctx->timer.log = r->connection->log;

    ngx_add_timer(&ctx->timer, NGX_AGENTLOCATOR_API_TIMEOUT);

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_agentlocator_api_answered(void *data, struct pg_result **results,
    ngx_uint_t n, const char *error)
{
    ngx_agentlocator_api_ctx_t *ctx = data;

    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->r;
    ctx->read = NULL;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (error) {
        rc = ngx_agentlocator_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        error);

    } else if (ctx->answer) {
        rc = ctx->answer(r, ctx->data, results);

    } else if (ctx->route == NGX_AGENTLOCATOR_API_ROUTE_CALL) {
        rc = ngx_agentlocator_api_call_json(r, results);

    } else {
        rc = ngx_agentlocator_api_page_json(r, ctx->page_def, ctx->page,
                                            ctx->limit, results);
    }

    ngx_agentlocator_api_finish(r, rc);
}


static void
ngx_agentlocator_api_timeout(ngx_event_t *ev)
{
    ngx_connection_t            *owner = ev->data;
    ngx_agentlocator_api_ctx_t  *ctx = owner->data;

    ngx_http_request_t  *r;

    r = ctx->r;

    if (ctx->read) {
        ngx_agentlocator_pg_read_cancel(ctx->read);
        ctx->read = NULL;
    }

    ngx_agentlocator_api_finish(r,
        ngx_agentlocator_api_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                   "the database did not answer in time"));
}


/* The request is over (or its connection is): its read is not wanted. */

static void
ngx_agentlocator_api_cleanup(void *data)
{
    ngx_agentlocator_api_ctx_t *ctx = data;

    if (ctx->read) {
        ngx_agentlocator_pg_read_cancel(ctx->read);
        ctx->read = NULL;
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}


/*
 * A request that waited (for the database, a provider) is answered from
 * outside its own event handlers: finalized, then whatever it posted run.
 */

void
ngx_agentlocator_api_finish(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
