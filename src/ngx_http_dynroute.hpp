/*
 * The configuration of ngx_http_dynroute_module as the glue files share
 * it: tables and their rules, rollouts and their variants, the main and
 * location configurations.  What each file offers the others is in its
 * own header (ngx_http_dynroute_<concern>.hpp); the module itself is
 * ngx_http_dynroute_module.cpp.
 */
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ngx.hpp"
#include "ngx_http_dynroute_conf.hpp"
#include "ngx_http_dynroute_string.hpp"
#include "rollout.hpp"
#include "table.hpp"

extern "C" {
extern ngx_module_t  ngx_http_dynroute_module;
}

struct ngx_http_dynroute_targets_t;
struct ngx_http_dynroute_api_conf_t;
struct ngx_http_dynroute_live_t;
struct ngx_http_dynroute_rollout_t;
struct ngx_http_dynroute_services_conf_t;
struct ngx_http_dynroute_guard_t;
struct ngx_http_dynroute_ramp_t;

/*
 * What rules route to: one record per distinct target of a table, shared
 * by every rule that names it (a table of a million hosts names a handful
 * of targets), and one per target of the registry for the runtime hosts.
 * rollout and uscf are resolved once everything is read.
 */
typedef struct {
    ngx_str_t                  target;   /* upstream name or "@location" */
    ngx_uint_t                 named;    /* target is a named location */
    ngx_http_dynroute_rollout_t *rollout; /* target is a rollout */
    ngx_http_upstream_srv_conf_t *uscf;  /* target is an upstream{} */
    ngx_uint_t                 first;    /* the first rule naming it */
} ngx_http_dynroute_dest_t;


/*
 * A rule of a table (or what a runtime host entry stands for): 24 bytes,
 * a million of them in a large table.  Where it was written is kept by
 * the table until the checks (ngx_http_dynroute_table_where), its counter
 * by the table too (rule_counters).
 */
struct ngx_http_dynroute_rule_t {
    ngx_str_t                  text;     /* as written; $dynroute_rule */
    ngx_http_dynroute_dest_t  *dest;     /* what it routes to */
};

static_assert(sizeof(ngx_http_dynroute_rule_t) <= 3 * sizeof(void *),
              "a table may hold a million rules");


/*
 * Strings copied while the configuration is read, packed into blocks:
 * what a table keeps of its block once nginx's tokens are freed.
 */
class ngx_http_dynroute_arena_t {
public:
    /* a copy of s, NUL-terminated: throws std::bad_alloc */
    ngx_str_t copy(const ngx_str_t &s);

private:
    std::vector<std::unique_ptr<u_char[]>>  blocks_;
    u_char                                 *pos_ = nullptr;
    size_t                                  left_ = 0;
};


typedef struct {
    ngx_uint_t                 group;
    ngx_int_t                  index;    /* of the variable */
} ngx_http_dynroute_capture_t;


/*
 * Allocated with new, deleted by a cleanup of the cycle pool.  The rules are
 * read into a deque (a table of a million hosts grows without copying, and
 * without a vector's doubling slack), then kept in a vector of exactly
 * their number, which a request indexes with one multiply.  The block is
 * read in a
 * temporary pool (as map{} is): the rules' texts, their targets and the
 * names of the files they were written in are copied into the table's
 * arena.
 */
typedef struct {
    ngx_str_t                                      name;
    ngx_uint_t                                     index;  /* in tables */
    u_char                                        *file;
    ngx_uint_t                                     line;
    /* key=$variable: what the table matches instead of the Host */
    ngx_str_t                                      key;    /* "$name", or
                                                              empty: Host */
    ngx_int_t                                      key_index;
    std::vector<ngx_http_dynroute_rule_t>          rules;
    std::deque<ngx_http_dynroute_dest_t>           dests;  /* in the order
                                                              of first use */
    std::vector<std::vector<ngx_http_dynroute_capture_t>>  captures;
    dynroute::Table                                core;
    uint64_t                                      *counters; /* TableSlot,
                                                                or NULL */
    std::vector<uint64_t *>                        rule_counters; /* by rule,
                                                     or empty: not counted */
    ngx_http_dynroute_arena_t                      arena;

    /* where each rule was written, until the checks: its line, and the
     * files by the first rule written in each */
    std::deque<uint32_t>                           lines;
    std::vector<std::pair<uint32_t, u_char *>>     files;
} ngx_http_dynroute_table_t;



/* One "dynroute NAME" directive; resolved in postconfiguration. */
typedef struct {
    ngx_str_t                  name;
    ngx_http_dynroute_table_t *table;
    ngx_http_core_srv_conf_t  *cscf;
    u_char                    *file;
    ngx_uint_t                 line;
} ngx_http_dynroute_use_t;


/* where a directive was written, for a check made after parsing */
typedef struct {
    u_char                    *file;
    ngx_uint_t                 line;
} ngx_http_dynroute_where_t;


