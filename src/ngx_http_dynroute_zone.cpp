/*
 * dynroute_zone: the runtime state's shared memory, its life across starts
 * and reloads, the names behind its ids, and the writers (the API) that
 * publish a new snapshot.  What the workers route by is read in
 * ngx_http_dynroute_view.cpp; the state file is kept by
 * ngx_http_dynroute_state_file.cpp.  See ngx_http_dynroute_zone.hpp.
 */

#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ngx_http_dynroute_zone.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "ngx_http_dynroute_metrics.hpp"
#include "ngx_http_dynroute_ramp.hpp"
#include "ngx_http_dynroute_servers.hpp"
#include "ngx_http_dynroute_services.hpp"
#include "ngx_http_dynroute_table.hpp"
#include "ngx_stream_dynroute_metrics.hpp"
#include "ngx_stream_dynroute_runtime.hpp"
#include "metrics.hpp"


static ngx_int_t ngx_http_dynroute_init_zone(ngx_shm_zone_t *shm_zone,
    void *data) noexcept;


/* configuration */


char *
ngx_http_dynroute_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_dynroute_main_conf_t *dmcf =
        static_cast<ngx_http_dynroute_main_conf_t *>(conf);

    ssize_t      size;
    ngx_str_t   *value, name;
    ngx_uint_t   i;

    if (dmcf->zone) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);
    name = value[1];

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (size < static_cast<ssize_t>(64 * 1024)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_zone \"%V\" is too small: 64k at least",
                           &name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    for (i = 3; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "state=", 6) == 0
            && value[i].len > 6)
        {
            dmcf->state.data = value[i].data + 6;
            dmcf->state.len = value[i].len - 6;

            if (ngx_conf_full_name(cf->cycle, &dmcf->state, 0) != NGX_OK) {
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "metrics=rules") == 0) {
            dmcf->metrics = NGX_HTTP_DYNROUTE_METRICS_RULES;
            continue;
        }

        if (ngx_strcmp(value[i].data, "metrics=tables") == 0) {
            dmcf->metrics = NGX_HTTP_DYNROUTE_METRICS_TABLES;
            continue;
        }

        if (ngx_strcmp(value[i].data, "metrics=off") == 0) {
            dmcf->metrics = NGX_HTTP_DYNROUTE_METRICS_OFF;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": dynroute_zone takes "
                           "NAME SIZE [state=PATH] "
                           "[metrics=rules|tables|off]", &value[i]);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    dmcf->zone = ngx_shared_memory_add(cf, &name, size,
                                       &ngx_http_dynroute_module);
    if (dmcf->zone == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (dmcf->zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared memory zone \"%V\" is already used",
                           &name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    dmcf->zone->init = ngx_http_dynroute_init_zone;
    dmcf->zone->data = dmcf;
    dmcf->zone_file = cf->conf_file->file.name.data;
    dmcf->zone_line = cf->conf_file->line;
    dmcf->cycle = cf->cycle;

    return NGX_CONF_OK;
}


/*
 * With a zone: no name of http{} may begin with "stream/", which the
 * runtime state gives stream{}'s names (dynroute::stream_ns).
 */

static ngx_int_t
ngx_http_dynroute_reserved(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf, ngx_http_upstream_srv_conf_t **up,
    ngx_uint_t nup) noexcept
{
    ngx_uint_t                     i;
    ngx_http_dynroute_table_t    **tp;
    ngx_http_dynroute_rollout_t  **rp;

    auto refuse = [&](const char *what, ngx_str_t *name, u_char *file,
                      ngx_uint_t line)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "%s \"%V\" in %s:%ui: a name that begins with "
                      "\"stream/\" is the runtime state's for stream{} "
                      "(with a dynroute_zone): rename it", what, name, file,
                      line);
        return NGX_ERROR;
    };

    auto reserved = [](const ngx_str_t &name) {
        return !dynroute::in_ns(ngx_http_dynroute_view(name), "");
    };

    tp = static_cast<ngx_http_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        if (reserved(tp[i]->name)) {
            return refuse("dynroute_table", &tp[i]->name, tp[i]->file,
                          tp[i]->line);
        }
    }

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        if (reserved(rp[i]->name)) {
            return refuse("dynroute_rollout", &rp[i]->name, rp[i]->file,
                          rp[i]->line);
        }
    }

    for (i = 0; i < nup; i++) {
        if (up[i]->srv_conf && reserved(up[i]->host)) {
            return refuse("upstream", &up[i]->host, up[i]->file_name,
                          up[i]->line);
        }
    }

    return NGX_OK;
}


/*
 * After everything is parsed (postconfiguration): what the runtime state is
 * checked against, and this worker's splits, sized for the configuration.
 */

ngx_int_t
ngx_http_dynroute_live_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                      i;
    ngx_http_dynroute_live_t       *live;
    ngx_http_dynroute_rollout_t   **rp;

    live = ngx_http_dynroute_conf_new<ngx_http_dynroute_live_t>(cf,
                                                                "dynroute");
    if (live == NULL) {
        return NGX_ERROR;
    }

    live->dmcf = dmcf;
    dmcf->live = live;

    if (dmcf->zone) {
        live->zone_name = dmcf->zone->shm.name;
    }

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    try {
        ngx_http_dynroute_table_info(dmcf, live->schema);

        /* what a flip may name: the registry's upstream{} blocks */

        ngx_http_dynroute_targets_each(dmcf,
            [&](ngx_http_dynroute_target_t &t) {

            if (t.kind == NGX_HTTP_DYNROUTE_TARGET_UPSTREAM) {
                live->schema.upstreams.emplace(
                    ngx_http_dynroute_view(t.name));
            }
        });

        /* every upstream{} block: names a service may not take */

        ngx_http_upstream_main_conf_t *umcf =
            static_cast<ngx_http_upstream_main_conf_t *>(
                ngx_http_conf_get_module_main_conf(cf,
                                                   ngx_http_upstream_module));
        ngx_http_upstream_srv_conf_t **up =
            static_cast<ngx_http_upstream_srv_conf_t **>(
                umcf->upstreams.elts);

        for (i = 0; i < umcf->upstreams.nelts; i++) {
            if (up[i]->srv_conf) {
                live->schema.upstream_blocks.emplace_back(
                    ngx_http_dynroute_view(up[i]->host));
            }
        }

        /* the dynroute_servers groups: their limits and "server" lines */

        ngx_http_dynroute_servers_info(cf, dmcf, live->schema);
        ngx_http_dynroute_services_info(dmcf, live->schema);

        for (i = 0; i < dmcf->servers.nelts; i++) {
            ngx_http_dynroute_members_t *m =
                ngx_http_dynroute_servers_members(dmcf, i);

            if (m) {
                live->groups.push_back(m);
            }
        }

        /* stream/: stream{}'s names in the runtime state */

        if (dmcf->zone
            && ngx_http_dynroute_reserved(cf, dmcf, up, umcf->upstreams.nelts)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (i = 0; i < dmcf->rollouts.nelts; i++) {
            ngx_http_dynroute_rollout_t *ro = rp[i];
            dynroute::RolloutInfo info;
            ngx_http_dynroute_split_t split;

            ro->index = i;
            info.name = std::string(ngx_http_dynroute_view(ro->name));

            for (size_t v = 0; v < ro->variants.size(); v++) {
                info.variants.emplace_back(
                    ngx_http_dynroute_view(ro->variants[v].name));
                info.weights.push_back(ro->core->weight(v));
                info.upstreams.emplace_back(
                    ngx_http_dynroute_view(ro->variants[v].uscf->host));
                split.weights.push_back(ro->core->weight(v));
                split.upstreams.push_back(ro->variants[v].uscf);
                split.services.push_back(0);
            }

            info.primary = ro->core->primary();
            split.primary = info.primary;
            ngx_http_dynroute_ramp_info(ro, info);

            live->schema.rollouts.push_back(std::move(info));
            live->configured.push_back(split);
            live->splits[0].push_back(split);
            live->splits[1].push_back(std::move(split));
        }

    } catch (...) {
        (void) ngx_http_dynroute_conf_caught(cf, "dynroute");
        return NGX_ERROR;
    }

    return NGX_OK;
}


