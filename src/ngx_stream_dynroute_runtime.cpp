/*
 * stream{}'s runtime state: runtime SNI hosts of the stream tables and the
 * live weights and primary of the stream rollouts, changed through the
 * API's {prefix}stream/... resources, kept in the http dynroute_zone's
 * state (and its state file) under the prefix dynroute::stream_ns.
 *
 * The stream module has no zone of its own.  When the http zone is
 * initialised for a cycle, it asks this file for the stream names to check
 * the state against (ngx_stream_dynroute_runtime_schema), then for their
 * ids (ngx_stream_dynroute_runtime_intern), and hands over the
 * configuration's side of the zone (live), which connections then read as
 * the http requests do: a runtime host by its ids in the published
 * snapshot's hosts block, a rollout's weights from its head, in place,
 * without a lock, checking the generation around the read.
 *
 * Per worker, the live splits of the stream rollouts are two sets sized
 * when the names are interned: a new generation is read into the set not
 * in use, which then takes over, as ngx_http_dynroute_view.cpp does.  A
 * stream rollout's upstreams are its configuration's: the state never
 * flips them (dynroute::patch_rollout refuses it).
 */

#include <algorithm>
#include <new>
#include <string>
#include <vector>

#include "ngx_stream_dynroute.hpp"
#include "ngx_stream_dynroute_runtime.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "ngx_http_dynroute_zone.hpp"
#include "state.hpp"


struct ngx_stream_dynroute_runtime_s {
    ngx_stream_dynroute_main_conf_t             *dmcf = nullptr;
    ngx_http_dynroute_live_t                    *live = nullptr;

    /* by the zone's NameId: a target's runtime rule, a rollout's index */
    std::vector<ngx_stream_dynroute_rule_t *>    rule_by_id;
    std::vector<ngx_int_t>                       rollout_by_id;
    std::vector<std::vector<dynroute::NameId>>   variant_ids;

    /* this worker's view: two sets of splits, the current one and the
     * one a refresh fills */
    std::vector<std::vector<uint32_t>>           weights[2];
    std::vector<size_t>                          primary[2];
    ngx_uint_t                                   current = 0;
    uint64_t                                     generation = ~0ULL;
};


ngx_int_t
ngx_stream_dynroute_runtime_init(ngx_conf_t *cf,
    ngx_stream_dynroute_main_conf_t *dmcf) noexcept
{
    dmcf->runtime = ngx_http_dynroute_conf_new<ngx_stream_dynroute_runtime_t>(
                        cf, "dynroute");

    if (dmcf->runtime == NULL) {
        return NGX_ERROR;
    }

    dmcf->runtime->dmcf = dmcf;

    return NGX_OK;
}


static std::string
ngx_stream_dynroute_runtime_name(const ngx_str_t &name)
{
    return std::string(dynroute::stream_ns)
           + std::string(ngx_http_dynroute_view(name));
}


/* the stream upstream{} blocks a runtime host may name: those with
 * servers, not a dynroute_balancer's */

static ngx_array_t *
ngx_stream_dynroute_runtime_upstreams(ngx_cycle_t *cycle) noexcept
{
    ngx_stream_conf_ctx_t            *ctx;
    ngx_stream_upstream_main_conf_t  *umcf;

    ctx = reinterpret_cast<ngx_stream_conf_ctx_t *>(
              cycle->conf_ctx[ngx_stream_module.index]);
    umcf = static_cast<ngx_stream_upstream_main_conf_t *>(
               ctx->main_conf[ngx_stream_upstream_module.ctx_index]);

    return umcf ? &umcf->upstreams : NULL;
}


static bool
ngx_stream_dynroute_runtime_target(ngx_stream_upstream_srv_conf_t *uscf)
    noexcept
{
    return uscf->srv_conf && uscf->servers
           && !ngx_stream_dynroute_is_balancer(uscf);
}


