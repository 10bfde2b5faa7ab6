/*
 * dynroute_services: the upstream{} that carries every service created at
 * run time (docs/design/membership.md).  nginx's upstream machinery (the
 * peer.init chain, keepalive's cache, proxy_next_upstream) needs an
 * upstream{}; a service has none, so one upstream, the carrier, lends its
 * own to all of them: a request routed to a service is routed to the
 * carrier, whose peer initialisation tries the service's servers.  Its
 * "keepalive N" is the services' cache, matched by address.
 *
 * The carrier has no "server" lines and is no target (the registry gives
 * it a why): a runtime host or a flip names a service.  At most one
 * upstream per configuration carries services; its limits are the
 * schema's (the API refuses a service or a server beyond them).
 *
 * Each worker keeps the services' members as dynroute_servers keeps a
 * group's (the slots, the entries and the pick are the same types), with
 * a table of services by id that the refresh fills without allocating;
 * the request path allocates nothing beyond nginx's own from the
 * request's pool, takes no lock and throws nothing.
 */

#include <cstddef>

#include "ngx_http_dynroute_services.hpp"
#include "ngx_http_dynroute_decision.hpp"
#include "ngx_http_dynroute_live.hpp"
#include "ngx_http_dynroute_balancer.hpp"
#include "ngx_http_dynroute_servers.hpp"
#include "ngx_http_dynroute_peers.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "metrics.hpp"


/* most services, and servers of every service together; the defaults */
static const ngx_uint_t  ngx_http_dynroute_services_limit = 65536;
static const ngx_uint_t  ngx_http_dynroute_services_max_default = 100;
static const ngx_uint_t  ngx_http_dynroute_services_servers_default = 1024;


/*
 * A service as a worker knows it: an entry of the service table, given to
 * a service when a refresh first sees it and freed when a refresh no
 * longer does; a freed entry is reused oldest first, and its incarnation
 * counts the services it held, so that a request decided for one service
 * never reaches another.  Its rule is what a runtime host naming the
 * service stands for; its lists are views into the packed arrays.
 */
typedef struct {
    uint32_t                       id;       /* the service's; 0: free */
    uint32_t                       incarnation;
    uint64_t                       freed;    /* the order of reuse */
    uint64_t                       written;  /* of the block listed */
    uint64_t                       next_written;
    ngx_http_dynroute_list_t       list[2];  /* in entries[0], [1] */
    ngx_http_dynroute_rule_t       rule;
    ngx_http_dynroute_dest_t       dest;
    unsigned                       seen:1;   /* by the refresh under way */
    unsigned                       fresh:1;  /* taken by it */
    u_char                         name[256];
} ngx_http_dynroute_service_t;


struct ngx_http_dynroute_services_conf_t {
    ngx_http_upstream_srv_conf_t  *uscf;
    ngx_uint_t                     max_services;
    ngx_uint_t                     servers;
    ngx_uint_t                     ran;      /* our init_upstream ran */
    ngx_uint_t                     lines;    /* "server" lines before us */
    u_char                        *file;     /* the directive's */
    ngx_uint_t                     line;

    /*
     * Each worker's members, sized when the configuration is read: a pool
     * of 2 x servers slots shared by every service (a slot's owner: its
     * service's entry), the services' lists packed into two arrays of
     * servers entries (one in use: cur), the service table and its index
     * by service id.  A refresh fills the array not in use and switches
     * every service at once; epoch counts the switches.
     */
    ngx_http_dynroute_peer_t      *slots;
    uint32_t                      *owner;
    ngx_uint_t                     nslots;
    ngx_uint_t                     hint;
    ngx_http_dynroute_slot_id_t   *scratch;  /* server id -> slot, for one
                                                service at a time */
    ngx_uint_t                     nscratch;
    ngx_http_dynroute_entry_t     *entries[2];
    ngx_http_dynroute_service_t   *table;
    ngx_http_dynroute_slot_id_t   *byid;     /* service id -> entry */
    ngx_uint_t                     nbyid;
    ngx_uint_t                     cur;
    uint64_t                       epoch;
    uint64_t                       clock;    /* entries freed so far */
    unsigned                       pending:1;
};


/* Per request: one try at a time, as dynroute_servers' */
typedef struct {
    ngx_http_dynroute_services_conf_t  *scf;
    ngx_http_dynroute_service_t        *service;
    uint32_t                            incarnation;
    uint64_t                            epoch;
    ngx_http_dynroute_list_t           *list;
    ngx_http_dynroute_peer_t           *slot;
    ngx_pool_t                         *pool;
    ngx_http_upstream_t                *u;     /* its try's status: the cell */
    dynroute::balance::Try              t;
    size_t                              words;
    uint32_t                            last;
    uintptr_t                           data;
} ngx_http_dynroute_services_peer_t;


