/*
 * dynroute_servers: an upstream{} whose servers each worker keeps in
 * members of its own (docs/design/membership.md): slots by server id, which
 * hold each server's address and name, and two packed lists of nginx's
 * round-robin fields, one in use.  A request's tries are picked from the
 * list in use by the smooth weighted round robin of src/core/balance.hpp,
 * nginx's own loop, so that a group behaves as a static upstream{} with the
 * same servers: weight, max_fails, fail_timeout, backup and down, the
 * tries, "no live upstreams", keepalive's cache (by address).  With
 * hash=KEY the tries are picked by nginx's consistent hash instead
 * (ngx_http_dynroute_servers_hash.cpp).
 *
 * The block's "server" lines are parsed by nginx and are the configured
 * list, the one the members hold from the start.  A runtime list is a
 * group block in the zone: when the generation changes, each worker's
 * refresh fills the list not in use from the block (a server that stays
 * keeps its slot, its passive failure state and its weights) and switches
 * to it; a server gone is marked removed, and its slot freed once no try
 * holds it.  A request whose list was switched meanwhile finds its
 * server's entry again by slot.
 *
 * The request path allocates nothing beyond nginx's own from the request's
 * pool (the peer data, a tried bitmap beyond 64 servers, the name of each
 * try), takes no lock and throws nothing.
 */

#include <cstdlib>

#include "ngx_http_dynroute_servers.hpp"
#include "ngx_http_dynroute_peers.hpp"
#include "ngx_http_dynroute_live.hpp"
#include "ngx_http_dynroute_balancer.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "metrics.hpp"
#include "address.hpp"
#include "state.hpp"


/* most servers a group may hold, and the default */
static const ngx_uint_t  ngx_http_dynroute_servers_max_limit = 65536;
static const ngx_uint_t  ngx_http_dynroute_servers_max_default = 256;


typedef struct {
    ngx_http_upstream_srv_conf_t  *uscf;
    ngx_uint_t                     max;
    ngx_uint_t                     ran;      /* our init_upstream ran: no
                                                method replaced it */
    u_char                        *file;     /* the directive's */
    ngx_uint_t                     line;
    ngx_http_dynroute_members_t    members;
    ngx_http_dynroute_servers_hash_t  *hash;  /* hash=KEY, or NULL */
} ngx_http_dynroute_servers_conf_t;


/* Per request: one try at a time. */
typedef struct {
    ngx_http_dynroute_members_t   *members;
    ngx_http_dynroute_list_t      *list;     /* the list at init_peer */
    uint64_t                       epoch;    /* the members' then */
    ngx_http_dynroute_peer_t      *slot;     /* held by the current try */
    ngx_pool_t                    *pool;     /* the request's */
    ngx_http_upstream_t           *u;        /* its try's status: the cell */
    dynroute::balance::Try         t;
    size_t                         words;    /* of the tried bitmap */
    uint32_t                       last;     /* the slot tried last; ~0 */
    uintptr_t                      data;     /* the bitmap, up to 64 */
    const ngx_http_dynroute_ring_t *ring;    /* hash=KEY: the list's ring;
                                                NULL: round robin */
    dynroute::ChashCursor          cursor;   /* the key's place on it */
} ngx_http_dynroute_servers_peer_t;


static ngx_int_t ngx_http_dynroute_servers_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_http_dynroute_servers_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_http_dynroute_servers_get(ngx_peer_connection_t *pc,
    void *data) noexcept;
static void ngx_http_dynroute_servers_free(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state) noexcept;
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_dynroute_servers_set_session(
    ngx_peer_connection_t *pc, void *data) noexcept;
static void ngx_http_dynroute_servers_save_session(ngx_peer_connection_t *pc,
    void *data) noexcept;
#endif


/* "dynroute_servers [max=N] [hash=KEY];" in an upstream{} */