/* what "dynroute_health" answers */
typedef enum {
    NGX_HTTP_DYNROUTE_HEALTH_OFF = 0,
    NGX_HTTP_DYNROUTE_HEALTH_LIVENESS,
    NGX_HTTP_DYNROUTE_HEALTH_READINESS
} ngx_http_dynroute_health_e;


typedef struct {
    ngx_http_dynroute_use_t  *use;      /* "dynroute": NULL is off */
    ngx_http_dynroute_health_e health;  /* "dynroute_health" */
    ngx_http_dynroute_api_conf_t *api;  /* "dynroute_api", or NULL */
    ngx_http_dynroute_where_t  where;   /* of its block: the location{}
                                           (or if{}, server{}, http{}) */
} ngx_http_dynroute_loc_conf_t;

#define NGX_HTTP_DYNROUTE_METRICS_RULES   0   /* the default */
#define NGX_HTTP_DYNROUTE_METRICS_TABLES  1
#define NGX_HTTP_DYNROUTE_METRICS_OFF     2

/* One variant of a rollout, in the core's order. */
typedef struct {
    ngx_str_t                      name;
    ngx_str_t                      upstream;
    ngx_http_upstream_srv_conf_t  *uscf;      /* of upstream */
    u_char                        *file;
    ngx_uint_t                     line;
    uint64_t                      *counters;  /* VariantSlot, or NULL */
    uint64_t                      *guard;     /* GuardSlot, or NULL */
} ngx_http_dynroute_variant_t;


/*
 * A "dynroute_rollout" block.  Allocated with new and deleted by a cleanup
 * of the cycle pool.  The split itself (weights, overrides) is the core
 * object; this struct adds what the glue needs to feed it.
 */
struct ngx_http_dynroute_rollout_t {
    ngx_str_t                                  name;
    ngx_uint_t                                 index;  /* in rollouts */
    u_char                                    *file;
    ngx_uint_t                                 line;
    std::vector<ngx_http_dynroute_variant_t>   variants;
    std::vector<ngx_int_t>                     keys;    /* variable indexes */
    ngx_str_t                                  header;  /* empty: none */
    ngx_str_t                                  cookie;  /* empty: none */
    bool                                       sources;
    bool                                       overrides_checked; /* by
                                                  override_from CIDRs */

    /* "sticky_cookie": the name (empty: none), the attributes after the
     * value, how long a value is valid (max_age, or a day), and whether
     * the values are bound to the key (not when the key is the cookie) */
    ngx_str_t                                  sticky;
    std::string                                sticky_attrs;
    uint32_t                                   sticky_lifetime;
    bool                                       sticky_bind_key;
    u_char                                    *sticky_file;
    ngx_uint_t                                 sticky_line;
    std::unique_ptr<dynroute::Rollout>         core;

    /* "guard" (ngx_http_dynroute_guard.hpp), or NULL; freed by a cleanup
     * of the cycle pool */
    ngx_http_dynroute_guard_t                 *guard;
    /* "ramp" (ngx_http_dynroute_ramp.hpp), or NULL; freed by a cleanup
     * of the cycle pool */
    ngx_http_dynroute_ramp_t                  *ramp;
};


typedef struct {
    ngx_array_t                tables;    /* ngx_http_dynroute_table_t * */
    ngx_array_t                uses;      /* ngx_http_dynroute_use_t * */
    ngx_array_t                rollouts;  /* ngx_http_dynroute_rollout_t * */
    ngx_array_t                balancers; /* ngx_http_upstream_srv_conf_t * */
    ngx_array_t                servers;   /* dynroute_servers upstreams'
                                             ngx_http_dynroute_servers_
                                             conf_t * */
    ngx_http_dynroute_services_conf_t
                              *carrier;   /* dynroute_services' upstream,
                                             or NULL */
    ngx_array_t                apis;      /* ngx_http_dynroute_api_conf_t * */
    ngx_array_t                readiness; /* ngx_http_dynroute_where_t */

    /* "dynroute_zone" */
    ngx_shm_zone_t            *zone;
    ngx_str_t                  state;     /* state=PATH, or empty */
    ngx_uint_t                 metrics;   /* metrics=, NGX_HTTP_DYNROUTE_
                                             METRICS_* */
    u_char                    *zone_file;
    ngx_uint_t                 zone_line;

    /* "dynroute_sticky_secret": the key that signs stickiness cookies */
    ngx_str_t                  sticky_secret;  /* the file; empty: none */
    uint64_t                   sticky_k0;
    uint64_t                   sticky_k1;

    ngx_cycle_t               *cycle;
    ngx_http_dynroute_targets_t *targets; /* the target registry */
    ngx_http_dynroute_live_t  *live;      /* the live values, per worker */
} ngx_http_dynroute_main_conf_t;
