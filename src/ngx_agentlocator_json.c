
/*
 * Flat JSON objects read with yajl's callback API into named fields, and
 * JSON text copied into a yajl generator (ngx_agentlocator_json.h).  Only
 * the top level's keys are looked at; anything deeper is walked and
 * skipped.  A key that is read may appear once: two "alg"s or two
 * "business_id"s in a token are an attack, not a choice to make.
 */


#include "ngx_agentlocator_json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>


typedef struct {
    ngx_agentlocator_json_field_t  *fields;
    size_t                          nfields;
    ngx_agentlocator_json_field_t  *current;    /* the key just read */
    unsigned char                  *buf;
    size_t                          size;
    size_t                          used;
    unsigned                        depth;
    unsigned                        seen_top;   /* the top value began */
    const char                     *error;
} ngx_agentlocator_json_ctx_t;


static ngx_agentlocator_json_field_t *ngx_agentlocator_json_value(
    ngx_agentlocator_json_ctx_t *c, unsigned kind);


static const char  ngx_agentlocator_json_kind_error[] =
    "a field has the wrong type";


/* The field this value belongs to, if one was asked for and may be it. */

static ngx_agentlocator_json_field_t *
ngx_agentlocator_json_value(ngx_agentlocator_json_ctx_t *c, unsigned kind)
{
    ngx_agentlocator_json_field_t  *f;

    if (c->depth != 1 || c->current == NULL) {
        return NULL;
    }

    f = c->current;
    c->current = NULL;

    if (!(f->accept & kind)) {
        c->error = ngx_agentlocator_json_kind_error;
        return NULL;
    }

    f->kind = kind;

    return f;
}


static int
ngx_agentlocator_json_null(void *data)
{
    ngx_agentlocator_json_ctx_t  *c = data;

    if (c->depth == 0) {
        c->error = "not a JSON object";
        return 0;
    }

    (void) ngx_agentlocator_json_value(c, NGX_AGENTLOCATOR_JSON_NULL);

    return c->error == NULL;
}


static int
ngx_agentlocator_json_boolean(void *data, int value)
{
    ngx_agentlocator_json_ctx_t    *c = data;
    ngx_agentlocator_json_field_t  *f;

    if (c->depth == 0) {
        c->error = "not a JSON object";
        return 0;
    }

    f = ngx_agentlocator_json_value(c, NGX_AGENTLOCATOR_JSON_BOOL);
    if (f) {
        f->boolean = value;
    }

    return c->error == NULL;
}


/*
 * A number, as its text: an integer field takes only digits (and a sign)
 * that fit 64 bits; a number field any JSON number.
 */

static int
ngx_agentlocator_json_number(void *data, const char *s, size_t len)
{
    ngx_agentlocator_json_ctx_t    *c = data;
    ngx_agentlocator_json_field_t  *f;

    char       text[64], *end;
    size_t     i;
    unsigned   integer;

    if (c->depth == 0) {
        c->error = "not a JSON object";
        return 0;
    }

    if (c->depth != 1 || c->current == NULL) {
        return 1;
    }

    f = c->current;

    if (len >= sizeof(text)) {
        c->error = "a number is too long";
        return 0;
    }

    integer = 1;

    for (i = 0; i < len; i++) {
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') {
            integer = 0;
        }
    }

    memcpy(text, s, len);
    text[len] = '\0';
    errno = 0;

    if (integer && (f->accept & NGX_AGENTLOCATOR_JSON_INTEGER)) {
        f = ngx_agentlocator_json_value(c, NGX_AGENTLOCATOR_JSON_INTEGER);
        f->integer = strtoll(text, &end, 10);

        if (errno == ERANGE || *end != '\0') {
            c->error = "a number is out of range";
            return 0;
        }

        f->number = (double) f->integer;
        return 1;
    }

    f = ngx_agentlocator_json_value(c, NGX_AGENTLOCATOR_JSON_NUMBER);
    if (f == NULL) {
        return 0;
    }

    f->number = strtod(text, &end);

    if (errno == ERANGE || *end != '\0') {
        c->error = "a number is out of range";
        return 0;
    }

    return 1;
}


static int
ngx_agentlocator_json_string(void *data, const unsigned char *s, size_t len)
{
    ngx_agentlocator_json_ctx_t    *c = data;
    ngx_agentlocator_json_field_t  *f;

    if (c->depth == 0) {
        c->error = "not a JSON object";
        return 0;
    }

    if (c->depth != 1 || c->current == NULL) {
        return 1;
    }

    if (c->current->max_len < len) {
        c->error = "a field is too long";
        return 0;
    }

    /* the database's text cannot hold one, and a C string would end */
    if (memchr(s, '\0', len)) {
        c->error = "a field holds a NUL character";
        return 0;
    }

    f = ngx_agentlocator_json_value(c, NGX_AGENTLOCATOR_JSON_STRING);
    if (f == NULL) {
        return 0;
    }

    if (c->size - c->used < len) {
        c->error = "out of room for strings";
        return 0;
    }

    memcpy(c->buf + c->used, s, len);
    f->str = c->buf + c->used;
    f->len = len;
    c->used += len;

    return 1;
}