char *
ngx_http_dynroute_servers(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_int_t                          n;
    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_upstream_server_t        *server;
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_http_dynroute_main_conf_t     *dmcf;
    ngx_http_dynroute_servers_conf_t  *scf, **sp;

    uscf = static_cast<ngx_http_upstream_srv_conf_t *>(
               ngx_http_conf_get_module_srv_conf(cf,
                                                 ngx_http_upstream_module));

    if (uscf->peer.init_upstream == ngx_http_dynroute_servers_init_upstream) {
        return const_cast<char *>("is duplicate");
    }

    /*
     * keepalive (nginx 1.22 to 1.26) wraps the balancing method set when
     * its line is read, and any other method would be replaced by ours.
     */

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_servers comes after keepalive or "
                           "another balancing method in upstream \"%V\": "
                           "put dynroute_servers before keepalive and drop "
                           "other balancing methods", &uscf->host);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    scf = static_cast<ngx_http_dynroute_servers_conf_t *>(
              ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_servers_conf_t)));
    if (scf == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    scf->uscf = uscf;
    scf->max = ngx_http_dynroute_servers_max_default;
    scf->file = cf->conf_file->file.name.data;
    scf->line = cf->conf_file->line;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len > 4 && ngx_strncmp(value[i].data, "max=", 4) == 0) {
            n = ngx_atoi(value[i].data + 4, value[i].len - 4);

            if (n == NGX_ERROR || n == 0
                || static_cast<ngx_uint_t>(n)
                   > ngx_http_dynroute_servers_max_limit)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": max= is the "
                                   "number of servers the group may hold, "
                                   "from 1 to %ui", &value[i],
                                   ngx_http_dynroute_servers_max_limit);
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            scf->max = n;
            continue;
        }

        if (value[i].len >= 5
            && ngx_strncmp(value[i].data, "hash=", 5) == 0)
        {
            if (ngx_http_dynroute_servers_hash_conf(cf, &value[i], uscf,
                                                    &scf->hash)
                != NGX_CONF_OK)
            {
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": expected max=N or "
                           "hash=KEY", &value[i]);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    /* max_conns is not carried: nginx refuses it on the lines below */

    server = static_cast<ngx_http_upstream_server_t *>(uscf->servers->elts);

    for (i = 0; i < uscf->servers->nelts; i++) {
        if (server[i].max_conns) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "server \"%V\" of upstream \"%V\" has "
                               "max_conns=, which dynroute_servers does not "
                               "carry", &server[i].name, &uscf->host);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }
    }

    uscf->flags &= ~NGX_HTTP_UPSTREAM_MAX_CONNS;
    uscf->peer.init_upstream = ngx_http_dynroute_servers_init_upstream;
    uscf->peer.data = scf;

    /* an empty entry stands in; without a server the group answers 502 */

    if (ngx_http_dynroute_upstream_stand_in(uscf) != NGX_OK) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_dynroute_module));

    sp = static_cast<ngx_http_dynroute_servers_conf_t **>(
             ngx_array_push(&dmcf->servers));
    if (sp == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    *sp = scf;

    return NGX_CONF_OK;
}


static void
ngx_http_dynroute_servers_cleanup(void *data) noexcept
{
    ngx_http_dynroute_members_t  *m;

    m = static_cast<ngx_http_dynroute_members_t *>(data);

#if (NGX_HTTP_SSL)
    for (ngx_uint_t i = 0; i < m->nslots; i++) {
        if (m->slots[i].ssl_session) {
            ngx_ssl_free_session(m->slots[i].ssl_session);
        }
    }
#endif

    std::free(m->slots);
}


/*
 * The members' memory, one block: calloc()'s pages stay untouched, and so
 * shared by the workers, until a server is written to them.
 */

static ngx_int_t
ngx_http_dynroute_members_init(ngx_conf_t *cf, ngx_http_dynroute_members_t *m,
    ngx_uint_t max, ngx_str_t *name) noexcept
{
    size_t               size;
    u_char              *p;
    ngx_pool_cleanup_t  *cln;

    m->max = max;
    m->nslots = 2 * max;
    m->nids = 1;

    while (m->nids < 2 * m->nslots) {
        m->nids <<= 1;
    }

    size = m->nslots * sizeof(ngx_http_dynroute_peer_t)
           + m->nids * sizeof(ngx_http_dynroute_slot_id_t)
           + 2 * max * sizeof(ngx_http_dynroute_entry_t);

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    p = static_cast<u_char *>(std::calloc(1, size));
    if (p == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "calloc(%uz) failed", size);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_dynroute_servers_cleanup;
    cln->data = m;

    m->slots = reinterpret_cast<ngx_http_dynroute_peer_t *>(p);
    p += m->nslots * sizeof(ngx_http_dynroute_peer_t);
    m->ids = reinterpret_cast<ngx_http_dynroute_slot_id_t *>(p);
    p += m->nids * sizeof(ngx_http_dynroute_slot_id_t);
    m->list[0].entries = reinterpret_cast<ngx_http_dynroute_entry_t *>(p);
    m->list[1].entries = m->list[0].entries + max;
    m->current = 0;
    m->hint = 0;
    m->written = 0;
    m->name = name;

    return NGX_OK;
}


