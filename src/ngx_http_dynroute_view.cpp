/*
 * What each worker routes by: the zone's published snapshot, read in
 * place.  A request reads the zone's generation once (one atomic load);
 * when it changed, the worker reads the snapshot's rollouts into the set of
 * splits it is not using (sized when the configuration was read: nothing is
 * allocated, nothing parsed, nothing thrown), and the changed group blocks
 * into the lists their dynroute_servers members are not using, and
 * switches to them.  Runtime hosts are looked up in the snapshot itself, on
 * each request that needs one.  Both check the generation again after reading: a writer may free
 * what was read meanwhile, and then the worker reads the new snapshot.
 *
 * A request keeps the upstream{} it was given: a change never alters a
 * request already routed.
 */

#include "ngx_http_dynroute_zone.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "ngx_http_dynroute_services.hpp"


#define NGX_HTTP_DYNROUTE_VIEW_TRIES  4


/* the bytes [p, p + n) are inside the zone */

static bool
ngx_http_dynroute_in_zone(ngx_http_dynroute_live_t *live, const void *p,
    size_t n) noexcept
{
    const u_char *b = static_cast<const u_char *>(p);
    const u_char *start = reinterpret_cast<const u_char *>(live->shpool);
    const u_char *end = live->shpool->end;

    return b >= start && b <= end && n <= static_cast<size_t>(end - b);
}


/* a block of the zone, if it lies in the zone whole */

static bool
ngx_http_dynroute_block(ngx_http_dynroute_live_t *live, const u_char *p,
    size_t *size) noexcept
{
    if (p == NULL
        || !ngx_http_dynroute_in_zone(live, p, dynroute::block_prefix))
    {
        return false;
    }

    *size = dynroute::block_size(p);

    return *size && ngx_http_dynroute_in_zone(live, p, *size);
}


ngx_http_dynroute_version_t *
ngx_http_dynroute_view_version(ngx_http_dynroute_live_t *live) noexcept
{
    ngx_http_dynroute_version_t  *v;

    v = ngx_http_dynroute_published(&live->sh->version);

    if (v == NULL || !ngx_http_dynroute_in_zone(live, v, sizeof(*v))) {
        return NULL;
    }

    return v;
}


static dynroute::SnapshotView
ngx_http_dynroute_view_snapshot(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v) noexcept
{
    size_t         head_size, hosts_size;
    const u_char  *head, *hosts;

    if (v == NULL) {
        return dynroute::SnapshotView();
    }

    head = v->head;
    hosts = v->hosts;

    if (!ngx_http_dynroute_block(live, head, &head_size)
        || !ngx_http_dynroute_block(live, hosts, &hosts_size))
    {
        return dynroute::SnapshotView();
    }

    return dynroute::SnapshotView(head, head_size, hosts, hosts_size);
}


dynroute::SnapshotView
ngx_http_dynroute_view_published(ngx_http_dynroute_live_t *live) noexcept
{
    return ngx_http_dynroute_view_snapshot(live,
                                           ngx_http_dynroute_view_version(live));
}


dynroute::GroupView
ngx_http_dynroute_view_group(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v, ngx_uint_t i) noexcept
{
    size_t         size;
    ngx_uint_t     n;
    u_char       **groups;
    const u_char  *p;

    n = v->ngroups;
    groups = v->groups;

    if (i >= n || groups == NULL
        || n > static_cast<size_t>(live->shpool->end - live->shpool->start)
        || !ngx_http_dynroute_in_zone(live, groups, n * sizeof(u_char *)))
    {
        return dynroute::GroupView();
    }

    p = groups[i];

    if (!ngx_http_dynroute_block(live, p, &size)) {
        return dynroute::GroupView();
    }

    return dynroute::GroupView(p, size);
}


/*
 * Into the members of each dynroute_servers group whose block changed, the
 * list not in use (ngx_http_dynroute_members_fill): from its block, or, if
 * the version has none for it, from its "server" lines.
 */

