
/*
 * AgentLocator: the types the module's files pass to each other, and the
 * functions each src/ file offers the glue in ngx_agentlocator_module.c.
 */


#ifndef _NGX_AGENTLOCATOR_H_INCLUDED_
#define _NGX_AGENTLOCATOR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

/*
 * OpenSSL's SHA_CTX is a plain struct: a key's padded blocks are hashed
 * once and the state copied per signature, and its SHA-1 uses the CPU's
 * SHA instructions.  OpenSSL 3 calls these functions deprecated (nginx
 * itself still uses them the same way).
 */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif
#include <openssl/sha.h>
#include "ngx_agentlocator_siphash.h"
#include "ngx_agentlocator_valid.h"
#include "ngx_agentlocator_form_codec.h"
#include "ngx_agentlocator_twilio_sig.h"
#include "ngx_agentlocator_api_args.h"
#include "ngx_agentlocator_wa_body.h"
#include "ngx_agentlocator_upgrade_req.h"


#define NGX_AGENTLOCATOR_MODULE_NAME  "ngx_http_agentlocator_module"
#define NGX_AGENTLOCATOR_VERSION      "0.1.0"


/*
 * The registry lives in the agentlocator_zone; every worker maps it.  One
 * entry per call, slab-allocated, found by CallSid through "index" (open
 * addressing on the CallSid's hash: a lookup touches two or three cache
 * lines where a tree of 100,000 calls touched twenty), ordered by its next
 * due time in the "deadlines" rbtree (watchdog, expiry), by last activity
 * in "lru" (/status), and, once the watchdog is done with it, in one of
 * the eviction queues "completed" and "finished".  "table" holds every
 * entry once, each in a slot of its own: it is what the index, the tree
 * and the queues are rebuilt from when a worker died in the middle of
 * changing them.
 */

#define NGX_AGENTLOCATOR_REGISTRY_LAYOUT  0x414c0006   /* "AL", layout 6 */
#define NGX_AGENTLOCATOR_CALL_MAGIC       0x43414c4c   /* "CALL" */

/* NGX_AGENTLOCATOR_SID_LEN, 34 ("CA" + 32 hex): ngx_agentlocator_valid.h */
#define NGX_AGENTLOCATOR_PARTY_LEN        64           /* From, To */
#define NGX_AGENTLOCATOR_CALL_STATUS_LEN  16
/* NGX_AGENTLOCATOR_STREAM_TOKEN_LEN, 32: ngx_agentlocator_upgrade_req.h */

/*
 * A stream's media counters and last media time reach the zone at most
 * this long after the frame, so the zone's last media time is never more
 * than this older than the stream's own: the watchdog adds it to the
 * deadline of a stream whose worker has not confirmed the silence itself.
 */
#define NGX_AGENTLOCATOR_MEDIA_FLUSH      200


typedef enum {
    NGX_AGENTLOCATOR_CALL_ARMED = 1,      /* no stream yet */
    NGX_AGENTLOCATOR_CALL_STREAMING,
    NGX_AGENTLOCATOR_CALL_STOPPED,        /* the stream ended with "stop" */
    NGX_AGENTLOCATOR_CALL_REDIRECTING,
    NGX_AGENTLOCATOR_CALL_REDIRECTED,
    NGX_AGENTLOCATOR_CALL_COMPLETED,      /* a final call_status */
    NGX_AGENTLOCATOR_CALL_DROPPED,        /* the stream ended without it */
    NGX_AGENTLOCATOR_CALL_FALLBACK        /* stream_ended served it */
} ngx_agentlocator_call_state_e;


typedef enum {
    NGX_AGENTLOCATOR_REASON_NONE = 0,
    NGX_AGENTLOCATOR_REASON_NO_STREAM_START,
    NGX_AGENTLOCATOR_REASON_NO_MEDIA,
    NGX_AGENTLOCATOR_REASON_STREAM_DROPPED
} ngx_agentlocator_reason_e;


typedef enum {
    NGX_AGENTLOCATOR_REDIRECT_NONE = 0,
    NGX_AGENTLOCATOR_REDIRECT_PENDING,
    NGX_AGENTLOCATOR_REDIRECT_DONE,
    NGX_AGENTLOCATOR_REDIRECT_GAVE_UP,
    NGX_AGENTLOCATOR_REDIRECT_CANCELLED   /* the fallback was served first */
} ngx_agentlocator_redirect_outcome_e;


typedef struct {
    ngx_rbtree_node_t             deadline;     /* key: due, ms */
    ngx_queue_t                   lru;
    ngx_queue_t                   done;         /* in an eviction queue */

    uint32_t                      magic;
    uint32_t                      slot;         /* in sh->table */
    uint32_t                      hash;         /* keyed, of call_sid */

    ngx_msec_t                    created;      /* monotonic ms */
    time_t                        created_at;   /* wall clock, s */
    ngx_msec_t                    updated;      /* last webhook or event */
    ngx_msec_t                    stream_start;
    ngx_msec_t                    last_media;
    ngx_msec_t                    completed;
    ngx_msec_t                    lease_until;  /* watchdog claim */

    uint64_t                      frames;
    uint64_t                      bytes;

    ngx_pid_t                     claimant;
    ngx_pid_t                     stream_pid;   /* the live stream's worker */
    uint32_t                      stream_id;    /* its connection number */
    uint16_t                      redirect_status;
    uint16_t                      redirect_attempts;

    uint8_t                       state;        /* _call_state_e */
    uint8_t                       redirect_outcome;
    uint8_t                       redirect_reason;  /* _reason_e */
    uint8_t                       in_deadlines:1;
    uint8_t                       done_queue:2; /* which one, if any */
    uint8_t                       stream_error:1;
    uint8_t                       recording:1;
    uint8_t                       silent:1;     /* confirmed by the stream */
    uint8_t                       ended_waiting:1;  /* stream_ended waits */

    uint8_t                       from_len;
    uint8_t                       to_len;
    uint8_t                       call_status_len;

    u_char                        call_sid[NGX_AGENTLOCATOR_SID_LEN];
    u_char                        stream_sid[NGX_AGENTLOCATOR_SID_LEN];
    u_char                        account_sid[NGX_AGENTLOCATOR_SID_LEN];
    u_char                        from[NGX_AGENTLOCATOR_PARTY_LEN];
    u_char                        to[NGX_AGENTLOCATOR_PARTY_LEN];
    u_char                        call_status[NGX_AGENTLOCATOR_CALL_STATUS_LEN];
} ngx_agentlocator_call_t;


/*
 * A process's count of its open media streams; "pid" 0 = free.  Enough
 * slots for the workers of several reloads draining streams at once.
 */

#define NGX_AGENTLOCATOR_STREAM_SLOTS     64

typedef struct {
    ngx_atomic_t                  pid;
    ngx_atomic_t                  open;
} ngx_agentlocator_stream_slot_t;


