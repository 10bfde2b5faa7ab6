/*
 * The runtime state's zone, seen by the three files that keep it:
 *   ngx_http_dynroute_zone.cpp        the zone's life (configuration, start,
 *                                     reload), its names, and its writers
 *   ngx_http_dynroute_view.cpp        what each worker routes by: the
 *                                     published snapshot, read in place
 *   ngx_http_dynroute_state_file.cpp  the state file
 *
 * The zone holds one published snapshot (dynroute::SnapshotView: binary,
 * immutable, names as ids, in blocks: the head, the runtime hosts and a
 * group block per runtime list of servers)
 * and the names behind the ids.  A writer (the
 * API, under the zone's mutex) publishes a whole new snapshot: the pointer
 * to it first, then the generation that readers check, and only then frees
 * the old one.  A reader never locks: it reads the generation, then what
 * it needs, then the generation again, and reads again if it changed.
 */
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "ngx_http_dynroute_live.hpp"
#include "ngx_http_dynroute_servers.hpp"
#include "ngx_http_dynroute_targets.hpp"
#include "snapshot.hpp"
#include "state.hpp"


/* in shared memory */

/*
 * A removed server's cell, listed (state "removed") until a writer frees
 * it: once dynroute::metrics::cell_may_free() says so.
 */
typedef struct ngx_http_dynroute_retired_s  ngx_http_dynroute_retired_t;

struct ngx_http_dynroute_retired_s {
    ngx_http_dynroute_retired_t   *next;
    uint64_t                      *cell;
    uint32_t                       key;        /* its group block's */
    uint32_t                       name_len;
    u_char                         name[1];    /* the canonical address */
};

/*
 * a published snapshot: its blocks, each with its size in its header: the
 * head, the hosts, and a group block per upstream with a runtime list
 * (dynroute::GroupView), each shared with the version before when its
 * group did not change
 */
typedef struct {
    u_char                        *head;
    u_char                        *hosts;      /* shared with the one before
                                                  when the hosts are the
                                                  same */
    u_char                       **groups;     /* ngroups blocks, or NULL */
    ngx_uint_t                     ngroups;

    /* until it is published or dropped: the cells it made, and those it
     * will retire (ngx_http_dynroute_zone.cpp) */
    uint64_t                      *fresh;
    ngx_http_dynroute_retired_t   *retiring;
} ngx_http_dynroute_version_t;

typedef struct {
    uint64_t                       generation;  /* atomic: the snapshot's */
    uint64_t                       draining;    /* atomic */
    ngx_http_dynroute_version_t   *version;     /* atomic */

    /* under the mutex */
    u_char                        *names;       /* dynroute::NamesView */
    size_t                         names_len;

    /*
     * Configurations: each cycle that uses the zone gets the next number
     * when the master initialises the zone; the newest one whose workers
     * run is current, from its first worker's start on (a reload that
     * fails never becomes current).  Only a worker of the current
     * configuration may publish.
     */
    uint64_t                       configs;
    uint64_t                       current;
    unsigned                       unsaved:1;   /* the state file lags */

    /* the metrics' counters by name (ngx_http_dynroute_metrics.cpp) */
    ngx_rbtree_t                   series;
    ngx_rbtree_node_t              sentinel;

    /* removed servers' cells not freed yet, under the mutex */
    ngx_http_dynroute_retired_t   *retired;
} ngx_http_dynroute_shm_t;


/*
 * What a worker routes a rollout by: its configured values with what the
 * runtime changed on top.  Sized when the configuration is read, filled
 * (without allocating) when the generation changes.
 */
struct ngx_http_dynroute_split_t {
    std::vector<uint32_t>                               weights;
    std::vector<const ngx_http_upstream_srv_conf_t *>   upstreams;
    std::vector<uint32_t>                               services; /* by
                                 variant: a runtime service's key (its
                                 upstream the carrier), or 0 */
    size_t                                              primary = 0;
};


