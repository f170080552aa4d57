/* Zero-page test: SSE2 on x86_64, 64-bit words elsewhere.  See zero.h. */
#include <stdint.h>
#include <string.h>

#include "multifd/zero.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

bool mr_page_is_zero_words(const void *buf, size_t len)
{
    const uint64_t *w = buf;
    size_t n = len / sizeof(uint64_t);

    for (size_t i = 0; i < n; i += 8) {
        /* OR a 64-byte chunk together: one branch per chunk. */
        uint64_t acc = w[i] | w[i + 1] | w[i + 2] | w[i + 3] |
                       w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];

        if (acc)
            return false;
    }
    return true;
}

#if defined(__SSE2__)
bool mr_page_is_zero(const void *buf, size_t len)
{
    const __m128i *v = buf;
    const __m128i zero = _mm_setzero_si128();
    size_t n = len / sizeof(__m128i);

    if (n == 0)
        return true;
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_load_si128(v), zero)) != 0xffff)
        return false;
    for (size_t i = 0; i < n; i += 4) {
        __m128i acc = _mm_or_si128(_mm_or_si128(_mm_load_si128(v + i),
                                                _mm_load_si128(v + i + 1)),
                                   _mm_or_si128(_mm_load_si128(v + i + 2),
                                                _mm_load_si128(v + i + 3)));

        if (_mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) != 0xffff)
            return false;
    }
    return true;
}
#else
bool mr_page_is_zero(const void *buf, size_t len)
{
    return mr_page_is_zero_words(buf, len);
}
#endif