typedef struct {
    uint32_t                      layout;
    ngx_pid_t                     changing;     /* pid inside a tree change */

    /* chosen at random when the zone is created; never leaves it */
    u_char                        hash_key[NGX_AGENTLOCATOR_SIPHASH_KEY_LEN];

    /*
     * Calls that have left the table, for stale_after: 8-way sets of
     * words, each a 48-bit tag of the keyed hash and the minute it left
     * (ngx_agentlocator_registry_ended_*), 0 = empty.
     */
    uint64_t                     *ended;
    ngx_uint_t                    ended_sets_mask;

    ngx_agentlocator_call_t     **index;        /* by hash, NULL = empty */
    ngx_uint_t                    index_mask;   /* size - 1, a power of 2 */

    ngx_rbtree_t                  deadlines;
    ngx_rbtree_node_t             deadlines_sentinel;
    ngx_queue_t                   lru;

    /* what may be evicted when the zone is full, oldest first at the tail */
    ngx_queue_t                   completed;    /* a final call_status */
    ngx_queue_t                   finished;     /* stopped, redirected, ... */

    ngx_agentlocator_call_t     **table;
    ngx_uint_t                    table_size;
    ngx_uint_t                    table_hint;

    ngx_uint_t                    entries;

    /* media stream counters, for the metrics endpoint (atomic, no lock) */
    ngx_atomic_t                  ws_accepted;
    ngx_atomic_t                  ws_frames;
    ngx_atomic_t                  ws_bytes;
    ngx_atomic_t                  ws_bad_messages;
    ngx_atomic_t                  ws_protocol_errors;

    ngx_uint_t                    full;         /* ZONE_FULL events */
    ngx_uint_t                    evicted;
    ngx_uint_t                    expired;
    ngx_uint_t                    repaired;
    ngx_uint_t                    ended_forgotten;  /* before stale_after */
    ngx_uint_t                    replays;      /* incoming_call refused */

    /* streams open now, by process (ngx_agentlocator_stream_count.c) */
    ngx_agentlocator_stream_slot_t  stream_slot[NGX_AGENTLOCATOR_STREAM_SLOTS];
    ngx_atomic_t                  stream_spare;
} ngx_agentlocator_registry_sh_t;


typedef struct {
    ngx_agentlocator_registry_sh_t  *sh;
    ngx_slab_pool_t                 *shpool;
    ngx_str_t                        name;
    size_t                           size;
} ngx_agentlocator_registry_t;


/* How long each state may last before the registry calls it due. */

typedef struct {
    ngx_msec_t                    start_timeout;
    ngx_msec_t                    no_media_timeout;
    ngx_msec_t                    completed_grace;
    ngx_msec_t                    stale_after;
    ngx_msec_t                    interval;     /* watchdog tick */
    ngx_msec_t                    lease;        /* a claim's validity */
    ngx_msec_t                    rest_timeout; /* one REST attempt */
    ngx_uint_t                    attempts;     /* REST attempts per call */
} ngx_agentlocator_timeouts_t;


/*
 * A call the watchdog claimed, copied out of the zone; or, "exhausted",
 * one it gave up on because its attempts ran out (nothing to send).
 */

typedef struct {
    u_char                        call_sid[NGX_AGENTLOCATOR_SID_LEN];
    u_char                        account_sid[NGX_AGENTLOCATOR_SID_LEN];
    ngx_uint_t                    attempt;
    ngx_uint_t                    reason;       /* _reason_e */
    ngx_msec_t                    due;          /* the deadline it met */
    unsigned                      takeover:1;   /* a dead claimant's */
    unsigned                      exhausted:1;
} ngx_agentlocator_claim_t;


/* What stream_ended answers. */

typedef enum {
    NGX_AGENTLOCATOR_ENDED_FALLBACK = 0,  /* the call gets the fallback */
    NGX_AGENTLOCATOR_ENDED_EMPTY,         /* a redirect landed: <Response/> */
    NGX_AGENTLOCATOR_ENDED_WAIT           /* a redirect is in flight */
} ngx_agentlocator_ended_e;


/* Why a stream may not take its call (ngx_agentlocator_registry_stream_attach). */

typedef enum {
    NGX_AGENTLOCATOR_REFUSE_NONE = 0,
    NGX_AGENTLOCATOR_REFUSE_UNKNOWN,      /* no incoming_call registered it */
    NGX_AGENTLOCATOR_REFUSE_LIVE,         /* another stream holds it */
    NGX_AGENTLOCATOR_REFUSE_ENDED,        /* the call has moved on */
    NGX_AGENTLOCATOR_REFUSE_ACCOUNT       /* accountSid is not the call's */
} ngx_agentlocator_refusal_e;


/*
 * A call as every registry function that finds one by CallSid takes it:
 * the CallSid, already checked by the caller (ngx_agentlocator_valid_sid,
 * "CA" and 32 hex digits: the registry reads and hashes 34 bytes and
 * checks nothing), and its keyed hash from ngx_agentlocator_registry_ref(),
 * made once per request or stream however many registry calls follow.
 */

typedef struct {
    ngx_str_t                     sid;
    uint64_t                      hash;
} ngx_agentlocator_call_ref_t;


/* Who holds a call's live stream: a worker and its connection there. */

typedef struct {
    ngx_pid_t                     pid;
    uint32_t                      id;
} ngx_agentlocator_stream_ref_t;


/* A live stream's report (ngx_agentlocator_registry_stream_update). */

typedef enum {
    NGX_AGENTLOCATOR_STREAM_MEDIA = 0,    /* periodic: counters, last media */
    NGX_AGENTLOCATOR_STREAM_SILENT,       /* its own timer saw silence */
    NGX_AGENTLOCATOR_STREAM_STOP,         /* Twilio's "stop" */
    NGX_AGENTLOCATOR_STREAM_CLOSED,       /* the connection ended after it */
    NGX_AGENTLOCATOR_STREAM_DROPPED       /* ... without it */
} ngx_agentlocator_stream_event_e;


typedef struct {
    uint64_t                      frames;       /* since the last report */
    uint64_t                      bytes;
    ngx_msec_t                    last;         /* last media, 0: none */
} ngx_agentlocator_stream_media_t;


/* What became of one REST attempt. */

typedef enum {
    NGX_AGENTLOCATOR_ATTEMPT_DONE = 0,    /* redirected */
    NGX_AGENTLOCATOR_ATTEMPT_RETRY,       /* again at retry_at */
    NGX_AGENTLOCATOR_ATTEMPT_GONE,        /* the call is over (21220) */
    NGX_AGENTLOCATOR_ATTEMPT_GIVE_UP      /* refused, or out of attempts */
} ngx_agentlocator_attempt_e;


typedef struct ngx_agentlocator_transcribe_s  ngx_agentlocator_transcribe_t;