const dynroute::Schema &
ngx_http_dynroute_live_schema(ngx_http_dynroute_live_t *live) noexcept
{
    return live->schema;
}


ngx_str_t
ngx_http_dynroute_live_zone_name(ngx_http_dynroute_live_t *live) noexcept
{
    return live->zone_name;
}


/* the zone's names */


static dynroute::NamesView
ngx_http_dynroute_names(ngx_http_dynroute_live_t *live) noexcept
{
    return dynroute::NamesView(live->sh->names, live->sh->names_len);
}


/*
 * Under the mutex, in the master, for each configuration: every name it
 * may put in a snapshot (targets, tables, variants) gets an id, a new one
 * at the end for a name the zone had not seen; then the maps from the ids
 * to this configuration's targets, tables and variants.  Throws.
 */

static bool
ngx_http_dynroute_intern(ngx_http_dynroute_live_t *live, ngx_log_t *log)
{
    ngx_uint_t                      i;
    ngx_http_dynroute_main_conf_t  *dmcf = live->dmcf;
    ngx_http_dynroute_rollout_t   **rp;
    ngx_http_dynroute_table_t     **tp;

    std::vector<std::string> names = ngx_http_dynroute_names(live).all();
    std::unordered_map<std::string, dynroute::NameId> known;
    size_t before = names.size();

    for (size_t k = 0; k < before; k++) {
        known.emplace(names[k], static_cast<dynroute::NameId>(k));
    }

    /* a name's id: the zone's, or the next one */

    auto id = [&](std::string_view n) {
        auto [it, added] = known.emplace(std::string(n),
                               static_cast<dynroute::NameId>(names.size()));
        if (added) {
            names.emplace_back(n);
        }

        live->ids.emplace(it->first, it->second);
        return it->second;
    };

    std::vector<std::pair<dynroute::NameId, ngx_http_dynroute_target_t *>>
        targets;

    /* stream{}'s names, when the stream part is built */

    if (ngx_stream_dynroute_runtime_intern != NULL) {
        ngx_stream_dynroute_runtime_intern(dmcf->cycle, live, id);
    }

    ngx_http_dynroute_targets_each(dmcf, [&](ngx_http_dynroute_target_t &t) {
        targets.emplace_back(id(ngx_http_dynroute_view(t.name)), &t);
    });

    tp = static_cast<ngx_http_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        live->table_ids.push_back(id(ngx_http_dynroute_view(tp[i]->name)));
    }

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        std::vector<dynroute::NameId> v;

        for (const auto &var : rp[i]->variants) {
            v.push_back(id(ngx_http_dynroute_view(var.name)));
        }

        live->variant_ids.push_back(std::move(v));
    }

    /* the dynroute_servers groups: their group blocks' keys */

    std::vector<std::pair<dynroute::NameId, ngx_http_dynroute_members_t *>>
        groups;

    for (ngx_http_dynroute_members_t *m : live->groups) {
        m->key = id(ngx_http_dynroute_view(*m->name));
        groups.emplace_back(m->key, m);
    }

    /* the names block again, if this configuration added to it */

    if (names.size() != before) {
        std::string block = dynroute::encode_names(names);
        u_char *p = static_cast<u_char *>(
                        ngx_slab_alloc_locked(live->shpool, block.size()));

        if (p == NULL) {
            ngx_log_error(NGX_LOG_EMERG, log, 0,
                          "dynroute_zone \"%V\" in %s:%ui is too small for "
                          "the names of the configuration", &live->zone_name,
                          dmcf->zone_file, dmcf->zone_line);
            return false;
        }

        ngx_memcpy(p, block.data(), block.size());

        if (live->sh->names) {
            ngx_slab_free_locked(live->shpool, live->sh->names);
        }

        live->sh->names = p;
        live->sh->names_len = block.size();
    }

    live->target_by_id.assign(names.size(), nullptr);
    live->rollout_by_id.assign(names.size(), -1);

    live->group_by_id.assign(names.size(), nullptr);

    for (const auto &[nid, m] : groups) {
        live->group_by_id[nid] = m;
    }

    for (const auto &[nid, t] : targets) {
        live->target_by_id[nid] = t;

        if (t->kind == NGX_HTTP_DYNROUTE_TARGET_ROLLOUT) {
            live->rollout_by_id[nid] =
                static_cast<ngx_int_t>(t->rollout->index);
        }
    }

    return true;
}


/*
 * The servers' cells (docs/design/membership.md): a cell per server of a
 * group, its offset from the zone's start in the group block.  A "server"
 * line's cell is a series of the metrics (found again on a reload, never
 * freed); a runtime server's is made by the write that adds it, carried
 * by every write that keeps it (same id, same address) and retired by the
 * one that removes it, then freed by a later write once
 * dynroute::metrics::cell_may_free() says so.  Past the ServerSlot words,
 * the glue keeps two of its own in a cell.
 */

namespace mx = dynroute::metrics;

static const size_t  ngx_http_dynroute_cell_configured = mx::server_width;
                                         /* 1: a "server" line's */
static const size_t  ngx_http_dynroute_cell_next = mx::server_width + 1;
                                         /* the next cell a version made */

static_assert((mx::server_width + 2) * sizeof(uint64_t) <= mx::cell_bytes);


static uint64_t *
ngx_http_dynroute_cell_at(ngx_http_dynroute_live_t *live, uint64_t off)
    noexcept
{
    size_t  size;

    size = live->shpool->end - reinterpret_cast<u_char *>(live->shpool);

    if (off == 0 || off % sizeof(uint64_t) || off > size
        || size - off < mx::cell_bytes)
    {
        return NULL;
    }

    return reinterpret_cast<uint64_t *>(
               reinterpret_cast<u_char *>(live->shpool) + off);
}


static uint64_t
ngx_http_dynroute_cell_off(ngx_http_dynroute_live_t *live, uint64_t *cell)
    noexcept
{
    return reinterpret_cast<u_char *>(cell)
           - reinterpret_cast<u_char *>(live->shpool);
}


