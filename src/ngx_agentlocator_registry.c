
/*
 * The call registry: the agentlocator_zone shared by every worker.  This file
 * owns the zone's lifecycle (declaration, the three init branches, usage
 * figures); the per-call entries are added on top of the same shctx.
 */


#include "ngx_agentlocator.h"


static ngx_int_t ngx_agentlocator_registry_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


char *
ngx_agentlocator_registry_zone(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf, ngx_str_t *name, ngx_str_t *size)
{
    ssize_t                       n;
    ngx_shm_zone_t               *shm_zone;
    ngx_agentlocator_registry_t  *reg;

    if (amcf->shm_zone) {
        return "is duplicate: only one agentlocator_zone may be declared";
    }

    if (name->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentlocator_zone needs a name");
        return NGX_CONF_ERROR;
    }

    n = ngx_parse_size(size);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agentlocator_zone size \"%V\"", size);
        return NGX_CONF_ERROR;
    }

    if (n < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentlocator_zone \"%V\" is too small: \"%V\", "
                           "the minimum is %uzk", name, size,
                           8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    reg = ngx_pcalloc(cf->pool, sizeof(ngx_agentlocator_registry_t));
    if (reg == NULL) {
        return NGX_CONF_ERROR;
    }

    reg->name = *name;
    reg->size = n;

    shm_zone = ngx_shared_memory_add(cf, name, n,
                                     &ngx_http_agentlocator_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentlocator_zone \"%V\" is already declared",
                           name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_agentlocator_registry_init_zone;
    shm_zone->data = reg;

    amcf->shm_zone = shm_zone;

    return NGX_CONF_OK;
}


/*
 * nginx reuses a zone across reload only when name, size and tag match; then
 * "data" is the previous cycle's registry and the calls in it live on.  A
 * size change gives a new, empty zone (documented in the README).
 */

static ngx_int_t
ngx_agentlocator_registry_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_agentlocator_registry_t  *oreg = data;

    size_t                        len;
    ngx_agentlocator_registry_t  *reg;

    reg = shm_zone->data;

    if (oreg) {
        if (oreg->sh->layout != NGX_AGENTLOCATOR_REGISTRY_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "agentlocator_zone \"%V\" was created by an "
                          "incompatible module version; give it a new name "
                          "or size to start with an empty registry",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        reg->sh = oreg->sh;
        reg->shpool = oreg->shpool;

        return NGX_OK;
    }

    reg->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        reg->sh = reg->shpool->data;

        return NGX_OK;
    }

    reg->sh = ngx_slab_calloc(reg->shpool,
                              sizeof(ngx_agentlocator_registry_sh_t));
    if (reg->sh == NULL) {
        return NGX_ERROR;
    }

    reg->shpool->data = reg->sh;

    ngx_rbtree_init(&reg->sh->rbtree, &reg->sh->sentinel,
                    ngx_rbtree_insert_value);

    ngx_queue_init(&reg->sh->lru);

    reg->sh->layout = NGX_AGENTLOCATOR_REGISTRY_LAYOUT;

    len = sizeof(" in agentlocator_zone \"\"") + shm_zone->shm.name.len;

    reg->shpool->log_ctx = ngx_slab_alloc(reg->shpool, len);
    if (reg->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(reg->shpool->log_ctx, " in agentlocator_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full registry is reported once per event by our own ZONE_FULL line */
    reg->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_agentlocator_registry_t *
ngx_agentlocator_registry_get(ngx_agentlocator_main_conf_t *amcf)
{
    ngx_agentlocator_registry_t  *reg;

    if (amcf == NULL || amcf->shm_zone == NULL) {
        return NULL;
    }

    reg = amcf->shm_zone->data;

    return reg->sh ? reg : NULL;
}


void
ngx_agentlocator_registry_usage(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_registry_usage_t *usage)
{
    ngx_slab_pool_t  *shpool;

    shpool = reg->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    usage->entries = reg->sh->entries;
    usage->pages_free = shpool->pfree;

    ngx_shmtx_unlock(&shpool->mutex);

    usage->size = reg->size;
    usage->pages_total = (shpool->end - shpool->start) / ngx_pagesize;
}