void
ngx_stream_dynroute_runtime_schema(ngx_cycle_t *cycle,
    dynroute::Schema &schema)
{
    ngx_uint_t                         i;
    ngx_array_t                       *ups;
    ngx_stream_dynroute_table_t      **tp;
    ngx_stream_dynroute_rollout_t    **rp;
    ngx_stream_upstream_srv_conf_t   **up;
    ngx_stream_dynroute_main_conf_t   *dmcf;

    dmcf = ngx_stream_dynroute_cycle_conf(cycle);

    if (dmcf == NULL) {
        return;
    }

    tp = static_cast<ngx_stream_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        schema.tables.push_back(ngx_stream_dynroute_runtime_name(tp[i]->name));
        schema.table_rules.push_back(tp[i]->rules.size());

        /* the tables before: their keys, "" for the Host */
        schema.table_keys.resize(schema.tables.size() - 1);
        schema.table_keys.push_back("$" + std::string(
                                        ngx_http_dynroute_view(tp[i]->key)));
    }

    ups = ngx_stream_dynroute_runtime_upstreams(cycle);
    up = ups ? static_cast<ngx_stream_upstream_srv_conf_t **>(ups->elts)
             : NULL;

    for (i = 0; ups && i < ups->nelts; i++) {
        if (ngx_stream_dynroute_runtime_target(up[i])) {
            schema.upstreams.insert(
                ngx_stream_dynroute_runtime_name(up[i]->host));
        }
    }

    rp = static_cast<ngx_stream_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        dynroute::RolloutInfo info;

        info.name = ngx_stream_dynroute_runtime_name(rp[i]->name);

        for (size_t v = 0; v < rp[i]->variants.size(); v++) {
            info.variants.emplace_back(
                ngx_http_dynroute_view(rp[i]->variants[v].name));
            info.weights.push_back(rp[i]->core->weight(v));
            info.upstreams.push_back(ngx_stream_dynroute_runtime_name(
                                         rp[i]->variants[v].upstream));
        }

        info.primary = rp[i]->core->primary();
        schema.rollouts.push_back(std::move(info));
    }
}


/* a target's rule for its runtime hosts: its name as the rule's text, as
 * in http; a rollout's with its copies per variant */

static ngx_stream_dynroute_rule_t *
ngx_stream_dynroute_runtime_rule(ngx_pool_t *pool, ngx_str_t *name,
    ngx_stream_upstream_srv_conf_t *uscf, ngx_stream_dynroute_rollout_t *ro)
    noexcept
{
    ngx_stream_dynroute_dest_t  *d;
    ngx_stream_dynroute_rule_t  *rule;

    rule = static_cast<ngx_stream_dynroute_rule_t *>(
               ngx_pcalloc(pool, sizeof(ngx_stream_dynroute_rule_t)));
    d = static_cast<ngx_stream_dynroute_dest_t *>(
            ngx_pcalloc(pool, sizeof(ngx_stream_dynroute_dest_t)));
    if (rule == NULL || d == NULL) {
        return NULL;
    }

    d->target = *name;
    d->uscf = uscf;
    d->rollout = ro;

    rule->text = *name;
    rule->dest = d;

    if (ro && ngx_stream_dynroute_rule_variants(pool, rule) != NGX_OK) {
        return NULL;
    }

    return rule;
}


