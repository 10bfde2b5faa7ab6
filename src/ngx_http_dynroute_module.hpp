/*
 * Declarations shared by the glue files of ngx_http_dynroute_module.
 */
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ngx.hpp"
#include "ngx_http_dynroute_conf.hpp"
#include "ngx_http_dynroute_string.hpp"
#include "rollout.hpp"
#include "state.hpp"
#include "table.hpp"

extern "C" {
extern ngx_module_t  ngx_http_dynroute_module;
}

struct ngx_http_dynroute_use_t;
struct ngx_http_dynroute_targets_t;
struct ngx_http_dynroute_api_conf_t;

struct ngx_http_dynroute_live_t;
struct ngx_http_dynroute_rollout_t;

/* A rule of a table (or what a runtime host entry stands for). */
struct ngx_http_dynroute_rule_t {
    ngx_str_t                  text;     /* as written; $dynroute_rule */
    ngx_str_t                  target;   /* upstream name or "@location" */
    ngx_uint_t                 named;    /* target is a named location */
    ngx_http_dynroute_rollout_t *rollout; /* target is a rollout */
    ngx_http_upstream_srv_conf_t *uscf;  /* target is an upstream{} */
    u_char                    *file;     /* NULL: a runtime host's rule */
    ngx_uint_t                 line;
    uint64_t                  *requests; /* its counter, or NULL */
};


typedef struct {
    ngx_uint_t                 group;
    ngx_int_t                  index;    /* of the variable */
} ngx_http_dynroute_capture_t;


/*
 * Allocated with new, deleted by a cleanup of the cycle pool.  The rules are
 * a deque: a table of a million hosts grows without copying, and without a
 * vector's doubling slack, while nginx reads it.
 */
typedef struct {
    ngx_str_t                                      name;
    ngx_uint_t                                     index;  /* in tables */
    u_char                                        *file;
    ngx_uint_t                                     line;
    std::deque<ngx_http_dynroute_rule_t>           rules;
    std::vector<std::vector<ngx_http_dynroute_capture_t>>  captures;
    dynroute::Table                                core;
    uint64_t                                      *counters; /* TableSlot,
                                                                or NULL */
} ngx_http_dynroute_table_t;



/* where a directive was written, for a check made after parsing */
typedef struct {
    u_char                    *file;
    ngx_uint_t                 line;
} ngx_http_dynroute_where_t;


typedef struct {
    ngx_http_dynroute_use_t  *use;      /* "dynroute": NULL is off */
    ngx_uint_t                health;   /* "dynroute_health": 0, 1 or
                                           NGX_HTTP_DYNROUTE_READINESS */
    ngx_http_dynroute_api_conf_t *api;  /* "dynroute_api", or NULL */
} ngx_http_dynroute_loc_conf_t;

#define NGX_HTTP_DYNROUTE_READINESS  2

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
};


typedef struct {
    ngx_array_t                tables;    /* ngx_http_dynroute_table_t * */
    ngx_array_t                uses;      /* ngx_http_dynroute_use_t * */
    ngx_array_t                rollouts;  /* ngx_http_dynroute_rollout_t * */
    ngx_array_t                balancers; /* ngx_http_upstream_srv_conf_t * */
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


/*
 * The target registry (ngx_http_dynroute_targets.cpp): what a name stands
 * for, and whether a request may be routed to it.
 */

#define NGX_HTTP_DYNROUTE_TARGET_UPSTREAM  0
#define NGX_HTTP_DYNROUTE_TARGET_ROLLOUT   1

typedef struct {
    ngx_str_t                      name;     /* as the configuration has it */
    ngx_uint_t                     kind;     /* NGX_HTTP_DYNROUTE_TARGET_* */
    ngx_http_upstream_srv_conf_t  *uscf;     /* an upstream{} block */
    ngx_http_dynroute_rollout_t   *rollout;  /* a rollout */
    ngx_http_dynroute_rule_t      *rule;     /* what a runtime host entry
                                                naming it stands for (with
                                                a zone) */
    const char                    *why;      /* not NULL: may not be routed
                                                to, and why */
} ngx_http_dynroute_target_t;

ngx_int_t ngx_http_dynroute_targets_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
ngx_http_dynroute_target_t *ngx_http_dynroute_target_resolve(
    ngx_http_dynroute_main_conf_t *dmcf, std::string_view name,
    const char **why);
ngx_http_dynroute_target_t *ngx_http_dynroute_target_exact(
    ngx_http_dynroute_main_conf_t *dmcf, std::string_view name) noexcept;
void ngx_http_dynroute_targets_each(ngx_http_dynroute_main_conf_t *dmcf,
    const std::function<void(ngx_http_dynroute_target_t &)> &f);


/* What a dynroute_balancer hands a request to. */
typedef struct {
    ngx_http_upstream_srv_conf_t  *chosen;
    ngx_http_upstream_srv_conf_t  *primary;  /* a rollout's, if not chosen */
} ngx_http_dynroute_choice_t;


char *ngx_http_dynroute_rollout_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_rollout_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_dynroute_rollout_t *rollout)
    noexcept;
