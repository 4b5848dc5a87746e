/* test_md5.c — MD5 against the RFC 1321 appendix A.5 test suite, plus
 * streaming in odd-sized pieces (block-boundary handling). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "epsinas/core/md5.h"

static const char *const vectors[][2] = {
    {"", "d41d8cd98f00b204e9800998ecf8427e"},
    {"a", "0cc175b9c0f1b6a831c399e269772661"},
    {"abc", "900150983cd24fb0d6963f7d28e17f72"},
    {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
    {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
    {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
    {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
     "57edf4a22be3c955ac49da2e2107b67a"},
};

static void test_rfc1321(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char hex[33];
        eps_md5_hex(vectors[i][0], strlen(vectors[i][0]), hex);
        assert_string_equal(hex, vectors[i][1]);
    }
}

/* Lengths around the 55/56/64-byte padding boundaries, fed in pieces of
 * every size 1..13, must equal the one-shot digest; the one-shot digest of
 * the 56-byte and 64-byte messages is pinned to known values. */
static void test_streaming(void **state)
{
    (void)state;
    unsigned char msg[200];
    for (int i = 0; i < 200; i++) msg[i] = (unsigned char)('a' + i % 26);
    for (size_t len = 0; len <= 200; len++) {
        unsigned char ref[16];
        eps_md5(msg, len, ref);
        for (size_t piece = 1; piece <= 13; piece++) {
            eps_md5_ctx c;
            eps_md5_init(&c);
            for (size_t off = 0; off < len; off += piece)
                eps_md5_update(&c, msg + off, len - off < piece ? len - off : piece);
            unsigned char d[16];
            eps_md5_final(&c, d);
            assert_memory_equal(d, ref, 16);
        }
    }
    char hex[33];
    /* 56 x 'a' and 64 x 'a' (padding spills into a second block / exact block) */
    unsigned char a[64];
    memset(a, 'a', sizeof a);
    eps_md5_hex(a, 56, hex);
    assert_string_equal(hex, "3b0c8ac703f828b04c6c197006d17218");
    eps_md5_hex(a, 64, hex);
    assert_string_equal(hex, "014842d480b571495a4a0363793f7367");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc1321),
        cmocka_unit_test(test_streaming),
    };
    return cmocka_run_group_tests_name("md5", tests, NULL, NULL);
}
