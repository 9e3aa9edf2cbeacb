
/*
 * RFC 6455 frames, server side: a resumable parser of client frames and the
 * header encoder for server frames.  Plain C over buffers, no nginx I/O and
 * no nginx functions, so a fuzzer can drive it alone.
 */


#ifndef _NGX_AGENTLOCATOR_WS_CODEC_H_INCLUDED_
#define _NGX_AGENTLOCATOR_WS_CODEC_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_AGENTLOCATOR_WS_CONTINUATION  0x0
#define NGX_AGENTLOCATOR_WS_TEXT          0x1
#define NGX_AGENTLOCATOR_WS_BINARY        0x2
#define NGX_AGENTLOCATOR_WS_CLOSE         0x8
#define NGX_AGENTLOCATOR_WS_PING          0x9
#define NGX_AGENTLOCATOR_WS_PONG          0xa

#define NGX_AGENTLOCATOR_WS_MAX_HEADER    14     /* 2 + 8 length + 4 mask */
#define NGX_AGENTLOCATOR_WS_MAX_CONTROL   125

/* close codes (RFC 6455 §7.4.1) */
#define NGX_AGENTLOCATOR_WS_NORMAL        1000
#define NGX_AGENTLOCATOR_WS_GOING_AWAY    1001
#define NGX_AGENTLOCATOR_WS_PROTOCOL      1002
#define NGX_AGENTLOCATOR_WS_UNSUPPORTED   1003
#define NGX_AGENTLOCATOR_WS_NO_STATUS     1005
#define NGX_AGENTLOCATOR_WS_ABNORMAL      1006
#define NGX_AGENTLOCATOR_WS_BAD_DATA      1007
#define NGX_AGENTLOCATOR_WS_POLICY        1008
#define NGX_AGENTLOCATOR_WS_TOO_BIG       1009
#define NGX_AGENTLOCATOR_WS_INTERNAL      1011

/* what ngx_agentlocator_ws_parse() returns */
#define NGX_AGENTLOCATOR_WS_FRAME         0      /* *frame is complete */
#define NGX_AGENTLOCATOR_WS_MORE          1      /* input used up */
#define NGX_AGENTLOCATOR_WS_FAIL          2      /* close with close_code */


/*
 * data is valid until the next call to the parser and as long as the input
 * it was given: a message that came whole in one input is unmasked in place
 * there (the parser writes to [*pos, last)); others are assembled in the
 * parser's own buffer.
 */
typedef struct {
    unsigned                  opcode;        /* TEXT, BINARY or a control */
    unsigned char            *data;
    size_t                    len;
} ngx_agentlocator_ws_frame_t;


typedef struct {
    /* set by the caller */
    size_t                    max_message;

    /* the message being assembled (grows with realloc up to max_message) */
    unsigned char            *msg;
    size_t                    msg_len;
    size_t                    msg_cap;
    unsigned                  msg_opcode;    /* 0: none in progress */
    unsigned                  msg_high;      /* OR of its bytes: 0x80 set
                                                when not all ASCII */

    /* the frame being read */
    unsigned                  state;
    unsigned char             hdr[NGX_AGENTLOCATOR_WS_MAX_HEADER];
    unsigned                  hdr_len;
    unsigned                  hdr_need;
    unsigned                  fin;
    unsigned                  opcode;
    unsigned char             mask[4];
    uint64_t                  payload_len;
    uint64_t                  payload_done;
    unsigned char             control[NGX_AGENTLOCATOR_WS_MAX_CONTROL];

    /* after NGX_AGENTLOCATOR_WS_FAIL */
    unsigned                  close_code;
    const char               *error;
} ngx_agentlocator_ws_parser_t;


void ngx_agentlocator_ws_parser_init(ngx_agentlocator_ws_parser_t *p,
    size_t max_message);
void ngx_agentlocator_ws_parser_free(ngx_agentlocator_ws_parser_t *p);
void ngx_agentlocator_ws_parser_release(ngx_agentlocator_ws_parser_t *p);
int ngx_agentlocator_ws_parse(ngx_agentlocator_ws_parser_t *p,
    unsigned char **pos, unsigned char *last,
    ngx_agentlocator_ws_frame_t *frame);

size_t ngx_agentlocator_ws_header(unsigned char *buf, unsigned opcode,
    size_t len);
int ngx_agentlocator_ws_close_code_valid(unsigned code);

size_t ngx_agentlocator_utf8_char(const unsigned char *p,
    const unsigned char *last);
int ngx_agentlocator_utf8_valid(const unsigned char *p, size_t len);


#endif /* _NGX_AGENTLOCATOR_WS_CODEC_H_INCLUDED_ */