ngx_uint_t ngx_http_dynroute_rollout_pick(ngx_http_request_t *r,
    ngx_http_dynroute_rollout_t *rollout, const dynroute::Split &split,
    dynroute::Rollout::Reason *reason, dynroute::StickyValue *issue)
    noexcept;
char *ngx_http_dynroute_sticky_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_rollout_sign(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_dynroute_rollout_t *ro)
    noexcept;

char *ngx_http_dynroute_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_send(ngx_http_request_t *r, ngx_int_t status,
    const char *type, std::string_view body, bool copy) noexcept;

ngx_int_t ngx_http_dynroute_choose(ngx_http_request_t *r,
    ngx_http_dynroute_choice_t *choice) noexcept;
void ngx_http_dynroute_fell_back(ngx_http_request_t *r) noexcept;

char *ngx_http_dynroute_balancer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_balancer_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
ngx_int_t ngx_http_dynroute_balancer_check_location(ngx_conf_t *cf,
    ngx_http_dynroute_loc_conf_t *conf) noexcept;


/*
 * The live values (ngx_http_dynroute_zone.cpp, _view.cpp): the
 * configuration's, or those of the runtime API when a dynroute_zone is
 * configured.
 */

/* what a rollout's pick goes by in this worker right now */
typedef struct {
    dynroute::Split                               split;
    const ngx_http_upstream_srv_conf_t *const    *upstreams; /* by variant */
} ngx_http_dynroute_route_t;

char *ngx_http_dynroute_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_live_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
ngx_http_dynroute_route_t ngx_http_dynroute_live_route(
    ngx_http_dynroute_live_t *live, ngx_http_dynroute_rollout_t *ro) noexcept;
ngx_http_dynroute_rule_t *ngx_http_dynroute_live_host(
    ngx_http_dynroute_live_t *live, ngx_uint_t table, const ngx_str_t &host)
    noexcept;
bool ngx_http_dynroute_live_draining(ngx_http_dynroute_live_t *live) noexcept;

/* the runtime API (ngx_http_dynroute_api.cpp) */

char *ngx_http_dynroute_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept;
ngx_int_t ngx_http_dynroute_api_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;

/*
 * For the API, under the zone's lock: `render` the current state, or apply
 * `change` to it (which may throw dynroute::ApiError) and publish the
 * result, the state file written first, then `render` that.  if_match is
 * -1 or the generation the client expects.  Return the HTTP status, with
 * the rendered state or {"error": ...} in `body`.
 */
using ngx_http_dynroute_render_t =
    std::function<std::string(const dynroute::State &)>;

ngx_int_t ngx_http_dynroute_live_read(ngx_http_dynroute_live_t *live,
    const ngx_http_dynroute_render_t &render, std::string &body) noexcept;
ngx_int_t ngx_http_dynroute_live_write(ngx_http_dynroute_live_t *live,
    ngx_log_t *log, int64_t if_match,
    const std::function<void(dynroute::State &)> &change,
    const ngx_http_dynroute_render_t &render, std::string &body) noexcept;

const dynroute::Schema &ngx_http_dynroute_live_schema(
    ngx_http_dynroute_live_t *live) noexcept;
ngx_str_t ngx_http_dynroute_live_zone_name(ngx_http_dynroute_live_t *live)
    noexcept;
void ngx_http_dynroute_live_sync(ngx_http_dynroute_live_t *live) noexcept;
void ngx_http_dynroute_live_adopt(ngx_http_dynroute_live_t *live,
    ngx_log_t *log) noexcept;

/* from the module, for the live values */
void ngx_http_dynroute_table_info(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::Schema &schema);

/* the metrics (ngx_http_dynroute_metrics.cpp) */

namespace dynroute::metrics { struct Snapshot; }

/* in the zone being initialised, under its lock: the counters of every
 * table, rule and variant, found again after a reload or made */
ngx_int_t ngx_http_dynroute_metrics_init(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_slab_pool_t *shpool, ngx_rbtree_t *series, ngx_log_t *log) noexcept;
void ngx_http_dynroute_metrics_count(ngx_http_request_t *r,
    ngx_http_dynroute_rule_t *rule, ngx_http_dynroute_table_t *table,
    ngx_uint_t runtime, ngx_uint_t variant, ngx_uint_t served,
    ngx_uint_t reason) noexcept;
void ngx_http_dynroute_metrics_snapshot(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::metrics::Snapshot &s);

/* the zone's state, for the metrics: after ngx_http_dynroute_live_sync */
void ngx_http_dynroute_live_status(ngx_http_dynroute_live_t *live,
    uint64_t *generation, bool *draining, size_t *runtime_hosts) noexcept;
