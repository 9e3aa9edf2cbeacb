
/*
 * JSON objects from outside (the Baileys bridge's webhook, the API's
 * bodies, a JWT's header and claims) read with yajl into the fields the
 * caller names: each of the kinds it accepts, bounded, at most once.  And
 * JSON the database made (a jsonb column) copied into a yajl generator, so
 * that every byte the API writes went through yajl's escaping.  No nginx
 * I/O: a fuzzer drives it alone.
 */


#ifndef _NGX_AGENTLOCATOR_JSON_H_INCLUDED_
#define _NGX_AGENTLOCATOR_JSON_H_INCLUDED_


#include <stddef.h>
#include <yajl/yajl_gen.h>


#define NGX_AGENTLOCATOR_JSON_STRING   0x01
#define NGX_AGENTLOCATOR_JSON_INTEGER  0x02   /* no fraction, no exponent */
#define NGX_AGENTLOCATOR_JSON_NUMBER   0x04   /* any number, as a double */
#define NGX_AGENTLOCATOR_JSON_BOOL     0x08
#define NGX_AGENTLOCATOR_JSON_NULL     0x10

/* deeper than this is refused, whether or not the caller reads it */
#define NGX_AGENTLOCATOR_JSON_MAX_DEPTH  16


typedef struct {
    const char               *name;
    unsigned                  accept;       /* the kinds above */
    size_t                    max_len;      /* of a string, in bytes */

    /* what the parser found: kind 0 when the object has no such key */
    unsigned                  kind;
    const unsigned char      *str;          /* in the caller's buffer */
    size_t                    len;
    long long                 integer;
    double                    number;
    int                       boolean;
} ngx_agentlocator_json_field_t;


/*
 * Reads the object in json[0..len) into "fields".  Strings are decoded
 * into buf (size bytes; len bytes always suffice).  Keys not named are
 * skipped, whatever their value.  Returns NULL, or a one-line reason that
 * may be shown to the sender (it names a field, never echoes a value).
 */
const char *ngx_agentlocator_json_fields(const unsigned char *json,
    size_t len, ngx_agentlocator_json_field_t *fields, size_t nfields,
    unsigned char *buf, size_t size);

/* Copies the JSON text json[0..len) into g as one value; 0 on success. */
int ngx_agentlocator_json_embed(yajl_gen g, const unsigned char *json,
    size_t len);


#endif /* _NGX_AGENTLOCATOR_JSON_H_INCLUDED_ */