static ngx_int_t ngx_http_dynroute_services_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_http_dynroute_services_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_http_dynroute_services_none(ngx_peer_connection_t *pc,
    void *data) noexcept;
static void ngx_http_dynroute_services_free_none(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state) noexcept;
static ngx_int_t ngx_http_dynroute_services_get(ngx_peer_connection_t *pc,
    void *data) noexcept;
static void ngx_http_dynroute_services_free(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state) noexcept;
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_dynroute_services_set_session(
    ngx_peer_connection_t *pc, void *data) noexcept;
static void ngx_http_dynroute_services_save_session(
    ngx_peer_connection_t *pc, void *data) noexcept;
#endif


/* a limit of the directive: N of "name=N", from 1 to the limit; 0: bad */

static ngx_uint_t
ngx_http_dynroute_services_number(ngx_str_t *v, size_t skip) noexcept
{
    ngx_int_t  n;

    n = ngx_atoi(v->data + skip, v->len - skip);

    if (n == NGX_ERROR || n == 0
        || static_cast<ngx_uint_t>(n) > ngx_http_dynroute_services_limit)
    {
        return 0;
    }

    return static_cast<ngx_uint_t>(n);
}


/* "dynroute_services [max_services=N] [servers=N];" in an upstream{} */

char *
ngx_http_dynroute_services(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_http_upstream_srv_conf_t       *uscf;
    ngx_http_dynroute_main_conf_t      *dmcf;
    ngx_http_dynroute_services_conf_t  *scf;

    uscf = static_cast<ngx_http_upstream_srv_conf_t *>(
               ngx_http_conf_get_module_srv_conf(cf,
                                                 ngx_http_upstream_module));

    if (uscf->peer.init_upstream == ngx_http_dynroute_services_init_upstream)
    {
        return const_cast<char *>("is duplicate");
    }

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_dynroute_module));

    if (dmcf->carrier) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "upstream \"%V\" has dynroute_services, which "
                           "upstream \"%V\" has in %s:%ui: one upstream "
                           "carries every service", &uscf->host,
                           &dmcf->carrier->uscf->host, dmcf->carrier->file,
                           dmcf->carrier->line);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_services comes after keepalive or "
                           "another balancing method in upstream \"%V\": "
                           "put dynroute_services before keepalive and drop "
                           "other balancing methods", &uscf->host);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    scf = static_cast<ngx_http_dynroute_services_conf_t *>(
              ngx_pcalloc(cf->pool,
                          sizeof(ngx_http_dynroute_services_conf_t)));
    if (scf == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    scf->uscf = uscf;
    scf->max_services = ngx_http_dynroute_services_max_default;
    scf->servers = ngx_http_dynroute_services_servers_default;
    scf->file = cf->conf_file->file.name.data;
    scf->line = cf->conf_file->line;
    scf->lines = uscf->servers->nelts;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len > 13
            && ngx_strncmp(value[i].data, "max_services=", 13) == 0)
        {
            scf->max_services = ngx_http_dynroute_services_number(&value[i],
                                                                  13);
            if (scf->max_services == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": max_services= "
                                   "is the number of services the runtime "
                                   "may create, from 1 to %ui", &value[i],
                                   ngx_http_dynroute_services_limit);
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            continue;
        }

        if (value[i].len > 8
            && ngx_strncmp(value[i].data, "servers=", 8) == 0)
        {
            scf->servers = ngx_http_dynroute_services_number(&value[i], 8);
            if (scf->servers == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": servers= is "
                                   "the number of servers every service "
                                   "holds together, from 1 to %ui",
                                   &value[i],
                                   ngx_http_dynroute_services_limit);
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": expected "
                           "max_services=N or servers=N", &value[i]);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    uscf->flags &= ~NGX_HTTP_UPSTREAM_MAX_CONNS;
    uscf->peer.init_upstream = ngx_http_dynroute_services_init_upstream;
    uscf->peer.data = scf;

    if (ngx_http_dynroute_upstream_stand_in(uscf) != NGX_OK) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    dmcf->carrier = scf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_dynroute_services_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    ngx_uint_t                          i;
    ngx_http_dynroute_services_conf_t  *scf;

    scf = static_cast<ngx_http_dynroute_services_conf_t *>(us->peer.data);
    scf->ran = 1;

    scf->nslots = 2 * scf->servers;

    for (scf->nscratch = 1; scf->nscratch < 2 * scf->nslots; ) {
        scf->nscratch <<= 1;
    }

    for (scf->nbyid = 1; scf->nbyid < 2 * scf->max_services; ) {
        scf->nbyid <<= 1;
    }

    scf->slots = static_cast<ngx_http_dynroute_peer_t *>(
                     ngx_pcalloc(cf->pool, scf->nslots
                                 * sizeof(ngx_http_dynroute_peer_t)));
    scf->owner = static_cast<uint32_t *>(
                     ngx_pcalloc(cf->pool, scf->nslots * sizeof(uint32_t)));
    scf->scratch = static_cast<ngx_http_dynroute_slot_id_t *>(
                       ngx_pcalloc(cf->pool, scf->nscratch
                                   * sizeof(ngx_http_dynroute_slot_id_t)));
    scf->byid = static_cast<ngx_http_dynroute_slot_id_t *>(
                    ngx_pcalloc(cf->pool, scf->nbyid
                                * sizeof(ngx_http_dynroute_slot_id_t)));
    scf->table = static_cast<ngx_http_dynroute_service_t *>(
                     ngx_pcalloc(cf->pool, scf->max_services
                                 * sizeof(ngx_http_dynroute_service_t)));

    for (i = 0; i < 2; i++) {
        scf->entries[i] = static_cast<ngx_http_dynroute_entry_t *>(
                              ngx_pcalloc(cf->pool, scf->servers
                                  * sizeof(ngx_http_dynroute_entry_t)));
        if (scf->entries[i] == NULL) {
            return NGX_ERROR;
        }
    }

    if (scf->slots == NULL || scf->owner == NULL || scf->scratch == NULL
        || scf->byid == NULL || scf->table == NULL)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < scf->max_services; i++) {
        ngx_http_dynroute_service_t  *e = &scf->table[i];

        e->list[0].entries = scf->entries[0];
        e->list[1].entries = scf->entries[1];
        e->dest.target = us->host;
        e->dest.uscf = us;
        e->rule.dest = &e->dest;
        e->rule.text.data = e->name;
    }

    us->peer.init = ngx_http_dynroute_services_init_peer;

    return NGX_OK;
}


