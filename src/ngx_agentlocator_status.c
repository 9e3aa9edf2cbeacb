
/*
 * agentlocator_status: a JSON snapshot of the registry for operators: zone
 * usage and every live call with its state, ages and counters.  Entries are
 * copied under the lock and formatted after it.
 */


#include "ngx_agentlocator.h"


#define NGX_AGENTLOCATOR_STATUS_MAX_CALLS  10000

/* the longest a call's JSON object can be, escaped From/To included */
#define NGX_AGENTLOCATOR_STATUS_CALL_LEN                                      \
    (512 + 3 * NGX_AGENTLOCATOR_SID_LEN + 2 * 6 * NGX_AGENTLOCATOR_PARTY_LEN  \
     + NGX_AGENTLOCATOR_CALL_STATUS_LEN + 12 * NGX_INT64_LEN)


static u_char *ngx_agentlocator_status_call(u_char *p,
    ngx_agentlocator_call_t *call, ngx_msec_t now);
static u_char *ngx_agentlocator_status_age(u_char *p, const char *name,
    ngx_msec_t t, ngx_msec_t now);
static u_char *ngx_agentlocator_status_string(u_char *p, const char *name,
    u_char *data, size_t len);


static ngx_str_t  ngx_agentlocator_json = ngx_string("application/json");


ngx_int_t
ngx_agentlocator_status_handler(ngx_http_request_t *r)
{
    u_char                             *p;
    size_t                              len;
    ngx_int_t                           rc;
    ngx_str_t                           body;
    ngx_uint_t                          i, truncated;
    ngx_msec_t                          now;
    ngx_array_t                         calls;
    ngx_agentlocator_call_t            *call;
    ngx_agentlocator_registry_t        *reg;
    ngx_agentlocator_registry_sh_t     *sh;
    ngx_agentlocator_main_conf_t       *amcf;
    ngx_agentlocator_registry_usage_t   usage;

    rc = ngx_agentlocator_allow_methods(r, NGX_HTTP_GET|NGX_HTTP_HEAD,
                                        "GET, HEAD");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    reg = ngx_agentlocator_registry_get(amcf);

    if (reg == NULL) {
        return ngx_agentlocator_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "no agentlocator_zone");
    }

    if (ngx_agentlocator_registry_snapshot(reg, r->pool, &calls,
                                           NGX_AGENTLOCATOR_STATUS_MAX_CALLS)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_agentlocator_registry_usage(reg, &usage);

    truncated = (usage.entries > calls.nelts);
    now = ngx_current_msec;

    len = 1024 + reg->name.len * 6
          + calls.nelts * NGX_AGENTLOCATOR_STATUS_CALL_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = p;

    p = ngx_cpymem(p, "{\"zone\":{\"name\":\"",
                   sizeof("{\"zone\":{\"name\":\"") - 1);
    p = ngx_agentlocator_json_escape(p, &reg->name);
    p = ngx_sprintf(p, "\",\"size\":%uz,\"entries\":%ui,\"capacity\":%ui,"
                    "\"entry_bytes\":%uz,\"pages_total\":%ui,"
                    "\"pages_free\":%ui,\"full\":%ui,\"evicted\":%ui,"
                    "\"expired\":%ui,\"repaired\":%ui,"
                    "\"ended_capacity\":%ui,\"ended_forgotten\":%ui,"
                    "\"replays\":%ui},",
                    usage.size, usage.entries, usage.capacity,
                    usage.entry_bytes, usage.pages_total, usage.pages_free,
                    usage.full, usage.evicted, usage.expired, usage.repaired,
                    usage.ended_capacity, usage.ended_forgotten,
                    usage.replays);

    /* media streams of all workers, since the zone was created */

    sh = reg->sh;

    p = ngx_sprintf(p, "\"websocket\":{\"accepted\":%uA,\"open\":%uA,"
                    "\"frames\":%uA,\"bytes\":%uA,\"bad_messages\":%uA,"
                    "\"protocol_errors\":%uA},",
                    sh->ws_accepted,
                    ngx_agentlocator_stream_count_open(sh), sh->ws_frames, sh->ws_bytes,
                    sh->ws_bad_messages, sh->ws_protocol_errors);

    p = ngx_sprintf(p, "\"truncated\":%s,\"calls\":[",
                    truncated ? "true" : "false");

    call = calls.elts;

    for (i = 0; i < calls.nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_agentlocator_status_call(p, &call[i], now);
    }

    p = ngx_cpymem(p, "]}\n", 3);

    body.len = p - body.data;

    return ngx_agentlocator_reply(r, NGX_HTTP_OK, &ngx_agentlocator_json,
                                  &body);
}


