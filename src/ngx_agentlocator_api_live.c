
/*
 * The CRM page's live view and its recording player (SPEC §9), behind the
 * API's token like the rest of it:
 *
 *   GET /api/live: the calls of this host's registry that belong to the
 *   caller's business, newest first.  The registry knows a call's numbers,
 *   not its business, which is the CRM's to say: the snapshot's CallSids go
 *   to the database as one array and come back as the places of those that
 *   are the business's.  A call whose CRM row has not landed yet shows on
 *   the next poll.
 *
 *   GET /api/calls/{CallSid}/recordings/{id}/audio: the recording's WAV, if
 *   this host keeps it, served as nginx serves a static file.
 */


#include "ngx_agentlocator.h"

#include <yajl/yajl_gen.h>
#include <libpq-fe.h>


/*
 * a live view is a page: the newest this many calls, of at most this many
 * copied out of the registry (beyond, "truncated" says so)
 */
#define NGX_AGENTLOCATOR_API_LIVE_MAX   500
#define NGX_AGENTLOCATOR_API_LIVE_COPY  2000


typedef struct {
    ngx_array_t                   calls;    /* of ngx_agentlocator_call_t */
    ngx_uint_t                    total;    /* entries in the registry */
} ngx_agentlocator_api_live_t;


static int ngx_libc_cdecl ngx_agentlocator_api_live_newest(const void *one,
    const void *two);
static ngx_int_t ngx_agentlocator_api_live_answer(ngx_http_request_t *r,
    void *data, struct pg_result **res);
static ngx_int_t ngx_agentlocator_api_live_json(ngx_http_request_t *r,
    ngx_agentlocator_api_live_t *live, PGresult *res);
static void ngx_agentlocator_api_live_call(yajl_gen g,
    ngx_agentlocator_call_t *call, ngx_msec_t now);
static void ngx_agentlocator_api_live_string(yajl_gen g, const char *name,
    u_char *data, size_t len);
static void ngx_agentlocator_api_live_age(yajl_gen g, const char *name,
    ngx_msec_t t, ngx_msec_t now);
static ngx_int_t ngx_agentlocator_api_audio_answer(ngx_http_request_t *r,
    void *data, struct pg_result **res);
static ngx_int_t ngx_agentlocator_api_audio_file(ngx_http_request_t *r,
    ngx_str_t *path);


static ngx_str_t  ngx_agentlocator_api_wav_type = ngx_string("audio/wav");


ngx_int_t
ngx_agentlocator_api_live(ngx_http_request_t *r, ngx_str_t *business)
{
    u_char                        *p;
    size_t                         len;
    ngx_str_t                      params[2];
    ngx_uint_t                     i;
    ngx_agentlocator_call_t       *call;
    ngx_agentlocator_registry_t   *reg;
    ngx_agentlocator_registry_usage_t  usage;
    ngx_agentlocator_api_live_t   *live;
    ngx_agentlocator_main_conf_t  *amcf;
    ngx_agentlocator_pg_query_t    q;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);

    live = ngx_pcalloc(r->pool, sizeof(ngx_agentlocator_api_live_t));
    if (live == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a host without a registry answers no voice calls: none are live */
    reg = ngx_agentlocator_registry_get(amcf);

    if (reg == NULL) {
        if (ngx_array_init(&live->calls, r->pool, 1,
                           sizeof(ngx_agentlocator_call_t))
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (ngx_agentlocator_registry_snapshot(reg, r->pool, &live->calls,
                                                  NGX_AGENTLOCATOR_API_LIVE_COPY)
               != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (reg) {
        ngx_agentlocator_registry_usage(reg, &usage);
        live->total = ngx_max(usage.entries, live->calls.nelts);
    }

    if (live->calls.nelts == 0) {
        return ngx_agentlocator_api_live_json(r, live, NULL);
    }

    ngx_qsort(live->calls.elts, live->calls.nelts,
              sizeof(ngx_agentlocator_call_t),
              ngx_agentlocator_api_live_newest);

    live->calls.nelts = ngx_min(live->calls.nelts,
                                NGX_AGENTLOCATOR_API_LIVE_MAX);

    /* {CA...,CA...}: CallSids are letters and digits, nothing to quote */

    len = 2 + live->calls.nelts * (NGX_AGENTLOCATOR_SID_LEN + 1);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = *business;
    params[1].data = p;

    *p++ = '{';
    call = live->calls.elts;

    for (i = 0; i < live->calls.nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, call[i].call_sid, NGX_AGENTLOCATOR_SID_LEN);
    }

    *p++ = '}';
    params[1].len = p - params[1].data;

    q.st = ngx_agentlocator_api_live_statement;
    q.n = 2;
    q.params = params;

    return ngx_agentlocator_api_read(r, &q, 1,
                                     ngx_agentlocator_api_live_answer, live);
}


static int ngx_libc_cdecl
ngx_agentlocator_api_live_newest(const void *one, const void *two)
{
    const ngx_agentlocator_call_t  *a = one;
    const ngx_agentlocator_call_t  *b = two;

    /* msec clocks wrap: compare by difference */
    if (a->created == b->created) {
        return ngx_memcmp(a->call_sid, b->call_sid, NGX_AGENTLOCATOR_SID_LEN);
    }

    return ((ngx_msec_int_t) (b->created - a->created) > 0) ? 1 : -1;
}


static ngx_int_t
ngx_agentlocator_api_live_answer(ngx_http_request_t *r, void *data,
    struct pg_result **res)
{
    return ngx_agentlocator_api_live_json(r, data, (PGresult *) res[0]);
}


/* {"results": [...], "total": N}: N the business's live calls shown */

static ngx_int_t
ngx_agentlocator_api_live_json(ngx_http_request_t *r,
    ngx_agentlocator_api_live_t *live, PGresult *res)
{
    int                       row, n;
    yajl_gen                  g;
    ngx_int_t                 rc, place;
    ngx_msec_t                now;
    ngx_agentlocator_call_t  *call;

    if (res && PQnfields(res) != 1) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "the CRM's answer was malformed");
    }

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    now = ngx_current_msec;
    call = live->calls.elts;
    n = res ? PQntuples(res) : 0;

    yajl_gen_map_open(g);
    yajl_gen_string(g, (u_char *) "results", 7);
    yajl_gen_array_open(g);

    for (row = 0; row < n; row++) {
        place = ngx_atoi((u_char *) PQgetvalue(res, row, 0),
                         PQgetlength(res, row, 0));

        /* the database says which of ours: only places we sent */
        if (place < 1 || (ngx_uint_t) place > live->calls.nelts) {
            continue;
        }

        ngx_agentlocator_api_live_call(g, &call[place - 1], now);
    }

    yajl_gen_array_close(g);
    yajl_gen_string(g, (u_char *) "total", 5);
    yajl_gen_integer(g, n);
    yajl_gen_string(g, (u_char *) "truncated", 9);
    yajl_gen_bool(g, live->total > live->calls.nelts);
    yajl_gen_map_close(g);

    rc = ngx_agentlocator_api_json_reply(r, NGX_HTTP_OK, g);

    yajl_gen_free(g);

    return rc;
}


