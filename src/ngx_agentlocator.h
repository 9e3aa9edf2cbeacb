
/*
 * AgentLocator: the types the module's files pass to each other, and the
 * functions each src/ file offers the glue in ngx_agentlocator_module.c.
 */


#ifndef _NGX_AGENTLOCATOR_H_INCLUDED_
#define _NGX_AGENTLOCATOR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_AGENTLOCATOR_MODULE_NAME  "ngx_http_agentlocator_module"
#define NGX_AGENTLOCATOR_VERSION      "0.1.0"


/* The registry lives in the agentlocator_zone; every worker maps it. */

#define NGX_AGENTLOCATOR_REGISTRY_LAYOUT  0x414c0001   /* "AL", layout 1 */


typedef struct {
    uint32_t                      layout;
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   lru;
    ngx_uint_t                    entries;
} ngx_agentlocator_registry_sh_t;


typedef struct {
    ngx_agentlocator_registry_sh_t  *sh;
    ngx_slab_pool_t                 *shpool;
    ngx_str_t                        name;
    size_t                           size;
} ngx_agentlocator_registry_t;


typedef struct {
    ngx_shm_zone_t               *shm_zone;     /* NULL: no agentlocator_zone */
} ngx_agentlocator_main_conf_t;


/* agentlocator_public_url, split once at configuration time. */

typedef struct {
    ngx_str_t                     url;          /* normalised, no trailing / */
    ngx_str_t                     scheme;       /* "http" or "https" */
    ngx_str_t                     host;         /* host[:port] as configured */
    ngx_str_t                     path;         /* "" or "/prefix" */
} ngx_agentlocator_public_url_t;


typedef struct {
    ngx_agentlocator_public_url_t  *public_url;  /* NULL: not configured */
} ngx_agentlocator_srv_conf_t;


typedef enum {
    NGX_AGENTLOCATOR_HEALTH_NONE = 0,
    NGX_AGENTLOCATOR_HEALTH_LIVE,
    NGX_AGENTLOCATOR_HEALTH_READY,
    NGX_AGENTLOCATOR_HEALTH_VERSION
} ngx_agentlocator_health_e;


typedef struct {
    ngx_uint_t                    health;       /* ngx_agentlocator_health_e */
} ngx_agentlocator_loc_conf_t;


extern ngx_module_t  ngx_http_agentlocator_module;


/* ngx_agentlocator_public_url.c */
const char *ngx_agentlocator_public_url_parse(ngx_pool_t *pool,
    ngx_str_t *value, ngx_agentlocator_public_url_t *url);

/* ngx_agentlocator_registry.c */
char *ngx_agentlocator_registry_zone(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf, ngx_str_t *name, ngx_str_t *size);
ngx_agentlocator_registry_t *ngx_agentlocator_registry_get(
    ngx_agentlocator_main_conf_t *amcf);

typedef struct {
    ngx_uint_t                    entries;
    size_t                        size;
    ngx_uint_t                    pages_total;
    ngx_uint_t                    pages_free;
} ngx_agentlocator_registry_usage_t;

void ngx_agentlocator_registry_usage(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_registry_usage_t *usage);

/* ngx_agentlocator_reply.c */
ngx_int_t ngx_agentlocator_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_str_t *body);
ngx_int_t ngx_agentlocator_reply_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *reason);
ngx_int_t ngx_agentlocator_allow_methods(ngx_http_request_t *r,
    ngx_uint_t methods, const char *allow);
u_char *ngx_agentlocator_json_escape(u_char *dst, ngx_str_t *src);
size_t ngx_agentlocator_json_escape_len(ngx_str_t *src);

/* ngx_agentlocator_health.c */
ngx_int_t ngx_agentlocator_health_handler(ngx_http_request_t *r);


#endif /* _NGX_AGENTLOCATOR_H_INCLUDED_ */
