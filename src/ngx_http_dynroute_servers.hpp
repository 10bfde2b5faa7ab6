/*
 * dynroute_servers (ngx_http_dynroute_servers.cpp): an upstream{} whose
 * servers a worker keeps in members of its own, picked by the smooth
 * weighted round robin of src/core/balance.hpp.  Today the members are the
 * block's "server" lines until the runtime sets a list (a group block of
 * the zone, docs/design/membership.md): each worker's refresh then fills
 * the list not in use from the block and switches to it.
 */
#pragma once

#include "ngx_http_dynroute.hpp"
#include "balance.hpp"
#include "snapshot.hpp"


typedef dynroute::balance::Entry             ngx_http_dynroute_entry_t;
typedef dynroute::balance::List<ngx_http_dynroute_entry_t>
                                             ngx_http_dynroute_list_t;


/*
 * A server this worker knows: what a request holds while it tries it.  A
 * request holds the slot (refs), never the list entry, so that a server
 * removed from the list keeps its address and name until its last try is
 * freed.
 */
typedef struct {
    uint32_t                   id;        /* 0: the slot is free */
    uint32_t                   refs;      /* tries in flight */
    uint32_t                   entry;     /* index in the current list */
    uint32_t                   next;      /* index in the list a refresh
                                             fills */
    unsigned                   removed:1; /* not in the current list:
                                             freed when refs drops to 0 */
    unsigned                   marked:1;  /* in the list a refresh fills */
    socklen_t                  socklen;
    ngx_sockaddr_t             sockaddr;
    size_t                     name_len;
    u_char                     name[NGX_SOCKADDR_STRLEN];
    uint64_t                  *cell;      /* its cell in the zone
                                             (dynroute::metrics::
                                             ServerSlot), or NULL */
#if (NGX_HTTP_SSL)
    ngx_ssl_session_t         *ssl_session;  /* to resume, as nginx's
                                                 peer->ssl_session */
#endif
} ngx_http_dynroute_peer_t;


/* a slot by server id: open addressing, id 0 empty */
typedef struct {
    uint32_t                   id;
    uint32_t                   slot;
} ngx_http_dynroute_slot_id_t;


/*
 * A group's members in one worker, sized when the configuration is read:
 * max servers per list, twice as many slots (a removed server still in use
 * never crowds out a new one), twice as many id entries as slots.  One
 * allocation, freed with the configuration's cycle.
 */
typedef struct {
    ngx_http_dynroute_peer_t      *slots;
    ngx_uint_t                     nslots;
    ngx_http_dynroute_slot_id_t   *ids;
    ngx_uint_t                     nids;      /* a power of two */
    ngx_uint_t                     hint;      /* where a free slot is
                                                 looked for first */
    ngx_http_dynroute_list_t       list[2];   /* max entries each */
    ngx_uint_t                     current;   /* the list in use */
    ngx_uint_t                     max;
    uint64_t                       written;   /* the generation of the
                                                 group block the current
                                                 list came from; 0: the
                                                 "server" lines */
    ngx_str_t                     *name;      /* the upstream's */
    uint64_t                       epoch;     /* lists switched so far: a
                                                 request that saw another
                                                 one finds its slot again */

    /* the runtime lists (the zone's group blocks) */
    uint32_t                       key;       /* the upstream's NameId in
                                                 the zone */
    u_char                        *configured;  /* the "server" lines as a
                                                   group block: a reset */
    size_t                         configured_len;
    uint64_t                       next_written;
    unsigned                       pending:1; /* the list not in use is
                                                 filled, not switched to */
    unsigned                       seen:1;    /* a refresh found its block */
    struct ngx_http_dynroute_rings_s  *rings; /* hash=KEY: each list's
                                                 ring; NULL: round robin */

    /* the zone, where the blocks' cell offsets point (set by the view) */
    u_char                        *zone;
    size_t                         zone_size;

    struct ngx_http_dynroute_hc_s *health;    /* dynroute_health_check, or
                                                 NULL: the lists' entries
                                                 point at their cells */
} ngx_http_dynroute_members_t;


char *ngx_http_dynroute_servers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_servers_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;

/*
 * A server's cell (dynroute::metrics::ServerSlot) at offset off of a zone
 * of zone_size bytes, if it lies whole in it; NULL otherwise.  And a try
 * given back, counted in its cell: its response's class, a failure, until
 * when max_fails took the server out (0: it did not).
 */
uint64_t *ngx_http_dynroute_cell_at(u_char *zone, size_t zone_size,
    uint64_t off) noexcept;
void ngx_http_dynroute_servers_counted(uint64_t *cell, ngx_http_upstream_t *u,
    ngx_uint_t state, time_t until) noexcept;

/*
 * dynroute_health_check: the members of the upstream whose block is being
 * read, if it has dynroute_servers (NULL otherwise); and the slot of
 * server id in the list in use (NULL if it is not in it).
 */
ngx_http_dynroute_members_t *ngx_http_dynroute_servers_members_of(
    ngx_http_upstream_srv_conf_t *uscf) noexcept;
ngx_http_dynroute_peer_t *ngx_http_dynroute_members_slot(
    ngx_http_dynroute_members_t *m, uint32_t id) noexcept;