static uint64_t
ngx_http_dynroute_now_ms() noexcept
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return static_cast<uint64_t>(tp->sec) * 1000 + tp->msec;
}


static dynroute::GroupView
ngx_http_dynroute_cells_block(u_char *p) noexcept
{
    return dynroute::GroupView(p, dynroute::block_size(p));
}


/* under the mutex, master: the cells of each group's "server" lines */

static bool
ngx_http_dynroute_cells_configured(ngx_http_dynroute_live_t *live,
    ngx_log_t *log) noexcept
{
    size_t                       size;
    uint64_t                     off, *cell;
    ngx_str_t                    addr;
    ngx_uint_t                   i;
    dynroute::GroupView::Server  s;

    size = live->shpool->end - reinterpret_cast<u_char *>(live->shpool);

    for (ngx_http_dynroute_members_t *m : live->groups) {
        dynroute::GroupView g(m->configured, m->configured_len);

        for (i = 0; m->configured && i < g.servers(); i++) {
            if (!g.server(i, s)) {
                continue;
            }

            addr.len = s.name.size();
            addr.data = const_cast<u_char *>(
                            reinterpret_cast<const u_char *>(s.name.data()));

            cell = ngx_http_dynroute_metrics_cell(live->shpool,
                                                  &live->sh->series, m->name,
                                                  &addr);
            if (cell == NULL) {
                ngx_log_error(NGX_LOG_EMERG, log, 0,
                              "dynroute_zone \"%V\" is too small for the "
                              "servers of upstream \"%V\"", &live->zone_name,
                              m->name);
                return false;
            }

            cell[ngx_http_dynroute_cell_configured] = 1;
            off = ngx_http_dynroute_cell_off(live, cell);
            ngx_memcpy(m->configured + dynroute::group_cell_offset(i), &off,
                       sizeof(off));
        }

        ngx_http_dynroute_members_cells(m,
            reinterpret_cast<u_char *>(live->shpool), size);
    }

    return true;
}


/* under the mutex: what v made and would retire, dropped with it */

static void
ngx_http_dynroute_cells_undo_locked(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v) noexcept
{
    uint64_t                     *cell;
    ngx_http_dynroute_retired_t  *r;

    while (v->fresh) {
        cell = v->fresh;
        v->fresh = reinterpret_cast<uint64_t *>(
                       cell[ngx_http_dynroute_cell_next]);
        ngx_slab_free_locked(live->shpool, cell);
    }

    while (v->retiring) {
        r = v->retiring;
        v->retiring = r->next;
        ngx_slab_free_locked(live->shpool, r);
    }
}


static u_char *ngx_http_dynroute_group_of(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v, uint32_t key) noexcept;
static bool ngx_http_dynroute_holds(ngx_http_dynroute_version_t *v,
    u_char *p) noexcept;


/*
 * Under the mutex, for v, a version not published yet that follows old:
 * a cell for each server of its new group blocks (the old block's for a
 * server that stays, the "server" line's for a configured address, else a
 * new one), and a record for each cell of old's blocks that v drops.
 * Throws; false (nothing kept) when the zone is full.
 */

static bool
ngx_http_dynroute_cells_plan(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v, ngx_http_dynroute_version_t *old)
{
    u_char                       *p, *op;
    uint64_t                      off, *cell;
    ngx_uint_t                    i, j;
    ngx_http_dynroute_retired_t  *r;
    ngx_http_dynroute_members_t  *gm;
    dynroute::GroupView::Server   s;

    for (i = 0; i < v->ngroups; i++) {
        p = v->groups[i];

        if (ngx_http_dynroute_holds(old, p)) {
            continue;
        }

        dynroute::GroupView g = ngx_http_dynroute_cells_block(p);

        if (!g.valid()) {
            continue;
        }

        std::unordered_map<uint32_t, dynroute::GroupView::Server> before;
        std::unordered_map<std::string_view, uint64_t> configured;

        op = ngx_http_dynroute_group_of(live, old, g.key());

        if (op) {
            dynroute::GroupView o = ngx_http_dynroute_cells_block(op);

            for (j = 0; j < o.servers(); j++) {
                if (o.server(j, s) && s.cell) {
                    before.emplace(s.id, s);
                }
            }
        }

        gm = g.key() < live->group_by_id.size() ? live->group_by_id[g.key()]
                                                 : NULL;

        if (gm && gm->configured) {
            dynroute::GroupView c(gm->configured, gm->configured_len);

            for (j = 0; j < c.servers(); j++) {
                if (c.server(j, s) && s.cell) {
                    configured.emplace(s.name, s.cell);
                }
            }
        }

        for (j = 0; j < g.servers(); j++) {
            if (!g.server(j, s)) {
                continue;
            }

            off = 0;

            auto b = before.find(s.id);

            if (b != before.end() && b->second.name == s.name
                && ngx_http_dynroute_cell_at(live, b->second.cell))
            {
                off = b->second.cell;

            } else if (auto c = configured.find(s.name);
                       c != configured.end()
                       && ngx_http_dynroute_cell_at(live, c->second))
            {
                off = c->second;
            }

            if (off == 0) {
                cell = static_cast<uint64_t *>(
                           ngx_slab_calloc_locked(live->shpool,
                                                  mx::cell_bytes));
                if (cell == NULL) {
                    return false;
                }

                cell[ngx_http_dynroute_cell_next] =
                    reinterpret_cast<uint64_t>(v->fresh);
                v->fresh = cell;
                off = ngx_http_dynroute_cell_off(live, cell);
            }

            ngx_memcpy(p + dynroute::group_cell_offset(j), &off, sizeof(off));
        }
    }

    for (i = 0; old && i < old->ngroups; i++) {
        op = old->groups[i];

        if (ngx_http_dynroute_holds(v, op)) {
            continue;
        }

        dynroute::GroupView o = ngx_http_dynroute_cells_block(op);

        if (!o.valid()) {
            continue;
        }

        std::unordered_set<uint64_t> kept;

        p = ngx_http_dynroute_group_of(live, v, o.key());

        if (p) {
            dynroute::GroupView g = ngx_http_dynroute_cells_block(p);

            for (j = 0; j < g.servers(); j++) {
                if (g.server(j, s)) {
                    kept.insert(s.cell);
                }
            }
        }

        for (j = 0; j < o.servers(); j++) {
            if (!o.server(j, s)) {
                continue;
            }

            cell = ngx_http_dynroute_cell_at(live, s.cell);

            if (cell == NULL || cell[ngx_http_dynroute_cell_configured]
                || kept.count(s.cell))
            {
                continue;
            }

            r = static_cast<ngx_http_dynroute_retired_t *>(
                    ngx_slab_alloc_locked(live->shpool,
                        sizeof(ngx_http_dynroute_retired_t) + s.name.size()));
            if (r == NULL) {
                return false;
            }

            r->cell = cell;
            r->key = o.key();
            r->name_len = static_cast<uint32_t>(s.name.size());
            ngx_memcpy(r->name, s.name.data(), s.name.size());
            r->next = v->retiring;
            v->retiring = r;
        }
    }

    return true;
}


