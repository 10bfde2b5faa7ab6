// Smooth weighted round robin over a packed list of servers, as nginx's.
//
// A transliteration of ngx_http_upstream_get_round_robin_peer (with its
// ngx_http_upstream_get_peer) and of ngx_http_upstream_free_round_robin_peer
// (nginx 1.22 to 1.26), over an array instead of nginx's peer->next chain:
// the primaries first, then the backups.  A pick skips the servers this
// request tried, those that are down or draining and those that failed
// max_fails times within fail_timeout; adds each other server's
// effective_weight to its current_weight, takes the largest and subtracts
// the total from it.  A list of one primary and no backup is nginx's
// "single" peer: no weights, no failure accounting.  The backups are tried
// once no primary is left.  max_conns is not carried (dynroute_servers
// refuses it), so neither is nginx's conns counter.
//
// The list is the caller's: entries are written in place, one worker's
// only, without a lock.  Nothing here allocates or throws.  Pure C++17, no
// nginx headers: a template over the entry type, so that the glue's entries
// (Entry below) and the tests' share one loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>

#include "health_check.hpp"
#include "metrics.hpp"

namespace dynroute::balance {

// One server of a packed list: nginx's fields of ngx_http_upstream_rr_peer_t
// that the pick reads and writes, with their types, plus drain and the index
// of the worker's slot that holds the server's address.
struct Entry {
    std::intptr_t current_weight = 0;
    std::intptr_t effective_weight = 0;
    std::intptr_t weight = 0;
    std::uintptr_t fails = 0;
    std::time_t accessed = 0;
    std::time_t checked = 0;
    std::uintptr_t max_fails = 0;
    std::time_t fail_timeout = 0;
    std::uint32_t slot = 0;
    bool down = false;
    bool drain = false;
    // dynroute_health_check: the server's cell (metrics::ServerSlot), whose
    // health word a pick reads; nullptr: not checked
    const std::uint64_t *cell = nullptr;
};

// Whether the health check found e's server down (the cell is shared: every
// worker sees it at its next pick), and what a pick adds to its current
// weight with slow start (slow_start_ms 0: its effective weight as is).
template <class E>
bool unhealthy(const E &e) noexcept {
    return e.cell && health::down(__atomic_load_n(&e.cell[metrics::s_health],
                                                  __ATOMIC_RELAXED));
}

template <class E>
std::intptr_t added(const E &e, std::uint64_t slow_start_ms,
                    std::uint64_t now_ms) noexcept {
    if (slow_start_ms == 0) {
        return e.effective_weight;
    }
    if (e.cell) {
        return health::ramp(e.effective_weight,
                            __atomic_load_n(&e.cell[metrics::s_up_since_ms],
                                            __ATOMIC_RELAXED),
                            now_ms, slow_start_ms);
    }
    return e.effective_weight * health::scale;
}

// A list as a pick sees it: primaries at [0, primaries), backups after them;
// tries is what tries() counts, kept by whoever fills the list (nginx's
// peers->tries, counted once, not per request).
template <class E>
struct List {
    E *entries = nullptr;
    std::size_t primaries = 0;
    std::size_t backups = 0;
    std::uintptr_t tries = 0;
    std::uint64_t slow_start_ms = 0;  // dynroute_health_check slow_start=