typedef struct {
    ngx_shm_zone_t               *shm_zone;     /* NULL: no agentlocator_zone */
    ngx_shm_zone_t               *metrics_zone; /* NULL: no /metrics */
    ngx_agentlocator_timeouts_t   timeouts;
    ngx_str_t                     account_sid;
    ngx_str_t                     auth_token;
    ngx_agentlocator_hmac_t       auth_key;     /* of auth_token */
    ngx_str_t                     api_url;      /* Twilio REST base */
    ngx_flag_t                    watchdog;     /* set: "off" to disable */

    /* the server whose fallback TwiML the watchdog sends */
    struct ngx_agentlocator_srv_conf_s  *watchdog_srv;
    ngx_path_t                   *recordings;   /* NULL: not kept */
    ngx_str_t                     pg_conninfo;  /* empty: no CRM */
    char                        **pg_keywords;  /* for PQconnectStartParams */
    char                        **pg_values;
    ngx_msec_t                    pg_connect_timeout;  /* 0: the default */
    ngx_uint_t                    pg_pool;      /* connections per worker */
    ngx_path_t                   *spool;        /* NULL: no spool */
    ngx_uint_t                    spool_fsync;
    off_t                         spool_journal;  /* rotate past this */

    ngx_str_t                     baileys_url;  /* empty: no bridge */
    ngx_str_t                     baileys_secret;
    ngx_str_t                     baileys_number;  /* E.164, or empty */
    ngx_str_t                     jwt_secret;   /* empty: no API */
    void                         *jwt_key;      /* _jwt_key_t, of it */

    /* agentlocator_whatsapp_send: the providers, in the order tried */
    ngx_uint_t                    wa_providers[2];
    ngx_uint_t                    wa_nproviders;
    ngx_str_t                     wa_from;      /* Twilio's sender, E.164 */
    ngx_str_t                     wa_status_callback;
    ngx_msec_t                    wa_timeout;   /* one provider's attempt */

    ngx_agentlocator_transcribe_t  *transcribe; /* NULL: no transcripts */
} ngx_agentlocator_main_conf_t;


#define NGX_AGENTLOCATOR_WA_PROVIDER_TWILIO   1
#define NGX_AGENTLOCATOR_WA_PROVIDER_BAILEYS  2


#define NGX_AGENTLOCATOR_SPOOL_FSYNC_OFF       0
#define NGX_AGENTLOCATOR_SPOOL_FSYNC_INTERVAL  1
#define NGX_AGENTLOCATOR_SPOOL_FSYNC_ALWAYS    2


/* The spool as this worker sees it (/readyz). */

typedef struct {
    ngx_uint_t                    on;
    ngx_uint_t                    files;        /* journals with writes */
    off_t                         bytes;        /* in them */
    off_t                         unread;       /* not in memory yet */
    ngx_uint_t                    write_failed; /* could not append */
    ngx_uint_t                    torn;         /* damaged records skipped */
    ngx_uint_t                    adopted;      /* journals taken over */
    ngx_uint_t                    replayed;     /* writes read back */
} ngx_agentlocator_spool_status_t;


/* The CRM database as this worker sees it (/readyz, /metrics). */

/* a connection's states (ngx_agentlocator_pg_state_name) */
#define NGX_AGENTLOCATOR_PG_STATES  6

typedef struct {
    const char                   *state;        /* off|down|old_schema|ok */
    ngx_int_t                     schema;       /* -1: not read yet */
    ngx_uint_t                    needed;
    ngx_uint_t                    connected;
    ngx_uint_t                    pool;
    ngx_uint_t                    by_state[NGX_AGENTLOCATOR_PG_STATES];
    ngx_uint_t                    queued;       /* writes waiting */
    ngx_uint_t                    reads;        /* reads waiting */
    ngx_uint_t                    in_flight;    /* sent, not answered */
    ngx_uint_t                    done;
    ngx_uint_t                    failed;       /* refused by the database */
    ngx_uint_t                    dropped;      /* no room in the queue */
} ngx_agentlocator_pg_status_t;


/* agentlocator_public_url, split once at configuration time. */

typedef struct {
    ngx_str_t                     url;          /* normalised, no trailing / */
    ngx_str_t                     scheme;       /* "http" or "https" */
    ngx_str_t                     host;         /* host[:port] as configured */
    ngx_str_t                     path;         /* "" or "/prefix" */
} ngx_agentlocator_public_url_t;


typedef struct ngx_agentlocator_srv_conf_s {
    ngx_agentlocator_public_url_t  *public_url;  /* NULL: not configured */
    ngx_str_t                       greeting;    /* absolute URL or empty */
    ngx_str_t                       fallback_prompt;
    ngx_str_t                       fallback_twiml;  /* built at merge */
    /* incoming_call's TwiML around the stream URL's end and the CallSid */
    ngx_str_t                       connect_head;
    ngx_str_t                       connect_mid;
    ngx_str_t                       connect_tail;
} ngx_agentlocator_srv_conf_t;


typedef enum {
    NGX_AGENTLOCATOR_HEALTH_NONE = 0,
    NGX_AGENTLOCATOR_HEALTH_LIVE,
    NGX_AGENTLOCATOR_HEALTH_READY,
    NGX_AGENTLOCATOR_HEALTH_VERSION
} ngx_agentlocator_health_e;


typedef enum {
    NGX_AGENTLOCATOR_VOICE_NONE = 0,
    NGX_AGENTLOCATOR_VOICE_INCOMING_CALL,
    NGX_AGENTLOCATOR_VOICE_STREAM_STATUS,
    NGX_AGENTLOCATOR_VOICE_STREAM_ENDED,
    NGX_AGENTLOCATOR_VOICE_HANDLE_RECORDING,
    NGX_AGENTLOCATOR_VOICE_CALL_STATUS
} ngx_agentlocator_voice_e;


typedef enum {
    NGX_AGENTLOCATOR_WA_NONE = 0,
    NGX_AGENTLOCATOR_WA_TWILIO,
    NGX_AGENTLOCATOR_WA_TWILIO_STATUS,
    NGX_AGENTLOCATOR_WA_BAILEYS
} ngx_agentlocator_whatsapp_e;


typedef struct {
    ngx_uint_t                    health;       /* ngx_agentlocator_health_e */
    ngx_uint_t                    voice;        /* ngx_agentlocator_voice_e */
    ngx_uint_t                    whatsapp;     /* _whatsapp_e */
    ngx_flag_t                    api;
    ngx_flag_t                    status;
    ngx_flag_t                    metrics;
    ngx_flag_t                    signature;
    size_t                        max_body;
    ngx_msec_t                    body_timeout; /* the whole body; 0: off */

    ngx_uint_t                    media;        /* 1 stream, 2 echo */
    ngx_flag_t                    media_plain_url;
    size_t                        media_max_message;
    size_t                        media_send_buffer;
    ngx_msec_t                    media_idle_timeout;
    ngx_array_t                  *media_subprotocols;  /* of ngx_str_t */

    /* where the handler was declared, for errors found at merge time */
    u_char                       *conf_file;
    ngx_uint_t                    conf_line;
} ngx_agentlocator_loc_conf_t;