static bool
ngx_http_dynroute_cells_locked(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v, ngx_http_dynroute_version_t *old)
    noexcept
{
    bool  ok;

    v->fresh = NULL;
    v->retiring = NULL;

    try {
        ok = ngx_http_dynroute_cells_plan(live, v, old);

    } catch (const std::exception &) {
        ok = false;
    }

    if (!ok) {
        ngx_http_dynroute_cells_undo_locked(live, v);
    }

    return ok;
}


/* under the mutex: the retired cells that may go, freed */

static void
ngx_http_dynroute_cells_sweep_locked(ngx_http_dynroute_live_t *live,
    uint64_t now) noexcept
{
    uint64_t                      *c;
    ngx_http_dynroute_retired_t  **rp, *r;

    rp = &live->sh->retired;

    while (*rp) {
        r = *rp;
        c = r->cell;

        if (!mx::cell_may_free(ngx_http_dynroute_counted(&c[mx::s_picked]),
                               ngx_http_dynroute_counted(&c[mx::s_released]),
                               ngx_http_dynroute_counted(&c[mx::s_retired_ms]),
                               now))
        {
            rp = &r->next;
            continue;
        }

        *rp = r->next;
        ngx_slab_free_locked(live->shpool, c);
        ngx_slab_free_locked(live->shpool, r);
    }
}


/* under the mutex: v is published; the cells it dropped are retired */

static void
ngx_http_dynroute_cells_retire_locked(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v) noexcept
{
    uint64_t                      now;
    ngx_http_dynroute_retired_t  *r;

    now = ngx_http_dynroute_now_ms();

    ngx_http_dynroute_cells_sweep_locked(live, now);

    while (v->retiring) {
        r = v->retiring;
        v->retiring = r->next;

        __atomic_store_n(&r->cell[mx::s_retired_ms], now, __ATOMIC_RELAXED);
        r->next = live->sh->retired;
        live->sh->retired = r;
    }

    v->fresh = NULL;
}


/* writing, under the zone's mutex */


/*
 * The name of an id of the published snapshot: the zone's names, or a
 * service (a runtime host or a flip naming it) by the key of its group
 * block.  Under the mutex: "" when there is none.
 */

static std::string_view
ngx_http_dynroute_name_of(ngx_http_dynroute_live_t *live,
    const dynroute::NamesView &names, dynroute::NameId id) noexcept
{
    ngx_http_dynroute_version_t  *ver = live->sh->version;

    if (!(id & dynroute::service_key_bit)) {
        return names[id];
    }

    for (ngx_uint_t i = 0; ver && i < ver->ngroups; i++) {
        dynroute::GroupView g = ngx_http_dynroute_view_group(live, ver, i);

        if (g.valid() && g.key() == id) {
            return g.name();
        }
    }

    return {};
}


/* a service's group block into st; its id is the key's, and the next
 * service's id comes after every id in use */

static void
ngx_http_dynroute_decode_service(dynroute::State &st,
    const dynroute::GroupView &g, const std::string &name,
    dynroute::ServerGroup &group)
{
    dynroute::Service  &s = st.services[name];

    s.id = g.key() & ~dynroute::service_key_bit;
    s.balance = g.method();
    s.group = std::move(group);

    if (s.id >= st.next_service_id) {
        st.next_service_id = s.id + 1;
    }
}


/*
 * The published state as a State, by this configuration's names (what it
 * does not have is dropped, with a line each in notices); throws.
 */

static void
ngx_http_dynroute_decode(ngx_http_dynroute_live_t *live, dynroute::State &st,
    std::vector<std::string> &notices)
{
    dynroute::NamesView names = ngx_http_dynroute_names(live);

    st = dynroute::State();

    if (live->sh->version == NULL) {
        return;
    }

    dynroute::SnapshotView v = ngx_http_dynroute_view_published(live);

    if (!dynroute::decode_snapshot(v,
            [&](dynroute::NameId id) {
                return ngx_http_dynroute_name_of(live, names, id);
            }, st))
    {
        throw std::runtime_error("the zone's snapshot does not decode");
    }

    /* the runtime lists, with their servers' ids and counters */

    ngx_http_dynroute_version_t *ver = live->sh->version;

    for (ngx_uint_t i = 0; i < ver->ngroups; i++) {
        dynroute::GroupView g = ngx_http_dynroute_view_group(live, ver, i);
        std::string name;
        dynroute::ServerGroup group;

        if (!g.valid() || !dynroute::decode_group(g, name, group)) {
            throw std::runtime_error("a group block of the zone does not "
                                     "decode");
        }

        if (!(g.key() & dynroute::service_key_bit)) {
            st.servers[name] = std::move(group);

        } else {
            ngx_http_dynroute_decode_service(st, g, name, group);
        }
    }

    dynroute::prune(st, live->schema, notices);
}


/*
 * Only the current configuration's workers publish, and what they publish
 * is their configuration's: decoding it drops nothing for them.  An older
 * configuration's worker (shutting down after a reload) may drop from its
 * own copy what it does not know; it never publishes.
 */

static void
ngx_http_dynroute_cache(ngx_http_dynroute_live_t *live)
{
    std::vector<std::string> ignored;

    if (live->cached_generation == live->sh->generation) {
        return;
    }

    ngx_http_dynroute_decode(live, live->cached, ignored);
    live->cached_generation = live->sh->generation;
}


/* a snapshot's blocks, built outside the mutex */

typedef struct {
    std::string                    head;
    std::string                    hosts;     /* new ones, or empty */
    bool                           new_hosts;

    /* a group per runtime list: a new block, or (empty) the current
     * version's block of that key */
    std::vector<std::pair<uint32_t, std::string>>  groups;
} ngx_http_dynroute_blocks_t;


/* a group block per service, keyed by service_key_bit | its id */

static void
ngx_http_dynroute_build_services(const dynroute::State &st,
    const dynroute::State *prev, ngx_http_dynroute_blocks_t &b)
{
    for (const auto &[name, service] : st.services) {
        uint32_t key = dynroute::service_key_bit | service.id;

        if (prev) {
            auto it = prev->services.find(name);

            if (it != prev->services.end() && it->second == service) {
                b.groups.emplace_back(key, std::string());
                continue;
            }
        }

        b.groups.emplace_back(key, dynroute::encode_snapshot_group(key,
                                  st.generation, service.balance, name,
                                  service.group));
    }
}


/*
 * How the runtime list of upstream name balances: hash for a group with
 * hash=KEY, whose block then carries the list's ring (built with the
 * block, outside the mutex but for the last try of a write); a ring that
 * cannot fit in the zone is refused before it is built (507).  Throws.
 */