/* where id is, or the empty entry where it would go */

static ngx_http_dynroute_slot_id_t *
ngx_http_dynroute_members_find(ngx_http_dynroute_members_t *m, uint32_t id)
    noexcept
{
    ngx_uint_t  i;

    i = (id * static_cast<ngx_uint_t>(2654435761u)) & (m->nids - 1);

    while (m->ids[i].id != 0 && m->ids[i].id != id) {
        i = (i + 1) & (m->nids - 1);
    }

    return &m->ids[i];
}


/* a free slot for server id, found again by id; NULL: none left */

static ngx_http_dynroute_peer_t *
ngx_http_dynroute_members_add(ngx_http_dynroute_members_t *m, uint32_t id)
    noexcept
{
    ngx_uint_t                    i = 0, n;
    ngx_http_dynroute_slot_id_t  *e;

    for (n = 0; n < m->nslots; n++) {
        i = (m->hint + n) % m->nslots;

        if (m->slots[i].id == 0) {
            break;
        }
    }

    if (n == m->nslots) {
        return NULL;
    }

    m->hint = (i + 1) % m->nslots;

    e = ngx_http_dynroute_members_find(m, id);
    e->id = id;
    e->slot = static_cast<uint32_t>(i);

    m->slots[i].id = id;
    m->slots[i].refs = 0;
    m->slots[i].removed = 0;
    m->slots[i].cell = NULL;

#if (NGX_HTTP_SSL)
    if (m->slots[i].ssl_session) {      /* another server's */
        ngx_ssl_free_session(m->slots[i].ssl_session);
        m->slots[i].ssl_session = NULL;
    }
#endif

    return &m->slots[i];
}


/* removes the id entry e, moving up the entries after it that it kept
 * from their places (linear probing's deletion) */

static void
ngx_http_dynroute_members_erase(ngx_http_dynroute_members_t *m,
    ngx_http_dynroute_slot_id_t *e) noexcept
{
    ngx_uint_t  i, j, k, mask;

    mask = m->nids - 1;
    i = e - m->ids;
    j = i;

    for ( ;; ) {
        j = (j + 1) & mask;

        if (m->ids[j].id == 0) {
            break;
        }

        k = (m->ids[j].id * static_cast<ngx_uint_t>(2654435761u)) & mask;

        /* the entry at j stays if its home k is cyclically in (i, j] */

        if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) {
            continue;
        }

        m->ids[i] = m->ids[j];
        i = j;
    }

    m->ids[i].id = 0;
}


/* a slot no list and no try holds any more: free */

static void
ngx_http_dynroute_members_release(ngx_http_dynroute_members_t *m,
    ngx_http_dynroute_peer_t *slot) noexcept
{
    ngx_http_dynroute_slot_id_t  *e;

    e = ngx_http_dynroute_members_find(m, slot->id);

    if (e->id == slot->id && e->slot == static_cast<uint32_t>(slot - m->slots))
    {
        ngx_http_dynroute_members_erase(m, e);
    }

    slot->id = 0;
    slot->removed = 0;
    slot->marked = 0;
    slot->cell = NULL;

#if (NGX_HTTP_SSL)
    if (slot->ssl_session) {
        ngx_ssl_free_session(slot->ssl_session);
        slot->ssl_session = NULL;
    }
#endif
}


/*
 * The configured list: a server per address of each "server" line, the
 * primaries then the backups, as ngx_http_upstream_init_round_robin orders
 * them; ids 1, 2, ... in that order.
 */