static void
ngx_agentlocator_api_live_call(yajl_gen g, ngx_agentlocator_call_t *call,
    ngx_msec_t now)
{
    u_char      *p;
    ngx_tm_t     tm;
    const char  *state;
    u_char       iso[sizeof("1970-01-01T00:00:00Z")];

    state = ngx_agentlocator_call_state_name(call->state);

    yajl_gen_map_open(g);

    ngx_agentlocator_api_live_string(g, "call_sid", call->call_sid,
                                     NGX_AGENTLOCATOR_SID_LEN);
    ngx_agentlocator_api_live_string(g, "state", (u_char *) state,
                                     ngx_strlen(state));
    ngx_agentlocator_api_live_string(g, "from", call->from, call->from_len);
    ngx_agentlocator_api_live_string(g, "to", call->to, call->to_len);
    ngx_agentlocator_api_live_string(g, "call_status", call->call_status,
                                     call->call_status_len);

    ngx_gmtime(call->created_at, &tm);
    p = ngx_sprintf(iso, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
    ngx_agentlocator_api_live_string(g, "started_at", iso, p - iso);

    ngx_agentlocator_api_live_age(g, "age_ms", call->created, now);

    yajl_gen_string(g, (u_char *) "ended", 5);
    yajl_gen_bool(g, call->state == NGX_AGENTLOCATOR_CALL_COMPLETED);
    yajl_gen_string(g, (u_char *) "stream_live", 11);
    yajl_gen_bool(g, call->stream_pid != 0);

    ngx_agentlocator_api_live_age(g, "since_media_ms", call->last_media, now);

    yajl_gen_string(g, (u_char *) "frames", 6);
    yajl_gen_integer(g, (long long) call->frames);

    yajl_gen_string(g, (u_char *) "redirect", 8);

    if (call->redirect_reason == 0) {
        yajl_gen_null(g);

    } else {
        yajl_gen_map_open(g);
        yajl_gen_string(g, (u_char *) "reason", 6);
        state = ngx_agentlocator_reason_name(call->redirect_reason);
        yajl_gen_string(g, (u_char *) state, ngx_strlen(state));
        yajl_gen_string(g, (u_char *) "outcome", 7);
        state = ngx_agentlocator_outcome_name(call->redirect_outcome);
        yajl_gen_string(g, (u_char *) state, ngx_strlen(state));
        yajl_gen_map_close(g);
    }

    yajl_gen_map_close(g);
}


/* a string field; an empty one is null (From withheld, no status yet) */

static void
ngx_agentlocator_api_live_string(yajl_gen g, const char *name, u_char *data,
    size_t len)
{
    yajl_gen_string(g, (u_char *) name, ngx_strlen(name));

    if (len == 0) {
        yajl_gen_null(g);
        return;
    }

    yajl_gen_string(g, data, len);
}


/* milliseconds since t, or null when it never happened */

static void
ngx_agentlocator_api_live_age(yajl_gen g, const char *name, ngx_msec_t t,
    ngx_msec_t now)
{
    yajl_gen_string(g, (u_char *) name, ngx_strlen(name));

    if (t == 0) {
        yajl_gen_null(g);
        return;
    }

    yajl_gen_integer(g, (long long) ngx_max((ngx_msec_int_t) (now - t), 0));
}


/* The recording's file, if it is the business's and kept here. */

ngx_int_t
ngx_agentlocator_api_recording_audio(ngx_http_request_t *r,
    ngx_str_t *business, ngx_str_t *call_sid, ngx_str_t *recording_id)
{
    ngx_str_t                      params[3];
    ngx_agentlocator_main_conf_t  *amcf;
    ngx_agentlocator_pg_query_t    q;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);

    if (amcf->recordings == NULL) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "recordings are not kept here");
    }

    params[0] = *business;
    params[1] = *call_sid;
    params[2] = *recording_id;

    q.st = ngx_agentlocator_api_recording_file_statement;
    q.n = 3;
    q.params = params;

    return ngx_agentlocator_api_read(r, &q, 1,
                                     ngx_agentlocator_api_audio_answer, NULL);
}


