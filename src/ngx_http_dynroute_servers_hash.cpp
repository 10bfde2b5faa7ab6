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
 * the runtime lists' rings, built by the writer into their group blocks,
 * are read in place by the same pick.
 *
 * The request path allocates nothing beyond nginx's own from the request's
 * pool (the key's value), takes no lock and throws nothing.
 */

#include <string_view>
#include <unordered_map>
#include <vector>

#include "ngx_http_dynroute_servers.hpp"


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


/* ngx_http_upstream_init_chash_peer: the key, its place on the ring */

ngx_int_t
ngx_http_dynroute_servers_hash_cursor(ngx_http_request_t *r,
    ngx_http_dynroute_servers_hash_t *hash,
    const ngx_http_dynroute_ring_t *ring, dynroute::ChashCursor *cursor)
    noexcept
{
    ngx_str_t  key;

    if (ngx_http_complex_value(r, &hash->key, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynroute upstream hash key:\"%V\"", &key);

    *cursor = dynroute::chash_cursor(
                  ring->points,
                  std::string_view(reinterpret_cast<char *>(key.data),
                                   key.len));

    return NGX_OK;
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

    auto usable = [&](uint32_t server) noexcept -> bool {
        intptr_t  total = 0;

        best = none;

        for (uint32_t i = server;
             i < list.primaries;
             i = ring.same ? ring.same[i] : NGX_HTTP_DYNROUTE_HASH_END)
        {
            ngx_http_dynroute_entry_t  &peer = peers[i];

            if (t.tried[i / bits] & (uintptr_t{1} << (i % bits))) {
                continue;
            }

            if (peer.down || peer.drain) {
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
                             static_cast<uint32_t>(list.primaries), cursor,
                             usable);

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