static ngx_int_t
ngx_http_dynroute_servers_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    size_t                             len;
    uint32_t                           id;
    ngx_uint_t                         i, j, n, backup;
    ngx_addr_t                        *addr;
    ngx_http_dynroute_list_t          *list;
    ngx_http_dynroute_peer_t          *slot;
    ngx_http_dynroute_entry_t         *e;
    ngx_http_upstream_server_t        *server;
    ngx_http_dynroute_members_t       *m;
    ngx_http_dynroute_servers_conf_t  *scf;

    scf = static_cast<ngx_http_dynroute_servers_conf_t *>(us->peer.data);
    scf->ran = 1;
    m = &scf->members;

    server = static_cast<ngx_http_upstream_server_t *>(us->servers->elts);

    n = 0;

    for (i = 0; i < us->servers->nelts; i++) {
        n += server[i].naddrs;
    }

    if (n > scf->max) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" has %ui servers (an address each), "
                      "more than dynroute_servers max=%ui in %s:%ui",
                      &us->host, n, scf->max, scf->file, scf->line);
        return NGX_ERROR;
    }

    if (ngx_http_dynroute_members_init(cf, m, scf->max, &us->host) != NGX_OK)
    {
        return NGX_ERROR;
    }

    list = &m->list[0];
    id = 0;

    for (backup = 0; backup < 2; backup++) {
        for (i = 0; i < us->servers->nelts; i++) {
            if (server[i].backup != backup) {
                continue;
            }

            for (j = 0; j < server[i].naddrs; j++) {
                addr = &server[i].addrs[j];

                slot = ngx_http_dynroute_members_add(m, ++id);
                if (slot == NULL) {
                    return NGX_ERROR;   /* max < n was refused above */
                }

                ngx_memcpy(&slot->sockaddr, addr->sockaddr, addr->socklen);
                slot->socklen = addr->socklen;
                len = ngx_min(addr->name.len, sizeof(slot->name));
                ngx_memcpy(slot->name, addr->name.data, len);
                slot->name_len = len;

                slot->entry = static_cast<uint32_t>(list->primaries
                                                    + list->backups);
                e = &list->entries[slot->entry];

                e->weight = server[i].weight;
                e->effective_weight = server[i].weight;
                e->current_weight = 0;
                e->max_fails = server[i].max_fails;
                e->fail_timeout = server[i].fail_timeout;
                e->down = server[i].down;
                e->drain = false;
                e->slot = static_cast<uint32_t>(slot - m->slots);

                if (backup) {
                    list->backups++;

                } else {
                    list->primaries++;
                }
            }
        }
    }

    list->tries = dynroute::balance::tries(*list);

    if (scf->hash
        && (ngx_http_dynroute_servers_hash_init(cf, scf->hash, us, list)
            != NGX_OK
            || ngx_http_dynroute_servers_hash_members(cf, scf->hash, m)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    us->peer.init = ngx_http_dynroute_servers_init_peer;

    return NGX_OK;
}


/*
 * Postconfiguration: what the directive cannot see because it is written
 * after it.  A hash, least_conn, random or ip_hash line replaced our
 * init_upstream (nginx warns "load balancing method redefined"), so it
 * never ran; a zone would copy peer.data as nginx's own peers.
 */

ngx_int_t
ngx_http_dynroute_servers_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                          i;
    ngx_http_dynroute_servers_conf_t  **sp;

    sp = static_cast<ngx_http_dynroute_servers_conf_t **>(dmcf->servers.elts);

    for (i = 0; i < dmcf->servers.nelts; i++) {
        if (sp[i]->uscf->shm_zone) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "upstream \"%V\" has dynroute_servers and a zone: "
                          "the workers keep its servers, which nginx's "
                          "upstream zone would share as its own; drop "
                          "\"zone\", in %s:%ui", &sp[i]->uscf->host,
                          sp[i]->file, sp[i]->line);
            return NGX_ERROR;
        }

        if (!sp[i]->ran) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "upstream \"%V\" has dynroute_servers and another "
                          "balancing method (hash, least_conn, random or "
                          "ip_hash) after it, which replaced it: drop that "
                          "method, in %s:%ui", &sp[i]->uscf->host,
                          sp[i]->file, sp[i]->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* request time */