/*
 * A decoded application/x-www-form-urlencoded body: its types, its parser
 * and NGX_AGENTLOCATOR_FORM_MAX_PARAMS are ngx_agentlocator_form_codec.h's.
 */

#define NGX_AGENTLOCATOR_FORM_TYPE        "application/x-www-form-urlencoded"


/* A CRM statement: its name (in the log and the spool) and its SQL. */

typedef struct {
    const char                   *name;
    const char                   *sql;
    ngx_uint_t                    nparams;
} ngx_agentlocator_crm_statement_t;


/*
 * One event of a call's timeline for the CRM (ngx_agentlocator_crm.c);
 * what is zero or NULL is not part of it.
 */

#define NGX_AGENTLOCATOR_CRM_KEY_LEN  128

typedef struct {
    u_char                       *call_sid;     /* SID_LEN bytes */
    const char                   *event;        /* "stream_start", ... */
    ngx_str_t                     reason;
    ngx_str_t                     key;          /* one of several per call */
    u_char                       *stream_sid;   /* SID_LEN bytes */
    int64_t                       frames;       /* < 0: none */
    const char                   *redirect_reason;
    const char                   *redirect_outcome;
    ngx_uint_t                    attempt;
    ngx_uint_t                    http_status;
    ngx_uint_t                    code;         /* Twilio's error code */
    unsigned                      fallback:1;   /* the call got the fallback */
} ngx_agentlocator_crm_event_t;


/*
 * A WhatsApp message for the CRM: inbound (the sender is "peer") or
 * outbound (to "peer", named by the module's "local_id" until a provider
 * gives it an id).  Empty is none.
 */

typedef struct {
    const char                   *provider;     /* "twilio", "baileys" */
    ngx_str_t                     msg_id;       /* the provider's */
    ngx_str_t                     local_id;     /* outbound: ours */
    ngx_str_t                     business_number;  /* E.164: "To" */
    ngx_str_t                     peer;         /* E.164 */
    ngx_str_t                     name;         /* the sender's profile */
    ngx_str_t                     body;
    ngx_str_t                     media;        /* JSON array */
    ngx_str_t                     error_code;
    ngx_str_t                     error_message;
} ngx_agentlocator_crm_message_t;


/* What a webhook tells the registry about a call. */

typedef struct {
    ngx_agentlocator_call_ref_t   call;
    ngx_str_t                     account_sid;
    ngx_str_t                     from;
    ngx_str_t                     to;
} ngx_agentlocator_call_info_t;


typedef struct {
    ngx_uint_t                    entries;
    ngx_uint_t                    capacity;     /* entries that would fit */
    size_t                        size;
    size_t                        entry_bytes;  /* zone bytes per call */
    ngx_uint_t                    pages_total;
    ngx_uint_t                    pages_free;
    ngx_uint_t                    full;
    ngx_uint_t                    evicted;
    ngx_uint_t                    expired;
    ngx_uint_t                    repaired;
    ngx_uint_t                    ended_capacity;   /* calls remembered */
    ngx_uint_t                    ended_forgotten;
    ngx_uint_t                    replays;
} ngx_agentlocator_registry_usage_t;


extern ngx_module_t  ngx_http_agentlocator_module;

/*
 * Set once worker_shutdown_timeout has cut this exiting worker's
 * connections: it starts nothing new that would keep it alive.
 */
extern ngx_uint_t    ngx_agentlocator_worker_cut;


/* ngx_agentlocator_module.c */
char *ngx_agentlocator_conf_path(ngx_conf_t *cf, ngx_str_t *name,
    ngx_path_t **path);

/* ngx_agentlocator_public_url.c */
const char *ngx_agentlocator_public_url_parse(ngx_pool_t *pool,
    ngx_str_t *value, ngx_agentlocator_public_url_t *url);

/* ngx_agentlocator_pg.c */
char *ngx_agentlocator_pg_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf);
ngx_int_t ngx_agentlocator_pg_init_worker(ngx_cycle_t *cycle);
void ngx_agentlocator_pg_exit_worker(void);
void ngx_agentlocator_pg_status(ngx_agentlocator_pg_status_t *st);
const char *ngx_agentlocator_pg_state_name(ngx_uint_t state);
#define NGX_AGENTLOCATOR_PG_MAX_PARAMS  16
ngx_int_t ngx_agentlocator_pg_write(ngx_agentlocator_crm_statement_t *st,
    ngx_uint_t n, ngx_str_t *params);

/*
 * A read: statements sent together, answered together (their PGresults,
 * "struct pg_result" in libpq-fe.h, valid until "done" returns).
 */
#define NGX_AGENTLOCATOR_PG_READ_MAX    4

typedef struct ngx_agentlocator_pg_read_s  ngx_agentlocator_pg_read_t;
struct pg_result;

typedef void (*ngx_agentlocator_pg_read_pt)(void *data,
    struct pg_result **res, ngx_uint_t n, const char *error);

typedef struct {
    ngx_agentlocator_crm_statement_t  *st;
    ngx_uint_t                         n;
    ngx_str_t                         *params;     /* NULL data: SQL NULL */
} ngx_agentlocator_pg_query_t;

ngx_agentlocator_pg_read_t *ngx_agentlocator_pg_read(
    ngx_agentlocator_pg_query_t *q, ngx_uint_t nq,
    ngx_agentlocator_pg_read_pt done, void *data, const char **error);
void ngx_agentlocator_pg_read_cancel(ngx_agentlocator_pg_read_t *rd);

ngx_int_t ngx_agentlocator_pg_load(ngx_agentlocator_crm_statement_t *st,
    ngx_uint_t n, ngx_str_t *params, void *spooled);
void ngx_agentlocator_pg_kick(void);

/* ngx_agentlocator_spool.c */
char *ngx_agentlocator_spool_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf);
ngx_int_t ngx_agentlocator_spool_init_worker(ngx_cycle_t *cycle,
    ngx_agentlocator_main_conf_t *amcf);
void ngx_agentlocator_spool_exit_worker(void);
ngx_uint_t ngx_agentlocator_spool_on(void);
ngx_int_t ngx_agentlocator_spool_append(const char *name, ngx_uint_t n,
    ngx_str_t *params, ngx_uint_t loaded, void **file);
ngx_uint_t ngx_agentlocator_spool_backlog(void);
void ngx_agentlocator_spool_load(ngx_uint_t max);
void ngx_agentlocator_spool_done(void *file);
void ngx_agentlocator_spool_status(ngx_agentlocator_spool_status_t *st);