static int
ngx_agentlocator_json_map_key(void *data, const unsigned char *key,
    size_t len)
{
    ngx_agentlocator_json_ctx_t  *c = data;

    size_t  i;

    c->current = NULL;

    if (c->depth != 1) {
        return 1;
    }

    for (i = 0; i < c->nfields; i++) {
        if (strlen(c->fields[i].name) == len
            && memcmp(c->fields[i].name, key, len) == 0)
        {
            if (c->fields[i].kind) {
                c->error = "a field appears twice";
                return 0;
            }

            c->current = &c->fields[i];
            return 1;
        }
    }

    return 1;
}


static int
ngx_agentlocator_json_start(void *data, unsigned map)
{
    ngx_agentlocator_json_ctx_t  *c = data;

    if (c->depth == 0) {
        if (!map || c->seen_top) {
            c->error = "not a JSON object";
            return 0;
        }

        c->seen_top = 1;

    } else if (c->depth == 1 && c->current) {
        /* an object or array where a field's value was wanted */
        c->error = ngx_agentlocator_json_kind_error;
        return 0;
    }

    if (++c->depth > NGX_AGENTLOCATOR_JSON_MAX_DEPTH) {
        c->error = "JSON nested too deeply";
        return 0;
    }

    return 1;
}


static int
ngx_agentlocator_json_start_map(void *data)
{
    return ngx_agentlocator_json_start(data, 1);
}


static int
ngx_agentlocator_json_start_array(void *data)
{
    return ngx_agentlocator_json_start(data, 0);
}


static int
ngx_agentlocator_json_end(void *data)
{
    ngx_agentlocator_json_ctx_t  *c = data;

    c->depth--;
    c->current = NULL;

    return 1;
}


static yajl_callbacks  ngx_agentlocator_json_callbacks = {
    ngx_agentlocator_json_null,
    ngx_agentlocator_json_boolean,
    NULL,                                  /* integer: see number */
    NULL,                                  /* double */
    ngx_agentlocator_json_number,
    ngx_agentlocator_json_string,
    ngx_agentlocator_json_start_map,
    ngx_agentlocator_json_map_key,
    ngx_agentlocator_json_end,
    ngx_agentlocator_json_start_array,
    ngx_agentlocator_json_end
};


const char *
ngx_agentlocator_json_fields(const unsigned char *json, size_t len,
    ngx_agentlocator_json_field_t *fields, size_t nfields,
    unsigned char *buf, size_t size)
{
    size_t                        i;
    yajl_handle                   h;
    yajl_status                   st;
    ngx_agentlocator_json_ctx_t   c;

    for (i = 0; i < nfields; i++) {
        fields[i].kind = 0;
        fields[i].str = NULL;
        fields[i].len = 0;
        fields[i].integer = 0;
        fields[i].number = 0;
        fields[i].boolean = 0;
    }

    memset(&c, 0, sizeof(ngx_agentlocator_json_ctx_t));
    c.fields = fields;
    c.nfields = nfields;
    c.buf = buf;
    c.size = size;

    h = yajl_alloc(&ngx_agentlocator_json_callbacks, NULL, &c);
    if (h == NULL) {
        return "out of memory";
    }

    st = yajl_parse(h, json, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (st != yajl_status_ok) {
        return c.error ? c.error : "malformed JSON";
    }

    if (!c.seen_top) {
        return "not a JSON object";
    }

    return NULL;
}


/* JSON text into a generator: each parse event is the same gen call. */

static int
ngx_agentlocator_json_gen_null(void *g)
{
    return yajl_gen_null(g) == yajl_gen_status_ok;
}


static int
ngx_agentlocator_json_gen_boolean(void *g, int value)
{
    return yajl_gen_bool(g, value) == yajl_gen_status_ok;
}


static int
ngx_agentlocator_json_gen_number(void *g, const char *s, size_t len)
{
    return yajl_gen_number(g, s, len) == yajl_gen_status_ok;
}


static int
ngx_agentlocator_json_gen_string(void *g, const unsigned char *s, size_t len)
{
    return yajl_gen_string(g, s, len) == yajl_gen_status_ok;
}


static int
ngx_agentlocator_json_gen_start_map(void *g)
{
    return yajl_gen_map_open(g) == yajl_gen_status_ok;
}


static int
ngx_agentlocator_json_gen_end_map(void *g)
{
    return yajl_gen_map_close(g) == yajl_gen_status_ok;
}


static int
ngx_agentlocator_json_gen_start_array(void *g)
{
    return yajl_gen_array_open(g) == yajl_gen_status_ok;
}


static int
ngx_agentlocator_json_gen_end_array(void *g)
{
    return yajl_gen_array_close(g) == yajl_gen_status_ok;
}


static yajl_callbacks  ngx_agentlocator_json_gen_callbacks = {
    ngx_agentlocator_json_gen_null,
    ngx_agentlocator_json_gen_boolean,
    NULL,
    NULL,
    ngx_agentlocator_json_gen_number,
    ngx_agentlocator_json_gen_string,
    ngx_agentlocator_json_gen_start_map,
    ngx_agentlocator_json_gen_string,      /* a key is a string to gen */
    ngx_agentlocator_json_gen_end_map,
    ngx_agentlocator_json_gen_start_array,
    ngx_agentlocator_json_gen_end_array
};


int
ngx_agentlocator_json_embed(yajl_gen g, const unsigned char *json,
    size_t len)
{
    yajl_handle  h;
    yajl_status  st;

    h = yajl_alloc(&ngx_agentlocator_json_gen_callbacks, NULL, g);
    if (h == NULL) {
        return -1;
    }

    st = yajl_parse(h, json, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    return st == yajl_status_ok ? 0 : -1;
}
