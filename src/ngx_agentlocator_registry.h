
/*
 * Between the registry's two files only: ngx_agentlocator_registry.c keeps
 * the zone's structures (table, index, deadline tree, queues, repair);
 * ngx_agentlocator_call_state.c decides what a call's state, deadline and
 * eviction queue are, and calls these under the zone's lock.
 */


#ifndef _NGX_AGENTLOCATOR_REGISTRY_H_INCLUDED_
#define _NGX_AGENTLOCATOR_REGISTRY_H_INCLUDED_


#include "ngx_agentlocator.h"


/* the eviction queue an entry is in (ngx_agentlocator_registry_queue) */
typedef enum {
    NGX_AGENTLOCATOR_QUEUE_NONE = 0,      /* live: never evicted */
    NGX_AGENTLOCATOR_QUEUE_FINISHED,      /* the watchdog is done with it */
    NGX_AGENTLOCATOR_QUEUE_COMPLETED      /* a final call_status came */
} ngx_agentlocator_queue_e;


void ngx_agentlocator_registry_lock(ngx_agentlocator_registry_t *reg);
void ngx_agentlocator_registry_unlock(ngx_agentlocator_registry_t *reg);
ngx_agentlocator_call_t *ngx_agentlocator_registry_lookup(
    ngx_agentlocator_registry_sh_t *sh, ngx_agentlocator_call_ref_t *ref);
ngx_agentlocator_call_t *ngx_agentlocator_registry_lock_call(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_call_ref_t *ref);
ngx_agentlocator_call_t *ngx_agentlocator_registry_new(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_agentlocator_call_ref_t *ref, ngx_msec_t due, ngx_msec_t now);
void ngx_agentlocator_registry_insert(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call);
void ngx_agentlocator_registry_free(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_t *call);
ngx_uint_t ngx_agentlocator_registry_ended(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_ref_t *ref);
void ngx_agentlocator_registry_refile(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call, ngx_msec_t due);
void ngx_agentlocator_registry_touch(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call, ngx_msec_t now);
void ngx_agentlocator_registry_queue(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_t *call, ngx_uint_t queue);


#define ngx_agentlocator_call_of(n, field)                                    \
    ((ngx_agentlocator_call_t *) ((u_char *) (n)                             \
                                  - offsetof(ngx_agentlocator_call_t, field)))


#endif /* _NGX_AGENTLOCATOR_REGISTRY_H_INCLUDED_ */