/* ngx_agentlocator_crm.c */
void ngx_agentlocator_crm_incoming(ngx_agentlocator_call_info_t *info);
void ngx_agentlocator_crm_call_status(ngx_str_t *call_sid, ngx_str_t *status,
    ngx_str_t *duration, ngx_uint_t terminal);
void ngx_agentlocator_crm_event(ngx_agentlocator_crm_event_t *ev);
void ngx_agentlocator_crm_recording_file(ngx_str_t *call_sid,
    ngx_str_t *recording_sid, ngx_str_t *wav_path);
void ngx_agentlocator_crm_transcript(ngx_str_t *call_sid,
    ngx_str_t *recording_sid, ngx_str_t *wav_path, ngx_str_t *text,
    ngx_str_t *language, ngx_str_t *engine);
void ngx_agentlocator_crm_recording(ngx_str_t *call_sid,
    ngx_str_t *recording_sid, ngx_str_t *url, ngx_str_t *duration,
    ngx_str_t *wav_path);
void ngx_agentlocator_crm_transcribe_due(ngx_str_t *call_sid,
    ngx_str_t *recording_sid, ngx_str_t *url, ngx_str_t *wav_path,
    ngx_uint_t delay);
void ngx_agentlocator_crm_transcribe_failed(ngx_str_t *call_sid,
    ngx_str_t *recording_sid, ngx_str_t *wav_path, const char *stage);
ngx_int_t ngx_agentlocator_crm_wa_inbound(ngx_agentlocator_crm_message_t *m);
ngx_int_t ngx_agentlocator_crm_wa_status(const char *provider,
    ngx_str_t *msg_id, ngx_str_t *status, ngx_str_t *error_code);
ngx_int_t ngx_agentlocator_crm_wa_outbound(ngx_agentlocator_crm_message_t *m,
    ngx_int_t business_id, const char *status);
ngx_agentlocator_crm_statement_t *ngx_agentlocator_crm_statement(u_char *name,
    size_t len);
/* each connection prepares them; a NULL name ends the table */
extern ngx_agentlocator_crm_statement_t  ngx_agentlocator_crm_statements[];

/* ngx_agentlocator_stream_url.c */
void ngx_agentlocator_stream_url_init_worker(ngx_cycle_t *cycle);
ngx_int_t ngx_agentlocator_stream_token(u_char *call_sid, u_char *token);
ngx_int_t ngx_agentlocator_stream_url_parse(ngx_str_t *uri,
    ngx_str_t *call_sid, ngx_str_t *token);
ngx_uint_t ngx_agentlocator_stream_token_valid(ngx_str_t *call_sid,
    ngx_str_t *token);

/* ngx_agentlocator_stream_count.c */
ngx_atomic_t *ngx_agentlocator_stream_count_mine(
    ngx_agentlocator_registry_sh_t *sh);
ngx_atomic_uint_t ngx_agentlocator_stream_count_open(
    ngx_agentlocator_registry_sh_t *sh);

/* ngx_agentlocator_registry.c */
typedef void (*ngx_agentlocator_wake_pt)(ngx_msec_t due);

char *ngx_agentlocator_registry_zone(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf, ngx_str_t *name, ngx_str_t *size);
ngx_agentlocator_registry_t *ngx_agentlocator_registry_get(
    ngx_agentlocator_main_conf_t *amcf);
void ngx_agentlocator_registry_ref(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_ref_t *ref);
void ngx_agentlocator_registry_prefetch(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_call_ref_t *ref);
void ngx_agentlocator_registry_init_worker(ngx_cycle_t *cycle);
void ngx_agentlocator_registry_wake(ngx_agentlocator_wake_pt waker,
    ngx_msec_t at);
void ngx_agentlocator_registry_usage(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_registry_usage_t *usage);
ngx_int_t ngx_agentlocator_registry_snapshot(ngx_agentlocator_registry_t *reg,
    ngx_pool_t *pool, ngx_array_t *calls, ngx_uint_t max);
void ngx_agentlocator_registry_states(ngx_agentlocator_registry_t *reg,
    ngx_uint_t *counts, ngx_uint_t n);

/* ngx_agentlocator_call_state.c: a call's states, through the registry */
ngx_int_t ngx_agentlocator_registry_incoming(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_call_info_t *info,
    ngx_uint_t *created);
ngx_int_t ngx_agentlocator_registry_stream_event(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_agentlocator_call_ref_t *ref, ngx_uint_t started, ngx_uint_t error,
    ngx_str_t *stream_sid);
ngx_int_t ngx_agentlocator_registry_stream_ended(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_agentlocator_call_ref_t *ref, ngx_uint_t give_up_waiting,
    ngx_uint_t *answer);
ngx_int_t ngx_agentlocator_registry_recording(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_call_ref_t *ref);
ngx_int_t ngx_agentlocator_registry_call_status(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_agentlocator_call_ref_t *ref, ngx_str_t *status,
    ngx_uint_t terminal);
ngx_int_t ngx_agentlocator_registry_stream_attach(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_agentlocator_call_ref_t *ref, ngx_str_t *stream_sid,
    ngx_str_t *account_sid, ngx_agentlocator_stream_ref_t *stream,
    ngx_pid_t dead_owner, ngx_uint_t *refusal, ngx_pid_t *owner);
ngx_int_t ngx_agentlocator_registry_stream_update(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_agentlocator_call_ref_t *ref, ngx_agentlocator_stream_ref_t *stream,
    ngx_agentlocator_stream_media_t *media, ngx_uint_t event,
    ngx_agentlocator_claim_t *claim);
ngx_uint_t ngx_agentlocator_registry_due(ngx_agentlocator_registry_t *reg,
    ngx_agentlocator_timeouts_t *to, ngx_agentlocator_claim_t *claims,
    ngx_uint_t max, ngx_msec_t *next);
ngx_int_t ngx_agentlocator_registry_attempt_done(
    ngx_agentlocator_registry_t *reg, ngx_agentlocator_timeouts_t *to,
    ngx_agentlocator_call_ref_t *ref, ngx_uint_t attempt, ngx_uint_t result,
    ngx_uint_t status, ngx_msec_t retry_at);
const char *ngx_agentlocator_call_state_name(ngx_uint_t state);
const char *ngx_agentlocator_reason_name(ngx_uint_t reason);
const char *ngx_agentlocator_outcome_name(ngx_uint_t outcome);

/* ngx_agentlocator_form.c */
ngx_int_t ngx_agentlocator_form_get(ngx_agentlocator_form_t *form,
    const char *name, ngx_str_t *value);
u_char *ngx_agentlocator_form_encode(u_char *dst, ngx_str_t *src);
ngx_int_t ngx_agentlocator_form_new(ngx_pool_t *pool, u_char *buf, size_t len,
    ngx_agentlocator_form_t **form, const char **err);

