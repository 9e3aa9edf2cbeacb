
/*
 * Operations endpoints: /healthz (the process answers), /readyz (this worker
 * can take calls: what is known so far), /version (what is running).
 */


#include "ngx_agentlocator.h"
#include "ngx_agentlocator_build_info.h"


static ngx_int_t ngx_agentlocator_health_live(ngx_http_request_t *r);
static ngx_int_t ngx_agentlocator_health_ready(ngx_http_request_t *r);
static ngx_int_t ngx_agentlocator_health_version(ngx_http_request_t *r);


static ngx_str_t  ngx_agentlocator_text_plain = ngx_string("text/plain");
static ngx_str_t  ngx_agentlocator_json = ngx_string("application/json");


ngx_int_t
ngx_agentlocator_health_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_agentlocator_loc_conf_t  *alcf;

    rc = ngx_agentlocator_allow_methods(r, NGX_HTTP_GET|NGX_HTTP_HEAD,
                                        "GET, HEAD");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentlocator_module);

    switch (alcf->health) {

    case NGX_AGENTLOCATOR_HEALTH_LIVE:
        return ngx_agentlocator_health_live(r);

    case NGX_AGENTLOCATOR_HEALTH_READY:
        return ngx_agentlocator_health_ready(r);

    default: /* NGX_AGENTLOCATOR_HEALTH_VERSION */
        return ngx_agentlocator_health_version(r);
    }
}


static ngx_int_t
ngx_agentlocator_health_live(ngx_http_request_t *r)
{
    static ngx_str_t  ok = ngx_string("ok\n");

    return ngx_agentlocator_reply(r, NGX_HTTP_OK, &ngx_agentlocator_text_plain,
                                  &ok);
}


/*
 * Not ready while the registry the configuration names is not there, or
 * while this worker is shutting down (a balancer should stop sending it
 * new calls).  A host without agentlocator_zone answers no voice (nginx -t
 * refuses voice without it): its zone is "off", not a reason to wait.  The
 * CRM database is reported, not required: calls go on without it.
 */

static ngx_int_t
ngx_agentlocator_health_ready(ngx_http_request_t *r)
{
    u_char                             *p;
    size_t                              len;
    ngx_str_t                           body;
    ngx_uint_t                          ready, exiting;
    const char                         *zone;
    ngx_agentlocator_registry_t        *reg;
    ngx_agentlocator_srv_conf_t        *ascf;
    ngx_agentlocator_main_conf_t       *amcf;
    ngx_agentlocator_public_url_t      *url;
    ngx_agentlocator_pg_status_t        pg;
    ngx_agentlocator_spool_status_t     spool;
    ngx_agentlocator_registry_usage_t   usage;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentlocator_module);
    ascf = ngx_http_get_module_srv_conf(r, ngx_http_agentlocator_module);

    reg = ngx_agentlocator_registry_get(amcf);
    url = ascf->public_url;

    exiting = (ngx_exiting || ngx_quit || ngx_terminate) ? 1 : 0;
    zone = reg ? "ok" : amcf->shm_zone ? "missing" : "off";
    ready = ((reg != NULL || amcf->shm_zone == NULL) && !exiting);

    ngx_agentlocator_pg_status(&pg);
    ngx_agentlocator_spool_status(&spool);

    len = sizeof("{\"ready\":false,\"checks\":{\"zone\":\"missing\","
                 "\"worker\":\"exiting\",\"database\":\"old_schema\"},"
                 "\"public_url\":null,\"zone\":null,"
                 "\"database\":{\"schema\":,\"needed\":,"
                 "\"connected\":,\"pool\":,\"queued\":,\"in_flight\":,"
                 "\"written\":,\"refused\":,\"dropped\":},"
                 "\"spool\":{\"files\":,\"bytes\":,\"unread\":,"
                 "\"write_failed\":,\"torn\":,\"adopted\":,"
                 "\"replayed\":}}\n") - 1
          + 16 * NGX_INT64_LEN;

    if (url) {
        len += ngx_agentlocator_json_escape_len(&url->url) + 2;
    }

    if (reg) {
        ngx_agentlocator_registry_usage(reg, &usage);

        len += sizeof("{\"name\":\"\",\"size\":,\"entries\":,"
                      "\"pages_total\":,\"pages_free\":}") - 1
               + ngx_agentlocator_json_escape_len(&reg->name)
               + 4 * NGX_INT64_LEN;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = p;

    p = ngx_sprintf(p, "{\"ready\":%s,\"checks\":{\"zone\":\"%s\","
                    "\"worker\":\"%s\",\"database\":\"%s\"},"
                    "\"public_url\":",
                    ready ? "true" : "false", zone,
                    exiting ? "exiting" : "ok", pg.state);

    if (url) {
        *p++ = '"';
        p = ngx_agentlocator_json_escape(p, &url->url);
        *p++ = '"';

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_cpymem(p, ",\"zone\":", sizeof(",\"zone\":") - 1);

    if (reg) {
        p = ngx_cpymem(p, "{\"name\":\"", sizeof("{\"name\":\"") - 1);
        p = ngx_agentlocator_json_escape(p, &reg->name);
        p = ngx_sprintf(p, "\",\"size\":%uz,\"entries\":%ui,"
                        "\"pages_total\":%ui,\"pages_free\":%ui}",
                        usage.size, usage.entries, usage.pages_total,
                        usage.pages_free);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    if (pg.pool) {
        p = ngx_sprintf(p, ",\"database\":{\"schema\":%i,\"needed\":%ui,"
                        "\"connected\":%ui,\"pool\":%ui,\"queued\":%ui,"
                        "\"in_flight\":%ui,\"written\":%ui,\"refused\":%ui,"
                        "\"dropped\":%ui}",
                        pg.schema, pg.needed, pg.connected, pg.pool,
                        pg.queued, pg.in_flight, pg.done, pg.failed,
                        pg.dropped);

    } else {
        p = ngx_cpymem(p, ",\"database\":null", sizeof(",\"database\":null") - 1);
    }

    if (spool.on) {
        p = ngx_sprintf(p, ",\"spool\":{\"files\":%ui,\"bytes\":%O,"
                        "\"unread\":%O,\"write_failed\":%ui,\"torn\":%ui,"
                        "\"adopted\":%ui,\"replayed\":%ui}",
                        spool.files, spool.bytes, spool.unread,
                        spool.write_failed, spool.torn, spool.adopted,
                        spool.replayed);

    } else {
        p = ngx_cpymem(p, ",\"spool\":null", sizeof(",\"spool\":null") - 1);
    }

    p = ngx_cpymem(p, "}\n", 2);

    body.len = p - body.data;

    return ngx_agentlocator_reply(r, ready ? NGX_HTTP_OK
                                           : NGX_HTTP_SERVICE_UNAVAILABLE,
                                  &ngx_agentlocator_json, &body);
}


static ngx_int_t
ngx_agentlocator_health_version(ngx_http_request_t *r)
{
    static ngx_str_t  version = ngx_string(
        "{\"module\":\"" NGX_AGENTLOCATOR_MODULE_NAME "\","
        "\"version\":\"" NGX_AGENTLOCATOR_VERSION "\","
        "\"revision\":\"" NGX_AGENTLOCATOR_REVISION "\","
        "\"built\":\"" NGX_AGENTLOCATOR_BUILT "\","
        "\"nginx\":\"" NGINX_VERSION "\"}\n");

    return ngx_agentlocator_reply(r, NGX_HTTP_OK, &ngx_agentlocator_json,
                                  &version);
}
