/*
 * dynroute_servers hash=KEY: consistent hashing over a group's list, as
 * nginx's "hash KEY consistent" (ngx_http_upstream_hash_module.c, nginx
 * 1.22 to 1.26), so that a key reaches the server it reaches through
 * nginx's own upstream with the same "server" lines.
 *
 * Only the consistent form: caches behind a proxy are why people hash, and
 * plain "hash KEY" maps a key by its hash modulo the total weight, so any
 * change of the list moves almost every key (docs/design/membership.md,
 * "Balancing").
 *
 * The key is a complex value compiled with the configuration and evaluated
 * per request from the request's pool, as nginx's.  The ring
 * (src/core/chash.hpp) of the "server" lines is built once per
 * configuration into the configuration's pool, from the names nginx gives
 * its peers (the "server" line's name, split as ngx_http_upstream_init_chash
 * splits it).  The pick is ngx_http_upstream_get_chash_peer: the server of
 * the key's point if not tried, down, draining or failed within
 * fail_timeout, else the next point's; after 20 points, with an empty key
 * or a single server, the smooth weighted round robin of balance.hpp, as
 * nginx goes to its round robin.  The failure accounting is nginx's round
 * robin's (balance.hpp's free), as the hash module keeps it.
 *
 * The pick takes a ring however it was built (ngx_http_dynroute_ring_t):
 * a runtime list's ring is built by the writer into the list's group block
 * (over the canonical names and weights, as nginx's over "server" lines of
 * those names), and the refresh that fills the list takes it with it
 * (ngx_http_dynroute_servers_hash_fill), its points mapped to the list's
 * entries.  A block is freed by a writer once a version without it is
 * published, which a request that started before may outlive: a request
 * copies the points it may walk (chash_max_tries + 1 from the key's) out
 * of the block at init_peer, and keeps the copy only if the zone's
 * generation did not change while it copied (else the worker's view is
 * refreshed and it copies again); its tries read the copy, never the
 * block.  A request whose list switched between two tries finds the key's
 * place again on the new list's ring, its tries kept (as a new request
 * would, but for the servers it tried): the old list's entries and map are
 * refilled by the next change, so its ring could not be kept.
 *
 * The request path allocates nothing beyond nginx's own from the request's
 * pool (the key's value), takes no lock and throws nothing.
 */

#include <string_view>
#include <unordered_map>
#include <vector>

#include "ngx_http_dynroute_servers.hpp"
#include "ngx_http_dynroute_live.hpp"


/*
 * "hash=KEY" of dynroute_servers: the key compiled (nginx's own message if
 * it does not compile), and backup refused, as nginx's hash refuses it:
 * lines after the directive by the upstream's flags (nginx says "balancing
 * method does not support parameter "backup""), lines before it here.
 */

char *
ngx_http_dynroute_servers_hash_conf(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_upstream_srv_conf_t *uscf,
    ngx_http_dynroute_servers_hash_t **hash) noexcept
{
    ngx_str_t                          key;
    ngx_uint_t                         i;
    ngx_http_upstream_server_t        *server;
    ngx_http_dynroute_servers_hash_t  *h;
    ngx_http_compile_complex_value_t   ccv;

    if (*hash) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": hash= is given twice",
                           value);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    key.data = value->data + 5;
    key.len = value->len - 5;

    if (key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": hash= needs a key, "
                           "such as hash=$request_uri", value);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    h = static_cast<ngx_http_dynroute_servers_hash_t *>(
            ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_servers_hash_t)));
    if (h == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &key;
    ccv.complex_value = &h->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    server = static_cast<ngx_http_upstream_server_t *>(uscf->servers->elts);

    for (i = 0; i < uscf->servers->nelts; i++) {
        if (server[i].backup) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "server \"%V\" of upstream \"%V\" is a "
                               "backup, which consistent hashing does not "
                               "carry (nor does nginx's hash): drop "
                               "\"backup\" or hash=", &server[i].name,
                               &uscf->host);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }
    }

    uscf->flags &= ~NGX_HTTP_UPSTREAM_BACKUP;

    h->file = cf->conf_file->file.name.data;
    h->line = cf->conf_file->line;

    *hash = h;

    return NGX_CONF_OK;
}


/*
 * The ring of the configured list, whose entries are the addresses of the
 * "server" lines in their order (the directive refused backups): a
 * server's points come from its line's name, as nginx's peer->server.
 * Servers of one name (a name that resolves to several addresses, or a
 * line written twice) share its points, which name the first of them, and
 * same[] links them, as nginx compares names.
 */