static u_char *
ngx_agentlocator_status_call(u_char *p, ngx_agentlocator_call_t *call,
    ngx_msec_t now)
{
    p = ngx_agentlocator_status_string(p, "{\"call_sid\"", call->call_sid,
                                       NGX_AGENTLOCATOR_SID_LEN);
    p = ngx_sprintf(p, ",\"state\":\"%s\"",
                    ngx_agentlocator_call_state_name(call->state));
    p = ngx_sprintf(p, ",\"created_at\":%T", call->created_at);

    p = ngx_agentlocator_status_age(p, "age_ms", call->created, now);
    p = ngx_agentlocator_status_age(p, "stream_age_ms", call->stream_start,
                                    now);
    p = ngx_agentlocator_status_age(p, "since_media_ms", call->last_media,
                                    now);
    p = ngx_agentlocator_status_age(p, "since_update_ms", call->updated, now);

    p = ngx_agentlocator_status_string(p, ",\"stream_sid\"", call->stream_sid,
                                       call->stream_sid[0]
                                       ? NGX_AGENTLOCATOR_SID_LEN : 0);
    p = ngx_agentlocator_status_string(p, ",\"account_sid\"",
                                       call->account_sid,
                                       call->account_sid[0]
                                       ? NGX_AGENTLOCATOR_SID_LEN : 0);
    p = ngx_agentlocator_status_string(p, ",\"from\"", call->from,
                                       call->from_len);
    p = ngx_agentlocator_status_string(p, ",\"to\"", call->to, call->to_len);
    p = ngx_agentlocator_status_string(p, ",\"call_status\"",
                                       call->call_status,
                                       call->call_status_len);

    p = ngx_sprintf(p, ",\"frames\":%uL,\"bytes\":%uL,\"stream_live\":%s,"
                    "\"stream_error\":%s,\"recording\":%s,"
                    "\"redirect\":{\"attempts\":%ui,\"reason\":\"%s\","
                    "\"outcome\":\"%s\",\"status\":%ui}}",
                    call->frames, call->bytes,
                    call->stream_pid ? "true" : "false",
                    call->stream_error ? "true" : "false",
                    call->recording ? "true" : "false",
                    (ngx_uint_t) call->redirect_attempts,
                    ngx_agentlocator_reason_name(call->redirect_reason),
                    ngx_agentlocator_outcome_name(call->redirect_outcome),
                    (ngx_uint_t) call->redirect_status);

    return p;
}


/* ,"name":<ms since t> or ,"name":null when t never happened */

static u_char *
ngx_agentlocator_status_age(u_char *p, const char *name, ngx_msec_t t,
    ngx_msec_t now)
{
    ngx_msec_int_t  age;

    if (t == 0) {
        return ngx_sprintf(p, ",\"%s\":null", name);
    }

    age = (ngx_msec_int_t) (now - t);

    return ngx_sprintf(p, ",\"%s\":%M", name,
                       (ngx_msec_t) (age > 0 ? age : 0));
}


/* name (already quoted, with its leading "{" or ",") : "escaped" or null */

static u_char *
ngx_agentlocator_status_string(u_char *p, const char *name, u_char *data,
    size_t len)
{
    ngx_str_t  s;

    p = ngx_cpymem(p, name, ngx_strlen(name));
    *p++ = ':';

    if (len == 0) {
        return ngx_cpymem(p, "null", 4);
    }

    s.data = data;
    s.len = len;

    *p++ = '"';
    p = ngx_agentlocator_json_escape(p, &s);
    *p++ = '"';

    return p;
}
