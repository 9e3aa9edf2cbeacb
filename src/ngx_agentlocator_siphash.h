
/*
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash, so
 * that whoever chooses the strings cannot choose where they land without
 * the key.  Plain C with no nginx types, for the fuzz/ checks to use too.
 */


#ifndef _NGX_AGENTLOCATOR_SIPHASH_H_INCLUDED_
#define _NGX_AGENTLOCATOR_SIPHASH_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_AGENTLOCATOR_SIPHASH_KEY_LEN  16


uint64_t ngx_agentlocator_siphash24(
    const unsigned char key[NGX_AGENTLOCATOR_SIPHASH_KEY_LEN],
    const unsigned char *in, size_t len);


#endif /* _NGX_AGENTLOCATOR_SIPHASH_H_INCLUDED_ */