static ngx_int_t
ngx_http_dynroute_servers_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    ngx_http_dynroute_members_t       *m;
    ngx_http_dynroute_main_conf_t     *dmcf;
    ngx_http_dynroute_servers_conf_t  *scf;
    ngx_http_dynroute_servers_peer_t  *sp;

    scf = static_cast<ngx_http_dynroute_servers_conf_t *>(us->peer.data);
    m = &scf->members;

    /*
     * The live values brought up to date (one atomic load; a refresh when
     * the generation changed), for a plain proxy_pass as well as behind
     * dynroute_balancer.
     */

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_get_module_main_conf(r, ngx_http_dynroute_module));

    if (dmcf && dmcf->live) {
        ngx_http_dynroute_live_sync(dmcf->live);
    }

    sp = static_cast<ngx_http_dynroute_servers_peer_t *>(
             ngx_palloc(r->pool, sizeof(ngx_http_dynroute_servers_peer_t)));
    if (sp == NULL) {
        return NGX_ERROR;
    }

    sp->members = m;
    sp->list = &m->list[m->current];
    sp->epoch = m->epoch;
    sp->slot = NULL;
    sp->pool = r->pool;
    sp->u = r->upstream;
    sp->t = dynroute::balance::Try();
    sp->ring = NULL;

    /* hash=KEY: the ring of the list in use (which may refresh the view) */

    if (scf->hash) {
        if (ngx_http_dynroute_servers_hash_start(r, scf->hash,
                                                 dmcf ? dmcf->live : NULL, m,
                                                 &sp->ring, &sp->cursor)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        sp->list = &m->list[m->current];
        sp->epoch = m->epoch;
    }
    sp->last = ~0u;

    if (ngx_http_dynroute_peer_tried(r->pool, sp->list, &sp->t, &sp->words,
                                     &sp->data)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->upstream->peer.data = sp;
    r->upstream->peer.get = ngx_http_dynroute_servers_get;
    r->upstream->peer.free = ngx_http_dynroute_servers_free;
    r->upstream->peer.tries = sp->list->tries;
#if (NGX_HTTP_SSL)
    r->upstream->peer.set_session = ngx_http_dynroute_servers_set_session;
    r->upstream->peer.save_session = ngx_http_dynroute_servers_save_session;
#endif

    return NGX_OK;
}


/*
 * The lists switched since the request's last try: the list in use now,
 * its tried bitmap cleared but for the server tried last, if it is still
 * there (by position, as nginx's: at worst one server is tried twice).
 */

static ngx_int_t
ngx_http_dynroute_servers_again(ngx_http_dynroute_servers_peer_t *sp)
    noexcept
{
    ngx_http_dynroute_list_t     *list;
    ngx_http_dynroute_members_t  *m;

    m = sp->members;
    list = &m->list[m->current];

    if (ngx_http_dynroute_peer_again(sp->pool, list, &sp->t, &sp->words,
                                     sp->last != ~0u ? &m->slots[sp->last]
                                                     : NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sp->list = list;
    sp->epoch = m->epoch;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynroute_servers_get(ngx_peer_connection_t *pc, void *data)
    noexcept
{
    ngx_time_t                        *tp;
    ngx_http_dynroute_entry_t         *e;
    ngx_http_dynroute_servers_peer_t  *sp;

    sp = static_cast<ngx_http_dynroute_servers_peer_t *>(data);

    pc->cached = 0;
    pc->connection = NULL;

    if (sp->epoch != sp->members->epoch) {
        if (sp->ring) {
            ngx_http_dynroute_servers_hash_again(sp->ring, &sp->cursor);
        }

        if (ngx_http_dynroute_servers_again(sp) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (sp->ring) {
        e = ngx_http_dynroute_servers_hash_get(*sp->list, *sp->ring,
                                               sp->cursor, sp->t, ngx_time());

    } else if (sp->list->slow_start_ms) {
        tp = ngx_timeofday();
        e = dynroute::balance::get(*sp->list, sp->t, ngx_time(),
                                   static_cast<uint64_t>(tp->sec) * 1000
                                   + tp->msec);

    } else {
        e = dynroute::balance::get(*sp->list, sp->t, ngx_time());
    }

    if (e == NULL) {
        pc->name = sp->members->name;
        return NGX_BUSY;
    }

    return ngx_http_dynroute_peer_use(pc, sp->pool, sp->members->slots,
                                      e->slot, &sp->slot, &sp->last);
}


/*
 * A try given back, in its server's cell: the status of its response, if
 * it got one (nginx sets u->state->status from the response's header, and
 * to its own 502 or 504 only after free(), so a try that failed without a
 * response has no class), whether nginx counts it a failure, and until
 * when max_fails takes the server out.
 */

void
ngx_http_dynroute_servers_counted(uint64_t *cell, ngx_http_upstream_t *u,
    ngx_uint_t state, time_t until) noexcept
{
    int  cls;

    namespace m = dynroute::metrics;

    if (u && u->state) {
        cls = m::status_class(static_cast<unsigned>(u->state->status));

        if (cls >= 0) {
            ngx_http_dynroute_count(&cell[m::s_responses + cls]);
        }
    }

    if (state & NGX_PEER_FAILED) {
        ngx_http_dynroute_count(&cell[m::s_fails]);
    }

    if (until) {
        __atomic_store_n(&cell[m::s_disabled_until],
                         static_cast<uint64_t>(until), __ATOMIC_RELAXED);
    }

    ngx_http_dynroute_count(&cell[m::s_released]);
}


static void
ngx_http_dynroute_servers_free(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state) noexcept
{
    bool                               last;
    ngx_http_dynroute_list_t          *list;
    ngx_http_dynroute_peer_t          *slot;
    ngx_http_dynroute_members_t       *m;
    ngx_http_dynroute_servers_peer_t  *sp;
    dynroute::balance::Try             t;

    sp = static_cast<ngx_http_dynroute_servers_peer_t *>(data);

    if (sp->slot == NULL) {
        return;
    }

    slot = sp->slot;
    m = sp->members;
    list = sp->list;
    t = sp->t;

    if (sp->epoch != m->epoch) {

        /* the lists switched during this try: the server's entry now */

        list = ngx_http_dynroute_peer_entry_now(&m->list[m->current], slot,
                                                &t);
    }

    last = ngx_http_dynroute_peer_free(pc, state, sp->u, slot, list, t);
    sp->slot = NULL;

    /* a removed server's last try: its slot is free */

    if (last) {
        ngx_http_dynroute_members_release(m, slot);
    }
}


#if (NGX_HTTP_SSL)

/* TLS sessions per server, resumed as nginx's round robin resumes them */

static ngx_int_t
ngx_http_dynroute_servers_set_session(ngx_peer_connection_t *pc, void *data)
    noexcept
{
    ngx_http_dynroute_servers_peer_t  *sp;

    sp = static_cast<ngx_http_dynroute_servers_peer_t *>(data);

    return ngx_http_dynroute_peer_set_session(pc, sp->slot);
}


static void
ngx_http_dynroute_servers_save_session(ngx_peer_connection_t *pc, void *data)
    noexcept
{
    ngx_http_dynroute_servers_peer_t  *sp;

    sp = static_cast<ngx_http_dynroute_servers_peer_t *>(data);

    ngx_http_dynroute_peer_save_session(pc, sp->slot);
}

#endif


/* the runtime lists */


ngx_http_dynroute_members_t *
ngx_http_dynroute_servers_members(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_uint_t i) noexcept
{
    ngx_http_dynroute_servers_conf_t  **sp;

    sp = static_cast<ngx_http_dynroute_servers_conf_t **>(dmcf->servers.elts);

    return sp[i]->ran ? &sp[i]->members : NULL;
}


void
ngx_http_dynroute_servers_info(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, dynroute::Schema &schema)
{
    u_char                             *p;
    size_t                              len;
    uint32_t                            id;
    ngx_uint_t                          i, j, k, backup;
    ngx_addr_t                         *addr;
    ngx_http_upstream_server_t         *server;
    ngx_http_upstream_srv_conf_t       *us;
    ngx_http_dynroute_servers_conf_t  **sp;
    u_char                              text[NGX_SOCKADDR_STRLEN];

    sp = static_cast<ngx_http_dynroute_servers_conf_t **>(dmcf->servers.elts);

    for (k = 0; k < dmcf->servers.nelts; k++) {
        if (!sp[k]->ran) {
            continue;       /* refused by ngx_http_dynroute_servers_check */
        }

        us = sp[k]->uscf;
        server = static_cast<ngx_http_upstream_server_t *>(us->servers->elts);

        dynroute::ServersInfo info;
        info.max = static_cast<uint32_t>(sp[k]->max);
        info.hash = sp[k]->hash != NULL;    /* no backup in its lists */

        /* the ids and the order of ngx_http_dynroute_servers_init_upstream */

        id = 0;

        for (backup = 0; backup < 2; backup++) {
            for (i = 0; i < us->servers->nelts; i++) {
                if (server[i].backup != backup) {
                    continue;
                }

                for (j = 0; j < server[i].naddrs; j++) {
                    addr = &server[i].addrs[j];
                    id++;

                    len = ngx_sock_ntop(addr->sockaddr, addr->socklen, text,
                                        sizeof(text), 1);

                    dynroute::ServerSpec spec;
                    spec.id = id;
                    spec.weight = static_cast<uint32_t>(server[i].weight);
                    spec.max_fails = static_cast<uint32_t>(
                                         server[i].max_fails);
                    spec.fail_timeout = static_cast<uint32_t>(
                                            server[i].fail_timeout);
                    spec.backup = server[i].backup;
                    spec.down = server[i].down;

                    /* by its canonical name, as the API compares them;
                     * a line written twice: its first */

                    info.configured.emplace(
                        dynroute::parse_address(std::string_view(
                            reinterpret_cast<char *>(text), len)).name,
                        spec);
                }
            }
        }

        std::string_view host = ngx_http_dynroute_view(us->host);
        dynroute::ServerGroup g{info.configured, id + 1};
        std::string block = dynroute::encode_snapshot_group(0, 0,
            dynroute::Balance::round_robin, host, g);

        p = static_cast<u_char *>(ngx_pnalloc(cf->pool, block.size()));
        if (p == NULL) {
            throw std::bad_alloc();
        }

        ngx_memcpy(p, block.data(), block.size());
        sp[k]->members.configured = p;
        sp[k]->members.configured_len = block.size();

        schema.servers.emplace(std::string(ngx_http_dynroute_view(us->host)),
                               std::move(info));
    }
}


ngx_http_dynroute_members_t *
ngx_http_dynroute_servers_members_of(ngx_http_upstream_srv_conf_t *uscf)
    noexcept
{
    if (uscf->peer.init_upstream != ngx_http_dynroute_servers_init_upstream) {
        return NULL;
    }

    return &static_cast<ngx_http_dynroute_servers_conf_t *>(uscf->peer.data)
                ->members;
}


ngx_http_dynroute_peer_t *
ngx_http_dynroute_members_slot(ngx_http_dynroute_members_t *m, uint32_t id)
    noexcept
{
    ngx_http_dynroute_peer_t     *slot;
    ngx_http_dynroute_slot_id_t  *found;

    found = ngx_http_dynroute_members_find(m, id);

    if (found->id != id) {
        return NULL;
    }

    slot = &m->slots[found->slot];

    return (slot->id == id && !slot->removed) ? slot : NULL;
}


/* the cell at offset off of a zone, if it lies in the zone; or NULL */

uint64_t *
ngx_http_dynroute_cell_at(u_char *zone, size_t zone_size, uint64_t off)
    noexcept
{
    if (zone == NULL || off == 0 || off % sizeof(uint64_t)
        || off > zone_size
        || zone_size - off < dynroute::metrics::cell_bytes)
    {
        return NULL;
    }

    return reinterpret_cast<uint64_t *>(zone + off);
}


static uint64_t *
ngx_http_dynroute_members_cell(ngx_http_dynroute_members_t *m, uint64_t off)
    noexcept
{
    return ngx_http_dynroute_cell_at(m->zone, m->zone_size, off);
}


/*
 * Into the list not in use, the servers of g: a server this worker knows
 * (same id, same address) keeps its slot, and its failures and weights
 * (reset, as nginx does on a new configuration, only if its weight
 * changed); a new one takes a free slot.  The slots of the servers left
 * out are marked removed by the commit, not here: until then the list in
 * use still holds them.
 */

void
ngx_http_dynroute_members_fill(ngx_http_dynroute_members_t *m,
    const dynroute::GroupView &g, uint64_t written) noexcept
{
    bool                          fresh;
    ngx_uint_t                    i, n;
    ngx_http_dynroute_list_t     *cur, *next;
    ngx_http_dynroute_peer_t     *slot;
    ngx_http_dynroute_slot_id_t  *found;
    dynroute::GroupView::Server   s;

    cur = &m->list[m->current];
    next = &m->list[m->current ^ 1];

    for (i = 0; i < m->nslots; i++) {
        m->slots[i].marked = 0;
    }

    next->primaries = 0;
    next->backups = 0;
    n = 0;

    for (i = 0; i < g.servers() && n < m->max; i++) {
        if (!g.server(i, s) || !ngx_http_dynroute_peer_fits(s)) {
            continue;
        }

        slot = NULL;
        fresh = true;
        found = ngx_http_dynroute_members_find(m, s.id);

        if (found->id == s.id) {
            slot = &m->slots[found->slot];

            if (slot->marked) {
                continue;                   /* the id twice: not written */
            }

            if (!ngx_http_dynroute_peer_same_address(slot, s)) {
                /*
                 * The id names another address now (a reset gave the ids
                 * out again): the old slot leaves the table, and stays
                 * until the commit marks it removed and no try holds it.
                 */
                ngx_http_dynroute_members_erase(m, found);
                slot = NULL;

            } else {
                fresh = slot->removed
                        || slot->entry >= cur->primaries + cur->backups
                        || cur->entries[slot->entry].slot
                           != static_cast<uint32_t>(slot - m->slots);
            }
        }

        if (slot == NULL) {
            slot = ngx_http_dynroute_members_add(m, s.id);
            if (slot == NULL) {
                continue;                   /* every slot held */
            }

            ngx_http_dynroute_peer_address(slot, s);
        }

        slot->cell = ngx_http_dynroute_members_cell(m, s.cell);
        ngx_http_dynroute_peer_place(next, n, cur, slot,
                                     static_cast<uint32_t>(slot - m->slots),
                                     fresh, s, i < g.primaries());
        next->entries[n].cell = m->health ? slot->cell : NULL;
        n++;
    }

    next->tries = dynroute::balance::tries(*next);
    m->next_written = written;
    m->pending = 1;

    ngx_http_dynroute_servers_hash_fill(m, g, written);
}


void
ngx_http_dynroute_members_commit(ngx_http_dynroute_members_t *m) noexcept
{
    ngx_uint_t                 i;
    ngx_http_dynroute_peer_t  *slot;

    if (!m->pending) {
        return;
    }

    for (i = 0; i < m->nslots; i++) {
        slot = &m->slots[i];

        if (slot->id == 0) {
            continue;
        }

        if (slot->marked) {
            slot->entry = slot->next;
            slot->removed = 0;
            continue;
        }

        slot->removed = 1;

        if (slot->refs == 0) {
            ngx_http_dynroute_members_release(m, slot);
        }
    }

    m->current ^= 1;
    m->written = m->next_written;
    m->epoch++;
    m->pending = 0;
}


void
ngx_http_dynroute_members_cells(ngx_http_dynroute_members_t *m, u_char *zone,
    size_t zone_size) noexcept
{
    ngx_uint_t                    i;
    ngx_http_dynroute_slot_id_t  *found;
    dynroute::GroupView::Server   s;

    m->zone = zone;
    m->zone_size = zone_size;

    dynroute::GroupView g(m->configured, m->configured_len);

    for (i = 0; i < g.servers(); i++) {
        if (!g.server(i, s)) {
            continue;
        }

        found = ngx_http_dynroute_members_find(m, s.id);

        if (found->id == s.id && m->written == 0) {
            m->slots[found->slot].cell = ngx_http_dynroute_members_cell(m,
                                                                      s.cell);

            if (m->health) {
                m->list[m->current].entries[m->slots[found->slot].entry]
                    .cell = m->slots[found->slot].cell;
            }
        }
    }
}
