
/*
 * ngx_http_agentlocator_module: directives, configuration lifecycle and
 * init hooks.  Glue only: every behaviour lives in src/.
 */


#include "ngx_agentlocator.h"


static ngx_int_t ngx_agentlocator_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_agentlocator_init_process(ngx_cycle_t *cycle);
static void ngx_agentlocator_exit_process(ngx_cycle_t *cycle);
static void *ngx_agentlocator_create_main_conf(ngx_conf_t *cf);
static char *ngx_agentlocator_init_main_conf(ngx_conf_t *cf, void *conf);
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
static char *ngx_agentlocator_voice(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_media_stream(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_agentlocator_media_location_check(ngx_conf_t *cf,
    ngx_agentlocator_loc_conf_t *conf);
static char *ngx_agentlocator_recordings(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_subprotocols(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_agentlocator_watchdog(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_api_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_spool(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_postgres(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_whatsapp(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_transcribe_url(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_agentlocator_baileys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_agentlocator_whatsapp_check(ngx_conf_t *cf,
    ngx_agentlocator_loc_conf_t *conf);
static char *ngx_agentlocator_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_agentlocator_api_check(ngx_conf_t *cf,
    ngx_agentlocator_loc_conf_t *conf);
static char *ngx_agentlocator_wa_send(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_agentlocator_whatsapp_providers(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf);
static char *ngx_agentlocator_set_handler(ngx_conf_t *cf,
    ngx_agentlocator_loc_conf_t *alcf, ngx_http_handler_pt handler);


ngx_uint_t  ngx_agentlocator_worker_cut;


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

    { ngx_string("agentlocator_voice"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_agentlocator_voice,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_media_stream"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_agentlocator_media_stream,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_media_plain_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_agentlocator_loc_conf_t, media_plain_url),
      NULL },

    { ngx_string("agentlocator_media_max_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_agentlocator_loc_conf_t, media_max_message),
      NULL },

    { ngx_string("agentlocator_media_send_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_agentlocator_loc_conf_t, media_send_buffer),
      NULL },

    { ngx_string("agentlocator_media_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_agentlocator_loc_conf_t, media_idle_timeout),
      NULL },

    { ngx_string("agentlocator_media_subprotocol"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_agentlocator_subprotocols,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_agentlocator_postgres,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_spool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_agentlocator_spool,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_watchdog"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_agentlocator_watchdog,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_twilio_api_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_agentlocator_api_url,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_recordings"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_agentlocator_recordings,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_whatsapp"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_agentlocator_whatsapp,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_transcribe_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_agentlocator_transcribe_url,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_baileys"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_agentlocator_baileys,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_whatsapp_send"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_ANY,
      ngx_agentlocator_wa_send,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_agentlocator_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_jwt_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_agentlocator_secret,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_agentlocator_main_conf_t, jwt_secret),
      NULL },

    { ngx_string("agentlocator_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_agentlocator_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_agentlocator_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentlocator_greeting"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_agentlocator_srv_conf_t, greeting),
      NULL },

    { ngx_string("agentlocator_fallback_prompt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_agentlocator_srv_conf_t, fallback_prompt),
      NULL },

    { ngx_string("agentlocator_signature"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_agentlocator_loc_conf_t, signature),
      NULL },

    { ngx_string("agentlocator_webhook_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_agentlocator_loc_conf_t, max_body),
      NULL },

    { ngx_string("agentlocator_body_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_agentlocator_loc_conf_t, body_timeout),
      NULL },

    { ngx_string("agentlocator_twilio_account_sid"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_agentlocator_secret,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_agentlocator_main_conf_t, account_sid),
      NULL },

    { ngx_string("agentlocator_twilio_auth_token"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_agentlocator_secret,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_agentlocator_main_conf_t, auth_token),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_agentlocator_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_agentlocator_create_main_conf,     /* create main configuration */
    ngx_agentlocator_init_main_conf,       /* init main configuration */

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
    ngx_agentlocator_init_module,          /* init module */
    ngx_agentlocator_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_agentlocator_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* In the master, before workers (and any thread) exist. */

static ngx_int_t
ngx_agentlocator_init_module(ngx_cycle_t *cycle)
{
    static ngx_uint_t  curl_ready;

    if (!curl_ready) {
        if (ngx_agentlocator_http_global_init(cycle->log) != NGX_OK) {
            return NGX_ERROR;
        }

        curl_ready = 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_agentlocator_init_process(ngx_cycle_t *cycle)
{
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ngx_agentlocator_metrics_init_worker(cycle);
    ngx_agentlocator_registry_init_worker(cycle);
    ngx_agentlocator_stream_url_init_worker(cycle);

    if (ngx_agentlocator_spool_init_worker(cycle,
            ngx_http_cycle_get_module_main_conf(cycle,
                                                ngx_http_agentlocator_module))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_agentlocator_pg_init_worker(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_agentlocator_http_init_worker(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_agentlocator_transcribe_init_worker(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_agentlocator_watchdog_init_worker(cycle);
}


static void
ngx_agentlocator_exit_process(ngx_cycle_t *cycle)
{
    ngx_agentlocator_watchdog_exit_worker(cycle);

    /* its read goes before the connections do */
    ngx_agentlocator_transcribe_sweep_exit_worker();
    ngx_agentlocator_pg_exit_worker();
    ngx_agentlocator_spool_exit_worker();
    ngx_agentlocator_transcribe_exit_worker();
    ngx_agentlocator_http_exit_worker();
    ngx_agentlocator_media_exit_worker();

    /* last: closing streams above still counts them out */
    ngx_agentlocator_metrics_exit_worker();
}


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
     *     amcf->metrics_zone = NULL;
     *     amcf->account_sid = { 0, NULL };
     *     amcf->auth_token = { 0, NULL };
     *     amcf->api_url = { 0, NULL };
     *     amcf->watchdog_srv = NULL;
     */

    amcf->timeouts.start_timeout = NGX_CONF_UNSET_MSEC;
    amcf->timeouts.no_media_timeout = NGX_CONF_UNSET_MSEC;
    amcf->timeouts.completed_grace = NGX_CONF_UNSET_MSEC;
    amcf->timeouts.stale_after = NGX_CONF_UNSET_MSEC;
    amcf->timeouts.interval = NGX_CONF_UNSET_MSEC;
    amcf->timeouts.lease = NGX_CONF_UNSET_MSEC;
    amcf->timeouts.rest_timeout = NGX_CONF_UNSET_MSEC;
    amcf->timeouts.attempts = NGX_CONF_UNSET_UINT;
    amcf->watchdog = NGX_CONF_UNSET;
    amcf->wa_timeout = NGX_CONF_UNSET_MSEC;

    return amcf;
}


static char *
ngx_agentlocator_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_agentlocator_main_conf_t *amcf = conf;

    ngx_agentlocator_timeouts_t  *to;

    to = &amcf->timeouts;

    ngx_conf_init_msec_value(to->start_timeout, 8000);
    ngx_conf_init_msec_value(to->no_media_timeout, 6000);

    /* a completed call stays visible for late callbacks, then is reaped */
    ngx_conf_init_msec_value(to->completed_grace, 5 * 60 * 1000);

    /* Twilio's default maximum call length is 4 hours */
    ngx_conf_init_msec_value(to->stale_after, 4 * 60 * 60 * 1000);

    /* the safety net: the watchdog wakes at each deadline */
    ngx_conf_init_msec_value(to->interval, 250);
    ngx_conf_init_msec_value(to->rest_timeout, 5000);

    /* a claim outlives one REST attempt, so only a dead claimant loses it */
    ngx_conf_init_msec_value(to->lease, to->rest_timeout + 3000);

    ngx_conf_init_uint_value(to->attempts, 6);
    ngx_conf_init_value(amcf->watchdog, 1);

    if (to->rest_timeout > 10000) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "agentlocator_watchdog timeout= must be at most 10s: "
                      "stream_ended waits for an attempt in flight, and "
                      "Twilio gives a webhook 15s");
        return NGX_CONF_ERROR;
    }

    if (to->lease <= to->rest_timeout) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "agentlocator_watchdog lease= must be longer than "
                      "timeout=: a live attempt would lose its claim");
        return NGX_CONF_ERROR;
    }

    if (amcf->api_url.len == 0) {
        ngx_str_set(&amcf->api_url, "https://api.twilio.com");
    }

    if (amcf->auth_token.len) {
        ngx_agentlocator_hmac_init(&amcf->auth_key, &amcf->auth_token);
    }

    if (amcf->jwt_secret.len && amcf->jwt_secret.len < 32) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "agentlocator_jwt_secret must be at least 32 bytes: "
                      "an HS256 key shorter than its hash is guessable");
        return NGX_CONF_ERROR;
    }

    if (ngx_agentlocator_api_conf(cf, amcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_agentlocator_whatsapp_providers(cf, amcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (amcf->transcribe && amcf->pg_conninfo.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"agentlocator_transcribe_url\" stores transcripts "
                      "in the CRM, and there is no \"agentlocator_postgres\"");
        return NGX_CONF_ERROR;
    }

    if (amcf->spool && amcf->pg_conninfo.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"agentlocator_spool\" keeps writes for the CRM "
                      "database, and there is no \"agentlocator_postgres\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_agentlocator_create_srv_conf(ngx_conf_t *cf)
{
    ngx_agentlocator_srv_conf_t  *ascf;

    ascf = ngx_pcalloc(cf->pool, sizeof(ngx_agentlocator_srv_conf_t));
    if (ascf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ascf->greeting = { 0, NULL };
     *     ascf->fallback_prompt = { 0, NULL };
     *     ascf->fallback_twiml = { 0, NULL };
     */

    ascf->public_url = NGX_CONF_UNSET_PTR;

    return ascf;
}


static char *
ngx_agentlocator_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_agentlocator_srv_conf_t *prev = parent;
    ngx_agentlocator_srv_conf_t *conf = child;

    ngx_conf_merge_ptr_value(conf->public_url, prev->public_url, NULL);
    ngx_conf_merge_str_value(conf->greeting, prev->greeting, "");
    ngx_conf_merge_str_value(conf->fallback_prompt, prev->fallback_prompt,
                             "");

    if (ngx_agentlocator_twiml_resolve(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

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
     *     alcf->voice = NGX_AGENTLOCATOR_VOICE_NONE;
     *     alcf->media = 0;
     *     alcf->status = 0;
     *     alcf->metrics = 0;
     *     alcf->conf_file = NULL;
     *     alcf->conf_line = 0;
     */

    alcf->signature = NGX_CONF_UNSET;
    alcf->media_plain_url = NGX_CONF_UNSET;
    alcf->max_body = NGX_CONF_UNSET_SIZE;
    alcf->body_timeout = NGX_CONF_UNSET_MSEC;
    alcf->media_max_message = NGX_CONF_UNSET_SIZE;
    alcf->media_send_buffer = NGX_CONF_UNSET_SIZE;
    alcf->media_idle_timeout = NGX_CONF_UNSET_MSEC;
    alcf->media_subprotocols = NGX_CONF_UNSET_PTR;

    return alcf;
}


/*
 * Handlers are per location and are not inherited: a nested location that
 * sets none of its own is an ordinary location.  What a handler needs from
 * the rest of the configuration is checked here, once everything is known,
 * so `nginx -t` fails instead of the first webhook.
 */

static char *
ngx_agentlocator_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_agentlocator_loc_conf_t *prev = parent;
    ngx_agentlocator_loc_conf_t *conf = child;

    ngx_agentlocator_srv_conf_t   *ascf;
    ngx_agentlocator_main_conf_t  *amcf;

    const char                    *what;

    ngx_conf_merge_value(conf->signature, prev->signature, 1);
    ngx_conf_merge_value(conf->media_plain_url, prev->media_plain_url, 0);
    ngx_conf_merge_size_value(conf->max_body, prev->max_body, 64 * 1024);
    ngx_conf_merge_msec_value(conf->body_timeout, prev->body_timeout, 10000);
    ngx_conf_merge_size_value(conf->media_max_message,
                              prev->media_max_message, 64 * 1024);
    ngx_conf_merge_size_value(conf->media_send_buffer,
                              prev->media_send_buffer, 256 * 1024);
    ngx_conf_merge_msec_value(conf->media_idle_timeout,
                              prev->media_idle_timeout, 60000);
    ngx_conf_merge_ptr_value(conf->media_subprotocols,
                             prev->media_subprotocols, NULL);

    if (conf->media_max_message < 1024) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "agentlocator_media_max_message must be at least 1k: "
                      "Twilio's media messages are about 400 bytes");
        return NGX_CONF_ERROR;
    }

    if (conf->whatsapp) {
        return ngx_agentlocator_whatsapp_check(cf, conf) == NGX_OK
               ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

    if (conf->api) {
        return ngx_agentlocator_api_check(cf, conf) == NGX_OK
               ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

    if (conf->voice == NGX_AGENTLOCATOR_VOICE_NONE && !conf->status
        && !conf->media)
    {
        return NGX_CONF_OK;
    }

    what = conf->status ? "agentlocator_status"
           : conf->media ? "agentlocator_media_stream" : "agentlocator_voice";

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_agentlocator_module);
    ascf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_agentlocator_module);

    if (amcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" in %s:%ui needs an agentlocator_zone "
                      "in the http block",
                      what, conf->conf_file, conf->conf_line);
        return NGX_CONF_ERROR;
    }

    if (conf->status) {
        return NGX_CONF_OK;
    }

    if (conf->media && ngx_agentlocator_media_location_check(cf, conf)
                       != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ascf->public_url == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" in %s:%ui needs "
                      "agentlocator_public_url in its server or http block: "
                      "Twilio's URLs are never derived from the request",
                      what, conf->conf_file, conf->conf_line);
        return NGX_CONF_ERROR;
    }

    if (conf->signature && amcf->auth_token.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\" in %s:%ui checks Twilio "
                      "signatures but agentlocator_twilio_auth_token is not "
                      "set (or set \"agentlocator_signature off\")",
                      what, conf->conf_file, conf->conf_line);
        return NGX_CONF_ERROR;
    }

    if (conf->voice == NGX_AGENTLOCATOR_VOICE_INCOMING_CALL
        && amcf->watchdog_srv == NULL)
    {
        /* REST redirects send this server's fallback */
        amcf->watchdog_srv = ascf;

        if (amcf->watchdog
            && (amcf->account_sid.len == 0 || amcf->auth_token.len == 0))
        {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "the agentlocator watchdog cannot redirect calls "
                          "without agentlocator_twilio_account_sid and "
                          "agentlocator_twilio_auth_token: it is off");
            amcf->watchdog = 0;
        }
    }

    if (!conf->signature) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "agentlocator_signature is off for the location in "
                      "%s:%ui: anyone can post to it as if they were Twilio",
                      conf->conf_file, conf->conf_line);
    }

    return NGX_CONF_OK;
}


/*
 * The TwiML gives each call's stream its own URL, <location>/{CallSid}/
 * {token}: an exact-match location never sees one, and every call would
 * fall to the recording.  Said at `nginx -t`, not found out from calls.
 */

static ngx_int_t
ngx_agentlocator_media_location_check(ngx_conf_t *cf,
    ngx_agentlocator_loc_conf_t *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (!clcf->exact_match) {
        return NGX_OK;
    }

    if (!conf->media_plain_url) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "agentlocator_media_stream in %s:%ui is in "
                      "\"location = %V\", which never sees the per-call "
                      "stream URLs %V/{CallSid}/{token} that the TwiML "
                      "gives Twilio: use \"location %V/\" (and "
                      "\"agentlocator_media_plain_url on\" only for TwiML "
                      "that names %V itself)",
                      conf->conf_file, conf->conf_line, &clcf->name,
                      &clcf->name, &clcf->name, &clcf->name);
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                  "agentlocator_media_stream in %s:%ui serves only the "
                  "plain URL %V: the per-call stream URLs the TwiML gives "
                  "Twilio need a prefix location such as \"location %V/\"",
                  conf->conf_file, conf->conf_line, &clcf->name,
                  &clcf->name);

    return NGX_OK;
}


/* What the WhatsApp webhooks need, said at `nginx -t`. */

static ngx_int_t
ngx_agentlocator_whatsapp_check(ngx_conf_t *cf,
    ngx_agentlocator_loc_conf_t *conf)
{
    ngx_agentlocator_srv_conf_t   *ascf;
    ngx_agentlocator_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_agentlocator_module);
    ascf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_agentlocator_module);

    if (amcf->pg_conninfo.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"agentlocator_whatsapp\" in %s:%ui stores messages "
                      "in the CRM: it needs agentlocator_postgres",
                      conf->conf_file, conf->conf_line);
        return NGX_ERROR;
    }

    if (conf->whatsapp == NGX_AGENTLOCATOR_WA_BAILEYS) {
        if (amcf->baileys_secret.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"agentlocator_whatsapp baileys\" in %s:%ui "
                          "checks the bridge's signature: it needs "
                          "agentlocator_baileys URL secret=... in the http "
                          "block", conf->conf_file, conf->conf_line);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (!conf->signature) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "agentlocator_signature is off for the location in "
                      "%s:%ui: anyone can post to it as if they were Twilio",
                      conf->conf_file, conf->conf_line);
        return NGX_OK;
    }

    if (ascf->public_url == NULL || amcf->auth_token.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"agentlocator_whatsapp\" in %s:%ui checks Twilio "
                      "signatures: it needs agentlocator_public_url (the "
                      "signed URL is never taken from the request) and "
                      "agentlocator_twilio_auth_token",
                      conf->conf_file, conf->conf_line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The API routes on what follows its location's prefix, reads the CRM and
 * checks tokens: said at `nginx -t` when it cannot.
 */

static ngx_int_t
ngx_agentlocator_api_check(ngx_conf_t *cf, ngx_agentlocator_loc_conf_t *conf)
{
    ngx_http_core_loc_conf_t      *clcf;
    ngx_agentlocator_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_agentlocator_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->exact_match || clcf->named
#if (NGX_PCRE)
        || clcf->regex
#endif
        )
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"agentlocator_api\" in %s:%ui needs a prefix "
                      "location such as \"location /api/\": its endpoints "
                      "are the paths below it",
                      conf->conf_file, conf->conf_line);
        return NGX_ERROR;
    }

    if (amcf->pg_conninfo.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"agentlocator_api\" in %s:%ui reads the CRM: it "
                      "needs agentlocator_postgres",
                      conf->conf_file, conf->conf_line);
        return NGX_ERROR;
    }

    if (amcf->jwt_secret.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"agentlocator_api\" in %s:%ui checks bearer tokens: "
                      "it needs agentlocator_jwt_secret (literal, env:NAME "
                      "or file:/path)", conf->conf_file, conf->conf_line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The providers "auto" sends through, in order: those agentlocator_
 * whatsapp_send names, else Twilio when it has a sender (from=) and the
 * bridge when there is one; each must have what it needs.
 */

static char *
ngx_agentlocator_whatsapp_providers(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf)
{
    ngx_uint_t  i;

    if (amcf->wa_nproviders == 0) {
        if (amcf->wa_from.len) {
            amcf->wa_providers[amcf->wa_nproviders++] =
                NGX_AGENTLOCATOR_WA_PROVIDER_TWILIO;
        }

        if (amcf->baileys_url.len) {
            amcf->wa_providers[amcf->wa_nproviders++] =
                NGX_AGENTLOCATOR_WA_PROVIDER_BAILEYS;
        }
    }

    ngx_conf_init_msec_value(amcf->wa_timeout, 10000);

    for (i = 0; i < amcf->wa_nproviders; i++) {

        if (amcf->wa_providers[i] == NGX_AGENTLOCATOR_WA_PROVIDER_BAILEYS) {
            if (amcf->baileys_url.len == 0) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "agentlocator_whatsapp_send providers= names "
                              "baileys, and there is no agentlocator_baileys");
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (amcf->wa_from.len == 0 || amcf->account_sid.len == 0
            || amcf->auth_token.len == 0)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "agentlocator_whatsapp_send providers= names "
                          "twilio: it needs from=+E164 (the WhatsApp "
                          "sender), agentlocator_twilio_account_sid and "
                          "agentlocator_twilio_auth_token");
            return NGX_CONF_ERROR;
        }
    }

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

    ngx_str_t  *value;

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

    return ngx_agentlocator_set_handler(cf, alcf,
                                        ngx_agentlocator_health_handler);
}


static char *
ngx_agentlocator_voice(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_loc_conf_t *alcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    static ngx_str_t  names[] = {
        ngx_null_string,
        ngx_string("incoming_call"),
        ngx_string("stream_status"),
        ngx_string("stream_ended"),
        ngx_string("handle_recording"),
        ngx_string("call_status")
    };

    if (alcf->voice != NGX_AGENTLOCATOR_VOICE_NONE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < sizeof(names) / sizeof(ngx_str_t); i++) {
        if (value[1].len == names[i].len
            && ngx_strncmp(value[1].data, names[i].data, names[i].len) == 0)
        {
            alcf->voice = i;
            break;
        }
    }

    if (alcf->voice == NGX_AGENTLOCATOR_VOICE_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_voice handler \"%V\", "
                           "expected \"incoming_call\", \"stream_status\", "
                           "\"stream_ended\", \"handle_recording\" or "
                           "\"call_status\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return ngx_agentlocator_set_handler(cf, alcf,
                                        ngx_agentlocator_voice_handler);
}


static char *
ngx_agentlocator_media_stream(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_loc_conf_t *alcf = conf;

    ngx_str_t  *value;

    if (alcf->media) {
        return "is duplicate";
    }

    value = cf->args->elts;
    alcf->media = 1;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "echo") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid agentlocator_media_stream mode "
                               "\"%V\", expected \"echo\" or nothing",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        alcf->media = 2;
    }

    return ngx_agentlocator_set_handler(cf, alcf,
                                        ngx_agentlocator_media_stream_handler);
}


static char *
ngx_agentlocator_whatsapp(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_loc_conf_t *alcf = conf;

    ngx_str_t  *value;

    if (alcf->whatsapp != NGX_AGENTLOCATOR_WA_NONE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "twilio") == 0) {
        alcf->whatsapp = NGX_AGENTLOCATOR_WA_TWILIO;

    } else if (ngx_strcmp(value[1].data, "twilio_status") == 0) {
        alcf->whatsapp = NGX_AGENTLOCATOR_WA_TWILIO_STATUS;

    } else if (ngx_strcmp(value[1].data, "baileys") == 0) {
        alcf->whatsapp = NGX_AGENTLOCATOR_WA_BAILEYS;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_whatsapp handler \"%V\", "
                           "expected \"twilio\", \"twilio_status\" or "
                           "\"baileys\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return ngx_agentlocator_set_handler(cf, alcf,
                                        ngx_agentlocator_whatsapp_handler);
}


static char *
ngx_agentlocator_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_loc_conf_t *alcf = conf;

    if (alcf->api) {
        return "is duplicate";
    }

    alcf->api = 1;

    return ngx_agentlocator_set_handler(cf, alcf,
                                        ngx_agentlocator_api_handler);
}


/* agentlocator_whatsapp_send ... (whatsapp_send.c) */

static char *
ngx_agentlocator_wa_send(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_agentlocator_whatsapp_send_conf(cf, conf);
}


/* agentlocator_transcribe_url URL [model=] ... (transcribe.c) */

static char *
ngx_agentlocator_transcribe_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    return ngx_agentlocator_transcribe_conf(cf, conf);
}


