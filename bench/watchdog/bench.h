/*
 * What the watchdog bench's C programs (mock.c, calls.c, mixed.c) share:
 * a stop flag for SIGINT/SIGTERM, the wall clock in microseconds (the
 * times they record are compared across processes), and base64.
 */

#ifndef BENCH_WATCHDOG_BENCH_H
#define BENCH_WATCHDOG_BENCH_H

#include <signal.h>
#include <stddef.h>
#include <time.h>

static volatile sig_atomic_t  stop;

static inline void on_signal(int s) { (void) s; stop = 1; }

static inline long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void b64(const unsigned char *s, size_t n, char *out)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    for (i = 0; i + 2 < n; i += 3) {
        *out++ = t[s[i] >> 2];
        *out++ = t[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *out++ = t[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
        *out++ = t[s[i + 2] & 63];
    }
    if (n - i == 1) {
        *out++ = t[s[i] >> 2];
        *out++ = t[(s[i] & 3) << 4];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        *out++ = t[s[i] >> 2];
        *out++ = t[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *out++ = t[(s[i + 1] & 15) << 2];
        *out++ = '=';
    }
    *out = '\0';
}

#endif