/*
 * Postconfiguration: what the directive cannot see, written after it or
 * around it: "server" lines (the servers are the services'), a zone, a
 * balancing method that replaced ours.
 */

ngx_int_t
ngx_http_dynroute_services_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_http_dynroute_services_conf_t  *scf = dmcf->carrier;

    if (scf == NULL) {
        return NGX_OK;
    }

    if (scf->lines || scf->uscf->servers->nelts != 1) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" has dynroute_services and \"server\" "
                      "lines: its servers are the services', which the "
                      "runtime creates; drop the \"server\" lines, in "
                      "%s:%ui", &scf->uscf->host, scf->file, scf->line);
        return NGX_ERROR;
    }

    if (scf->uscf->shm_zone) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" has dynroute_services and a zone: "
                      "the workers keep the services' servers; drop "
                      "\"zone\", in %s:%ui", &scf->uscf->host, scf->file,
                      scf->line);
        return NGX_ERROR;
    }

    if (!scf->ran) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" has dynroute_services and another "
                      "balancing method (hash, least_conn, random or "
                      "ip_hash) after it, which replaced it: drop that "
                      "method, in %s:%ui", &scf->uscf->host, scf->file,
                      scf->line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


bool
ngx_http_dynroute_services_carrier(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_upstream_srv_conf_t *uscf) noexcept
{
    return dmcf->carrier && dmcf->carrier->uscf == uscf;
}


void
ngx_http_dynroute_services_info(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::Schema &schema)
{
    ngx_http_dynroute_services_conf_t  *scf = dmcf->carrier;

    if (scf == NULL || !scf->ran) {
        return;
    }

    schema.services.upstream = std::string(
        ngx_http_dynroute_view(scf->uscf->host));
    schema.services.max_services = static_cast<uint32_t>(scf->max_services);
    schema.services.max_servers = static_cast<uint32_t>(scf->servers);
    schema.services.hash = false;
}


/* request time */


/* the worker's members */


static ngx_uint_t
ngx_http_dynroute_services_home(uint32_t id, ngx_uint_t n) noexcept
{
    return (id * static_cast<ngx_uint_t>(2654435761u)) & (n - 1);
}


/* the entry of service id, or NULL */