/* the groups of the configuration: dmcf->servers.nelts of them */
ngx_http_dynroute_members_t *ngx_http_dynroute_servers_members(
    ngx_http_dynroute_main_conf_t *dmcf, ngx_uint_t i) noexcept;

/*
 * Postconfiguration: each group's max and "server" lines (with the ids the
 * members gave them) into the schema, and its "server" lines as a group
 * block for a reset.  Throws.
 */
void ngx_http_dynroute_servers_info(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, dynroute::Schema &schema);

/*
 * A worker's refresh: fill() the list not in use from a group block
 * (written: its generation; 0 and the configured block: the "server"
 * lines), without allocating; commit() switches to it once the generation
 * was seen not to change meanwhile.
 */
void ngx_http_dynroute_members_fill(ngx_http_dynroute_members_t *m,
    const dynroute::GroupView &g, uint64_t written) noexcept;
void ngx_http_dynroute_members_commit(ngx_http_dynroute_members_t *m)
    noexcept;

/*
 * The cells of the "server" lines, once the zone has them (the master, as
 * it initialises the zone): the configured block's offsets point at them,
 * and each configured slot gets its own.
 */
void ngx_http_dynroute_members_cells(ngx_http_dynroute_members_t *m,
    u_char *zone, size_t zone_size) noexcept;


/*
 * ---- hash=KEY: consistent hashing (ngx_http_dynroute_servers_hash.cpp) ----
 *
 * A ring as a pick reads it, whoever built it: the configured list's is
 * built with the configuration; a runtime list's (the design puts it in
 * its group block, built by the writer) is read in place.  Its points name
 * servers by their index in the list they were built from.
 */
#include "chash.hpp"

typedef struct {
    dynroute::ChashRingView        points;
    const uint32_t                *same;     /* NULL: no two servers of the
                                                list share a name; else
                                                same[i], the next server
                                                after i of i's name, or
                                                NGX_HTTP_DYNROUTE_HASH_END */
    const uint32_t                *index;    /* NULL: a point's server is
                                                the list's entry; else
                                                index[server] (server <
                                                nindex), or
                                                NGX_HTTP_DYNROUTE_HASH_END */
    uint32_t                       nindex;
} ngx_http_dynroute_ring_t;

#define NGX_HTTP_DYNROUTE_HASH_END  0xffffffffu

/*
 * The rings of a hash group's two lists, as the members' lists are
 * filled: the configured list's is the configuration's ring (its points
 * name the "server" lines' servers, whose ids are their places plus 1); a
 * runtime list's is its group block's, in the zone (its points name the
 * block's servers by their place in the block).  A list leaves out what
 * the block holds but it cannot (no slot left, a damaged entry), so a
 * point's server is mapped to the list's entry by index[].
 */
typedef struct ngx_http_dynroute_rings_s {
    ngx_http_dynroute_ring_t       ring[2];   /* by list, as list[] */
    ngx_uint_t                     zone[2];   /* ring[i] is in the zone */
    uint32_t                      *index[2];  /* max entries each */
    const ngx_http_dynroute_ring_t  *configured;
    ngx_uint_t                     nconfigured;  /* servers it names */
} ngx_http_dynroute_rings_t;

typedef struct {
    ngx_http_complex_value_t       key;      /* compiled with the
                                                configuration */
    ngx_http_dynroute_ring_t       ring;     /* of the "server" lines */
    u_char                        *file;     /* the directive's */
    ngx_uint_t                     line;
} ngx_http_dynroute_servers_hash_t;

char *ngx_http_dynroute_servers_hash_conf(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_upstream_srv_conf_t *uscf,
    ngx_http_dynroute_servers_hash_t **hash) noexcept;
ngx_int_t ngx_http_dynroute_servers_hash_init(ngx_conf_t *cf,
    ngx_http_dynroute_servers_hash_t *hash, ngx_http_upstream_srv_conf_t *us,
    const ngx_http_dynroute_list_t *list) noexcept;
ngx_int_t ngx_http_dynroute_servers_hash_members(ngx_conf_t *cf,
    ngx_http_dynroute_servers_hash_t *hash, ngx_http_dynroute_members_t *m)
    noexcept;
void ngx_http_dynroute_servers_hash_fill(ngx_http_dynroute_members_t *m,
    const dynroute::GroupView &g, uint64_t written) noexcept;

/*
 * init_peer's: the key's place on the ring of the list in use (*ring is
 * the request's); again, after the lists switched: its place on the ring
 * of the list in use now, the tries kept.  Either may refresh the
 * worker's view: the caller takes the list in use afterwards.
 */
ngx_int_t ngx_http_dynroute_servers_hash_start(ngx_http_request_t *r,
    ngx_http_dynroute_servers_hash_t *hash, ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_members_t *m, const ngx_http_dynroute_ring_t **ring,
    dynroute::ChashCursor *cursor) noexcept;
void ngx_http_dynroute_servers_hash_again(const ngx_http_dynroute_ring_t *ring,
    dynroute::ChashCursor *cursor) noexcept;
ngx_http_dynroute_entry_t *ngx_http_dynroute_servers_hash_get(
    const ngx_http_dynroute_list_t &list, const ngx_http_dynroute_ring_t &ring,
    dynroute::ChashCursor &cursor, dynroute::balance::Try &t, time_t now)
    noexcept;

/* ---- end of hash=KEY ---- */