static void
ngx_http_dynroute_view_groups(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_version_t *v) noexcept
{
    ngx_uint_t                    i, n;
    dynroute::GroupView           g;
    ngx_http_dynroute_members_t  *m;

    if (live->groups.empty()) {
        return;
    }

    /* a version that a writer freed meanwhile may hold anything here */

    n = v->ngroups;

    if (n > static_cast<size_t>(live->shpool->end - live->shpool->start)
            / sizeof(u_char *))
    {
        return;
    }

    for (ngx_http_dynroute_members_t *gm : live->groups) {
        gm->seen = 0;
        gm->pending = 0;
    }

    for (i = 0; i < n; i++) {
        g = ngx_http_dynroute_view_group(live, v, i);

        if (!g.valid() || g.key() >= live->group_by_id.size()) {
            continue;           /* a service, or another configuration's */
        }

        m = live->group_by_id[g.key()];

        if (m == NULL || m->seen) {
            continue;
        }

        m->seen = 1;

        if (g.written() != m->written) {
            ngx_http_dynroute_members_fill(m, g, g.written());
        }
    }

    for (ngx_http_dynroute_members_t *gm : live->groups) {
        if (!gm->seen && gm->written != 0) {
            ngx_http_dynroute_members_fill(gm,
                dynroute::GroupView(gm->configured, gm->configured_len), 0);
        }
    }
}


void
ngx_http_dynroute_view_reset(ngx_http_dynroute_live_t *live) noexcept
{
    live->generation = ~0ULL;
    live->snapshot = dynroute::SnapshotView();
}


/* the index of variant id in rollout r, or -1 */

static ngx_int_t
ngx_http_dynroute_variant_of(ngx_http_dynroute_live_t *live, ngx_uint_t r,
    dynroute::NameId id) noexcept
{
    const auto &ids = live->variant_ids[r];

    for (size_t v = 0; v < ids.size(); v++) {
        if (ids[v] == id) {
            return static_cast<ngx_int_t>(v);
        }
    }

    return -1;
}


/* into splits: the configured values with the snapshot's on top */

static void
ngx_http_dynroute_view_fill(ngx_http_dynroute_live_t *live,
    const dynroute::SnapshotView &snap,
    std::vector<ngx_http_dynroute_split_t> &splits) noexcept
{
    ngx_http_dynroute_rollout_t  **rp;

    rp = static_cast<ngx_http_dynroute_rollout_t **>(
             live->dmcf->rollouts.elts);

    for (size_t r = 0; r < splits.size(); r++) {
        const ngx_http_dynroute_split_t &c = live->configured[r];
        ngx_http_dynroute_split_t &s = splits[r];

        /* the sizes were set when the configuration was read */

        std::copy(c.weights.begin(), c.weights.end(), s.weights.begin());
        std::copy(c.upstreams.begin(), c.upstreams.end(),
                  s.upstreams.begin());
        std::copy(c.services.begin(), c.services.end(), s.services.begin());
        s.primary = c.primary;
    }

    (void) snap.each_rollout([&](const dynroute::SnapshotView::Rollout &ro) {
        if (ro.name >= live->rollout_by_id.size()
            || live->rollout_by_id[ro.name] < 0)
        {
            return;             /* not a rollout of this configuration */
        }

        ngx_uint_t r = static_cast<ngx_uint_t>(live->rollout_by_id[ro.name]);
        ngx_http_dynroute_split_t &s = splits[r];
        ngx_int_t v;
        size_t weights = 0;

        if (ro.primary != dynroute::no_name) {
            v = ngx_http_dynroute_variant_of(live, r, ro.primary);
            if (v >= 0) {
                s.primary = static_cast<size_t>(v);
            }
        }

        for (size_t i = 0; i < ro.variants; i++) {
            dynroute::SnapshotView::Variant var =
                dynroute::SnapshotView::variant(ro, i);

            v = ngx_http_dynroute_variant_of(live, r, var.name);
            if (v < 0) {
                continue;
            }

            if (ro.weights) {
                s.weights[v] = var.weight;
                weights++;
            }

            if (var.upstream < live->target_by_id.size()
                && live->target_by_id[var.upstream]
                && live->target_by_id[var.upstream]->kind
                   == NGX_HTTP_DYNROUTE_TARGET_UPSTREAM)
            {
                s.upstreams[v] = live->target_by_id[var.upstream]->uscf;

            } else if ((var.upstream & dynroute::service_key_bit)
                       && var.upstream != dynroute::no_name
                       && live->dmcf->carrier)
            {
                /* a service: the carrier, and which one */
                s.upstreams[v] = ngx_http_dynroute_services_uscf(live->dmcf);
                s.services[v] = var.upstream;
            }
        }

        /* weights that are not a whole split of this rollout: configured */

        if (ro.weights
            && (weights != s.weights.size()
                || !rp[r]->core->valid_weights(s.weights.data(),
                                               s.weights.size())))
        {
            const auto &c = live->configured[r].weights;
            std::copy(c.begin(), c.end(), s.weights.begin());
        }
    });
}