static ngx_http_dynroute_service_t *
ngx_http_dynroute_services_find(ngx_http_dynroute_services_conf_t *scf,
    uint32_t id) noexcept
{
    ngx_uint_t  i;

    i = ngx_http_dynroute_services_home(id, scf->nbyid);

    while (scf->byid[i].id != 0) {
        if (scf->byid[i].id == id) {
            return &scf->table[scf->byid[i].slot];
        }

        i = (i + 1) & (scf->nbyid - 1);
    }

    return NULL;
}


/* a free slot of the pool for server id of entry owner; NULL: none */

static ngx_http_dynroute_peer_t *
ngx_http_dynroute_services_add(ngx_http_dynroute_services_conf_t *scf,
    uint32_t id, uint32_t owner) noexcept
{
    ngx_uint_t                 i = 0, n;
    ngx_http_dynroute_peer_t  *slot;

    for (n = 0; n < scf->nslots; n++) {
        i = (scf->hint + n) % scf->nslots;

        if (scf->slots[i].id == 0) {
            break;
        }
    }

    if (n == scf->nslots) {
        return NULL;
    }

    scf->hint = (i + 1) % scf->nslots;
    scf->owner[i] = owner;

    slot = &scf->slots[i];
    slot->id = id;
    slot->refs = 0;
    slot->removed = 1;      /* in no list until the commit */
    slot->marked = 0;

#if (NGX_HTTP_SSL)
    if (slot->ssl_session) {
        ngx_ssl_free_session(slot->ssl_session);
        slot->ssl_session = NULL;
    }
#endif

    return slot;
}


static void
ngx_http_dynroute_services_release(ngx_http_dynroute_peer_t *slot) noexcept
{
    slot->id = 0;
    slot->removed = 0;
    slot->marked = 0;

#if (NGX_HTTP_SSL)
    if (slot->ssl_session) {
        ngx_ssl_free_session(slot->ssl_session);
        slot->ssl_session = NULL;
    }
#endif
}


/* a free entry of the table for service id, the one freed longest ago */

static ngx_http_dynroute_service_t *
ngx_http_dynroute_services_take(ngx_http_dynroute_services_conf_t *scf,
    uint32_t id, std::string_view name) noexcept
{
    ngx_uint_t                    i;
    ngx_http_dynroute_service_t  *e, *best;

    best = NULL;

    for (i = 0; i < scf->max_services; i++) {
        e = &scf->table[i];

        if (e->id == 0 && (best == NULL || e->freed < best->freed)) {
            best = e;
        }
    }

    if (best == NULL) {
        return NULL;
    }

    best->id = id;
    best->incarnation++;
    best->fresh = 1;
    best->written = 0;
    best->list[0].primaries = best->list[0].backups = 0;
    best->list[1].primaries = best->list[1].backups = 0;
    best->list[0].tries = best->list[1].tries = 0;

    ngx_memcpy(best->name, name.data(), ngx_min(name.size(),
                                                sizeof(best->name)));
    best->rule.text.len = ngx_min(name.size(), sizeof(best->name));

    return best;
}


/*
 * Into the packed array not in use, at *pos: the list of service e from
 * its block g.  A server this worker knows (same id, same address, in the
 * service's list in use) keeps its slot and its failures; a new one takes
 * a free slot of the pool.
 */

