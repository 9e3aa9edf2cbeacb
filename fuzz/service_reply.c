/*
 * libFuzzer: the replies of the services the module calls
 * (src/ngx_agentlocator_service_reply.c): a WhatsApp provider's answer to
 * a send, Twilio's {"sid", "code", "message"} or the bridge's
 * {"provider_msg_id", "code", "error"}, and the transcriber's {"text"}.
 *
 * The input is read as each reply.  What is taken is checked against
 * yajl_tree (another reader of the same text, written by others): every
 * value is the one it finds under its key, the strings within their
 * bounds, inside the caller's buffer and free of NUL.  A reply refused
 * has no code.  Replies are also made from the input's bytes with yajl's
 * generator, as the providers and the transcriber make them (byte 0 picks
 * which fields, of what kind, in what order, with what around them):
 * exactly the ones within the bounds, without NUL, and of the kinds the
 * tables accept are taken, with exactly the values put in.
 */

#define _GNU_SOURCE                     /* memmem() */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "ngx_agentlocator_service_reply.h"


#define CHECK(cond, what)                                                     \
    if (!(cond)) {                                                            \
        fprintf(stderr, "service_reply: %s\n", what);                         \
        abort();                                                              \
    }


/* the string at key, 1 if one; 0 if none or not a string */

static int
tree_string(yajl_val obj, const char *key, const char **s)
{
    yajl_val     v;
    const char  *path[2];

    path[0] = key;
    path[1] = NULL;

    v = yajl_tree_get(obj, path, yajl_t_any);

    *s = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;

    return *s != NULL;
}


static yajl_val
tree_get(yajl_val obj, const char *key)
{
    const char  *path[2];

    path[0] = key;
    path[1] = NULL;

    return yajl_tree_get(obj, path, yajl_t_any);
}


static void
check_string(const ngx_agentlocator_form_str_t *s, const uint8_t *buf,
    size_t size, size_t max, const char *what)
{
    if (s->len == 0) {
        return;
    }

    CHECK(s->data >= buf && s->data + s->len <= buf + size, what);
    CHECK(s->len <= max, what);
    CHECK(memchr(s->data, '\0', s->len) == NULL, what);
}


/* the reply as the tree reads it: the same values */

static void
check_same(const ngx_agentlocator_form_str_t *s, yajl_val obj,
    const char *key, const char *what)
{
    const char  *ref;

    if (tree_string(obj, key, &ref)) {
        CHECK(s->len == strlen(ref) && memcmp(s->data, ref, s->len) == 0,
              what);

    } else {
        CHECK(s->len == 0 && s->data == NULL, what);
        CHECK(tree_get(obj, key) == NULL || YAJL_IS_NULL(tree_get(obj, key)),
              what);
    }
}


