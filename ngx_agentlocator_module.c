
/*
 * ngx_http_agentlocator_module: directives, configuration lifecycle and
 * init hooks.  Glue only: every behaviour lives in src/.
 */


#include "ngx_agentlocator.h"


static void *ngx_agentlocator_create_main_conf(ngx_conf_t *cf);
static void *ngx_agentlocator_create_srv_conf(ngx_conf_t *cf);
static char *ngx_agentlocator_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static void *ngx_agentlocator_create_loc_conf(ngx_conf_t *cf);
static char *ngx_agentlocator_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_agentlocator_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_public_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_agentlocator_commands[] = {

    { ngx_string("agentlocator_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_agentlocator_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_public_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_agentlocator_public_url,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_agentlocator_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_agentlocator_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_agentlocator_create_main_conf,     /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_agentlocator_create_srv_conf,      /* create server configuration */
    ngx_agentlocator_merge_srv_conf,       /* merge server configuration */

    ngx_agentlocator_create_loc_conf,      /* create location configuration */
    ngx_agentlocator_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_agentlocator_module = {
    NGX_MODULE_V1,
    &ngx_agentlocator_module_ctx,          /* module context */
    ngx_agentlocator_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_agentlocator_create_main_conf(ngx_conf_t *cf)
{
    ngx_agentlocator_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_agentlocator_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->shm_zone = NULL;
     */

    return amcf;
}


static void *
ngx_agentlocator_create_srv_conf(ngx_conf_t *cf)
{
    ngx_agentlocator_srv_conf_t  *ascf;

    ascf = ngx_pcalloc(cf->pool, sizeof(ngx_agentlocator_srv_conf_t));
    if (ascf == NULL) {
        return NULL;
    }

    ascf->public_url = NGX_CONF_UNSET_PTR;

    return ascf;
}


static char *
ngx_agentlocator_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_agentlocator_srv_conf_t *prev = parent;
    ngx_agentlocator_srv_conf_t *conf = child;

    ngx_conf_merge_ptr_value(conf->public_url, prev->public_url, NULL);

    return NGX_CONF_OK;
}


static void *
ngx_agentlocator_create_loc_conf(ngx_conf_t *cf)
{
    ngx_agentlocator_loc_conf_t  *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_agentlocator_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     alcf->health = NGX_AGENTLOCATOR_HEALTH_NONE;
     */

    return alcf;
}


/*
 * Handlers are per location and are not inherited: a nested location that
 * sets none of its own is an ordinary location.
 */

static char *
ngx_agentlocator_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    return NGX_CONF_OK;
}


static char *
ngx_agentlocator_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_main_conf_t *amcf = conf;

    ngx_str_t  *value;

    value = cf->args->elts;

    return ngx_agentlocator_registry_zone(cf, amcf, &value[1], &value[2]);
}


static char *
ngx_agentlocator_public_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_srv_conf_t *ascf = conf;

    ngx_str_t   *value;
    const char  *err;

    if (ascf->public_url != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ascf->public_url = ngx_pcalloc(cf->pool,
                                   sizeof(ngx_agentlocator_public_url_t));
    if (ascf->public_url == NULL) {
        return NGX_CONF_ERROR;
    }

    err = ngx_agentlocator_public_url_parse(cf->pool, &value[1],
                                            ascf->public_url);
    if (err) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_public_url \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_agentlocator_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_loc_conf_t *alcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (alcf->health != NGX_AGENTLOCATOR_HEALTH_NONE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "live") == 0) {
        alcf->health = NGX_AGENTLOCATOR_HEALTH_LIVE;

    } else if (ngx_strcmp(value[1].data, "ready") == 0) {
        alcf->health = NGX_AGENTLOCATOR_HEALTH_READY;

    } else if (ngx_strcmp(value[1].data, "version") == 0) {
        alcf->health = NGX_AGENTLOCATOR_HEALTH_VERSION;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_health mode \"%V\", "
                           "expected \"live\", \"ready\" or \"version\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "conflicts with another content handler in this location";
    }

    clcf->handler = ngx_agentlocator_health_handler;

    return NGX_CONF_OK;
}