static void
ngx_http_dynroute_services_list(ngx_http_dynroute_services_conf_t *scf,
    ngx_http_dynroute_service_t *e, const dynroute::GroupView &g,
    ngx_uint_t *pos, u_char *zone, size_t zone_size) noexcept
{
    bool                          fresh;
    uint32_t                      idx;
    ngx_uint_t                    i, k, n, nb;
    ngx_http_dynroute_list_t     *cur, *next;
    ngx_http_dynroute_peer_t     *slot;
    dynroute::GroupView::Server   s;

    nb = scf->cur ^ 1;
    cur = &e->list[scf->cur];
    next = &e->list[nb];

    /* the list in use, by server id */

    if (!e->fresh) {
        for (i = 0; i < cur->primaries + cur->backups; i++) {
            idx = cur->entries[i].slot;
            k = ngx_http_dynroute_services_home(scf->slots[idx].id,
                                                scf->nscratch);

            while (scf->scratch[k].id != 0) {
                k = (k + 1) & (scf->nscratch - 1);
            }

            scf->scratch[k].id = scf->slots[idx].id;
            scf->scratch[k].slot = idx;
        }
    }

    next->entries = scf->entries[nb] + *pos;
    next->primaries = 0;
    next->backups = 0;
    n = 0;

    for (i = 0; i < g.servers() && *pos + n < scf->servers; i++) {
        if (!g.server(i, s) || !ngx_http_dynroute_peer_fits(s)) {
            continue;
        }

        slot = NULL;
        fresh = true;
        k = ngx_http_dynroute_services_home(s.id, scf->nscratch);

        while (scf->scratch[k].id != 0 && scf->scratch[k].id != s.id) {
            k = (k + 1) & (scf->nscratch - 1);
        }

        if (scf->scratch[k].id == s.id) {
            slot = &scf->slots[scf->scratch[k].slot];

            if (slot->marked) {
                continue;                   /* the id twice: not written */
            }

            if (!ngx_http_dynroute_peer_same_address(slot, s)) {
                slot = NULL;    /* another address: a new slot */

            } else {
                fresh = false;
            }
        }

        if (slot == NULL) {
            slot = ngx_http_dynroute_services_add(scf, s.id,
                       static_cast<uint32_t>(e - scf->table));
            if (slot == NULL) {
                continue;                   /* every slot held */
            }

            ngx_http_dynroute_peer_address(slot, s);
        }

        slot->cell = ngx_http_dynroute_cell_at(zone, zone_size, s.cell);
        ngx_http_dynroute_peer_place(next, n, cur, slot,
                                     static_cast<uint32_t>(slot - scf->slots),
                                     fresh, s, i < g.primaries());
        n++;
    }

    next->tries = dynroute::balance::tries(*next);
    *pos += n;

    /* the scratch index empty again */

    if (!e->fresh) {
        for (i = 0; i < cur->primaries + cur->backups; i++) {
            k = ngx_http_dynroute_services_home(
                    scf->slots[cur->entries[i].slot].id, scf->nscratch);

            while (scf->scratch[k].id != 0) {
                scf->scratch[k].id = 0;
                k = (k + 1) & (scf->nscratch - 1);
            }
        }
    }
}


/* a service whose block did not change: its list copied as it is */

static void
ngx_http_dynroute_services_copy(ngx_http_dynroute_services_conf_t *scf,
    ngx_http_dynroute_service_t *e, ngx_uint_t *pos) noexcept
{
    ngx_uint_t                 i, n;
    ngx_http_dynroute_list_t  *cur, *next;

    cur = &e->list[scf->cur];
    next = &e->list[scf->cur ^ 1];
    n = cur->primaries + cur->backups;

    if (*pos + n > scf->servers) {
        n = 0;
    }

    next->entries = scf->entries[scf->cur ^ 1] + *pos;
    ngx_memcpy(next->entries, cur->entries,
               n * sizeof(ngx_http_dynroute_entry_t));
    next->primaries = ngx_min(cur->primaries, n);
    next->backups = n - next->primaries;
    next->tries = cur->tries;

    for (i = 0; i < n; i++) {
        scf->slots[next->entries[i].slot].marked = 1;
        scf->slots[next->entries[i].slot].next = static_cast<uint32_t>(i);
    }

    *pos += n;
}


/*
 * A worker's refresh, beside the dynroute_servers groups': when a service
 * appeared, changed or went, every service's list into the packed array
 * not in use, without allocating; commit() switches to them once the
 * generation was seen not to change meanwhile.
 */