ngx_int_t
ngx_http_dynroute_servers_hash_init(ngx_conf_t *cf,
    ngx_http_dynroute_servers_hash_t *hash, ngx_http_upstream_srv_conf_t *us,
    const ngx_http_dynroute_list_t *list) noexcept
{
    size_t                       size;
    uint32_t                    *same;
    ngx_uint_t                   i, j, n;
    dynroute::ChashPoint        *p;
    ngx_http_upstream_server_t  *server;

    server = static_cast<ngx_http_upstream_server_t *>(us->servers->elts);
    n = list->primaries;
    p = NULL;
    same = NULL;
    size = 0;

    try {
        std::vector<dynroute::ChashServer>               servers;
        std::vector<uint32_t>                            first;
        std::unordered_map<std::string_view, uint32_t>   names;
        bool                                             shared = false;

        servers.reserve(n);
        first.reserve(n);

        for (i = 0; i < us->servers->nelts; i++) {
            std::string_view name(reinterpret_cast<char *>(server[i].name.data),
                                  server[i].name.len);
            dynroute::ChashName split = dynroute::split_chash_name(name);

            for (j = 0; j < server[i].naddrs; j++) {
                auto at = names.emplace(name,
                                        static_cast<uint32_t>(servers.size()));
                shared = shared || !at.second;
                first.push_back(at.first->second);
                servers.push_back({split.host, split.port,
                                   static_cast<uint32_t>(server[i].weight)});
            }
        }

        if (servers.size() != n) {      /* backups were refused */
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "upstream \"%V\": %uz servers for its ring, %ui "
                          "in its list, in %s:%ui", &us->host,
                          servers.size(), n, hash->file, hash->line);
            return NGX_ERROR;
        }

        std::vector<dynroute::ChashPoint> points =
            dynroute::build_chash_ring(servers);

        size = points.size();

        if (size) {
            p = static_cast<dynroute::ChashPoint *>(
                    ngx_palloc(cf->pool, size * sizeof(dynroute::ChashPoint)));
            if (p == NULL) {
                return NGX_ERROR;
            }

            for (i = 0; i < size; i++) {
                p[i].hash = points[i].hash;
                p[i].server = first[points[i].server];
            }
        }

        if (shared) {
            same = static_cast<uint32_t *>(
                       ngx_palloc(cf->pool, n * sizeof(uint32_t)));
            if (same == NULL) {
                return NGX_ERROR;
            }

            /* each server's next of its name: last[] by the name's first */

            std::vector<uint32_t>  last(n, NGX_HTTP_DYNROUTE_HASH_END);

            for (i = 0; i < n; i++) {
                same[i] = NGX_HTTP_DYNROUTE_HASH_END;

                if (last[first[i]] != NGX_HTTP_DYNROUTE_HASH_END) {
                    same[last[first[i]]] = static_cast<uint32_t>(i);
                }

                last[first[i]] = static_cast<uint32_t>(i);
            }
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\": %s, in %s:%ui", &us->host, e.what(),
                      hash->file, hash->line);
        return NGX_ERROR;

    } catch (...) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\": unknown error, in %s:%ui", &us->host,
                      hash->file, hash->line);
        return NGX_ERROR;
    }

    hash->ring.points = dynroute::ChashRingView(
                            p, size * sizeof(dynroute::ChashPoint), size);
    hash->ring.same = same;

    return NGX_OK;
}


/*
 * The members of a hash group: the list from the "server" lines has the
 * configured ring, whose points name its entries as they are; the lists
 * that refreshes fill get their rings and maps by
 * ngx_http_dynroute_servers_hash_fill().
 */

ngx_int_t
ngx_http_dynroute_servers_hash_members(ngx_conf_t *cf,
    ngx_http_dynroute_servers_hash_t *hash, ngx_http_dynroute_members_t *m)
    noexcept
{
    ngx_http_dynroute_rings_t  *rings;

    rings = static_cast<ngx_http_dynroute_rings_t *>(
                ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_rings_t)));
    if (rings == NULL) {
        return NGX_ERROR;
    }

    rings->index[0] = static_cast<uint32_t *>(
                          ngx_palloc(cf->pool, 2 * m->max * sizeof(uint32_t)));
    if (rings->index[0] == NULL) {
        return NGX_ERROR;
    }

    rings->index[1] = rings->index[0] + m->max;
    rings->configured = &hash->ring;
    rings->nconfigured = m->list[m->current].primaries;
    rings->ring[m->current] = hash->ring;

    m->rings = rings;

    return NGX_OK;
}