void
ngx_stream_dynroute_runtime_intern(ngx_cycle_t *cycle,
    ngx_http_dynroute_live_t *live,
    const std::function<dynroute::NameId(std::string_view)> &id)
{
    size_t                             v;
    ngx_uint_t                         i, r;
    ngx_array_t                       *ups;
    dynroute::NameId                   nid;
    ngx_stream_dynroute_rule_t        *rule;
    ngx_stream_dynroute_table_t      **tp;
    ngx_stream_dynroute_runtime_t     *rt;
    ngx_stream_dynroute_rollout_t    **rp;
    ngx_stream_upstream_srv_conf_t   **up;
    ngx_stream_dynroute_main_conf_t   *dmcf;

    dmcf = ngx_stream_dynroute_cycle_conf(cycle);

    if (dmcf == NULL || dmcf->runtime == NULL) {
        return;
    }

    rt = dmcf->runtime;
    rt->live = live;

    auto at = [](auto &vec, dynroute::NameId n, auto fill) -> auto & {
        if (vec.size() <= n) {
            vec.resize(n + 1, fill);
        }
        return vec[n];
    };

    tp = static_cast<ngx_stream_dynroute_table_t **>(dmcf->tables.elts);

    for (i = 0; i < dmcf->tables.nelts; i++) {
        tp[i]->id = id(ngx_stream_dynroute_runtime_name(tp[i]->name));
    }

    ups = ngx_stream_dynroute_runtime_upstreams(cycle);
    up = ups ? static_cast<ngx_stream_upstream_srv_conf_t **>(ups->elts)
             : NULL;

    for (i = 0; ups && i < ups->nelts; i++) {
        if (!ngx_stream_dynroute_runtime_target(up[i])) {
            continue;
        }

        rule = ngx_stream_dynroute_runtime_rule(cycle->pool, &up[i]->host,
                                                up[i], NULL);
        if (rule == NULL) {
            throw std::bad_alloc();
        }

        nid = id(ngx_stream_dynroute_runtime_name(up[i]->host));
        at(rt->rule_by_id, nid, nullptr) = rule;
    }

    rp = static_cast<ngx_stream_dynroute_rollout_t **>(dmcf->rollouts.elts);

    rt->variant_ids.assign(dmcf->rollouts.nelts, {});

    for (r = 0; r < 2; r++) {
        rt->weights[r].assign(dmcf->rollouts.nelts, {});
        rt->primary[r].assign(dmcf->rollouts.nelts, 0);
    }

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        rule = ngx_stream_dynroute_runtime_rule(cycle->pool, &rp[i]->name,
                                                NULL, rp[i]);
        if (rule == NULL) {
            throw std::bad_alloc();
        }

        nid = id(ngx_stream_dynroute_runtime_name(rp[i]->name));
        at(rt->rule_by_id, nid, nullptr) = rule;
        at(rt->rollout_by_id, nid, -1) = static_cast<ngx_int_t>(i);

        for (v = 0; v < rp[i]->variants.size(); v++) {
            rt->variant_ids[i].push_back(
                id(ngx_http_dynroute_view(rp[i]->variants[v].name)));
        }

        for (r = 0; r < 2; r++) {
            rt->weights[r][i].assign(rp[i]->variants.size(), 0);

            for (v = 0; v < rp[i]->variants.size(); v++) {
                rt->weights[r][i][v] = rp[i]->core->weight(v);
            }

            rt->primary[r][i] = rp[i]->core->primary();
        }
    }

    rt->current = 0;
    rt->generation = ~0ULL;
}


/* connection time: nothing below allocates, locks or throws */


ngx_stream_dynroute_rule_t *
ngx_stream_dynroute_runtime_host(ngx_stream_dynroute_runtime_t *rt,
    ngx_stream_dynroute_table_t *table, ngx_str_t key) noexcept
{
    char                buf[dynroute::max_key];
    std::string_view    lower;
    dynroute::NameId    tid, gid;

    if (rt->live == NULL || rt->live->sh == NULL) {
        return NULL;
    }

    /* no runtime host at all (the count is the view's own): nothing to
     * fold or hash */

    ngx_http_dynroute_live_sync(rt->live);

    if (rt->live->snapshot.hosts() == 0) {
        return NULL;
    }

    lower = dynroute::fold_key(ngx_http_dynroute_view(key), buf);

    if (!ngx_http_dynroute_live_host_ids(rt->live, lower,
                                         dynroute::Table::hash_host(lower),
                                         &tid, &gid)
        || tid != table->id || gid >= rt->rule_by_id.size())
    {
        return NULL;
    }

    return rt->rule_by_id[gid];
}