static dynroute::Balance
ngx_http_dynroute_group_method(ngx_http_dynroute_live_t *live,
    const std::string &name, const dynroute::ServerGroup &group)
{
    const dynroute::ServersInfo *info = live->schema.servers_of(name);

    if (info == NULL || !info->hash) {
        return dynroute::Balance::round_robin;
    }

    uint64_t bytes = dynroute::group_ring_points(group)
                     * sizeof(dynroute::ChashPoint);
    uint64_t zone = live->shpool->end
                    - reinterpret_cast<u_char *>(live->shpool);

    if (bytes > zone) {
        throw dynroute::ApiError(NGX_HTTP_INSUFFICIENT_STORAGE,
            "the consistent hash ring of upstream \"" + name + "\" takes "
            + std::to_string(bytes) + " bytes (160 points of 8 bytes a unit "
            "of weight), more than dynroute_zone \""
            + std::string(ngx_http_dynroute_view(live->zone_name))
            + "\" holds, nothing changed: lower the weights or make the "
            "zone larger");
    }

    return dynroute::Balance::hash;
}


/*
 * The blocks of st; prev: the published state it changes, whose group
 * blocks it shares where its list is the same (NULL: every block new).
 */

static void
ngx_http_dynroute_build(ngx_http_dynroute_live_t *live,
    const dynroute::State &st, const dynroute::State *prev,
    bool hosts_changed, ngx_http_dynroute_blocks_t &b)
{
    auto id = [&](std::string_view n) {
        auto it = live->ids.find(std::string(n));
        return it == live->ids.end() ? dynroute::no_name : it->second;
    };

    /* a target: a service's key, or an upstream's or rollout's id */

    auto target = [&](std::string_view n) {
        auto it = st.services.find(n);
        return it == st.services.end()
               ? id(n) : dynroute::service_key_bit | it->second.id;
    };

    b.head = dynroute::encode_snapshot(st, live->config, id, target);
    b.new_hosts = hosts_changed;

    if (hosts_changed) {
        b.hosts = dynroute::encode_snapshot_hosts(st.hosts, id, target);
    }

    for (const auto &[name, group] : st.servers) {
        dynroute::NameId key = id(name);

        if (key == dynroute::no_name) {
            continue;       /* checked against this configuration: none */
        }

        if (prev) {
            auto it = prev->servers.find(name);

            if (it != prev->servers.end() && it->second == group) {
                b.groups.emplace_back(key, std::string());
                continue;
            }
        }

        b.groups.emplace_back(key, dynroute::encode_snapshot_group(key,
                                  st.generation,
                                  ngx_http_dynroute_group_method(live, name,
                                                                 group),
                                  name, group));
    }

    ngx_http_dynroute_build_services(st, prev, b);
}


/* under the mutex: the block of key in version v, or NULL */

static u_char *
ngx_http_dynroute_group_of(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v, uint32_t key) noexcept
{
    if (v == NULL) {
        return NULL;
    }

    for (ngx_uint_t i = 0; i < v->ngroups; i++) {
        dynroute::GroupView g = ngx_http_dynroute_view_group(live, v, i);

        if (g.valid() && g.key() == key) {
            return v->groups[i];
        }
    }

    return NULL;
}


/* under the mutex: whether version v holds block p */

static bool
ngx_http_dynroute_holds(ngx_http_dynroute_version_t *v, u_char *p) noexcept
{
    if (v == NULL) {
        return false;
    }

    for (ngx_uint_t i = 0; i < v->ngroups; i++) {
        if (v->groups[i] == p) {
            return true;
        }
    }

    return false;
}


/* under the mutex: frees v's group blocks that keep does not hold */

static void
ngx_http_dynroute_free_groups(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v, ngx_http_dynroute_version_t *keep)
    noexcept
{
    for (ngx_uint_t i = 0; i < v->ngroups; i++) {
        if (v->groups[i] && !ngx_http_dynroute_holds(keep, v->groups[i])) {
            ngx_slab_free_locked(live->shpool, v->groups[i]);
        }
    }

    if (v->groups) {
        ngx_slab_free_locked(live->shpool, v->groups);
    }
}


/*
 * Under the mutex: a new version in the zone for the blocks (the current
 * hosts block when they have none), not published yet; NULL when the zone
 * is full.
 */

static ngx_http_dynroute_version_t *
ngx_http_dynroute_alloc_locked(ngx_http_dynroute_live_t *live,
    const ngx_http_dynroute_blocks_t &b) noexcept
{
    bool                          new_hosts;
    ngx_slab_pool_t              *shpool = live->shpool;
    ngx_http_dynroute_version_t  *old = live->sh->version, *v;

    new_hosts = b.new_hosts || old == NULL;

    v = static_cast<ngx_http_dynroute_version_t *>(
            ngx_slab_alloc_locked(shpool, sizeof(*v)));
    if (v == NULL) {
        return NULL;
    }

    v->head = static_cast<u_char *>(ngx_slab_alloc_locked(shpool,
                                                          b.head.size()));
    v->hosts = new_hosts
               ? static_cast<u_char *>(ngx_slab_alloc_locked(shpool,
                                                             b.hosts.size()))
               : old->hosts;

    v->groups = NULL;
    v->ngroups = 0;

    if (v->head == NULL || v->hosts == NULL) {
        goto failed;
    }

    if (!b.groups.empty()) {
        v->groups = static_cast<u_char **>(
                        ngx_slab_calloc_locked(shpool,
                            b.groups.size() * sizeof(u_char *)));
        if (v->groups == NULL) {
            goto failed;
        }

        for (const auto &[key, block] : b.groups) {
            u_char *p;

            if (block.empty()) {
                p = ngx_http_dynroute_group_of(live, old, key);

                if (p == NULL) {
                    goto failed;    /* built on this version: not reached */
                }

            } else {
                p = static_cast<u_char *>(ngx_slab_alloc_locked(shpool,
                                                                block.size()));
                if (p == NULL) {
                    goto failed;
                }

                ngx_memcpy(p, block.data(), block.size());
            }

            v->groups[v->ngroups++] = p;
        }
    }

    ngx_memcpy(v->head, b.head.data(), b.head.size());

    if (new_hosts) {
        ngx_memcpy(v->hosts, b.hosts.data(), b.hosts.size());
    }

    if (!ngx_http_dynroute_cells_locked(live, v, old)) {
        goto failed;
    }

    return v;

failed:

    if (v->head) {
        ngx_slab_free_locked(shpool, v->head);
    }
    if (v->hosts && new_hosts) {
        ngx_slab_free_locked(shpool, v->hosts);
    }
    ngx_http_dynroute_free_groups(live, v, old);
    ngx_slab_free_locked(shpool, v);
    return NULL;
}


static void
ngx_http_dynroute_unalloc_locked(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v) noexcept
{
    ngx_http_dynroute_cells_undo_locked(live, v);
    ngx_slab_free_locked(live->shpool, v->head);

    if (live->sh->version == NULL || v->hosts != live->sh->version->hosts) {
        ngx_slab_free_locked(live->shpool, v->hosts);
    }

    ngx_http_dynroute_free_groups(live, v, live->sh->version);
    ngx_slab_free_locked(live->shpool, v);
}


/* under the mutex: v, of the state st, is published; the old one freed */

