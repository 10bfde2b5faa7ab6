/*
 * What the glue shares between processes through the zone, read and
 * written one way: counters (relaxed: each one exact on its own, nothing
 * ordered by it), and the published snapshot's pointer and generation
 * (release by the writer, acquire by the readers, so that a reader who
 * sees a generation sees what was published before it).
 */
#pragma once

#include <cstdint>


/* a counter of the metrics */

static inline void
ngx_http_dynroute_count(uint64_t *counter, uint64_t n = 1) noexcept
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static inline uint64_t
ngx_http_dynroute_counted(const uint64_t *counter) noexcept
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}


/* what a writer publishes, and what readers check */

template <typename T>
static inline void
ngx_http_dynroute_publish_value(T *at, T value) noexcept
{
    __atomic_store_n(at, value, __ATOMIC_RELEASE);
}

template <typename T>
static inline T
ngx_http_dynroute_published(const T *at) noexcept
{
    return __atomic_load_n(at, __ATOMIC_ACQUIRE);
}

/* reads before this are done before the reads after it */
static inline void
ngx_http_dynroute_read_fence() noexcept
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
}