static yajl_val
tree(const uint8_t *data, size_t size)
{
    char      *text, err[128];
    yajl_val   v;

    text = malloc(size + 1);
    CHECK(text, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';

    v = yajl_tree_parse(text, err, sizeof(err));

    free(text);

    return v;
}


static void
check_read(const uint8_t *data, size_t size)
{
    int                                twilio, nul;
    uint8_t                           *json, *buf;
    yajl_val                           obj, code;
    const char                        *err;
    ngx_agentlocator_form_str_t        text;
    ngx_agentlocator_provider_reply_t  r;

    json = malloc(size ? size : 1);
    buf = malloc(size + 1);
    CHECK(json && buf, "out of memory");
    memcpy(json, data, size);

    /*
     * yajl_tree takes the text up to a NUL and allows comments: where
     * the module takes the text, it has neither (NUL is not JSON outside
     * strings, and in them is escaped), so the two read the same text.
     * But its keys are C strings: "code\u0000x" is "code" to it, so a
     * text with an escaped NUL is not compared (the module's strings are
     * still checked).
     */
    obj = NULL;
    nul = memmem(data, size, "\\u0000", 6) != NULL;

    for (twilio = 0; twilio < 2; twilio++) {
        err = ngx_agentlocator_provider_reply(json, size, twilio, buf,
                                              size + 1, &r);

        check_string(&r.id, buf, size + 1, NGX_AGENTLOCATOR_SEND_MAX_MSG_ID,
                     "an id out of bounds, out of the buffer or with NUL");
        check_string(&r.message, buf, size + 1,
                     NGX_AGENTLOCATOR_SEND_MAX_MESSAGE,
                     "a message out of bounds, out of the buffer or with NUL");

        if (err) {
            CHECK(!r.has_code, "a refused reply has a code");
            continue;
        }

        if (nul) {
            continue;
        }

        if (obj == NULL) {
            obj = tree(data, size);
            CHECK(YAJL_IS_OBJECT(obj),
                  "a reply taken is not an object to yajl_tree");
        }

        check_same(&r.id, obj, twilio ? "sid" : "provider_msg_id",
                   "the id is not yajl_tree's");
        check_same(&r.message, obj, twilio ? "message" : "error",
                   "the message is not yajl_tree's");

        code = tree_get(obj, "code");

        if (r.has_code
            && YAJL_IS_NUMBER(code) && !YAJL_IS_INTEGER(code)
            && strcmp(YAJL_GET_NUMBER(code), "-9223372036854775808") == 0)
        {
            /* yajl's own integer reader stops one short of LLONG_MIN */
            CHECK(r.code == INT64_MIN, "the code is not -2^63");

        } else if (r.has_code) {
            CHECK(YAJL_IS_INTEGER(code) && YAJL_GET_INTEGER(code) == r.code,
                  "the code is not yajl_tree's integer");

        } else {
            CHECK(code == NULL || YAJL_IS_NULL(code),
                  "a code yajl_tree finds was not read");
        }
    }

    err = ngx_agentlocator_transcript_reply(json, size, buf, size + 1, &text);

    if (err == NULL) {
        check_string(&text, buf, size + 1, NGX_AGENTLOCATOR_TRANSCRIBE_ANSWER,
                     "a text out of bounds, out of the buffer or with NUL");

        if (nul) {
            goto done;
        }

        if (obj == NULL) {
            obj = tree(data, size);
            CHECK(YAJL_IS_OBJECT(obj),
                  "an answer taken is not an object to yajl_tree");
        }

        CHECK(tree_get(obj, "text") && YAJL_IS_STRING(tree_get(obj, "text")),
              "an answer taken has no \"text\" string to yajl_tree");
        check_same(&text, obj, "text", "the text is not yajl_tree's");

    } else {
        CHECK(text.len == 0, "a refused answer has a text");
    }

done:

    yajl_tree_free(obj);
    free(buf);
    free(json);
}


static void
gen_key(yajl_gen g, const char *key)
{
    yajl_gen_string(g, (const unsigned char *) key, strlen(key));
}


/* what a service might add around the fields: ignored, whatever it is */

static void
gen_noise(yajl_gen g, unsigned which)
{
    gen_key(g, which & 1 ? "status" : "segments");
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    gen_key(g, "code");
    yajl_gen_double(g, 1.5);
    gen_key(g, "text");
    yajl_gen_null(g);
    yajl_gen_map_close(g);
    yajl_gen_integer(g, -1);
    yajl_gen_array_close(g);
}


/*
 * Byte 0: bit 0 Twilio; bits 1-2 the id absent, a string, null, a
 * number; bits 3-4 the code absent, an integer, null, 1.5; bit 5 the
 * message absent or a string (null when bit 6 too); bit 7 noise first.
 * Byte 1 the id's length, then the id, the message and the code's bytes.
 */

static void
check_made_provider(const uint8_t *data, size_t size)
{
    int                                twilio, ok, id_kind, code_kind;
    int                                msg_kind;
    size_t                             id_len, msg_len, len;
    uint8_t                           *buf;
    yajl_gen                           g;
    long long                          code;
    const char                        *err;
    const unsigned char               *id, *msg, *json;
    ngx_agentlocator_provider_reply_t  r;

    if (size < 2) {
        return;
    }

    twilio = data[0] & 1;
    id_kind = (data[0] >> 1) & 3;
    code_kind = (data[0] >> 3) & 3;
    msg_kind = (data[0] & 0x20) ? ((data[0] & 0x40) ? 2 : 1) : 0;

    id = data + 2;
    id_len = data[1] < size - 2 ? data[1] : size - 2;
    msg = id + id_len;
    msg_len = size - 2 - id_len;
    msg_len = msg_len < 1100 ? msg_len : 1100;

    code = 0;

    if (size >= 10) {
        memcpy(&code, data + size - 8, 8);
    }

    g = yajl_gen_alloc(NULL);
    CHECK(g, "out of memory");
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);

    ok = 1;

    yajl_gen_map_open(g);

    if (data[0] & 0x80) {
        gen_noise(g, data[1]);
    }

    /* the other provider's names: never read */
    gen_key(g, twilio ? "provider_msg_id" : "sid");
    yajl_gen_integer(g, 7);
    gen_key(g, twilio ? "error" : "message");
    yajl_gen_bool(g, 1);

    if (id_kind) {
        gen_key(g, twilio ? "sid" : "provider_msg_id");

        if (id_kind == 1) {
            if (yajl_gen_string(g, id, id_len) != yajl_gen_status_ok) {
                goto invalid;
            }

            ok = ok && id_len <= NGX_AGENTLOCATOR_SEND_MAX_MSG_ID
                 && memchr(id, '\0', id_len) == NULL;

        } else if (id_kind == 2) {
            yajl_gen_null(g);
            ok = 0;

        } else {
            yajl_gen_integer(g, 5);
            ok = 0;
        }
    }

    if (code_kind) {
        gen_key(g, "code");

        if (code_kind == 1) {
            yajl_gen_integer(g, code);

        } else if (code_kind == 2) {
            yajl_gen_null(g);

        } else {
            yajl_gen_double(g, 1.5);
            ok = 0;
        }
    }

    if (msg_kind) {
        gen_key(g, twilio ? "message" : "error");

        if (msg_kind == 1) {
            if (yajl_gen_string(g, msg, msg_len) != yajl_gen_status_ok) {
                goto invalid;
            }

            ok = ok && msg_len <= NGX_AGENTLOCATOR_SEND_MAX_MESSAGE
                 && memchr(msg, '\0', msg_len) == NULL;

        } else {
            yajl_gen_null(g);
        }
    }

    if (!(data[0] & 0x80)) {
        gen_noise(g, data[1]);
    }

    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &json, &len);

    buf = malloc(len + 1);
    CHECK(buf, "out of memory");

    err = ngx_agentlocator_provider_reply(json, len, twilio, buf, len + 1, &r);

    CHECK((err == NULL) == ok, ok ? "a reply as a provider makes it was refused"
                                  : "a reply with a field out of its table's "
                                    "kinds or bounds was taken");

    if (ok) {
        CHECK(id_kind == 1 ? r.id.len == id_len
                             && (id_len == 0
                                 || memcmp(r.id.data, id, id_len) == 0)
                           : r.id.len == 0,
              "the reply's id is not the one put in");
        CHECK(msg_kind == 1 ? r.message.len == msg_len
                              && (msg_len == 0
                                  || memcmp(r.message.data, msg, msg_len) == 0)
                            : r.message.len == 0,
              "the reply's message is not the one put in");
        CHECK(code_kind == 1 ? r.has_code && r.code == code : !r.has_code,
              "the reply's code is not the one put in");
    }

    free(buf);