void
ngx_http_dynroute_services_fill(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_live_t *live, ngx_http_dynroute_version_t *v) noexcept
{
    bool                                changed;
    uint32_t                            id;
    ngx_uint_t                          i, n, pos, count;
    dynroute::GroupView                 g;
    ngx_http_dynroute_service_t        *e;
    ngx_http_dynroute_services_conf_t  *scf = dmcf->carrier;

    if (scf == NULL || !scf->ran || scf->table == NULL) {
        return;
    }

    scf->pending = 0;

    /* what an abandoned refresh took is free again */

    for (i = 0; i < scf->nslots; i++) {
        if (scf->slots[i].id && scf->slots[i].removed
            && scf->slots[i].refs == 0)
        {
            ngx_http_dynroute_services_release(&scf->slots[i]);
        }

        scf->slots[i].marked = 0;
    }

    for (i = 0; i < scf->max_services; i++) {
        e = &scf->table[i];

        if (e->fresh) {
            e->id = 0;
            e->fresh = 0;
            e->freed = ++scf->clock;
        }

        e->seen = 0;
    }

    /* a version that a writer freed meanwhile may hold anything here */

    n = v->ngroups;

    if (n > static_cast<size_t>(live->shpool->end - live->shpool->start)
            / sizeof(u_char *))
    {
        return;
    }

    changed = false;
    count = 0;

    for (i = 0; i < n; i++) {
        g = ngx_http_dynroute_view_group(live, v, i);

        if (!g.valid() || !(g.key() & dynroute::service_key_bit)) {
            continue;
        }

        count++;
        e = ngx_http_dynroute_services_find(scf,
                g.key() & ~dynroute::service_key_bit);

        if (e == NULL || e->written != g.written()) {
            changed = true;
        }
    }

    for (i = 0; i < scf->max_services; i++) {
        count -= (scf->table[i].id != 0);
    }

    if (!changed && count == 0) {
        return;                 /* the same services, none changed */
    }

    pos = 0;

    for (i = 0; i < n; i++) {
        g = ngx_http_dynroute_view_group(live, v, i);

        if (!g.valid() || !(g.key() & dynroute::service_key_bit)) {
            continue;
        }

        id = g.key() & ~dynroute::service_key_bit;
        e = ngx_http_dynroute_services_find(scf, id);

        if (e == NULL) {
            e = ngx_http_dynroute_services_take(scf, id, g.name());

            if (e == NULL) {
                continue;       /* more than max_services: not written */
            }
        }

        if (e->seen) {
            continue;
        }

        e->seen = 1;
        e->next_written = g.written();

        if (!e->fresh && e->written == g.written()) {
            ngx_http_dynroute_services_copy(scf, e, &pos);

        } else {
            ngx_http_dynroute_services_list(scf, e, g, &pos,
                reinterpret_cast<u_char *>(live->shpool),
                live->shpool->end - reinterpret_cast<u_char *>(live->shpool));
        }
    }

    scf->pending = 1;
}


void
ngx_http_dynroute_services_commit(ngx_http_dynroute_main_conf_t *dmcf)
    noexcept
{
    ngx_uint_t                          i, k;
    ngx_http_dynroute_peer_t           *slot;
    ngx_http_dynroute_service_t        *e;
    ngx_http_dynroute_services_conf_t  *scf = dmcf->carrier;

    if (scf == NULL || !scf->pending) {
        return;
    }

    for (i = 0; i < scf->nslots; i++) {
        slot = &scf->slots[i];

        if (slot->id == 0) {
            continue;
        }

        if (slot->marked) {
            slot->entry = slot->next;
            slot->removed = 0;
            slot->marked = 0;
            continue;
        }

        slot->removed = 1;

        if (slot->refs == 0) {
            ngx_http_dynroute_services_release(slot);
        }
    }

    ngx_memzero(scf->byid, scf->nbyid * sizeof(ngx_http_dynroute_slot_id_t));

    for (i = 0; i < scf->max_services; i++) {
        e = &scf->table[i];

        if (e->id == 0) {
            continue;
        }

        if (!e->seen) {
            e->id = 0;                      /* deleted */
            e->freed = ++scf->clock;
            continue;
        }

        e->fresh = 0;
        e->written = e->next_written;

        k = ngx_http_dynroute_services_home(e->id, scf->nbyid);

        while (scf->byid[k].id != 0) {
            k = (k + 1) & (scf->nbyid - 1);
        }

        scf->byid[k].id = e->id;
        scf->byid[k].slot = static_cast<uint32_t>(i);
    }

    scf->cur ^= 1;
    scf->epoch++;
    scf->pending = 0;
}


/* what a runtime host naming the service of key stands for, or NULL */

ngx_http_dynroute_rule_t *
ngx_http_dynroute_services_rule(ngx_http_dynroute_main_conf_t *dmcf,
    uint32_t key) noexcept
{
    ngx_http_dynroute_service_t  *e;

    if (dmcf->carrier == NULL || dmcf->carrier->table == NULL) {
        return NULL;
    }

    e = ngx_http_dynroute_services_find(dmcf->carrier,
                                        key & ~dynroute::service_key_bit);

    return e ? &e->rule : NULL;
}


/* the service entry whose rule is rule, or NULL */

static ngx_http_dynroute_service_t *
ngx_http_dynroute_services_of(ngx_http_dynroute_services_conf_t *scf,
    const ngx_http_dynroute_rule_t *rule) noexcept
{
    uintptr_t  p, first, last;

    if (scf == NULL || scf->table == NULL || rule == NULL) {
        return NULL;
    }

    p = reinterpret_cast<uintptr_t>(rule);
    first = reinterpret_cast<uintptr_t>(scf->table);
    last = reinterpret_cast<uintptr_t>(scf->table + scf->max_services);

    if (p < first || p >= last
        || (p - first) % sizeof(ngx_http_dynroute_service_t)
           != offsetof(ngx_http_dynroute_service_t, rule))
    {
        return NULL;
    }

    return &scf->table[(p - first) / sizeof(ngx_http_dynroute_service_t)];
}