/*
 * At the end of ngx_http_dynroute_members_fill(): the ring of the list it
 * filled, and where each server the ring names is in that list.  The
 * "server" lines (written 0): the configured ring, by id (a "server"
 * line's server has its place plus 1); a group block: its ring, by place
 * in the block (the fill keeps the block's order and leaves servers out,
 * never reorders them, so a walk of both in step finds each).  A block
 * without a ring (written by a configuration without hash=) gives an empty
 * one: round robin until the list is written again.
 */

void
ngx_http_dynroute_servers_hash_fill(ngx_http_dynroute_members_t *m,
    const dynroute::GroupView &g, uint64_t written) noexcept
{
    uint32_t                      *index, id;
    ngx_uint_t                     next, i, n, e, count;
    ngx_http_dynroute_list_t      *list;
    ngx_http_dynroute_ring_t      *ring;
    ngx_http_dynroute_rings_t     *rings;
    dynroute::GroupView::Server    s;

    rings = m->rings;

    if (rings == NULL) {
        return;
    }

    next = m->current ^ 1;
    list = &m->list[next];
    ring = &rings->ring[next];
    index = rings->index[next];
    count = list->primaries + list->backups;

    if (written == 0) {
        *ring = *rings->configured;
        rings->zone[next] = 0;

        n = ngx_min(rings->nconfigured, m->max);

        for (i = 0; i < n; i++) {
            index[i] = NGX_HTTP_DYNROUTE_HASH_END;
        }

        for (i = 0; i < count; i++) {
            id = m->slots[list->entries[i].slot].id;

            if (id >= 1 && id <= n) {
                index[id - 1] = static_cast<uint32_t>(i);
            }
        }

    } else {
        ring->points = g.ring();
        ring->same = NULL;
        rings->zone[next] = 1;

        n = ngx_min(g.servers(), m->max);

        /* e: the entry of the list that the next server may be */

        for (i = 0, e = 0; i < n; i++) {
            index[i] = NGX_HTTP_DYNROUTE_HASH_END;

            if (e < count && g.server(i, s)
                && s.id == m->slots[list->entries[e].slot].id)
            {
                index[i] = static_cast<uint32_t>(e++);
            }
        }
    }

    ring->index = index;
    ring->nindex = static_cast<uint32_t>(n);
}


/* a request's ring: the points it may walk, and where it is */

typedef struct {
    ngx_http_dynroute_ring_t       ring;      /* first: what sp->ring is */
    ngx_http_dynroute_live_t      *live;
    ngx_http_dynroute_members_t   *members;
    uint32_t                       hash;      /* crc32 of the key */
    dynroute::ChashPoint           window[dynroute::chash_max_tries + 1];
} ngx_http_dynroute_hash_peer_t;

#define NGX_HTTP_DYNROUTE_HASH_TRIES  4


/*
 * The key's place on the ring of the list in use, the tries kept.  The
 * configured ring lives as long as the configuration: read in place.  A
 * ring in the zone: the points from the key's (as many as a request may
 * walk) copied, the copy kept if the zone did not change meanwhile; after
 * NGX_HTTP_DYNROUTE_HASH_TRIES changes, round robin for the request.
 */

static void
ngx_http_dynroute_servers_hash_place(ngx_http_dynroute_hash_peer_t *hp,
    dynroute::ChashCursor *cursor) noexcept
{
    ngx_uint_t                  tries, cur, j, n;
    std::size_t                 p, size;
    ngx_http_dynroute_members_t *m;
    const ngx_http_dynroute_ring_t  *rg;

    m = hp->members;

    for (tries = 0; tries < NGX_HTTP_DYNROUTE_HASH_TRIES; tries++) {
        cur = m->current;
        rg = &m->rings->ring[cur];

        if (!m->rings->zone[cur]) {
            hp->ring = *rg;
            cursor->point = rg->points.find(hp->hash);
            return;
        }

        size = rg->points.size();
        p = size ? rg->points.find(hp->hash) % size : 0;
        n = ngx_min(size, dynroute::chash_max_tries + 1);

        for (j = 0; j < n; j++) {
            hp->window[j].hash = rg->points.hash_at(p);
            hp->window[j].server = rg->points.server_at(p);

            if (++p == size) {
                p = 0;
            }
        }

        if (ngx_http_dynroute_live_current(hp->live)) {
            hp->ring = *rg;
            hp->ring.points = dynroute::ChashRingView(
                                  hp->window, n * sizeof(dynroute::ChashPoint),
                                  n);
            cursor->point = 0;
            return;
        }

        /* a writer published meanwhile: what was read may be freed */

        ngx_http_dynroute_live_sync(hp->live);
    }

    hp->ring = *rg;
    hp->ring.points = dynroute::ChashRingView();
    cursor->keyless = true;
}