/* ngx_agentlocator_signature.c */
/* NGX_AGENTLOCATOR_SIG_WS_SLASH (0x01): ngx_agentlocator_twilio_sig.h */
#define NGX_AGENTLOCATOR_SIG_HIDE_LAST    0x02         /* a token ends the URL */

void ngx_agentlocator_hmac_init(ngx_agentlocator_hmac_t *key,
    ngx_str_t *secret);
void ngx_agentlocator_hmac_sha1(ngx_agentlocator_hmac_t *key, ngx_str_t *a,
    ngx_str_t *b, u_char *md);
ngx_int_t ngx_agentlocator_signature_verify(ngx_pool_t *pool,
    ngx_agentlocator_hmac_t *key, ngx_str_t *url,
    ngx_agentlocator_form_t *form, ngx_str_t *signature, ngx_uint_t flags);
ngx_int_t ngx_agentlocator_signature_params(ngx_pool_t *pool,
    ngx_agentlocator_form_t *form, ngx_str_t *out);
ngx_int_t ngx_agentlocator_signature_check(ngx_http_request_t *r,
    const char *scheme, ngx_agentlocator_form_t *form, ngx_uint_t flags,
    ngx_str_t *call_sid);
ngx_int_t ngx_agentlocator_signature_request_url(ngx_http_request_t *r,
    ngx_agentlocator_public_url_t *public_url, const char *scheme,
    ngx_str_t *url);

/* ngx_agentlocator_twiml.c */
size_t ngx_agentlocator_xml_escape_len(ngx_str_t *src);
u_char *ngx_agentlocator_xml_escape(u_char *dst, ngx_str_t *src);
ngx_int_t ngx_agentlocator_twiml_connect(ngx_pool_t *pool,
    ngx_agentlocator_srv_conf_t *ascf, ngx_str_t *call_sid, ngx_str_t *out);
ngx_int_t ngx_agentlocator_twiml_fallback(ngx_pool_t *pool,
    ngx_agentlocator_srv_conf_t *ascf, ngx_str_t *out);
ngx_int_t ngx_agentlocator_twiml_resolve(ngx_conf_t *cf,
    ngx_agentlocator_srv_conf_t *ascf);
ngx_int_t ngx_agentlocator_twiml_empty(ngx_str_t *out);
ngx_int_t ngx_agentlocator_twiml_hangup(ngx_str_t *out);
ngx_int_t ngx_agentlocator_absolute_url(ngx_pool_t *pool,
    ngx_agentlocator_public_url_t *base, ngx_str_t *uri, ngx_str_t *out);

/* ngx_agentlocator_secret.c */
const char *ngx_agentlocator_secret_load(ngx_conf_t *cf, ngx_str_t *value,
    ngx_str_t *secret);

/* ngx_agentlocator_voice.c */
ngx_int_t ngx_agentlocator_voice_handler(ngx_http_request_t *r);

/* ngx_agentlocator_request.c */
ngx_int_t ngx_agentlocator_read_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *body);
ngx_int_t ngx_agentlocator_read_post(ngx_http_request_t *r, const char *type,
    size_t max, ngx_http_client_body_handler_pt done);
ngx_uint_t ngx_agentlocator_content_type(ngx_http_request_t *r,
    const char *type);
ngx_int_t ngx_agentlocator_storable_text(ngx_str_t *s);
ngx_int_t ngx_agentlocator_e164(ngx_str_t *number);
ngx_uint_t ngx_agentlocator_http_url(ngx_str_t *url);
size_t ngx_agentlocator_storable_prefix(u_char *data, size_t len);
ngx_int_t ngx_agentlocator_valid_sid(ngx_str_t *sid, const char *prefix);
u_char *ngx_agentlocator_log_safe(u_char *buf, size_t size, ngx_str_t *src);
ngx_table_elt_t *ngx_agentlocator_find_header(ngx_http_request_t *r,
    const char *name, size_t len);
#if (NGX_DEBUG)
ngx_uint_t ngx_agentlocator_test_countdown(ngx_cycle_t *cycle,
    const char *name, const char *what);
#endif

/*
 * ngx_current_msec is the time an event-loop turn began, truncated to the
 * millisecond: a deadline counted from it could fall up to a millisecond
 * (and, in a long turn, more) before the moment it stands for.  A call's
 * creation is stamped with this clock instead (in the same base, rounded
 * up), and deadlines counted from a cached stamp get CLOCK_SLACK added.
 */
#define NGX_AGENTLOCATOR_CLOCK_SLACK  1

static ngx_inline ngx_msec_t
ngx_agentlocator_clock(void)
{
#if (NGX_HAVE_CLOCK_MONOTONIC)
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (ngx_msec_t) ts.tv_sec * 1000
           + ((ngx_msec_t) ts.tv_nsec + 999999) / 1000000;
#else
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (ngx_msec_t) tv.tv_sec * 1000
           + ((ngx_msec_t) tv.tv_usec + 999) / 1000;
#endif
}


/*
 * A worker's own timer, owned by no connection: cancelable, so that quit
 * and reload never wait on it.  With --with-debug, ngx_add_timer() logs
 * ngx_event_ident(ev->data), i.e. reads a connection's fd: "owner" is a
 * connection-shaped stand-in for that.
 */
static ngx_inline void
ngx_agentlocator_worker_timer(ngx_event_t *ev, ngx_connection_t *owner,
    ngx_event_handler_pt handler, ngx_log_t *log)
{
    owner->fd = (ngx_socket_t) -1;

    ev->handler = handler;
    ev->data = owner;
    ev->log = log;
    ev->cancelable = 1;
}


/* ngx_agentlocator_http_client.c */

/*
 * Connections to one host.  Requests past it wait in libcurl's pending
 * list, and with libcurl 7.88 a request that waited there cost up to twice
 * the CPU of one that did not (bench/watchdog, floor.c): callers keep
 * their requests in flight within this.
 */
#define NGX_AGENTLOCATOR_HTTP_HOST_CONNECTIONS  64

typedef struct {
    ngx_uint_t                    status;       /* HTTP status, 0: none */
    int                           curl_code;
    const char                   *error;        /* NULL when curl_code == 0 */
    ngx_str_t                     body;         /* at most 64k */
    ngx_msec_t                    retry_after;  /* 0: none given */
    unsigned                      aborted:1;    /* by us, not an answer */
    unsigned                      oversize:1;   /* past out->max_body */
} ngx_agentlocator_http_result_t;

typedef struct ngx_agentlocator_http_req_s  ngx_agentlocator_http_req_t;

typedef void (*ngx_agentlocator_http_done_pt)(
    ngx_agentlocator_http_result_t *result, void *data);

/* a part of a multipart/form-data body: its data, or a file's */
typedef struct {
    const char                   *name;
    const char                   *filename;     /* NULL: a plain field */
    const char                   *type;         /* NULL: none */
    ngx_str_t                     data;         /* copied, unless keep */
    const char                   *file;         /* a path, read as sent */
    unsigned                      keep:1;       /* data stays valid until
                                                   done: read, not copied */
} ngx_agentlocator_http_part_t;

