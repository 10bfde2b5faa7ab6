/*
 * The target registry: the one answer to "what does this name stand for,
 * and may a request be routed to it".  Built once, when the configuration
 * has been read, and used by every user of a target name: a table's rules
 * and a rollout's variants (nginx -t), the runtime hosts and flips (the
 * API, the state file) and the workers' live values.
 *
 * A target is an upstream{} block written in the configuration, or a
 * dynroute_rollout.  Not a target:
 *   - an upstream that nginx made for a proxy_pass to a host name: a typo
 *     would otherwise be resolved through DNS at request time;
 *   - a dynroute_balancer upstream: its balancing hands the request back
 *     to dynroute, which would choose it again, forever.
 * Names of upstream{} blocks are compared letter case aside, as nginx
 * does; rollout names exactly.  Named locations are targets of a table's
 * rules only, checked per server (ngx_http_dynroute_check_use).
 */

#include <cctype>
#include <deque>
#include <string>
#include <unordered_map>

#include "ngx_http_dynroute_targets.hpp"
#include "ngx_http_dynroute_services.hpp"
#include "suggest.hpp"


struct ngx_http_dynroute_targets_t {
    std::deque<ngx_http_dynroute_target_t>  all;   /* stable addresses */

    /* upstream{} blocks by name in lower case, refused ones included */
    std::unordered_map<std::string, ngx_http_dynroute_target_t *>
                                            upstreams;
    /* rollouts by name */
    std::unordered_map<std::string_view, ngx_http_dynroute_target_t *>
                                            rollouts;
    /* every routable target by its name as the configuration spells it:
     * the runtime's look-up, which allocates nothing */
    std::unordered_map<std::string_view, ngx_http_dynroute_target_t *>
                                            exact;
};


static const char  *ngx_http_dynroute_balancer_why =
    "is a dynroute_balancer upstream, which hands each request back to "
    "dynroute: a target must be an upstream{} block with servers or a "
    "dynroute_rollout";


static const char  *ngx_http_dynroute_carrier_why =
    "carries the services created at run time: name a service";


static std::string
ngx_http_dynroute_lower(std::string_view s)
{
    std::string  l(s);

    for (auto &c : l) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }

    return l;
}


static bool
ngx_http_dynroute_is_balancer(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_upstream_srv_conf_t *uscf) noexcept
{
    ngx_uint_t                      i;
    ngx_http_upstream_srv_conf_t  **bp;

    bp = static_cast<ngx_http_upstream_srv_conf_t **>(dmcf->balancers.elts);

    for (i = 0; i < dmcf->balancers.nelts; i++) {
        if (bp[i] == uscf) {
            return true;
        }
    }

    return false;
}


/*
 * Postconfiguration, before anything resolves a name: every upstream{}
 * block and every rollout.  With a zone, each target also gets the rule
 * that a runtime host entry naming it stands for, made once, so that a
 * request keeps it however the entries change.
 */