    // nginx's peers->single: no weights, no failures counted
    bool single() const noexcept { return primaries == 1 && backups == 0; }
};

inline constexpr std::size_t word_bits = 8 * sizeof(std::uintptr_t);

// Words of the tried bitmap a request needs for a list: by position, as
// nginx's, for the longer of the two parts (the backups reuse it).
inline constexpr std::size_t tried_words(std::size_t primaries,
                                         std::size_t backups) noexcept {
    std::size_t n = primaries > backups ? primaries : backups;
    return (n + word_bits - 1) / word_bits;
}

// A request's tries over one list.
struct Try {
    std::uintptr_t *tried = nullptr;  // tried_words() words, zeroed
    std::size_t current = 0;          // the last pick, index into entries
    bool backup = false;              // the primaries are exhausted
};

// nginx's tries: the servers not down in both parts (draining ones are
// not picked either).  A pass over the list: for List::tries.
template <class E>
std::uintptr_t tries(const List<E> &list) noexcept {
    std::uintptr_t t = 0;
    for (std::size_t i = 0; i < list.primaries + list.backups; i++) {
        t += !(list.entries[i].down || list.entries[i].drain);
    }
    return t;
}

// ngx_http_upstream_get_peer over n entries: the index picked, or n.
template <class E>
std::size_t pick_in(E *peers, std::size_t n, std::uintptr_t *tried,
                    std::time_t now, std::uint64_t slow_start_ms = 0,
                    std::uint64_t now_ms = 0) noexcept {
    E *best = nullptr;
    std::intptr_t total = 0;
    std::size_t p = n;

    for (std::size_t i = 0; i < n; i++) {
        E &peer = peers[i];
        std::uintptr_t m = std::uintptr_t{1} << (i % word_bits);

        if (tried[i / word_bits] & m) {
            continue;
        }
        if (peer.down || peer.drain || unhealthy(peer)) {
            continue;
        }
        if (peer.max_fails && peer.fails >= peer.max_fails
            && now - peer.checked <= peer.fail_timeout) {
            continue;
        }

        std::intptr_t w = added(peer, slow_start_ms, now_ms);
        peer.current_weight += w;
        total += w;

        if (peer.effective_weight < peer.weight) {
            peer.effective_weight++;
        }

        if (best == nullptr || peer.current_weight > best->current_weight) {
            best = &peer;
            p = i;
        }
    }

    if (best == nullptr) {
        return n;
    }

    tried[p / word_bits] |= std::uintptr_t{1} << (p % word_bits);
    best->current_weight -= total;

    if (now - best->checked > best->fail_timeout) {
        best->checked = now;
    }

    return p;
}

// ngx_http_upstream_get_round_robin_peer: the entry for the next try (its
// index in t.current), or nullptr when no server is left (NGX_BUSY).
template <class E>
E *get(const List<E> &list, Try &t, std::time_t now,
       std::uint64_t now_ms = 0) noexcept {
    for (;;) {
        std::size_t base = t.backup ? list.primaries : 0;
        std::size_t n = t.backup ? list.backups : list.primaries;
        E *peers = list.entries + base;
        std::size_t p = n;

        if (!t.backup && list.single()) {
            if (!(peers[0].down || peers[0].drain || unhealthy(peers[0]))) {
                p = 0;
            }
        } else if (n) {
            p = pick_in(peers, n, t.tried, now, list.slow_start_ms, now_ms);
        }

        if (p < n) {
            t.current = base + p;
            return &peers[p];
        }

        if (t.backup || list.backups == 0) {
            return nullptr;
        }

        t.backup = true;

        for (std::size_t i = 0; i < tried_words(list.backups, 0); i++) {
            t.tried[i] = 0;
        }
    }
}

// ngx_http_upstream_free_round_robin_peer for the try of t.current; tries
// is the peer connection's.  True if this failure took the server out
// (nginx's "upstream server temporarily disabled").
template <class E>
bool free(const List<E> &list, const Try &t, bool failed, std::time_t now,
          std::uintptr_t &tries) noexcept {
    E &peer = list.entries[t.current];
    bool disabled = false;

    if (!t.backup && list.single()) {
        tries = 0;
        return false;
    }

    if (failed) {
        peer.fails++;
        peer.accessed = now;
        peer.checked = now;

        if (peer.max_fails) {
            peer.effective_weight -=
                static_cast<std::intptr_t>(peer.weight / peer.max_fails);
            disabled = peer.fails >= peer.max_fails;
        }

        if (peer.effective_weight < 0) {
            peer.effective_weight = 0;
        }

    } else if (peer.accessed < peer.checked) {
        peer.fails = 0;
    }

    if (tries) {
        tries--;
    }

    return disabled;
}

}  // namespace dynroute::balance