invalid:

    yajl_gen_free(g);
}


/*
 * The transcriber's answer made from the input: byte 0 bits 0-1 the text
 * absent, a string, null, a number; bit 7 noise first.
 */

static void
check_made_transcript(const uint8_t *data, size_t size)
{
    int                           kind, ok;
    size_t                        len;
    uint8_t                      *buf;
    yajl_gen                      g;
    const char                   *err;
    const unsigned char          *json;
    ngx_agentlocator_form_str_t   text;

    if (size < 1) {
        return;
    }

    kind = data[0] & 3;

    g = yajl_gen_alloc(NULL);
    CHECK(g, "out of memory");
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);

    yajl_gen_map_open(g);

    if (data[0] & 0x80) {
        gen_noise(g, data[0] >> 2);
    }

    gen_key(g, "language");
    yajl_gen_string(g, (const unsigned char *) "he", 2);

    ok = (kind == 1);

    if (kind) {
        gen_key(g, "text");

        if (kind == 1) {
            if (yajl_gen_string(g, data + 1, size - 1)
                != yajl_gen_status_ok)
            {
                goto invalid;
            }

            ok = memchr(data + 1, '\0', size - 1) == NULL;

        } else if (kind == 2) {
            yajl_gen_null(g);

        } else {
            yajl_gen_integer(g, 3);
        }
    }

    if (!(data[0] & 0x80)) {
        gen_noise(g, data[0] >> 2);
    }

    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &json, &len);

    buf = malloc(len + 1);
    CHECK(buf, "out of memory");

    err = ngx_agentlocator_transcript_reply(json, len, buf, len + 1, &text);

    CHECK((err == NULL) == ok, ok ? "an answer with a text was refused"
                                  : "an answer without a text string was "
                                    "taken");

    if (ok) {
        CHECK(text.len == size - 1
              && (text.len == 0 || memcmp(text.data, data + 1, text.len) == 0),
              "the answer's text is not the one put in");
    }

    if (kind == 0) {
        CHECK(err && strcmp(err, "no \"text\" in the answer") == 0,
              "an answer without \"text\" is not refused for that");
    }

    free(buf);

invalid:

    yajl_gen_free(g);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_read(data, size);
    check_made_provider(data, size);
    check_made_transcript(data, size);

    return 0;
}