/* agentlocator_baileys URL secret=... [number=...] (whatsapp.c) */

static char *
ngx_agentlocator_baileys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_agentlocator_baileys_conf(cf, conf);
}


static char *
ngx_agentlocator_watchdog(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_main_conf_t *amcf = conf;

    ngx_str_t  *value;

    if (amcf->watchdog != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    amcf->watchdog = 1;
    value = cf->args->elts;

    return ngx_agentlocator_watchdog_conf(cf, amcf, &value[1],
                                          cf->args->nelts - 1);
}


/* agentlocator_twilio_api_url: an absolute http(s) URL, like public_url. */

static char *
ngx_agentlocator_api_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_main_conf_t *amcf = conf;

    ngx_str_t                      *value;
    const char                     *err;
    ngx_agentlocator_public_url_t   url;

    if (amcf->api_url.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    err = ngx_agentlocator_public_url_parse(cf->pool, &value[1], &url);
    if (err) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_twilio_api_url \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    amcf->api_url = url.url;

    return NGX_CONF_OK;
}


/* agentlocator_media_subprotocol NAME ...: the ones we may echo. */

static char *
ngx_agentlocator_subprotocols(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_loc_conf_t *alcf = conf;

    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    if (alcf->media_subprotocols != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    alcf->media_subprotocols = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                                sizeof(ngx_str_t));
    if (alcf->media_subprotocols == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        name = ngx_array_push(alcf->media_subprotocols);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    return NGX_CONF_OK;
}


/* agentlocator_recordings PATH */

static char *
ngx_agentlocator_recordings(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_main_conf_t *amcf = conf;

    ngx_str_t  *value;

    if (amcf->recordings) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_agentlocator_conf_path(cf, &value[1], &amcf->recordings);
}


/*
 * A directory the workers write to (recordings, the spool) is an nginx
 * path: created at start, owned by the workers' user, like the temp paths.
 */

char *
ngx_agentlocator_conf_path(ngx_conf_t *cf, ngx_str_t *name, ngx_path_t **path)
{
    ngx_path_t  *p;

    p = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    p->name = *name;

    while (p->name.len > 1 && p->name.data[p->name.len - 1] == '/') {
        p->name.len--;
    }

    if (ngx_conf_full_name(cf->cycle, &p->name, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    p->conf_file = cf->conf_file->file.name.data;
    p->line = cf->conf_file->line;

    *path = p;

    if (ngx_add_path(cf, path) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_agentlocator_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_loc_conf_t *alcf = conf;

    if (alcf->status) {
        return "is duplicate";
    }

    alcf->status = 1;

    return ngx_agentlocator_set_handler(cf, alcf,
                                        ngx_agentlocator_status_handler);
}


/*
 * agentlocator_metrics: Prometheus's text format of the whole nginx (all
 * workers); its shared zone is made with the first such location.
 */

static char *
ngx_agentlocator_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_agentlocator_loc_conf_t *alcf = conf;

    ngx_agentlocator_main_conf_t  *amcf;

    if (alcf->metrics) {
        return "is duplicate";
    }

    alcf->metrics = 1;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_agentlocator_module);

    if (ngx_agentlocator_metrics_zone(cf, amcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_agentlocator_set_handler(cf, alcf,
                                        ngx_agentlocator_metrics_handler);
}


/* agentlocator_postgres CONNINFO [pool=N] (ngx_agentlocator_pg.c) */

static char *
ngx_agentlocator_postgres(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_agentlocator_pg_conf(cf, conf);
}


/* agentlocator_spool PATH [fsync=...] [journal_size=...] (_spool.c) */

static char *
ngx_agentlocator_spool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_agentlocator_spool_conf(cf, conf);
}


/* A secret directive: literal, env:NAME or file:/path (see secret.c). */

static char *
ngx_agentlocator_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t   *field, *value;
    const char  *err;

    field = (ngx_str_t *) ((u_char *) conf + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    err = ngx_agentlocator_secret_load(cf, &value[1], field);

    if (err) {
        /* the value itself may be the secret: name only its source */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" %s%s%s",
                           &cmd->name, err,
                           value[1].len > 4
                           && ngx_strncmp(value[1].data, "env:", 4) == 0
                           ? ": " : "",
                           value[1].len > 4
                           && ngx_strncmp(value[1].data, "env:", 4) == 0
                           ? (char *) value[1].data : "");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* One content handler per location; remember where it was declared. */

static char *
ngx_agentlocator_set_handler(ngx_conf_t *cf,
    ngx_agentlocator_loc_conf_t *alcf, ngx_http_handler_pt handler)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "conflicts with another content handler in this location";
    }

    clcf->handler = handler;

    alcf->conf_file = cf->conf_file->file.name.data;
    alcf->conf_line = cf->conf_file->line;

    return NGX_CONF_OK;
}