static void
ngx_http_dynroute_swap_locked(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v, const dynroute::State &st) noexcept
{
    ngx_http_dynroute_shm_t      *sh = live->sh;
    ngx_http_dynroute_version_t  *old = sh->version;

    /* the snapshot first, then the generation that readers check */

    ngx_http_dynroute_publish_value(&sh->version, v);
    ngx_http_dynroute_publish_value(&sh->generation, st.generation);
    ngx_http_dynroute_publish_value(&sh->draining,
                                    static_cast<uint64_t>(st.draining));

    ngx_http_dynroute_cells_retire_locked(live, v);

    if (old) {
        ngx_slab_free_locked(live->shpool, old->head);
        if (old->hosts != v->hosts) {
            ngx_slab_free_locked(live->shpool, old->hosts);
        }
        ngx_http_dynroute_free_groups(live, old, v);
        ngx_slab_free_locked(live->shpool, old);
    }
}


/*
 * Under the mutex, all at once (the start, the adoption of a reload):
 * publishes st.  Returns false when the zone is full, having changed
 * nothing.
 */

static bool
ngx_http_dynroute_publish(ngx_http_dynroute_live_t *live,
    const dynroute::State &st, bool hosts_changed)
{
    ngx_http_dynroute_blocks_t    b;
    ngx_http_dynroute_version_t  *v;

    ngx_http_dynroute_build(live, st, NULL, hosts_changed, b);

    v = ngx_http_dynroute_alloc_locked(live, b);
    if (v == NULL) {
        return false;
    }

    ngx_http_dynroute_swap_locked(live, v, st);

    return true;
}


/*
 * Runs f (which returns the answer's body, or throws dynroute::ApiError
 * with the status and reason) under the zone's mutex, with live->cached
 * current.  Returns the status; body is f's, or {"error": ...}.  log: where
 * an unexpected exception is logged, or NULL.
 */

template <typename F>
static ngx_int_t
ngx_http_dynroute_locked(ngx_http_dynroute_live_t *live, ngx_log_t *log,
    std::string &body, F f) noexcept
{
    ngx_int_t  status;

    ngx_shmtx_lock(&live->shpool->mutex);

    try {
        ngx_http_dynroute_cache(live);
        body = f();
        status = NGX_HTTP_OK;

    } catch (const dynroute::ApiError &e) {
        status = e.status;
        body = dynroute::render_error(e.what());

    } catch (const std::exception &e) {
        if (log) {
            ngx_log_error(NGX_LOG_ERR, log, 0, "dynroute: change refused: %s",
                          e.what());
        }

        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        body = "{\"error\":\"internal error\"}";
    }

    ngx_shmtx_unlock(&live->shpool->mutex);

    return status;
}


/* the state, rendered outside the mutex: the cache is this worker's */

ngx_int_t
ngx_http_dynroute_live_read(ngx_http_dynroute_live_t *live,
    const ngx_http_dynroute_render_t &render, std::string &body) noexcept
{
    ngx_int_t  status;

    status = ngx_http_dynroute_locked(live, NULL, body, [] {
        return std::string();
    });

    if (status != NGX_HTTP_OK) {
        return status;
    }

    try {
        body = render(live->cached);

    } catch (const dynroute::ApiError &e) {
        body = dynroute::render_error(e.what());
        return e.status;

    } catch (const std::exception &) {
        body = "{\"error\":\"internal error\"}";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_HTTP_OK;
}


/*
 * Under the mutex: whether a published group block balances otherwise
 * than this configuration says (hash= added to or dropped from an
 * upstream whose runtime list an older configuration wrote): its list is
 * published again, with the ring it needs or without one.
 */

static bool
ngx_http_dynroute_methods_changed(ngx_http_dynroute_live_t *live) noexcept
{
    ngx_http_dynroute_version_t  *ver = live->sh->version;

    for (ngx_uint_t i = 0; i < ver->ngroups; i++) {
        dynroute::GroupView g = ngx_http_dynroute_view_group(live, ver, i);

        if (!g.valid() || (g.key() & dynroute::service_key_bit)) {
            continue;
        }

        const dynroute::ServersInfo *info =
            live->schema.servers_of(g.name());

        if (info
            && info->hash != (g.method() == dynroute::Balance::hash))
        {
            return true;
        }
    }

    return false;
}


/*
 * A worker of the current configuration adopts the published state: what
 * an older configuration's workers published may name what this one no
 * longer has, which is dropped here, with a notice each, and published
 * again; and the state file is written if the master could not (it loaded
 * a file that had to be pruned).  Under the zone's mutex.
 */

static void
ngx_http_dynroute_adopt_locked(ngx_http_dynroute_live_t *live,
    ngx_log_t *log)
{
    std::string                   error;
    dynroute::State               st;
    ngx_http_dynroute_shm_t      *sh = live->sh;
    std::vector<std::string>      notices;

    sh->current = live->config;

    if (sh->version == NULL) {
        return;
    }

    ngx_http_dynroute_decode(live, st, notices);

    for (const auto &n : notices) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0, "dynroute: %s", n.c_str());
    }

    if (!notices.empty() || ngx_http_dynroute_methods_changed(live)) {
        if (st.generation == dynroute::max_generation) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "dynroute: the generation of zone \"%V\" is at "
                          "its limit: cannot publish the pruned state",
                          &live->zone_name);
            return;
        }

        st.generation++;

        if (!ngx_http_dynroute_publish(live, st, true)) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "dynroute: dynroute_zone \"%V\" is full: cannot "
                          "publish the pruned state", &live->zone_name);
            return;
        }

        sh->unsaved = 1;
    }

    live->cached = st;
    live->cached_generation = st.generation;

    if (sh->unsaved && live->dmcf->state.len) {
        if (!ngx_http_dynroute_state_write(live->dmcf->state,
                                           dynroute::dump_state(st, true),
                                           error))
        {
            ngx_log_error(NGX_LOG_ERR, log, 0, "dynroute: %s", error.c_str());
            return;
        }
    }

    sh->unsaved = 0;
}


void
ngx_http_dynroute_live_adopt(ngx_http_dynroute_live_t *live, ngx_log_t *log)
    noexcept
{
    if (live == NULL || live->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&live->shpool->mutex);

    try {
        if (live->config > live->sh->current) {
            ngx_http_dynroute_adopt_locked(live, log);
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "dynroute: cannot adopt the runtime state of zone "
                      "\"%V\": %s", &live->zone_name, e.what());
    }

    ngx_shmtx_unlock(&live->shpool->mutex);
}


/*
 * Under the mutex: live->cached current, and whether this worker may
 * publish at all.  Throws dynroute::ApiError.
 */