uint32_t
ngx_http_dynroute_services_stamp(ngx_http_dynroute_main_conf_t *dmcf,
    const ngx_http_dynroute_rule_t *rule) noexcept
{
    ngx_http_dynroute_service_t  *e;

    e = ngx_http_dynroute_services_of(dmcf->carrier, rule);

    return e ? e->incarnation : 0;
}


ngx_http_upstream_srv_conf_t *
ngx_http_dynroute_services_uscf(ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    return dmcf->carrier ? dmcf->carrier->uscf : NULL;
}


uint32_t
ngx_http_dynroute_services_stamp_key(ngx_http_dynroute_main_conf_t *dmcf,
    uint32_t key) noexcept
{
    ngx_http_dynroute_service_t  *e;

    if (dmcf->carrier == NULL || dmcf->carrier->table == NULL) {
        return 0;
    }

    e = ngx_http_dynroute_services_find(dmcf->carrier,
                                        key & ~dynroute::service_key_bit);

    return e ? e->incarnation : 0;
}


/* request time */


/*
 * The service the request was routed to, as it was decided: its list in
 * use now.  A request without one (a proxy_pass naming the carrier), or
 * whose service was deleted since the decision, answers 502, as an
 * upstream whose servers are all down, with an error line.
 */

static ngx_int_t
ngx_http_dynroute_services_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    uint32_t                             key, incarnation;
    ngx_http_dynroute_ctx_t             *ctx;
    ngx_http_dynroute_service_t         *e;
    ngx_http_dynroute_main_conf_t       *dmcf;
    ngx_http_dynroute_services_conf_t   *scf;
    ngx_http_dynroute_services_peer_t   *sp;

    scf = static_cast<ngx_http_dynroute_services_conf_t *>(us->peer.data);

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_get_module_main_conf(r, ngx_http_dynroute_module));

    if (dmcf && dmcf->live) {
        ngx_http_dynroute_live_sync(dmcf->live);
    }

    ctx = ngx_http_dynroute_request_ctx(r);
    e = NULL;
    key = 0;
    incarnation = 0;

    if (ctx && ctx->rule && ctx->rule->dest->rollout && ctx->picked) {

        /* a rollout's variant flipped to a service: the chosen one's, or
         * the primary's when dynroute_balancer fell back to it */

        key = ctx->fallback ? ctx->primary_service_key : ctx->service_key;
        incarnation = ctx->fallback ? ctx->primary_service : ctx->service;
        e = key ? ngx_http_dynroute_services_find(scf,
                      key & ~dynroute::service_key_bit)
                : NULL;

    } else if (ctx) {
        e = ngx_http_dynroute_services_of(scf, ctx->rule);
        incarnation = ctx->service;
    }

    if (e == NULL || e->id == 0 || e->incarnation != incarnation) {
        if (e == NULL && key == 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dynroute: upstream \"%V\" carries the services "
                          "created at run time, and this request was "
                          "routed to none", &us->host);

        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dynroute: the service this request was routed "
                          "to was deleted before its upstream began");
        }

        r->upstream->peer.data = us;
        r->upstream->peer.get = ngx_http_dynroute_services_none;
        r->upstream->peer.free = ngx_http_dynroute_services_free_none;
        r->upstream->peer.tries = 1;

        return NGX_OK;
    }

    sp = static_cast<ngx_http_dynroute_services_peer_t *>(
             ngx_palloc(r->pool, sizeof(ngx_http_dynroute_services_peer_t)));
    if (sp == NULL) {
        return NGX_ERROR;
    }

    sp->scf = scf;
    sp->service = e;
    sp->incarnation = e->incarnation;
    sp->epoch = scf->epoch;
    sp->list = &e->list[scf->cur];
    sp->slot = NULL;
    sp->pool = r->pool;
    sp->u = r->upstream;
    sp->t = dynroute::balance::Try();
    sp->last = ~0u;

    if (ngx_http_dynroute_peer_tried(r->pool, sp->list, &sp->t, &sp->words,
                                     &sp->data)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->upstream->peer.data = sp;
    r->upstream->peer.get = ngx_http_dynroute_services_get;
    r->upstream->peer.free = ngx_http_dynroute_services_free;
    r->upstream->peer.tries = ngx_max(sp->list->tries, 1);
#if (NGX_HTTP_SSL)
    r->upstream->peer.set_session = ngx_http_dynroute_services_set_session;
    r->upstream->peer.save_session = ngx_http_dynroute_services_save_session;
#endif

    return NGX_OK;
}