/* an outbound request (ngx_agentlocator_http_send) */
typedef struct {
    ngx_str_t                     url;
    ngx_str_t                     user;         /* Basic auth; empty: none */
    ngx_str_t                     password;
    ngx_str_t                     content_type; /* empty: a form */
    ngx_str_t                     header;       /* "Name: value" or empty */
    ngx_str_t                     body;
    ngx_agentlocator_http_part_t *parts;        /* multipart instead */
    ngx_uint_t                    nparts;
    ngx_msec_t                    timeout;
    size_t                        max_body;     /* 0: 64k kept, the rest
                                                   dropped; else more fails */
    unsigned                      get:1;        /* a GET, no body */
    unsigned                      background:1; /* an exiting worker does
                                                   not wait for it */
} ngx_agentlocator_http_out_t;

ngx_int_t ngx_agentlocator_http_global_init(ngx_log_t *log);
ngx_int_t ngx_agentlocator_http_init_worker(ngx_cycle_t *cycle);
void ngx_agentlocator_http_exit_worker(void);
ngx_agentlocator_http_req_t *ngx_agentlocator_http_post(ngx_str_t *url,
    ngx_str_t *user, ngx_str_t *password, ngx_str_t *form,
    ngx_msec_t timeout, ngx_agentlocator_http_done_pt done, void *data,
    ngx_log_t *log);
ngx_agentlocator_http_req_t *ngx_agentlocator_http_send(
    ngx_agentlocator_http_out_t *out, ngx_agentlocator_http_done_pt done,
    void *data, ngx_log_t *log);
void ngx_agentlocator_http_abort_all(const char *why);
ngx_uint_t ngx_agentlocator_http_active(void);

/* ngx_agentlocator_watchdog.c */
char *ngx_agentlocator_watchdog_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf, ngx_str_t *args, ngx_uint_t n);
ngx_int_t ngx_agentlocator_watchdog_init_worker(ngx_cycle_t *cycle);
void ngx_agentlocator_watchdog_exit_worker(ngx_cycle_t *cycle);
ngx_uint_t ngx_agentlocator_watchdog_on(void);
void ngx_agentlocator_watchdog_stream_silent(
    ngx_agentlocator_call_ref_t *ref, ngx_agentlocator_stream_ref_t *stream,
    ngx_agentlocator_stream_media_t *media);

/* ngx_agentlocator_media_handshake.c */
ngx_int_t ngx_agentlocator_media_stream_handler(ngx_http_request_t *r);

/* ngx_agentlocator_media_stream.c */
typedef struct ngx_agentlocator_media_s  ngx_agentlocator_media_t;

ngx_agentlocator_media_t *ngx_agentlocator_media_create(
    ngx_http_request_t *r, ngx_str_t *url_call_sid);
void ngx_agentlocator_media_take_over(ngx_http_request_t *r,
    ngx_agentlocator_media_t *ms, ngx_str_t *protocol);
void ngx_agentlocator_media_exit_worker(void);

/* ngx_agentlocator_recording.c */
typedef struct ngx_agentlocator_recording_s  ngx_agentlocator_recording_t;

ngx_agentlocator_recording_t *ngx_agentlocator_recording_open(
    ngx_str_t *dir, u_char *call_sid, ngx_log_t *log);
void ngx_agentlocator_recording_append(ngx_agentlocator_recording_t *rec,
    u_char *data, size_t len);
void ngx_agentlocator_recording_close(ngx_agentlocator_recording_t *rec);
void ngx_agentlocator_recording_path(ngx_agentlocator_recording_t *rec,
    ngx_str_t *path);

/* ngx_agentlocator_status.c */
ngx_int_t ngx_agentlocator_status_handler(ngx_http_request_t *r);

/*
 * ngx_agentlocator_metrics.c.  The counting calls cost one atomic add
 * (nothing without agentlocator_metrics); their labels are these fixed
 * values, never a client's.
 */
#define NGX_AGENTLOCATOR_METRICS_CRM_DONE     0
#define NGX_AGENTLOCATOR_METRICS_CRM_FAILED   1   /* refused for good */
#define NGX_AGENTLOCATOR_METRICS_CRM_DROPPED  2   /* no room: lost */

/* agentlocator_transcriptions_total: one for each TRANSCRIBE_* line */
#define NGX_AGENTLOCATOR_METRICS_TX_TRANSCRIBED  0   /* TRANSCRIPT */
#define NGX_AGENTLOCATOR_METRICS_TX_RETRIED      1   /* TRANSCRIBE_RETRY */
#define NGX_AGENTLOCATOR_METRICS_TX_FAILED       2   /* left to the sweep */
#define NGX_AGENTLOCATOR_METRICS_TX_GIVEN_UP     3   /* would fail again */
#define NGX_AGENTLOCATOR_METRICS_TX_RESUMED      4   /* by the sweep */
#define NGX_AGENTLOCATOR_METRICS_TX_ABANDONED    5   /* by the sweep */
#define NGX_AGENTLOCATOR_METRICS_TX_SKIPPED      6   /* TRANSCRIBE_SKIPPED */

char *ngx_agentlocator_metrics_zone(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf);
void ngx_agentlocator_metrics_init_worker(ngx_cycle_t *cycle);
void ngx_agentlocator_metrics_exit_worker(void);
ngx_int_t ngx_agentlocator_metrics_handler(ngx_http_request_t *r);
void ngx_agentlocator_metrics_streams(ngx_int_t delta);
void ngx_agentlocator_metrics_ws_error(const char *error);
void ngx_agentlocator_metrics_redirect(ngx_uint_t reason,
    const char *outcome);
void ngx_agentlocator_metrics_rest(ngx_agentlocator_http_result_t *result,
    ngx_msec_t ms);
void ngx_agentlocator_metrics_crm(ngx_uint_t result);
void ngx_agentlocator_metrics_transcribe(ngx_uint_t result);

/* ngx_agentlocator_reply.c */
ngx_int_t ngx_agentlocator_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_str_t *body);
ngx_int_t ngx_agentlocator_reply_headers(ngx_http_request_t *r);
ngx_int_t ngx_agentlocator_add_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value);
ngx_int_t ngx_agentlocator_reply_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *reason);
ngx_int_t ngx_agentlocator_allow_methods(ngx_http_request_t *r,
    ngx_uint_t methods, const char *allow);
u_char *ngx_agentlocator_json_escape(u_char *dst, ngx_str_t *src);
size_t ngx_agentlocator_json_escape_len(ngx_str_t *src);

/* ngx_agentlocator_whatsapp.c */
ngx_int_t ngx_agentlocator_whatsapp_handler(ngx_http_request_t *r);
void ngx_agentlocator_baileys_sign(ngx_str_t *secret, ngx_str_t *body,
    u_char *hex);