/* ngx_http_upstream_init_chash_peer: the key, its place on the ring */

ngx_int_t
ngx_http_dynroute_servers_hash_start(ngx_http_request_t *r,
    ngx_http_dynroute_servers_hash_t *hash, ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_members_t *m, const ngx_http_dynroute_ring_t **ring,
    dynroute::ChashCursor *cursor) noexcept
{
    ngx_str_t                       key;
    ngx_http_dynroute_hash_peer_t  *hp;

    if (ngx_http_complex_value(r, &hash->key, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynroute upstream hash key:\"%V\"", &key);

    hp = static_cast<ngx_http_dynroute_hash_peer_t *>(
             ngx_palloc(r->pool, sizeof(ngx_http_dynroute_hash_peer_t)));
    if (hp == NULL) {
        return NGX_ERROR;
    }

    hp->live = live;
    hp->members = m;
    hp->hash = dynroute::crc32(std::string_view(
                                   reinterpret_cast<char *>(key.data),
                                   key.len));

    *cursor = dynroute::ChashCursor();
    cursor->keyless = (key.len == 0);

    ngx_http_dynroute_servers_hash_place(hp, cursor);

    *ring = &hp->ring;

    return NGX_OK;
}


void
ngx_http_dynroute_servers_hash_again(const ngx_http_dynroute_ring_t *ring,
    dynroute::ChashCursor *cursor) noexcept
{
    ngx_http_dynroute_hash_peer_t  *hp;

    hp = reinterpret_cast<ngx_http_dynroute_hash_peer_t *>(
             const_cast<ngx_http_dynroute_ring_t *>(ring));

    ngx_http_dynroute_servers_hash_place(hp, cursor);
}


/*
 * ngx_http_upstream_get_chash_peer over a packed list: at each point, the
 * servers of its name that are not tried, down, draining or failed within
 * fail_timeout, weighed as nginx weighs them (a name with one server: that
 * server); the entry for the try, or NULL (NGX_BUSY) from the round robin.
 */

ngx_http_dynroute_entry_t *
ngx_http_dynroute_servers_hash_get(const ngx_http_dynroute_list_t &list,
    const ngx_http_dynroute_ring_t &ring, dynroute::ChashCursor &cursor,
    dynroute::balance::Try &t, time_t now) noexcept
{
    uint32_t                    s;
    std::size_t                 best;
    ngx_http_dynroute_entry_t  *peers, *e;

    const std::size_t  none = static_cast<std::size_t>(-1);
    const std::size_t  bits = dynroute::balance::word_bits;

    if (list.single()) {
        return dynroute::balance::get(list, t, now);
    }

    peers = list.entries;
    best = none;

    /* a point's server, and those of its name: their entries by index */

    auto usable = [&](uint32_t server) noexcept -> bool {
        intptr_t  total = 0;

        best = none;

        for (uint32_t k = server;
             k != NGX_HTTP_DYNROUTE_HASH_END;
             k = ring.same ? ring.same[k] : NGX_HTTP_DYNROUTE_HASH_END)
        {
            uint32_t  i = ring.index == NULL ? k
                          : k < ring.nindex ? ring.index[k]
                          : NGX_HTTP_DYNROUTE_HASH_END;

            if (i >= list.primaries) {
                continue;
            }

            ngx_http_dynroute_entry_t  &peer = peers[i];

            if (t.tried[i / bits] & (uintptr_t{1} << (i % bits))) {
                continue;
            }

            if (peer.down || peer.drain
                || dynroute::balance::unhealthy(peer))
            {
                continue;
            }

            if (peer.max_fails && peer.fails >= peer.max_fails
                && now - peer.checked <= peer.fail_timeout)
            {
                continue;
            }

            peer.current_weight += peer.effective_weight;
            total += peer.effective_weight;

            if (peer.effective_weight < peer.weight) {
                peer.effective_weight++;
            }

            if (best == none
                || peer.current_weight > peers[best].current_weight)
            {
                best = i;
            }
        }

        if (best == none) {
            return false;
        }

        peers[best].current_weight -= total;

        return true;
    };

    s = dynroute::chash_pick(ring.points,
                             ring.index ? ring.nindex
                                        : static_cast<uint32_t>(list.primaries),
                             cursor, usable);

    if (s == dynroute::chash_round_robin) {
        return dynroute::balance::get(list, t, now);
    }

    e = &peers[best];

    if (now - e->checked > e->fail_timeout) {
        e->checked = now;
    }

    t.tried[best / bits] |= uintptr_t{1} << (best % bits);
    t.current = best;

    return e;
}