/* whether the request's service is still the one it was routed to */

static bool
ngx_http_dynroute_services_alive(ngx_http_dynroute_services_peer_t *sp)
    noexcept
{
    return sp->service->id != 0
           && sp->service->incarnation == sp->incarnation;
}


/* the lists switched since the last try: the service's list now */

static ngx_int_t
ngx_http_dynroute_services_again(ngx_http_dynroute_services_peer_t *sp)
    noexcept
{
    ngx_http_dynroute_list_t  *list;
    ngx_http_dynroute_peer_t  *last;

    list = &sp->service->list[sp->scf->cur];

    /* the slot tried last, unless another service's since */

    last = (sp->last != ~0u
            && sp->scf->owner[sp->last]
               == static_cast<uint32_t>(sp->service - sp->scf->table))
           ? &sp->scf->slots[sp->last] : NULL;

    if (ngx_http_dynroute_peer_again(sp->pool, list, &sp->t, &sp->words,
                                     last)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sp->list = list;
    sp->epoch = sp->scf->epoch;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynroute_services_get(ngx_peer_connection_t *pc, void *data)
    noexcept
{
    ngx_http_dynroute_entry_t          *e;
    ngx_http_dynroute_services_peer_t  *sp;

    sp = static_cast<ngx_http_dynroute_services_peer_t *>(data);

    pc->cached = 0;
    pc->connection = NULL;

    if (sp->epoch != sp->scf->epoch) {
        if (!ngx_http_dynroute_services_alive(sp)) {
            pc->name = &sp->scf->uscf->host;
            return NGX_BUSY;        /* deleted between two tries */
        }

        if (ngx_http_dynroute_services_again(sp) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    e = dynroute::balance::get(*sp->list, sp->t, ngx_time());

    if (e == NULL) {
        pc->name = &sp->scf->uscf->host;
        return NGX_BUSY;
    }

    return ngx_http_dynroute_peer_use(pc, sp->pool, sp->scf->slots, e->slot,
                                      &sp->slot, &sp->last);
}


static void
ngx_http_dynroute_services_free(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state) noexcept
{
    bool                                last;
    ngx_http_dynroute_list_t           *list;
    ngx_http_dynroute_peer_t           *slot;
    ngx_http_dynroute_services_peer_t  *sp;
    dynroute::balance::Try              t;

    sp = static_cast<ngx_http_dynroute_services_peer_t *>(data);

    if (sp->slot == NULL) {
        if (pc->tries) {
            pc->tries--;
        }
        return;
    }

    slot = sp->slot;
    list = sp->list;
    t = sp->t;

    if (sp->epoch != sp->scf->epoch) {

        /* the lists switched during this try: the server's entry now */

        list = ngx_http_dynroute_peer_entry_now(
                   ngx_http_dynroute_services_alive(sp)
                   ? &sp->service->list[sp->scf->cur] : NULL,
                   slot, &t);
    }

    last = ngx_http_dynroute_peer_free(pc, state, sp->u, slot, list, t);
    sp->slot = NULL;

    if (last) {
        ngx_http_dynroute_services_release(slot);
    }
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_dynroute_services_set_session(ngx_peer_connection_t *pc,
    void *data) noexcept
{
    ngx_http_dynroute_services_peer_t  *sp;

    sp = static_cast<ngx_http_dynroute_services_peer_t *>(data);

    return ngx_http_dynroute_peer_set_session(pc, sp->slot);
}


static void
ngx_http_dynroute_services_save_session(ngx_peer_connection_t *pc,
    void *data) noexcept
{
    ngx_http_dynroute_services_peer_t  *sp;

    sp = static_cast<ngx_http_dynroute_services_peer_t *>(data);

    ngx_http_dynroute_peer_save_session(pc, sp->slot);
}

#endif


static ngx_int_t
ngx_http_dynroute_services_none(ngx_peer_connection_t *pc, void *data)
    noexcept
{
    ngx_http_upstream_srv_conf_t  *us;

    us = static_cast<ngx_http_upstream_srv_conf_t *>(data);

    pc->cached = 0;
    pc->connection = NULL;
    pc->name = &us->host;

    return NGX_BUSY;
}


static void
ngx_http_dynroute_services_free_none(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state) noexcept
{
    if (pc->tries) {
        pc->tries--;
    }
}