ngx_int_t ngx_agentlocator_baileys_verify(ngx_str_t *secret, ngx_str_t *body,
    ngx_str_t *signature);
char *ngx_agentlocator_baileys_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf);
ngx_int_t ngx_agentlocator_wa_media_json(void *gen, ngx_str_t *urls,
    ngx_str_t *types, ngx_uint_t n);

/* ngx_agentlocator_api_query.c: the API's statements and their JSON */
#define NGX_AGENTLOCATOR_API_STRING     1
#define NGX_AGENTLOCATOR_API_INT        2
#define NGX_AGENTLOCATOR_API_BOOL       3
#define NGX_AGENTLOCATOR_API_JSON       4       /* embedded as it is */

typedef struct {
    ngx_str_t                     name;
    ngx_str_t                     object;   /* in this nested object */
    ngx_uint_t                    type;
} ngx_agentlocator_api_column_t;

/* a page of rows: $1 business, $2 filter, $3 limit, $4 offset; its count */
typedef struct {
    ngx_agentlocator_crm_statement_t  *count;
    ngx_agentlocator_crm_statement_t  *rows;
    ngx_agentlocator_api_column_t     *columns;
} ngx_agentlocator_api_page_t;

/* the pages, NGX_AGENTLOCATOR_API_THREADS...: ngx_agentlocator_api_args.h */

typedef struct {
    ngx_agentlocator_crm_statement_t  *call;
    ngx_agentlocator_api_column_t     *call_columns;
    ngx_agentlocator_crm_statement_t  *events;
    ngx_agentlocator_api_column_t     *event_columns;
    ngx_agentlocator_crm_statement_t  *recordings;
    ngx_agentlocator_api_column_t     *recording_columns;
} ngx_agentlocator_api_call_t;

extern ngx_agentlocator_api_page_t  ngx_agentlocator_api_pages[];
extern ngx_agentlocator_api_call_t  ngx_agentlocator_api_call;
extern ngx_agentlocator_crm_statement_t  *ngx_agentlocator_api_live_statement;
extern ngx_agentlocator_crm_statement_t
    *ngx_agentlocator_api_recording_file_statement;

/* each connection prepares them; a NULL name ends the table */
extern ngx_agentlocator_crm_statement_t  ngx_agentlocator_api_statements[];

/* ngx_agentlocator_api.c */
ngx_int_t ngx_agentlocator_api_handler(ngx_http_request_t *r);
ngx_int_t ngx_agentlocator_api_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf);
void ngx_agentlocator_api_finish(ngx_http_request_t *r, ngx_int_t rc);

/* ngx_agentlocator_api_json.c: the API's answers */
ngx_int_t ngx_agentlocator_api_page_json(ngx_http_request_t *r,
    ngx_agentlocator_api_page_t *def, ngx_int_t page, ngx_int_t limit,
    struct pg_result **results);
ngx_int_t ngx_agentlocator_api_call_json(ngx_http_request_t *r,
    struct pg_result **results);
ngx_int_t ngx_agentlocator_api_json_reply(ngx_http_request_t *r,
    ngx_uint_t status, void *gen);
ngx_int_t ngx_agentlocator_api_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *reason);

/* what an API read's answer becomes: the request's status or NGX_DONE */
typedef ngx_int_t (*ngx_agentlocator_api_answer_pt)(ngx_http_request_t *r,
    void *data, struct pg_result **res);

ngx_int_t ngx_agentlocator_api_read(ngx_http_request_t *r,
    ngx_agentlocator_pg_query_t *q, ngx_uint_t nq,
    ngx_agentlocator_api_answer_pt answer, void *data);

/* ngx_agentlocator_api_live.c: live calls and recordings' audio */
ngx_int_t ngx_agentlocator_api_live(ngx_http_request_t *r,
    ngx_str_t *business);
ngx_int_t ngx_agentlocator_api_recording_audio(ngx_http_request_t *r,
    ngx_str_t *business, ngx_str_t *call_sid, ngx_str_t *recording_id);

/* ngx_agentlocator_transcribe.c */
char *ngx_agentlocator_transcribe_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf);
void ngx_agentlocator_transcribe_twilio(ngx_agentlocator_main_conf_t *amcf,
    ngx_str_t *call_sid, ngx_str_t *recording_sid, ngx_str_t *recording_url,
    ngx_log_t *log);
void ngx_agentlocator_transcribe_file(ngx_agentlocator_main_conf_t *amcf,
    ngx_str_t *call_sid, ngx_str_t *wav_path, ngx_log_t *log);
void ngx_agentlocator_transcribe_exit_worker(void);

/*
 * What the sweep (ngx_agentlocator_transcribe_sweep.c) needs of the jobs:
 * a recording it claimed becomes one, and the keys of those running.
 */
ngx_uint_t ngx_agentlocator_transcribe_free_slots(void);
ngx_int_t ngx_agentlocator_transcribe_resume(
    ngx_agentlocator_main_conf_t *amcf, ngx_str_t *call_sid,
    ngx_str_t *recording_sid, ngx_str_t *url, ngx_str_t *wav_path);
void ngx_agentlocator_transcribe_running(ngx_str_t *twilio,
    ngx_str_t *streams);
ngx_msec_t ngx_agentlocator_transcribe_sweep_every(
    ngx_agentlocator_main_conf_t *amcf);

/* a job's claim on its recording, in seconds: three sweeps (ms) */
#define NGX_AGENTLOCATOR_CLAIM(every)  (3 * ((every) + 999) / 1000)

/* jobs per worker: each holds up to max_size of audio */
#define NGX_AGENTLOCATOR_TRANSCRIBE_JOBS      8

/* {SID,...} of every job: room for each */
#define NGX_AGENTLOCATOR_TRANSCRIBE_KEYS_LEN                                  \
    (2 + NGX_AGENTLOCATOR_TRANSCRIBE_JOBS * (NGX_AGENTLOCATOR_SID_LEN + 1))

/* ngx_agentlocator_transcribe_sweep.c */
ngx_int_t ngx_agentlocator_transcribe_init_worker(ngx_cycle_t *cycle);
void ngx_agentlocator_transcribe_sweep_exit_worker(void);
/* each connection prepares them; a NULL name ends the table */
extern ngx_agentlocator_crm_statement_t  ngx_agentlocator_sweep_statements[];

/* ngx_agentlocator_whatsapp_send.c */
ngx_int_t ngx_agentlocator_whatsapp_send(ngx_http_request_t *r,
    long long business_id);
char *ngx_agentlocator_whatsapp_send_conf(ngx_conf_t *cf,
    ngx_agentlocator_main_conf_t *amcf);

/* ngx_agentlocator_health.c */
ngx_int_t ngx_agentlocator_health_handler(ngx_http_request_t *r);


#endif /* _NGX_AGENTLOCATOR_H_INCLUDED_ */