static void
ngx_http_dynroute_may_write_locked(ngx_http_dynroute_live_t *live,
    ngx_log_t *log)
{
    /*
     * A worker of a configuration older than the current one (a reload
     * happened while this request was read) would check the change against
     * what that configuration had and publish over what the newer one's
     * workers published: it refuses, and the client sends the request
     * again, to a worker of the new configuration.
     */

    if (live->config > live->sh->current) {
        ngx_http_dynroute_adopt_locked(live, log);
        ngx_http_dynroute_cache(live);
    }

    if (live->config < live->sh->current || ngx_exiting || ngx_quit) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "dynroute: change refused: this worker runs the "
                      "configuration from before the last reload");
        throw dynroute::ApiError(NGX_HTTP_SERVICE_UNAVAILABLE,
            "this request reached a worker of the configuration from before "
            "nginx's last reload: nothing changed, send it again");
    }
}


/* the zone's mutex, held by a scope: released whatever leaves it */

class ngx_http_dynroute_lock_t {
public:
    explicit ngx_http_dynroute_lock_t(ngx_http_dynroute_live_t *live) noexcept
        : mutex_(&live->shpool->mutex)
    {
    }

    ~ngx_http_dynroute_lock_t() { unlock(); }

    void lock() noexcept
    {
        if (!held_) {
            ngx_shmtx_lock(mutex_);
            held_ = true;
        }
    }

    void unlock() noexcept
    {
        if (held_) {
            ngx_shmtx_unlock(mutex_);
            held_ = false;
        }
    }

private:
    ngx_shmtx_t  *mutex_;
    bool          held_ = false;
};


/*
 * A change that other workers' changes kept from publishing is built again
 * on theirs; the last try holds the mutex throughout, so that every change
 * is made in the end.
 */
#define NGX_HTTP_DYNROUTE_WRITE_TRIES  4


/* a change refused because the state file could not be written */

[[noreturn]] static void
ngx_http_dynroute_file_refused(ngx_log_t *log, const std::string &error)
{
    ngx_log_error(NGX_LOG_ERR, log, 0, "dynroute: change refused: %s",
                  error.c_str());
    throw dynroute::ApiError(NGX_HTTP_INTERNAL_SERVER_ERROR,
                             "the state file could not be written, nothing "
                             "changed: " + error);
}


/* the state a change makes of the current one, if If-Match allows it */

static dynroute::State
ngx_http_dynroute_next(const dynroute::State &cur, int64_t if_match,
    const std::function<void(dynroute::State &)> &change)
{
    if (if_match >= 0 && static_cast<uint64_t>(if_match) != cur.generation) {
        throw dynroute::ApiError(NGX_HTTP_CONFLICT,
            "the state is at generation " + std::to_string(cur.generation)
            + ", not " + std::to_string(if_match)
            + " (If-Match): read it again");
    }

    if (cur.generation >= dynroute::max_generation) {
        throw dynroute::ApiError(NGX_HTTP_CONFLICT,
            "the state is at generation " + std::to_string(cur.generation)
            + ", the largest there is: nothing changed");
    }

    dynroute::State next = cur;
    change(next);
    next.generation = cur.generation + 1;

    return next;
}


/*
 * A change: checked and built outside the zone's mutex (the next state,
 * its snapshot's blocks, the state file's temporary file), then published
 * under it if the zone is still at the generation it was built on (else
 * built again on the newer one): the mutex is held to look and to publish,
 * not to encode, write or fsync.
 */

ngx_int_t
ngx_http_dynroute_live_write(ngx_http_dynroute_live_t *live, ngx_log_t *log,
    int64_t if_match, const std::function<void(dynroute::State &)> &change,
    const ngx_http_dynroute_render_t &render, std::string &body) noexcept
{
    bool                          hold;
    ngx_uint_t                    tries;
    ngx_http_dynroute_version_t  *v;
    ngx_http_dynroute_lock_t      mutex(live);

    const ngx_str_t &path = live->dmcf->state;
    std::string tmp;

    try {
        for (tries = 0; /* void */; tries++) {
            hold = (tries + 1 == NGX_HTTP_DYNROUTE_WRITE_TRIES);

            mutex.lock();
            ngx_http_dynroute_cache(live);
            ngx_http_dynroute_may_write_locked(live, log);

            if (!hold) {
                mutex.unlock();
            }

            const dynroute::State &cur = live->cached;
            dynroute::State next = ngx_http_dynroute_next(cur, if_match,
                                                          change);

            ngx_http_dynroute_blocks_t b;
            ngx_http_dynroute_build(live, next, &cur, next.hosts != cur.hosts,
                                    b);

            std::string error;

            if (path.len
                && !ngx_http_dynroute_state_prepare(path,
                        dynroute::dump_state(next, true), tmp, error))
            {
                ngx_http_dynroute_file_refused(log, error);
            }

            /* publish, if nothing else was published meanwhile */

            mutex.lock();

            if (live->sh->generation != cur.generation
                || live->config < live->sh->current)
            {
                mutex.unlock();
                ngx_http_dynroute_state_discard(tmp);
                continue;
            }

            v = ngx_http_dynroute_alloc_locked(live, b);

            if (v == NULL) {
                mutex.unlock();
                ngx_log_error(NGX_LOG_ERR, log, 0,
                              "dynroute: change refused: dynroute_zone "
                              "\"%V\" is full", &live->zone_name);
                throw dynroute::ApiError(NGX_HTTP_INSUFFICIENT_STORAGE,
                    "dynroute_zone \""
                    + std::string(ngx_http_dynroute_view(live->zone_name))
                    + "\" is full, nothing changed: make it larger");
            }

            if (path.len && !ngx_http_dynroute_state_commit(path, tmp, error))
            {
                ngx_http_dynroute_unalloc_locked(live, v);
                mutex.unlock();
                ngx_http_dynroute_file_refused(log, error);
            }

            ngx_http_dynroute_swap_locked(live, v, next);
            live->sh->unsaved = 0;
            live->cached_generation = next.generation;

            mutex.unlock();

            live->cached = std::move(next);

            if (path.len) {
                ngx_http_dynroute_state_sync(path);
            }

            body = render(live->cached);
            return NGX_HTTP_OK;
        }

    } catch (const dynroute::ApiError &e) {
        mutex.unlock();
        ngx_http_dynroute_state_discard(tmp);
        body = dynroute::render_error(e.what());
        return e.status;

    } catch (const std::exception &e) {
        mutex.unlock();
        ngx_http_dynroute_state_discard(tmp);
        ngx_log_error(NGX_LOG_ERR, log, 0, "dynroute: change refused: %s",
                      e.what());
        body = "{\"error\":\"internal error\"}";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * The state a new zone starts from: the state file's, pruned to what this
 * configuration has (the notices say what went), or the configuration's.
 * Called with the zone's mutex held.  Throws.
 */

static ngx_int_t
ngx_http_dynroute_first_state(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_log_t *log)
{
    ngx_http_dynroute_live_t  *live = dmcf->live;

    dynroute::State st;
    std::vector<std::string> notices;
    std::string text;

    if (dmcf->state.len && ngx_http_dynroute_state_read(dmcf, text, log)) {
        try {
            st = dynroute::load_state(text, live->schema, notices);

        } catch (const dynroute::ConfigError &e) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "dynroute: ignoring the state file \"%V\", "
                          "starting from the configuration: %s",
                          &dmcf->state, e.what());
            st = dynroute::State();
            notices.clear();
        }
    }

    for (const auto &n : notices) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0, "dynroute: %s", n.c_str());
    }

    if (!notices.empty()) {
        st.generation++;
    }

    if (!ngx_http_dynroute_publish(live, st, true)) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "dynroute_zone \"%V\" in %s:%ui is too small for its "
                      "state", &live->zone_name, dmcf->zone_file,
                      dmcf->zone_line);
        return NGX_ERROR;
    }

    live->sh->unsaved = !notices.empty();

    return NGX_OK;
}