/*
 * Reads the published snapshot into the splits not in use and switches to
 * them, if it can read one whole; otherwise keeps the old ones and tries
 * again on the next request.
 */

static void
ngx_http_dynroute_view_refresh(ngx_http_dynroute_live_t *live) noexcept
{
    uint64_t                      g;
    ngx_uint_t                    tries, next;
    dynroute::SnapshotView        snap;
    ngx_http_dynroute_version_t  *v;

    next = live->current ^ 1;

    for (tries = 0; tries < NGX_HTTP_DYNROUTE_VIEW_TRIES; tries++) {
        g = ngx_http_dynroute_published(&live->sh->generation);
        v = ngx_http_dynroute_view_version(live);
        snap = ngx_http_dynroute_view_snapshot(live, v);

        if (!snap.valid() || snap.generation() != g) {
            continue;           /* published between the two reads */
        }

        ngx_http_dynroute_view_fill(live, snap, live->splits[next]);
        ngx_http_dynroute_view_groups(live, v);
        ngx_http_dynroute_services_fill(live->dmcf, live, v);

        ngx_http_dynroute_read_fence();

        if (ngx_http_dynroute_published(&live->sh->generation) == g) {
            for (ngx_http_dynroute_members_t *m : live->groups) {
                ngx_http_dynroute_members_commit(m);
            }

            ngx_http_dynroute_services_commit(live->dmcf);

            live->current = next;
            live->snapshot = snap;
            live->generation = g;
            return;
        }
    }
}


static inline void
ngx_http_dynroute_view_sync(ngx_http_dynroute_live_t *live) noexcept
{
    if (live->sh
        && ngx_http_dynroute_published(&live->sh->generation) != live->generation)
    {
        ngx_http_dynroute_view_refresh(live);
    }
}


void
ngx_http_dynroute_live_sync(ngx_http_dynroute_live_t *live) noexcept
{
    ngx_http_dynroute_view_sync(live);
}


ngx_http_dynroute_route_t
ngx_http_dynroute_live_route(ngx_http_dynroute_live_t *live,
    ngx_http_dynroute_rollout_t *ro) noexcept
{
    const ngx_http_dynroute_split_t &s =
        live->sh ? live->splits[live->current][ro->index]
                 : live->configured[ro->index];

    return { { s.weights.data(), s.primary }, s.upstreams.data(),
             s.services.data() };
}


/* what a runtime host entry of a snapshot stands for in the table of that
 * index, or NULL */

static ngx_http_dynroute_rule_t *
ngx_http_dynroute_live_entry(ngx_http_dynroute_live_t *live, ngx_uint_t table,
    const dynroute::SnapshotView::Host &e) noexcept
{
    ngx_http_dynroute_target_t  *t;

    if (e.target & dynroute::service_key_bit) {
        return (table < live->table_ids.size()
                && e.table == live->table_ids[table])
               ? ngx_http_dynroute_services_rule(live->dmcf, e.target)
               : NULL;
    }

    if (table >= live->table_ids.size() || e.table != live->table_ids[table]
        || e.target >= live->target_by_id.size())
    {
        return NULL;
    }

    t = live->target_by_id[e.target];

    return t ? t->rule : NULL;
}


/*
 * The search of ngx_http_dynroute_live_host().  The snapshot searched may
 * be freed by a writer meanwhile: the search, a miss as well as a hit,
 * stands only if the generation did not change during it.  Never inlined:
 * a zone without runtime hosts does not pay for its frame.
 */

