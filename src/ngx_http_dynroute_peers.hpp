/*
 * What dynroute_servers (a group's members) and dynroute_services (a slot
 * pool the runtime services share) do alike with a slot and a list: the
 * request's tries (the tried bitmap, the pick's slot held and its name
 * copied, the try given back, TLS sessions) and a list filled from a group
 * block.  Each caller keeps what differs: where its list and slots are,
 * how a slot is found by id, when a slot is released.
 *
 * Inline: the request path costs what it cost written out in each file (no
 * call, no allocation beyond the request pool's, nothing virtual).
 */
#pragma once

#include "ngx_http_dynroute_servers.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "metrics.hpp"


/* ---- request time ---- */


/*
 * init_peer: the tried bitmap of the request's first list, in *data up to
 * word_bits servers, else from the pool; *nwords its size (at least 1).
 */

inline ngx_int_t
ngx_http_dynroute_peer_tried(ngx_pool_t *pool,
    const ngx_http_dynroute_list_t *list, dynroute::balance::Try *t,
    size_t *nwords, uintptr_t *data) noexcept
{
    size_t  words;

    words = dynroute::balance::tried_words(list->primaries, list->backups);
    *nwords = ngx_max(words, 1);

    if (words <= 1) {
        *data = 0;
        t->tried = data;

    } else {
        t->tried = static_cast<uintptr_t *>(
                       ngx_pcalloc(pool, words * sizeof(uintptr_t)));
        if (t->tried == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The lists switched since the request's last try: the tried bitmap for
 * list, the list in use now, cleared but for the server tried last (last,
 * NULL if none or not the caller's any more), if it is still there (by
 * position, as nginx's: at worst one server is tried twice).
 */

inline ngx_int_t
ngx_http_dynroute_peer_again(ngx_pool_t *pool,
    const ngx_http_dynroute_list_t *list, dynroute::balance::Try *t,
    size_t *nwords, const ngx_http_dynroute_peer_t *last) noexcept
{
    size_t  words, pos;

    words = dynroute::balance::tried_words(list->primaries, list->backups);

    if (words > *nwords) {
        t->tried = static_cast<uintptr_t *>(
                       ngx_pcalloc(pool, words * sizeof(uintptr_t)));
        if (t->tried == NULL) {
            return NGX_ERROR;
        }

        *nwords = words;

    } else {
        ngx_memzero(t->tried, *nwords * sizeof(uintptr_t));
    }

    if (last && last->id && !last->removed
        && last->entry < list->primaries + list->backups
        && (last->entry >= list->primaries) == t->backup)
    {
        pos = last->entry - (t->backup ? list->primaries : 0);
        t->tried[pos / dynroute::balance::word_bits] |=
            uintptr_t{1} << (pos % dynroute::balance::word_bits);
    }

    return NGX_OK;
}


/*
 * get: slots[idx], picked, held by the try (*held, *last) and counted in
 * its cell; pc gets its address and a copy of its name in the pool
 * ($upstream_addr outlives free(): nginx keeps u->state->peer = pc->name,
 * and a slot may be reused once freed).
 */

inline ngx_int_t
ngx_http_dynroute_peer_use(ngx_peer_connection_t *pc, ngx_pool_t *pool,
    ngx_http_dynroute_peer_t *slots, uint32_t idx,
    ngx_http_dynroute_peer_t **held, uint32_t *last) noexcept
{
    ngx_str_t                 *name;
    ngx_http_dynroute_peer_t  *slot;

    slot = &slots[idx];

    name = static_cast<ngx_str_t *>(
               ngx_palloc(pool, sizeof(ngx_str_t) + slot->name_len));
    if (name == NULL) {
        return NGX_ERROR;
    }

    name->len = slot->name_len;
    name->data = reinterpret_cast<u_char *>(name + 1);
    ngx_memcpy(name->data, slot->name, slot->name_len);

    slot->refs++;
    *held = slot;
    *last = idx;

    if (slot->cell) {
        ngx_http_dynroute_count(&slot->cell[dynroute::metrics::s_picked]);
    }

    pc->sockaddr = &slot->sockaddr.sockaddr;
    pc->socklen = slot->socklen;
    pc->name = name;

    return NGX_OK;
}


/*
 * free, after the lists switched during the try: list (the list in use
 * now, or NULL) if it still holds the slot's server, t pointed at its
 * entry; NULL otherwise.
 */

inline ngx_http_dynroute_list_t *
ngx_http_dynroute_peer_entry_now(ngx_http_dynroute_list_t *list,
    const ngx_http_dynroute_peer_t *slot, dynroute::balance::Try *t) noexcept
{
    if (list == NULL || slot->removed
        || slot->entry >= list->primaries + list->backups)
    {
        return NULL;
    }

    t->current = slot->entry;
    t->backup = (slot->entry >= list->primaries);

    return list;
}


/*
 * free: the try of slot given back to list's entry t (list NULL: its
 * server left the list, only a try is spent), counted in the slot's cell,
 * the slot no longer held by it.  True if the slot is removed and this was
 * its last try: the caller releases it.
 */

inline bool
ngx_http_dynroute_peer_free(ngx_peer_connection_t *pc, ngx_uint_t state,
    ngx_http_upstream_t *u, ngx_http_dynroute_peer_t *slot,
    const ngx_http_dynroute_list_t *list, const dynroute::balance::Try &t)
    noexcept
{
    time_t  until;

    until = 0;

    if (list == NULL) {
        if (pc->tries) {
            pc->tries--;
        }

    } else if (dynroute::balance::free(*list, t,
                                       (state & NGX_PEER_FAILED) != 0,
                                       ngx_time(), pc->tries))
    {
        ngx_log_error(NGX_LOG_WARN, pc->log, 0,
                      "upstream server temporarily disabled");
        until = ngx_time() + list->entries[t.current].fail_timeout;
    }

    if (slot->cell) {
        ngx_http_dynroute_servers_counted(slot->cell, u, state, until);
    }

    slot->refs--;

    return slot->removed && slot->refs == 0;
}


#if (NGX_HTTP_SSL)

/* TLS sessions per server (slot: the try's, or NULL), as nginx's round
 * robin resumes them */

inline ngx_int_t
ngx_http_dynroute_peer_set_session(ngx_peer_connection_t *pc,
    ngx_http_dynroute_peer_t *slot) noexcept
{
    if (slot == NULL) {
        return NGX_OK;
    }

    return ngx_ssl_set_session(pc->connection, slot->ssl_session);
}


inline void
ngx_http_dynroute_peer_save_session(ngx_peer_connection_t *pc,
    ngx_http_dynroute_peer_t *slot) noexcept
{
    ngx_ssl_session_t  *ssl_session, *old;

    if (slot == NULL) {
        return;
    }

    ssl_session = ngx_ssl_get_session(pc->connection);
    if (ssl_session == NULL) {
        return;
    }

    old = slot->ssl_session;
    slot->ssl_session = ssl_session;

    if (old) {
        ngx_ssl_free_session(old);
    }
}

#endif


/* ---- a list filled from a group block (a worker's refresh) ---- */


/* whether a list may hold server s of a block (a damaged one it cannot) */

inline bool
ngx_http_dynroute_peer_fits(const dynroute::GroupView::Server &s) noexcept
{
    return s.id != 0 && s.socklen != 0
           && s.socklen <= sizeof(ngx_sockaddr_t)
           && s.name.size() <= NGX_SOCKADDR_STRLEN
           && s.weight != 0;
}


/* whether slot holds the address of s */

inline bool
ngx_http_dynroute_peer_same_address(const ngx_http_dynroute_peer_t *slot,
    const dynroute::GroupView::Server &s) noexcept
{
    return slot->socklen == s.socklen
           && ngx_memcmp(&slot->sockaddr, s.sockaddr, s.socklen) == 0;
}


/* a new slot: the address and name of s */

inline void
ngx_http_dynroute_peer_address(ngx_http_dynroute_peer_t *slot,
    const dynroute::GroupView::Server &s) noexcept
{
    ngx_memcpy(&slot->sockaddr, s.sockaddr, s.socklen);
    slot->socklen = s.socklen;
    ngx_memcpy(slot->name, s.name.data(), s.name.size());
    slot->name_len = s.name.size();
}


/*
 * Server s, in slot idx, as entry n of next, a primary or a backup: marked
 * in the list a refresh fills.  A fresh server starts anew; a known one
 * (its entry in cur, the list in use) keeps its failures and weights, but
 * a changed weight starts its round again.
 */

inline void
ngx_http_dynroute_peer_place(ngx_http_dynroute_list_t *next, ngx_uint_t n,
    const ngx_http_dynroute_list_t *cur, ngx_http_dynroute_peer_t *slot,
    uint32_t idx, bool fresh, const dynroute::GroupView::Server &s,
    bool primary) noexcept
{
    ngx_http_dynroute_entry_t  *e;

    slot->marked = 1;
    slot->next = static_cast<uint32_t>(n);

    e = &next->entries[n];

    if (fresh) {
        *e = ngx_http_dynroute_entry_t();
        e->effective_weight = s.weight;

    } else {
        *e = cur->entries[slot->entry];

        if (e->weight != static_cast<intptr_t>(s.weight)) {
            e->current_weight = 0;
            e->effective_weight = s.weight;
        }
    }

    e->weight = s.weight;
    e->max_fails = s.max_fails;
    e->fail_timeout = s.fail_timeout;
    e->down = s.down;
    e->drain = s.drain;
    e->slot = idx;

    if (primary) {
        next->primaries++;

    } else {
        next->backups++;
    }
}
