
/*
 * application/x-www-form-urlencoded, as Twilio posts its webhooks and as
 * the API's query strings come: split, percent-decoded in place, looked
 * up, and encoded for bodies we send.  Plain C over buffers, no nginx
 * types or functions, so a fuzzer drives it alone (fuzz/form.c); the
 * module's glue is ngx_agentlocator_form.c.
 */


#ifndef _NGX_AGENTLOCATOR_FORM_CODEC_H_INCLUDED_
#define _NGX_AGENTLOCATOR_FORM_CODEC_H_INCLUDED_


#include <stddef.h>


#define NGX_AGENTLOCATOR_FORM_MAX_PARAMS  128

/* what ngx_agentlocator_form_find() returns */
#define NGX_AGENTLOCATOR_FORM_FOUND       0
#define NGX_AGENTLOCATOR_FORM_ABSENT      1
#define NGX_AGENTLOCATOR_FORM_CONFLICT    2     /* repeated, different */


/* laid out as nginx's ngx_str_t, so the glue copies it field by field */
typedef struct {
    size_t                        len;
    unsigned char                *data;
} ngx_agentlocator_form_str_t;


typedef struct {
    ngx_agentlocator_form_str_t   key;
    ngx_agentlocator_form_str_t   value;
} ngx_agentlocator_param_t;


typedef struct {
    ngx_agentlocator_param_t     *params;       /* room for "nalloc" */
    size_t                        nparams;
    size_t                        nalloc;
} ngx_agentlocator_form_t;


/* An upper bound of the pairs in buf[0..len), to size form->params. */
size_t ngx_agentlocator_form_count(const unsigned char *buf, size_t len);

/*
 * Splits "k=v&k2=v2" into form->params in body order, decoding "+" and
 * %XX in place (nothing grows).  Empty pairs ("a=1&&b=2") are skipped; a
 * pair without "=" has an empty value; keys may repeat.  At most
 * min(nalloc, NGX_AGENTLOCATOR_FORM_MAX_PARAMS) pairs.  Returns NULL or a
 * one-line reason for the sender.
 */
const char *ngx_agentlocator_form_parse(unsigned char *buf, size_t len,
    ngx_agentlocator_form_t *form);

/*
 * The value of name[0..len): FOUND with the first value, ABSENT, or
 * CONFLICT when the key repeats with different values (an identifier that
 * is ambiguous is refused, not guessed).
 */
int ngx_agentlocator_form_find(const ngx_agentlocator_form_t *form,
    const unsigned char *name, size_t len,
    ngx_agentlocator_form_str_t *value);

/*
 * src[0..len) form-encoded into dst (room for 3 * len): all but the
 * unreserved characters escaped.  Returns the end of what was written.
 */
unsigned char *ngx_agentlocator_form_escape(unsigned char *dst,
    const unsigned char *src, size_t len);


#endif /* _NGX_AGENTLOCATOR_FORM_CODEC_H_INCLUDED_ */