static ngx_int_t
ngx_agentlocator_api_audio_answer(ngx_http_request_t *r, void *data,
    struct pg_result **results)
{
    ngx_str_t                      path, *dir;
    PGresult                      *res;
    ngx_agentlocator_main_conf_t  *amcf;

    res = (PGresult *) results[0];

    if (PQntuples(res) != 1 || PQnfields(res) != 1) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "no such recording");
    }

    if (PQgetisnull(res, 0, 0)) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "this recording is Twilio's, "
                                          "not kept here");
    }

    path.data = (u_char *) PQgetvalue(res, 0, 0);
    path.len = PQgetlength(res, 0, 0);

    /*
     * only a file in the recordings directory, named as this module names
     * them: a row written by another host or by hand serves nothing else
     */

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    dir = &amcf->recordings->name;

    if (path.len <= dir->len + 1 + sizeof(".wav") - 1
        || ngx_strncmp(path.data, dir->data, dir->len) != 0
        || path.data[dir->len] != '/'
        || ngx_strlchr(path.data + dir->len + 1, path.data + path.len, '/')
        || ngx_strncmp(path.data + path.len - 4, ".wav", 4) != 0
        || ngx_strlchr(path.data, path.data + path.len, '\0')
        || path.data[dir->len + 1] == '.')
    {
        return ngx_agentlocator_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "the recording's file is not in "
                                          "this host's recordings directory");
    }

    return ngx_agentlocator_api_audio_file(r, &path);
}


/* The file as the static module would send it: ranges, HEAD, sendfile. */

static ngx_int_t
ngx_agentlocator_api_audio_file(ngx_http_request_t *r, ngx_str_t *path)
{
    u_char                    *name;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_chain_t                out;
    ngx_open_file_info_t       of;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    name = ngx_pnalloc(r->pool, path->len + 1);
    if (name == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ngx_cpystrn(name, path->data, path->len + 1);

    ngx_memzero(&of, sizeof(ngx_open_file_info_t));

    of.read_ahead = clcf->read_ahead;
    of.directio = clcf->directio;
    of.valid = clcf->open_file_cache_valid;
    of.min_uses = clcf->open_file_cache_min_uses;
    of.errors = clcf->open_file_cache_errors;
    of.events = clcf->open_file_cache_events;

    if (ngx_open_cached_file(clcf->open_file_cache, path, &of, r->pool)
        != NGX_OK)
    {
        if (of.err == NGX_ENOENT || of.err == NGX_ENOTDIR) {
            return ngx_agentlocator_api_error(r, NGX_HTTP_NOT_FOUND,
                                              "the recording's file is gone");
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, of.err,
                      "%s \"%s\" failed", of.failed, name);

        return ngx_agentlocator_api_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "the recording cannot be read");
    }

    if (!of.is_file) {
        return ngx_agentlocator_api_error(r, NGX_HTTP_NOT_FOUND,
                                          "no such recording");
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = of.size;
    r->headers_out.last_modified_time = of.mtime;
    r->headers_out.content_type = ngx_agentlocator_api_wav_type;
    r->headers_out.content_type_len = ngx_agentlocator_api_wav_type.len;
    r->allow_ranges = 1;

    if (ngx_http_set_etag(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only || of.size == 0) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
    if (b->file == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file_pos = 0;
    b->file_last = of.size;
    b->in_file = 1;
    b->last_buf = (r == r->main);
    b->last_in_chain = 1;
    b->sync = 0;

    b->file->fd = of.fd;
    b->file->name.data = name;
    b->file->name.len = path->len;
    b->file->log = r->connection->log;
    b->file->directio = of.is_directio;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
