
/*
 * The media streams open now, for /status: one counter per worker process
 * in the registry zone, found by its pid, summed over the processes that
 * are alive.  A single counter would keep forever the streams of a worker
 * that was killed with streams open (they never close in that worker);
 * here its slot stops counting the moment its pid is gone, and the next
 * worker that needs a slot takes it over, zeroed.
 */


#include "ngx_agentlocator.h"


static ngx_uint_t ngx_agentlocator_stream_count_alive(ngx_pid_t pid);


/*
 * This process's counter; with every slot held by a live process (more
 * than NGX_AGENTLOCATOR_STREAM_SLOTS of them, as in a storm of reloads
 * with streams draining), the shared spare, which is exact until a process
 * holding a count in it dies.
 */

ngx_atomic_t *
ngx_agentlocator_stream_count_mine(ngx_agentlocator_registry_sh_t *sh)
{
    ngx_uint_t                       i;
    ngx_atomic_uint_t                pid;
    ngx_agentlocator_stream_slot_t  *slot;

    for (i = 0; i < NGX_AGENTLOCATOR_STREAM_SLOTS; i++) {
        if (sh->stream_slot[i].pid == (ngx_atomic_uint_t) ngx_pid) {
            return &sh->stream_slot[i].open;
        }
    }

    for (i = 0; i < NGX_AGENTLOCATOR_STREAM_SLOTS; i++) {
        slot = &sh->stream_slot[i];
        pid = slot->pid;

        if (pid && ngx_agentlocator_stream_count_alive((ngx_pid_t) pid)) {
            continue;
        }

        if (ngx_atomic_cmp_set(&slot->pid, pid, (ngx_atomic_uint_t) ngx_pid))
        {
            /* the streams a dead process counted died with it */
            slot->open = 0;
            return &slot->open;
        }
    }

    return &sh->stream_spare;
}


ngx_atomic_uint_t
ngx_agentlocator_stream_count_open(ngx_agentlocator_registry_sh_t *sh)
{
    ngx_uint_t          i;
    ngx_atomic_uint_t   pid, sum;

    sum = sh->stream_spare;

    for (i = 0; i < NGX_AGENTLOCATOR_STREAM_SLOTS; i++) {
        pid = sh->stream_slot[i].pid;

        if (pid && sh->stream_slot[i].open
            && ngx_agentlocator_stream_count_alive((ngx_pid_t) pid))
        {
            sum += sh->stream_slot[i].open;
        }
    }

    /* a decrement in the spare can run ahead of its increment's reader */
    return (ngx_atomic_int_t) sum < 0 ? 0 : sum;
}


static ngx_uint_t
ngx_agentlocator_stream_count_alive(ngx_pid_t pid)
{
    /* EPERM: alive, another user's (a worker of an older user setting) */
    return kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH;
}
