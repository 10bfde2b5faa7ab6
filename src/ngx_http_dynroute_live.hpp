/*
 * The live values: the configuration's, or those of the runtime API when
 * a dynroute_zone is configured.  The zone's life and its writers are in
 * ngx_http_dynroute_zone.cpp, what a worker routes by in
 * ngx_http_dynroute_view.cpp.
 */
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ngx_http_dynroute.hpp"
#include "rollout.hpp"
#include "state.hpp"


/* what a rollout's pick goes by in this worker right now */
typedef struct {
    dynroute::Split                               split;
    const ngx_http_upstream_srv_conf_t *const    *upstreams; /* by variant */
    const uint32_t                               *services;  /* by variant:
                                                  a service's key, or 0 */
} ngx_http_dynroute_route_t;


/* configuration */

char *ngx_http_dynroute_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_live_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;

/* a worker of a new configuration, at its start */
void ngx_http_dynroute_live_adopt(ngx_http_dynroute_live_t *live,
    ngx_log_t *log) noexcept;

/* request time: never locks, allocates or throws */

void ngx_http_dynroute_live_sync(ngx_http_dynroute_live_t *live) noexcept;
ngx_http_dynroute_route_t ngx_http_dynroute_live_route(
    ngx_http_dynroute_live_t *live, ngx_http_dynroute_rollout_t *ro) noexcept;
/* syncs first, as ngx_http_dynroute_live_sync(); hash is
 * dynroute::Table::hash_host(host) */
ngx_http_dynroute_rule_t *ngx_http_dynroute_live_host(
    ngx_http_dynroute_live_t *live, ngx_uint_t table, ngx_str_t host,
    uint64_t hash) noexcept;
bool ngx_http_dynroute_live_draining(ngx_http_dynroute_live_t *live) noexcept;
/*
 * After reading in place what this worker's view points into (a group
 * block's ring): whether the zone is still at the view's generation, so
 * that what was read was not freed meanwhile.  True without a zone.
 */
bool ngx_http_dynroute_live_current(ngx_http_dynroute_live_t *live) noexcept;

/*
 * For the metrics: each group (its list, published or configured, then its
 * removed servers not freed yet) with its servers' cells.  Throws.
 */
namespace dynroute::metrics { struct GroupStats; }
void ngx_http_dynroute_live_groups(ngx_http_dynroute_live_t *live,
    std::vector<dynroute::metrics::GroupStats> &out);

/* the zone's state, for the metrics: after ngx_http_dynroute_live_sync */
void ngx_http_dynroute_live_status(ngx_http_dynroute_live_t *live,
    uint64_t *generation, bool *draining, size_t *runtime_hosts) noexcept;

/*
 * For the API: `render` the current state, or apply `change` to it (which
 * may throw dynroute::ApiError) and publish the result, the state file
 * written first, then `render` that.  if_match is -1 or the generation the
 * client expects.  Return the HTTP status, with the rendered state or
 * {"error": ...} in `body`.
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