ngx_int_t
ngx_http_dynroute_targets_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                      i;
    ngx_http_dynroute_rule_t       *rule;
    ngx_http_dynroute_dest_t       *dest;
    ngx_http_dynroute_targets_t    *targets;
    ngx_http_dynroute_rollout_t   **rp;
    ngx_http_upstream_srv_conf_t  **uscfp;
    ngx_http_upstream_main_conf_t  *umcf;

    targets = ngx_http_dynroute_conf_new<ngx_http_dynroute_targets_t>(cf,
                  "dynroute");
    if (targets == NULL) {
        return NGX_ERROR;
    }

    dmcf->targets = targets;

    umcf = static_cast<ngx_http_upstream_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_upstream_module));
    uscfp = static_cast<ngx_http_upstream_srv_conf_t **>(
                umcf->upstreams.elts);
    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    try {
        for (i = 0; i < umcf->upstreams.nelts; i++) {
            if (!(uscfp[i]->flags & NGX_HTTP_UPSTREAM_CREATE)) {
                continue;
            }

            ngx_http_dynroute_target_t  t{};

            t.name = uscfp[i]->host;
            t.kind = NGX_HTTP_DYNROUTE_TARGET_UPSTREAM;
            t.uscf = uscfp[i];

            if (ngx_http_dynroute_is_balancer(dmcf, uscfp[i])) {
                t.why = ngx_http_dynroute_balancer_why;
            }

            if (ngx_http_dynroute_services_carrier(dmcf, uscfp[i])) {
                t.why = ngx_http_dynroute_carrier_why;
            }

            targets->all.push_back(t);
            targets->upstreams.emplace(
                ngx_http_dynroute_lower(ngx_http_dynroute_view(t.name)),
                &targets->all.back());
        }

        for (i = 0; i < dmcf->rollouts.nelts; i++) {
            ngx_http_dynroute_target_t  t{};

            if (targets->upstreams.count(ngx_http_dynroute_lower(
                    ngx_http_dynroute_view(rp[i]->name))))
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "dynroute rollout \"%V\" in %s:%ui has the "
                              "name of an upstream{} block: a table target "
                              "naming it would be ambiguous", &rp[i]->name,
                              rp[i]->file, rp[i]->line);
                return NGX_ERROR;
            }

            t.name = rp[i]->name;
            t.kind = NGX_HTTP_DYNROUTE_TARGET_ROLLOUT;
            t.rollout = rp[i];

            targets->all.push_back(t);
            targets->rollouts.emplace(ngx_http_dynroute_view(t.name),
                                      &targets->all.back());
        }

        for (auto &t : targets->all) {
            if (t.why) {
                continue;
            }

            targets->exact.emplace(ngx_http_dynroute_view(t.name), &t);

            if (dmcf->zone == NULL) {
                continue;
            }

            rule = static_cast<ngx_http_dynroute_rule_t *>(
                       ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_rule_t)));
            dest = static_cast<ngx_http_dynroute_dest_t *>(
                       ngx_pcalloc(cf->pool,
                                   sizeof(ngx_http_dynroute_dest_t)));
            if (rule == NULL || dest == NULL) {
                return NGX_ERROR;
            }

            dest->target = t.name;
            dest->rollout = t.rollout;
            dest->uscf = t.uscf;
            rule->text = t.name;
            rule->dest = dest;
            t.rule = rule;
        }

    } catch (...) {
        (void) ngx_http_dynroute_conf_caught(cf, "dynroute");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * What name stands for: a routable target, or NULL with *why saying why
 * not (NULL there too: no upstream{} block or rollout of that name).  For
 * nginx -t and the API: may allocate, may throw.
 */

ngx_http_dynroute_target_t *
ngx_http_dynroute_target_resolve(ngx_http_dynroute_main_conf_t *dmcf,
    std::string_view name, const char **why)
{
    ngx_http_dynroute_targets_t  *targets = dmcf->targets;

    *why = NULL;

    auto r = targets->rollouts.find(name);
    if (r != targets->rollouts.end()) {
        return r->second;
    }

    auto u = targets->upstreams.find(ngx_http_dynroute_lower(name));
    if (u == targets->upstreams.end()) {
        return NULL;
    }

    if (u->second->why) {
        *why = u->second->why;
        return NULL;
    }

    return u->second;
}


/*
 * Of the routable targets (of the upstream{} blocks only, for a variant's
 * upstream), the one that name (no target) is most likely a typo of, for
 * "did you mean"; empty if none is close.  May throw.
 */

std::string_view
ngx_http_dynroute_target_closest(ngx_http_dynroute_main_conf_t *dmcf,
    std::string_view name, bool upstreams)
{
    dynroute::ClosestName  closest(name);

    for (const auto &t : dmcf->targets->all) {
        if (t.why == NULL
            && (!upstreams || t.kind == NGX_HTTP_DYNROUTE_TARGET_UPSTREAM))
        {
            closest.consider(ngx_http_dynroute_view(t.name));
        }
    }

    return closest.best();
}


/* a routable target by its name as the configuration spells it: run time */

ngx_http_dynroute_target_t *
ngx_http_dynroute_target_exact(ngx_http_dynroute_main_conf_t *dmcf,
    std::string_view name) noexcept
{
    auto t = dmcf->targets->exact.find(name);

    return (t == dmcf->targets->exact.end()) ? NULL : t->second;
}


/* calls f(t) for every routable target, upstreams first, in their order */

void
ngx_http_dynroute_targets_each(ngx_http_dynroute_main_conf_t *dmcf,
    const std::function<void(ngx_http_dynroute_target_t &)> &f)
{
    for (auto &t : dmcf->targets->all) {
        if (t.why == NULL) {
            f(t);
        }
    }
}