/* One configuration's side of the zone: in the cycle's pool, per worker. */
struct ngx_http_dynroute_live_t {
    ngx_http_dynroute_main_conf_t                     *dmcf;
    ngx_slab_pool_t                                   *shpool = nullptr;
    ngx_http_dynroute_shm_t                           *sh = nullptr;
    ngx_str_t                                          zone_name{};
    uint64_t                                           config = 0;

    /* the registry's targets, as the runtime state checks names; with
     * stream{}'s, once added (init_zone) */
    dynroute::Schema                                   schema;
    bool                                               stream_schema = false;

    /* the zone's ids of this configuration's names (init_zone) */
    std::unordered_map<std::string, dynroute::NameId>  ids;
    std::vector<ngx_http_dynroute_target_t *>          target_by_id;
    std::vector<ngx_int_t>                             rollout_by_id;
    std::vector<dynroute::NameId>                      table_ids;
    std::vector<std::vector<dynroute::NameId>>         variant_ids;

    /* the dynroute_servers groups, and by the NameId of their upstream */
    std::vector<ngx_http_dynroute_members_t *>         groups;
    std::vector<ngx_http_dynroute_members_t *>         group_by_id;

    /* this worker's view: the configured splits, and two sets of live
     * ones, the one in use and the one a refresh fills */
    std::vector<ngx_http_dynroute_split_t>             configured;
    std::vector<ngx_http_dynroute_split_t>             splits[2];
    ngx_uint_t                                         current = 0;
    uint64_t                                           generation = ~0ULL;
                                   /* ~0: never read; no generation gets
                                      there (dynroute::max_generation) */
    dynroute::SnapshotView                             snapshot;

    /* a writer's decoded copy of the published state */
    dynroute::State                                    cached;
    uint64_t                                           cached_generation
                                                           = ~0ULL;
};


/* ngx_http_dynroute_view.cpp */

/* the published block, if it lies whole in the zone; or an invalid view */
dynroute::SnapshotView ngx_http_dynroute_view_published(
    ngx_http_dynroute_live_t *live) noexcept;
/* the published version, if it lies in the zone; and its i-th group block,
 * if it lies in the zone whole, or an invalid view */
ngx_http_dynroute_version_t *ngx_http_dynroute_view_version(
    ngx_http_dynroute_live_t *live) noexcept;
dynroute::GroupView ngx_http_dynroute_view_group(
    ngx_http_dynroute_live_t *live, ngx_http_dynroute_version_t *v,
    ngx_uint_t i) noexcept;
void ngx_http_dynroute_view_reset(ngx_http_dynroute_live_t *live) noexcept;

/* for the stream module (ngx_stream_dynroute_runtime.cpp): the ids of
 * host's runtime entry (host lowercase, no trailing dot; hash
 * dynroute::Table::hash_host(host)), or false.  Syncs first. */
bool ngx_http_dynroute_live_host_ids(ngx_http_dynroute_live_t *live,
    std::string_view host, uint64_t hash, dynroute::NameId *table,
    dynroute::NameId *target) noexcept;

/* ngx_http_dynroute_state_file.cpp */

ngx_int_t ngx_http_dynroute_state_check_path(
    ngx_http_dynroute_main_conf_t *dmcf, ngx_log_t *log) noexcept;
bool ngx_http_dynroute_state_read(ngx_http_dynroute_main_conf_t *dmcf,
    std::string &text, ngx_log_t *log);
bool ngx_http_dynroute_state_write(const ngx_str_t &path,
    const std::string &text, std::string &error);

/* a writer's steps: prepare outside the mutex, commit under it, then sync */
bool ngx_http_dynroute_state_prepare(const ngx_str_t &path,
    const std::string &text, std::string &tmp, std::string &error);
bool ngx_http_dynroute_state_commit(const ngx_str_t &path, std::string &tmp,
    std::string &error);
void ngx_http_dynroute_state_discard(std::string &tmp) noexcept;
void ngx_http_dynroute_state_sync(const ngx_str_t &path);