static __attribute__((noinline)) ngx_http_dynroute_rule_t *
ngx_http_dynroute_live_search(ngx_http_dynroute_live_t *live,
    ngx_uint_t table, ngx_str_t host, uint64_t hash) noexcept
{
    ngx_uint_t                     tries;
    ngx_http_dynroute_rule_t      *rule;
    dynroute::SnapshotView::Host   e;

    for (tries = 0; tries < NGX_HTTP_DYNROUTE_VIEW_TRIES; tries++) {
        if (live->snapshot.hosts() == 0) {
            return NULL;
        }

        rule = NULL;

        if (live->snapshot.find_host(ngx_http_dynroute_view(host), hash, e)) {
            rule = ngx_http_dynroute_live_entry(live, table, e);
        }

        ngx_http_dynroute_read_fence();

        if (ngx_http_dynroute_published(&live->sh->generation)
            == live->generation)
        {
            return rule;
        }

        ngx_http_dynroute_view_refresh(live);
    }

    return NULL;
}


/*
 * The runtime entry of host for the table of that index, or NULL, in the
 * live values brought up to date first.
 */

ngx_http_dynroute_rule_t *
ngx_http_dynroute_live_host(ngx_http_dynroute_live_t *live, ngx_uint_t table,
    ngx_str_t host, uint64_t hash) noexcept
{
    ngx_http_dynroute_rule_t      *rule;
    dynroute::SnapshotView::Host   e;

    ngx_http_dynroute_view_sync(live);

    /*
     * The first try, inline: a miss (usually the host's first slot empty)
     * or a hit stands if the snapshot stayed current while it was read.
     */

    if (live->snapshot.find_host(ngx_http_dynroute_view(host), hash, e)) {
        rule = ngx_http_dynroute_live_entry(live, table, e);

    } else if (live->snapshot.hosts() == 0) {
        return NULL;

    } else {
        rule = NULL;
    }

    ngx_http_dynroute_read_fence();

    if (ngx_http_dynroute_published(&live->sh->generation)
        == live->generation)
    {
        return rule;
    }

    return ngx_http_dynroute_live_search(live, table, host, hash);
}


/*
 * For the stream module: the ids (table, target) of host's runtime entry,
 * or false.  Syncs first; a read stands only if the snapshot stayed
 * current while it was read, as ngx_http_dynroute_live_host()'s.
 */

bool
ngx_http_dynroute_live_host_ids(ngx_http_dynroute_live_t *live,
    std::string_view host, uint64_t hash, dynroute::NameId *table,
    dynroute::NameId *target) noexcept
{
    bool                           found;
    ngx_uint_t                     tries;
    dynroute::SnapshotView::Host   e;

    if (live->sh == NULL) {
        return false;
    }

    ngx_http_dynroute_view_sync(live);

    for (tries = 0; tries < NGX_HTTP_DYNROUTE_VIEW_TRIES; tries++) {
        if (live->snapshot.hosts() == 0) {
            return false;
        }

        found = live->snapshot.find_host(host, hash, e);

        ngx_http_dynroute_read_fence();

        if (ngx_http_dynroute_published(&live->sh->generation)
            == live->generation)
        {
            *table = e.table;
            *target = e.target;
            return found;
        }

        ngx_http_dynroute_view_refresh(live);
    }

    return false;
}


bool
ngx_http_dynroute_live_draining(ngx_http_dynroute_live_t *live) noexcept
{
    return live->sh && ngx_http_dynroute_published(&live->sh->draining);
}


bool
ngx_http_dynroute_live_current(ngx_http_dynroute_live_t *live) noexcept
{
    if (live == NULL || live->sh == NULL) {
        return true;
    }

    ngx_http_dynroute_read_fence();

    return ngx_http_dynroute_published(&live->sh->generation)
           == live->generation;
}


void
ngx_http_dynroute_live_status(ngx_http_dynroute_live_t *live,
    uint64_t *generation, bool *draining, size_t *runtime_hosts) noexcept
{
    *generation = live->sh ? ngx_http_dynroute_published(&live->sh->generation)
                           : 0;
    *draining = ngx_http_dynroute_live_draining(live);
    *runtime_hosts = live->snapshot.hosts();
}