/* the zone: at start, and on each reload */


static ngx_int_t
ngx_http_dynroute_init_zone(ngx_shm_zone_t *shm_zone, void *data) noexcept
{
    ngx_http_dynroute_main_conf_t *dmcf =
        static_cast<ngx_http_dynroute_main_conf_t *>(shm_zone->data);

    bool                       reused;
    ngx_log_t                 *log;
    ngx_slab_pool_t           *shpool;
    ngx_http_dynroute_live_t  *live;
    ngx_http_dynroute_shm_t   *sh;

    live = dmcf->live;
    log = shm_zone->shm.log;
    shpool = reinterpret_cast<ngx_slab_pool_t *>(shm_zone->shm.addr);

    if (dmcf->state.len
        && ngx_http_dynroute_state_check_path(dmcf, log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    reused = (data != NULL);

    if (reused) {
        sh = static_cast<ngx_http_dynroute_shm_t *>(shpool->data);

    } else {
        sh = static_cast<ngx_http_dynroute_shm_t *>(
                 ngx_slab_calloc(shpool, sizeof(ngx_http_dynroute_shm_t)));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        ngx_rbtree_init(&sh->series, &sh->sentinel,
                        ngx_str_rbtree_insert_value);

        shpool->data = sh;
        shpool->log_nomem = 0;  /* a full zone is the API's 507 */
    }

    live->shpool = shpool;
    live->sh = sh;

    ngx_shmtx_lock(&shpool->mutex);

    ngx_int_t rc = NGX_OK;

    live->config = ++sh->configs;

    /*
     * A reload finds the latest state in the zone and leaves it there: the
     * first worker of this configuration prunes it to what it has, if the
     * reload succeeds (ngx_http_dynroute_live_adopt).  A start (or nginx
     * -t) reads the state file and publishes it pruned, but does not write
     * the file: a master that runs as root writes nothing where the
     * workers' user may plant a link; the first worker does.
     */

    try {
        /* stream{}'s names, checked by the runtime state as http{}'s
         * (once: a zone is initialised once per cycle) */

        if (ngx_stream_dynroute_runtime_schema != NULL
            && !live->stream_schema)
        {
            ngx_stream_dynroute_runtime_schema(dmcf->cycle, live->schema);
            live->stream_schema = true;
        }

        if (!ngx_http_dynroute_intern(live, log)
            || !ngx_http_dynroute_cells_configured(live, log))
        {
            rc = NGX_ERROR;

        } else if (sh->version == NULL
                   && ngx_http_dynroute_first_state(dmcf, log) != NGX_OK)
        {
            rc = NGX_ERROR;
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "dynroute_zone \"%V\": %s",
                      &shm_zone->shm.name, e.what());
        rc = NGX_ERROR;
    }

    if (rc == NGX_OK) {
        rc = ngx_http_dynroute_metrics_init(dmcf, shpool, &sh->series, log);
    }

    /* stream{}'s tables count here too, when the stream part is built */

    if (rc == NGX_OK && ngx_stream_dynroute_metrics_init != NULL) {
        rc = ngx_stream_dynroute_metrics_init(dmcf->cycle, dmcf, shpool,
                                              &sh->series, log);
    }

    if (rc == NGX_OK && reused) {
        ngx_http_dynroute_cells_sweep_locked(live, ngx_http_dynroute_now_ms());
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_dynroute_view_reset(live);

    return rc;
}


/* the metrics of the groups */


static void
ngx_http_dynroute_groups_locked(ngx_http_dynroute_live_t *live,
    std::vector<mx::GroupStats> &out)
{
    u_char                       *p;
    uint64_t                     *cell;
    ngx_uint_t                    i, j;
    ngx_http_dynroute_version_t  *v;
    ngx_http_dynroute_retired_t  *r;
    dynroute::GroupView::Server   s;

    uint64_t now = static_cast<uint64_t>(ngx_time());

    auto fill = [&](mx::ServerStats &st, uint64_t *c) {
        for (size_t k = 0; c && k < mx::server_width; k++) {
            st.values[k] = ngx_http_dynroute_counted(&c[k]);
        }
    };

    /* a group's list, then its retired cells */

    auto group = [&](mx::GroupStats &gs, const dynroute::GroupView &g) {
        for (j = 0; j < g.servers(); j++) {
            if (!g.server(j, s)) {
                continue;
            }

            mx::ServerStats &st = gs.servers.emplace_back();

            cell = ngx_http_dynroute_cell_at(live, s.cell);
            fill(st, cell);
            st.name = std::string(s.name);
            st.weight = s.weight;
            st.backup = s.backup;
            st.state = mx::server_state(false, s.down, s.drain,
                                        st.values[mx::s_disabled_until], now,
                                        st.values[mx::s_health]);
        }

        for (r = live->sh->retired; r; r = r->next) {
            if (r->key != g.key()) {
                continue;
            }

            mx::ServerStats &st = gs.servers.emplace_back();

            fill(st, r->cell);
            st.name.assign(reinterpret_cast<char *>(r->name), r->name_len);
            st.state = mx::ServerState::removed;
        }
    };

    v = live->sh->version;

    for (ngx_http_dynroute_members_t *m : live->groups) {
        mx::GroupStats &gs = out.emplace_back();

        gs.name = std::string(ngx_http_dynroute_view(*m->name));
        gs.kind = mx::GroupKind::upstream;
        gs.checked = m->health != NULL;

        p = ngx_http_dynroute_group_of(live, v, m->key);

        if (p) {
            group(gs, ngx_http_dynroute_cells_block(p));

        } else {
            dynroute::GroupView c(m->configured, m->configured_len);
            group(gs, c);
        }
    }

    for (i = 0; v && i < v->ngroups; i++) {
        dynroute::GroupView g = ngx_http_dynroute_view_group(live, v, i);

        if (g.valid() && (g.key() & dynroute::service_key_bit)) {
            mx::GroupStats &gs = out.emplace_back();

            gs.name = std::string(g.name());
            gs.kind = mx::GroupKind::service;
            group(gs, g);
        }
    }
}


void
ngx_http_dynroute_live_groups(ngx_http_dynroute_live_t *live,
    std::vector<dynroute::metrics::GroupStats> &out)
{
    if (live == NULL || live->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&live->shpool->mutex);

    try {
        ngx_http_dynroute_groups_locked(live, out);

    } catch (...) {
        ngx_shmtx_unlock(&live->shpool->mutex);
        throw;
    }

    ngx_shmtx_unlock(&live->shpool->mutex);
}
