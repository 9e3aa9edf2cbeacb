
/*
 * Twilio Media Streams messages (../shared/twilio-facts.md §2) parsed into
 * a flat struct (plain messages by a scanner of our own, the rest by yajl):
 * the fields the module acts on, bounded, and the media payload
 * base64-decoded into the caller's buffer.  No nginx I/O, so a fuzzer can
 * drive it alone.
 */


#ifndef _NGX_AGENTLOCATOR_TWILIO_EVENT_H_INCLUDED_
#define _NGX_AGENTLOCATOR_TWILIO_EVENT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef enum {
    NGX_AGENTLOCATOR_EV_UNKNOWN = 0,
    NGX_AGENTLOCATOR_EV_CONNECTED,
    NGX_AGENTLOCATOR_EV_START,
    NGX_AGENTLOCATOR_EV_MEDIA,
    NGX_AGENTLOCATOR_EV_MARK,
    NGX_AGENTLOCATOR_EV_DTMF,
    NGX_AGENTLOCATOR_EV_STOP
} ngx_agentlocator_event_e;


#define NGX_AGENTLOCATOR_EV_SID_MAX    64
#define NGX_AGENTLOCATOR_EV_NAME_MAX   256


typedef struct {
    size_t                    len;
    unsigned char             data[NGX_AGENTLOCATOR_EV_SID_MAX];
} ngx_agentlocator_ev_sid_t;


/*
 * The parser sets every field but payload and payload_cap (the caller's)
 * and leaves the bytes past each len as they were: a field added here must
 * be reset in ngx_agentlocator_twilio_event_parse() too.
 */
typedef struct {
    unsigned                  event;          /* ngx_agentlocator_event_e */
    unsigned                  has_event:1;
    unsigned                  has_payload:1;

    ngx_agentlocator_ev_sid_t stream_sid;     /* top level, or start's */
    ngx_agentlocator_ev_sid_t call_sid;       /* start.callSid, stop.callSid */
    ngx_agentlocator_ev_sid_t account_sid;
    ngx_agentlocator_ev_sid_t param_call_sid; /* customParameters.call_sid */
    ngx_agentlocator_ev_sid_t track;          /* media.track */
    ngx_agentlocator_ev_sid_t encoding;       /* start.mediaFormat.encoding */
    ngx_agentlocator_ev_sid_t digit;          /* dtmf.digit */

    size_t                    name_len;       /* mark.name */
    unsigned char             name[NGX_AGENTLOCATOR_EV_NAME_MAX];

    int64_t                   sample_rate;
    int64_t                   channels;

    unsigned char            *payload;        /* caller's buffer */
    size_t                    payload_cap;
    size_t                    payload_len;

    const char               *error;
} ngx_agentlocator_twilio_event_t;


/*
 * 0 on success; -1 with ev->error set.  ev->payload/payload_cap first.
 * Not reentrant: yajl's memory comes from one arena per process.
 */
int ngx_agentlocator_twilio_event_parse(const unsigned char *json,
    size_t len, ngx_agentlocator_twilio_event_t *ev);

/*
 * The two ways parse() takes, for the fuzzer to compare: the scanner of
 * plain messages (0 when it parsed one, as _full() would; otherwise 1 and
 * ev is to be ignored) and yajl (parse()'s return values).
 */
int ngx_agentlocator_twilio_event_parse_fast(const unsigned char *json,
    size_t len, ngx_agentlocator_twilio_event_t *ev);
int ngx_agentlocator_twilio_event_parse_full(const unsigned char *json,
    size_t len, ngx_agentlocator_twilio_event_t *ev);

size_t ngx_agentlocator_base64_decode(unsigned char *dst, size_t cap,
    const unsigned char *src, size_t len, int *ok);
size_t ngx_agentlocator_base64_encode(unsigned char *dst,
    const unsigned char *src, size_t len);

const char *ngx_agentlocator_event_name(unsigned event);


#endif /* _NGX_AGENTLOCATOR_TWILIO_EVENT_H_INCLUDED_ */