static ngx_int_t
ngx_stream_dynroute_runtime_variant(ngx_stream_dynroute_runtime_t *rt,
    ngx_uint_t r, dynroute::NameId name) noexcept
{
    const auto  &ids = rt->variant_ids[r];

    for (size_t v = 0; v < ids.size(); v++) {
        if (ids[v] == name) {
            return static_cast<ngx_int_t>(v);
        }
    }

    return -1;
}


/* the published snapshot's stream rollouts into the set not in use */

static void
ngx_stream_dynroute_runtime_fill(ngx_stream_dynroute_runtime_t *rt,
    ngx_stream_dynroute_main_conf_t *dmcf,
    const dynroute::SnapshotView &snap, ngx_uint_t next) noexcept
{
    size_t                           i;
    ngx_uint_t                       r;
    ngx_stream_dynroute_rollout_t  **rp;

    rp = static_cast<ngx_stream_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (r = 0; r < dmcf->rollouts.nelts; r++) {
        auto  &w = rt->weights[next][r];

        for (i = 0; i < w.size(); i++) {
            w[i] = rp[r]->core->weight(i);
        }

        rt->primary[next][r] = rp[r]->core->primary();
    }

    (void) snap.each_rollout([&](const dynroute::SnapshotView::Rollout &ro) {
        ngx_int_t  v;
        size_t     n;

        if (ro.name >= rt->rollout_by_id.size()
            || rt->rollout_by_id[ro.name] < 0)
        {
            return;             /* not a stream rollout of this cycle */
        }

        r = static_cast<ngx_uint_t>(rt->rollout_by_id[ro.name]);
        auto &w = rt->weights[next][r];
        n = 0;

        if (ro.primary != dynroute::no_name) {
            v = ngx_stream_dynroute_runtime_variant(rt, r, ro.primary);
            if (v >= 0) {
                rt->primary[next][r] = static_cast<size_t>(v);
            }
        }

        for (i = 0; ro.weights && i < ro.variants; i++) {
            dynroute::SnapshotView::Variant var =
                dynroute::SnapshotView::variant(ro, i);

            v = ngx_stream_dynroute_runtime_variant(rt, r, var.name);
            if (v >= 0) {
                w[v] = var.weight;
                n++;
            }
        }

        /* weights that are not a whole split of this rollout: configured */

        if (ro.weights
            && (n != w.size() || !rp[r]->core->valid_weights(w.data(),
                                                             w.size())))
        {
            for (i = 0; i < w.size(); i++) {
                w[i] = rp[r]->core->weight(i);
            }
        }
    });
}


dynroute::Split
ngx_stream_dynroute_runtime_split(ngx_stream_dynroute_runtime_t *rt,
    const ngx_stream_dynroute_rollout_t *ro) noexcept
{
    uint64_t                   g;
    ngx_uint_t                 tries, next;
    ngx_http_dynroute_live_t  *live;

    if (rt == NULL || rt->live == NULL || rt->live->sh == NULL
        || ro->index >= rt->weights[0].size())
    {
        return ro->core->configured();
    }

    live = rt->live;

    for (tries = 0; tries < 4; tries++) {
        ngx_http_dynroute_live_sync(live);

        g = live->generation;

        if (g == rt->generation) {
            break;
        }

        next = rt->current ^ 1;

        ngx_stream_dynroute_runtime_fill(rt, rt->dmcf, live->snapshot, next);

        ngx_http_dynroute_read_fence();

        if (ngx_http_dynroute_published(&live->sh->generation) == g) {
            rt->current = next;
            rt->generation = g;
            break;
        }
    }

    return { rt->weights[rt->current][ro->index].data(),
             rt->primary[rt->current][ro->index] };
}
